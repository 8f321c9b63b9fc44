"""Record a notebook's key numbers, figures and tables under one results folder.

A notebook's last cell calls :func:`record` with a flat dict of numbers (and short strings),
the kind of each number (measured, fitted, modelled, simulated, ...: every number needs one,
``labels=`` per key or ``default_kind=`` for the rest) and optionally its problem. The file
lands in ``<results>/numbers/<name>.json`` with a provenance record
(:func:`routerwise.paper.provenance.provenance`: kit version, git commit, data registry digest,
the problem's assumptions); the reproduction summary and the notebook tests read it.

The results folder (:func:`results_dir`) is ``ROUTERWISE_RESULTS_DIR`` when set, else
``<repo>/results`` of the checkout the kit runs from (else ``./results``), whatever the working
directory: a notebook opened in JupyterLab (cwd ``notebooks/``) writes where ``make reproduce``
does. Every file is written atomically. :func:`save_figure` writes PDF and PNG; when it (or
:func:`save_table`) replaces a file written by another run it says so (a ``replaced`` line
naming the old file's time), and figures of separate runs never share a folder when each run
sets ``ROUTERWISE_RESULTS_DIR`` (``routerwise reproduce --out DIR`` does).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd

from ..errors import ValidationError
from ..io import atomic_path, atomic_write_with, write_json
from ..settings import WRITTEN_LOG_ENV

__all__ = ["FIGURE_FORMATS", "WRITTEN_LOG_ENV", "results_dir", "record", "load", "load_record", "save_figure",
           "save_table"]

FIGURE_FORMATS = ("pdf", "png")   # vector for the paper, raster for the notebook and README
_STARTED = time.time()            # this process's start: older files come from another run




def _note_written(path: Path) -> None:
    log = os.environ.get(WRITTEN_LOG_ENV)
    if log:
        try:
            rel = path.resolve().relative_to(results_dir()).as_posix()
        except ValueError:
            rel = str(path.resolve())
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(rel + "\n")


def results_dir() -> Path:
    """``ROUTERWISE_RESULTS_DIR``, else ``<repo>/results`` (the checkout holding
    ``notebooks/`` beside ``routerwise/``), else ``./results``; absolute."""
    env = os.environ.get("ROUTERWISE_RESULTS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[2]
    base = repo if (repo / "notebooks").is_dir() else Path.cwd()
    return (base / "results").resolve()


def record(name: str, numbers: dict, *, labels: dict | None = None,
           default_kind: str | None = None, problem=None, assumptions=None) -> pd.DataFrame:
    """Write ``numbers`` to ``<results>/numbers/<name>.json`` and return them as a table.

    Every number needs a kind (``routerwise.paper.provenance.KINDS``: measured, fitted,
    modelled, simulated, predicted, counted, parameter, ...): ``labels[key]``, else
    ``default_kind``; a number left without one is a ValidationError. ``problem`` (its
    ``assumptions``) and ``assumptions`` (extra lines) go into the provenance record.
    """
    from .provenance import check_kinds, provenance
    clean = {}
    for k, v in numbers.items():
        if hasattr(v, "item"):
            v = v.item()
        if not isinstance(v, (int, float, str, bool)) and v is not None:
            raise ValidationError(f"record({name!r}): {k!r} must be a number or a short string, "
                                  f"got {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        elif isinstance(v, float) and v == 0:
            v = 0.0          # a computed -0.0 (e.g. 100 * a zero gap) reads as a sign
        clean[k] = v
    kinds = check_kinds(name, list(clean), labels, default_kind)
    path = results_dir() / "numbers" / f"{name}.json"
    parameters, changed = run_parameters(name)
    write_json(path, {"notebook": name, "numbers": clean, "labels": kinds,
                      "parameters": parameters, "non_default_parameters": changed,
                      "provenance": provenance(problem, assumptions=assumptions)})
    _note_written(path)
    return pd.DataFrame({"value": pd.Series(clean, dtype=object),
                         "kind": pd.Series(kinds, dtype=object)}).fillna("")


def run_parameters(name: str) -> tuple[dict | None, dict | None]:
    """(the values of notebook ``name``'s parameters in this run, those that differ from its
    defaults), or (None, None) when ``name`` is not a notebook of the kit.

    Read from the notebook's namespace (``__main__`` of its kernel, after papermill's injected
    cell and ``params.check``), for the names its ``parameters`` cell declares. A run with
    other parameters (one panel instead of the paper's grid) is marked so in ``summary.md``.
    """
    import sys

    from ..errors import DataError
    from .reproduce import NOTEBOOKS, notebook_parameters
    if name not in NOTEBOOKS:
        return None, None
    try:
        defaults = notebook_parameters(name)
    except DataError:
        return None, None
    ns = vars(sys.modules["__main__"])
    values = {k: _plain(ns[k]) for k in defaults if k in ns}
    return values, {k: v for k, v in values.items() if not _same(v, defaults[k])}


def _plain(v):
    # JSON-able: numpy scalars and tuples as the literals a parameters cell holds
    if hasattr(v, "item"):
        return v.item()
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def _same(a, b) -> bool:
    # 25 and 25.0 are the same rate; (4, 8) and [4, 8] the same list
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b                # True is not the integer 1 here
    return a == b


def load_record(name: str, directory: str | Path | None = None) -> dict:
    """The whole record of notebook ``name``: numbers, labels (kinds) and provenance."""
    d = Path(directory) if directory else results_dir()
    return json.loads((d / "numbers" / f"{name}.json").read_text())


def load(name: str, directory: str | Path | None = None) -> dict:
    return load_record(name, directory)["numbers"]


def save_figure(fig, name: str, formats=FIGURE_FORMATS) -> Path:
    """Save a matplotlib figure as ``<results>/figures/<name>.<fmt>`` for each of ``formats``
    (atomically); returns the PNG path (the first format when PNG is not among them).

    A file of the same name written before this process started (another run) is replaced
    with a printed note naming its time, never silently.
    """
    import matplotlib.pyplot as plt

    from .style import PNG_DPI, RC
    if not formats:
        raise ValidationError("save_figure: formats must name at least one of pdf, png, svg")
    paths = {}
    for fmt in formats:
        path = results_dir() / "figures" / f"{name}.{fmt}"
        _say_if_replacing(path)
        # Saving reads rcParams (pdf.fonttype among them) at save time, not at plot time: without
        # the style here, PDFs embed Type 3 fonts, which venues' checks reject.
        with atomic_path(path) as tmp, plt.rc_context(RC):
            fig.savefig(tmp, format=fmt, dpi=PNG_DPI, bbox_inches="tight",
                        metadata={"Creator": "routerwise"} if fmt in ("pdf", "png") else None)
        paths[fmt] = path
        _note_written(path)
    return paths.get("png", paths[formats[0]])


def _say_if_replacing(path: Path) -> None:
    """Print a ``replaced`` line when ``path`` was written before this process started (by
    another run): results are never overwritten silently."""
    if path.exists() and path.stat().st_mtime < _STARTED:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
        print(f"replaced {path} (written {when} by another run)")


def save_table(df: pd.DataFrame, name: str) -> Path:
    """Save a table as ``<results>/tables/<name>.csv`` (atomically); replacing one written by
    another run prints a ``replaced`` line, as :func:`save_figure` does."""
    path = results_dir() / "tables" / f"{name}.csv"
    _say_if_replacing(path)
    written = atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))
    _note_written(path)
    return written
