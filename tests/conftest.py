"""Test settings: read data from a local mirror, keep caches inside the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# A mirror beside the checkout (as in CI) is used when ROUTERWISE_DATA_MIRROR is unset. Set at
# import time so that the skip markers below see it.
if not os.environ.get("ROUTERWISE_DATA_MIRROR"):
    _beside = REPO.parent / "shared" / "data"
    if _beside.is_dir():
        os.environ["ROUTERWISE_DATA_MIRROR"] = str(_beside)


_CACHE_GIVEN = bool(os.environ.get("ROUTERWISE_CACHE_DIR"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated tables go to the cache named by ROUTERWISE_CACHE_DIR (``make test`` sets one
    for the whole run) or else to a per-session folder: never the user's own cache."""
    if not _CACHE_GIVEN:
        monkeypatch.setenv("ROUTERWISE_CACHE_DIR",
                           str(tmp_path_factory.getbasetemp() / "routerwise-cache"))


def mirror_available() -> bool:
    m = os.environ.get("ROUTERWISE_DATA_MIRROR")
    return bool(m) and Path(m).is_dir()


needs_mirror = pytest.mark.skipif(not mirror_available(),
                                  reason="no data mirror: set ROUTERWISE_DATA_MIRROR")
