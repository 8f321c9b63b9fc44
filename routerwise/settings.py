"""Environment settings, read at call time so tests and notebooks can change them.

``ROUTERWISE_DATA_MIRROR``
    A folder laid out like raw-file URLs (``github/<owner>/<repo>/<commit>/<path>``). When set,
    registered data files are read from it and never downloaded. CI sets it; offline users
    point it at their copy.
``ROUTERWISE_CACHE_DIR``
    Where downloads and generated tables (latency profiles, fitted models) are cached.
    Default: ``$XDG_CACHE_HOME/routerwise`` or ``~/.cache/routerwise``.
``ROUTERWISE_OFFLINE``
    A true value (``1``, ``true``, ``yes``, ``on``, any case) forbids downloads even without a
    mirror (a missing file is then an error); ``0``, ``false``, ``no``, ``off`` or empty allow
    them. Anything else is a :class:`~routerwise.errors.ValidationError`, never silently
    "online".
``ROUTERWISE_PROGRESS``
    Progress bars: ``auto`` (default: widget bars in a Jupyter kernel when ipywidgets is
    installed, text bars otherwise), ``widgets``, ``text`` or ``off``. ``routerwise reproduce``
    runs notebooks with ``off`` (their outputs are stored; it shows one bar over notebooks).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_mirror", "cache_dir", "TRUE_WORDS", "FALSE_WORDS", "offline", "PROGRESS_MODES",
           "progress_mode", "progress_bar"]


def data_mirror() -> Path | None:
    v = os.environ.get("ROUTERWISE_DATA_MIRROR", "").strip()
    return Path(v).expanduser().resolve() if v else None


def cache_dir() -> Path:
    v = os.environ.get("ROUTERWISE_CACHE_DIR", "").strip()
    if v:
        return Path(v).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "routerwise"


TRUE_WORDS = ("1", "true", "yes", "on", "y", "t")
FALSE_WORDS = ("", "0", "false", "no", "off", "n", "f")


def offline() -> bool:
    v = os.environ.get("ROUTERWISE_OFFLINE", "").strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    from .errors import ValidationError
    raise ValidationError(f"ROUTERWISE_OFFLINE={os.environ['ROUTERWISE_OFFLINE']!r} is neither "
                          f"true ({', '.join(TRUE_WORDS)}) nor false "
                          f"({', '.join(w for w in FALSE_WORDS if w)} or empty)")


PROGRESS_MODES = ("auto", "widgets", "text", "off")


def progress_mode() -> str:
    """``ROUTERWISE_PROGRESS`` resolved: "widgets", "text" or "off" ("auto" picks widgets when
    ipywidgets is importable, else text)."""
    v = os.environ.get("ROUTERWISE_PROGRESS", "").strip().lower() or "auto"
    if v not in PROGRESS_MODES:
        from .errors import ValidationError
        raise ValidationError(f"ROUTERWISE_PROGRESS={os.environ['ROUTERWISE_PROGRESS']!r}: use "
                              f"one of {', '.join(PROGRESS_MODES)}")
    if v == "auto":
        import importlib.util
        return "widgets" if importlib.util.find_spec("ipywidgets") is not None else "text"
    return v


def progress_bar(*args, **kwargs):
    """A ``tqdm`` bar of the kind :func:`progress_mode` names (same arguments as ``tqdm``);
    ``off`` disables it. Widget bars only with ipywidgets: ``tqdm.auto`` without it prints an
    "IProgress not found" warning in a notebook."""
    mode = progress_mode()
    if mode == "widgets":
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    if mode == "off":
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)
