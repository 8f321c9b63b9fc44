"""Environment settings, read at call time so tests and notebooks can change them.

``ROUTERWISE_DATA_MIRROR``
    A folder laid out like raw-file URLs (``github/<owner>/<repo>/<commit>/<path>``). When set,
    registered data files are read from it and never downloaded. CI sets it; offline users
    point it at their copy. Set but empty: no mirror (download).
``ROUTERWISE_CACHE_DIR``
    Where downloads and generated tables (latency profiles, fitted models) are cached.
    Default: ``$XDG_CACHE_HOME/routerwise`` or ``~/.cache/routerwise``.
``ROUTERWISE_OFFLINE``
    A true value (``1``, ``true``, ``yes``, ``on``, any case) forbids downloads even without a
    mirror (a missing file is then an error); ``0``, ``false``, ``no``, ``off`` or empty allow
    them. Anything else is a :class:`~routerwise.errors.ValidationError`, never silently
    "online".
The config file ``~/.config/routerwise/config.toml`` (``$XDG_CONFIG_HOME/routerwise/``) holds
the same two offline settings for every run, where no Makefile sets the environment (JupyterLab,
papermill, scripts); the environment variables take precedence::

    data_mirror = "/data/routerwise-mirror"   # relative paths are read from the file's folder
    offline = true

``ROUTERWISE_PROGRESS``
    Progress bars: ``auto`` (default: widget bars in a Jupyter kernel when ipywidgets is
    installed, text bars otherwise), ``widgets``, ``text`` or ``off``. ``routerwise reproduce``
    runs notebooks with ``off`` (their outputs are stored; it shows one bar over notebooks).
    A text bar outside a notebook whose stderr is not a terminal (CI logs) prints a plain
    line every 30 s instead of redrawing with ``\r``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CONFIG_KEYS", "config_path", "config", "data_mirror", "data_mirror_origin",
           "mirror_hint", "cache_dir", "SHARE_PANELS_ENV", "WRITTEN_LOG_ENV",
           "TRUE_WORDS", "FALSE_WORDS", "offline", "PROGRESS_MODES",
           "progress_mode", "progress_bar"]


CONFIG_KEYS = ("data_mirror", "offline")


def config_path() -> Path:
    """The user's config file: ``$XDG_CONFIG_HOME/routerwise/config.toml`` (default
    ``~/.config/routerwise/config.toml``)."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base).expanduser() / "routerwise" / "config.toml"


def config() -> dict:
    """The config file's settings ({} without one); read at call time. A file that is not
    TOML, or holds a key other than :data:`CONFIG_KEYS`, is a ValidationError naming it."""
    import tomllib
    path = config_path()
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        from .errors import ValidationError
        raise ValidationError(f"{path}: not a readable TOML config file ({e}); fix or delete "
                              f"it") from e
    unknown = sorted(set(doc) - set(CONFIG_KEYS))
    if unknown:
        from .errors import ValidationError
        raise ValidationError(f"{path}: unknown setting(s) {unknown}; allowed: "
                              f"{list(CONFIG_KEYS)}")
    return doc


def data_mirror() -> Path | None:
    """``ROUTERWISE_DATA_MIRROR`` when set (empty: no mirror), else ``data_mirror`` of the
    config file (:func:`config_path`; relative to it), else None."""
    if "ROUTERWISE_DATA_MIRROR" in os.environ:
        v = os.environ["ROUTERWISE_DATA_MIRROR"].strip()
        return Path(v).expanduser().resolve() if v else None
    v = config().get("data_mirror")
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        from .errors import ValidationError
        raise ValidationError(f"{config_path()}: data_mirror must be a folder path (a string), "
                              f"got {v!r}")
    return (config_path().parent / Path(v).expanduser()).resolve()


def data_mirror_origin() -> str:
    """Where :func:`data_mirror` came from, for messages."""
    if "ROUTERWISE_DATA_MIRROR" in os.environ:
        return "ROUTERWISE_DATA_MIRROR"
    return f"data_mirror in {config_path()}"


def mirror_hint() -> str:
    """How to point the kit at an offline mirror, for error messages: the environment
    variable, or the config file that JupyterLab, papermill and scripts read too; names
    ``../shared/data`` beside the checkout when it exists (what ``make`` uses)."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    found = (f" ({beside} exists: `make` uses it; data_mirror = \"{beside}\" makes every "
             f"run use it)") if beside.is_dir() else ""
    return (f"set ROUTERWISE_DATA_MIRROR to a folder laid out like "
            f"github/<owner>/<repo>/<commit>/<path>, or write data_mirror = \"/that/folder\" "
            f"in {config_path()}, which the kit reads wherever it runs (JupyterLab, papermill, "
            f"scripts){found}")


def cache_dir() -> Path:
    v = os.environ.get("ROUTERWISE_CACHE_DIR", "").strip()
    if v:
        return Path(v).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "routerwise"


# set (to 1) by `routerwise reproduce` for its notebooks: experiment panels are then shared
# through the cache (routerwise.paper.experiments.shared_panel_checkpoint)
SHARE_PANELS_ENV = "ROUTERWISE_SHARE_PANELS"
# set by `routerwise reproduce --jobs N` for each notebook it runs beside others: every file
# routerwise.paper.record writes is listed in that file (one path a line, relative to the
# results folder), so the run record names what this notebook wrote and nothing else
WRITTEN_LOG_ENV = "ROUTERWISE_WRITTEN_LOG"

TRUE_WORDS = ("1", "true", "yes", "on", "y", "t")
FALSE_WORDS = ("", "0", "false", "no", "off", "n", "f")


def offline() -> bool:
    if "ROUTERWISE_OFFLINE" not in os.environ:
        v = config().get("offline", False)
        if not isinstance(v, bool):
            from .errors import ValidationError
            raise ValidationError(f"{config_path()}: offline must be true or false (unquoted), "
                                  f"got {v!r}")
        return v
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


LINE_INTERVAL_S = 30.0   # a bar written to a log (not a terminal) prints a line this often


def progress_bar(*args, **kwargs):
    """A ``tqdm`` bar of the kind :func:`progress_mode` names (same arguments as ``tqdm``);
    ``off`` disables it. Widget bars only with ipywidgets: ``tqdm.auto`` without it prints an
    "IProgress not found" warning in a notebook. Outside a Jupyter kernel, a text bar whose
    stream (stderr) is not a terminal (a CI log, ``| tee``) prints a plain line every
    :data:`LINE_INTERVAL_S` seconds and at the end, never ``\r`` redraws."""
    mode = progress_mode()
    if mode == "widgets":
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    if mode == "off":
        kwargs["disable"] = True
    elif mode == "text" and not _in_kernel() and not _is_terminal(kwargs.get("file")):
        kwargs.update(file=_Lines(kwargs.get("file") or sys.stderr),
                      mininterval=LINE_INTERVAL_S, ascii=True,
                      bar_format="{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), "
                                 "{elapsed} elapsed, about {remaining} left{postfix}"
                      if kwargs.get("total") is not None or _has_len(args) else
                      "{desc}: {n_fmt} {unit}, {elapsed} elapsed{postfix}")
    return tqdm(*args, **kwargs)


def _has_len(args) -> bool:
    return bool(args) and hasattr(args[0], "__len__")


def _in_kernel() -> bool:
    """Inside a Jupyter kernel (where a text bar's ``\r`` redraws in place)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython
    return getattr(get_ipython(), "kernel", None) is not None


def _is_terminal(stream) -> bool:
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):      # closed or not a real stream
        return False


class _Lines:
    """A stream for tqdm that turns each ``\r`` redraw into one line of its own."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "")
        if text.strip():
            self.stream.write(text.rstrip("\n") + "\n")

    def flush(self) -> None:
        self.stream.flush()
