"""Record a notebook's key numbers: one JSON file per notebook, compared by the tests.

A notebook's last cell calls :func:`record` with a flat dict of numbers (and short strings).
The file lands in ``<results>/numbers/<name>.json`` (``ROUTERWISE_RESULTS_DIR``, default
``./results``), written atomically; the reproduction summary and the notebook tests read it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from ..errors import ValidationError
from ..io import atomic_path, atomic_write_with, write_json

__all__ = ["results_dir", "record", "load", "save_figure", "save_table"]


def results_dir() -> Path:
    return Path(os.environ.get("ROUTERWISE_RESULTS_DIR", "results")).expanduser().resolve()


def record(name: str, numbers: dict, *, labels: dict | None = None) -> pd.DataFrame:
    """Write ``numbers`` to ``<results>/numbers/<name>.json`` and return them as a table.

    ``labels`` optionally marks each number as measured / fitted / modelled / simulated.
    """
    clean = {}
    for k, v in numbers.items():
        if hasattr(v, "item"):
            v = v.item()
        if not isinstance(v, (int, float, str, bool)) and v is not None:
            raise ValidationError(f"record({name!r}): {k!r} must be a number or a short string, "
                                  f"got {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        clean[k] = v
    path = results_dir() / "numbers" / f"{name}.json"
    write_json(path, {"notebook": name, "numbers": clean, "labels": labels or {}})
    return pd.DataFrame({"value": pd.Series(clean, dtype=object),
                         "kind": pd.Series(labels or {}, dtype=object)}).fillna("")


def load(name: str, directory: str | Path | None = None) -> dict:
    d = Path(directory) if directory else results_dir()
    return json.loads((d / "numbers" / f"{name}.json").read_text())["numbers"]


def save_figure(fig, name: str) -> Path:
    """Save a matplotlib figure as ``<results>/figures/<name>.png`` (atomically)."""
    path = results_dir() / "figures" / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def save_table(df: pd.DataFrame, name: str) -> Path:
    """Save a table as ``<results>/tables/<name>.csv`` (atomically)."""
    return atomic_write_with(results_dir() / "tables" / f"{name}.csv",
                             lambda tmp: df.to_csv(tmp, index=False))
