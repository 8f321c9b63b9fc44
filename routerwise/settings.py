"""Environment settings, read at call time so tests and notebooks can change them.

``ROUTERWISE_DATA_MIRROR``
    A folder laid out like raw-file URLs (``github/<owner>/<repo>/<commit>/<path>``). When set,
    registered data files are read from it and never downloaded. CI sets it; offline users
    point it at their copy.
``ROUTERWISE_CACHE_DIR``
    Where downloads and generated tables (latency profiles, fitted models) are cached.
    Default: ``$XDG_CACHE_HOME/routerwise`` or ``~/.cache/routerwise``.
``ROUTERWISE_OFFLINE``
    ``1`` forbids downloads even without a mirror (a missing file is then an error).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_mirror() -> Path | None:
    v = os.environ.get("ROUTERWISE_DATA_MIRROR", "").strip()
    return Path(v).expanduser().resolve() if v else None


def cache_dir() -> Path:
    v = os.environ.get("ROUTERWISE_CACHE_DIR", "").strip()
    if v:
        return Path(v).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "routerwise"


def offline() -> bool:
    return os.environ.get("ROUTERWISE_OFFLINE", "").strip().lower() in ("1", "true", "yes")
