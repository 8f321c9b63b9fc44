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


def in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab, ...): there nothing may be skipped for want of
    data."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


# Tests that read registered data files. Without a mirror they skip on a workstation and FAIL
# in CI, where a missing mirror is a broken set-up, not a reason to test less.
needs_mirror = pytest.mark.needs_mirror


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_mirror: reads registered data files (a mirror "
                                       "in ROUTERWISE_DATA_MIRROR); fails in CI without one")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_mirror") is None or mirror_available():
        return
    why = (f"no data mirror: ROUTERWISE_DATA_MIRROR="
           f"{os.environ.get('ROUTERWISE_DATA_MIRROR', '(unset)')} is not a folder")
    if in_ci():
        pytest.fail(f"{why}; in CI (CI={os.environ.get('CI')}) the mirror is required",
                    pytrace=False)
    pytest.skip(f"{why}: set ROUTERWISE_DATA_MIRROR")
