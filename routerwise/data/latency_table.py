"""The one latency-profile table schema, shared by measured and simulated curves.

A profile table is tidy: one row per (model, gpu, tp, compute_share, load_rps) point.

=================  ======  =====================================================================
column             type    meaning
=================  ======  =====================================================================
model              str     model name as used in the problem
gpu                str     GPU type, e.g. ``A100-80GB``
tp                 int     tensor-parallel degree
compute_share      float   MPS active-thread share of each GPU, in tenths (0.1 .. 1.0)
load_rps           float   offered load, requests per second
num_requests       int     completed requests behind the statistics
duration_s         float   length of the measured window, seconds
{metric}_ms        float   latency statistics: ttft/tpot/e2e x mean/p50/p95/p99 (NaN if absent)
saturated          bool    the replica could not keep up at this load (queue kept growing)
source             str     ``measured`` | ``simulated`` | ``synthetic``
provenance         str     where the numbers came from (hardware, software, command, date, ...)
=================  ======  =====================================================================

:func:`to_profiles` turns a table into :class:`~routerwise.problem.LatencyProfiles` for one
metric. A curve ends at its last load below the first saturated point: the optimizer never
routes more load to a model than was profiled without saturation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, ValidationError
from ..io import atomic_write_with
from ..problem import CURVE_SOURCES, LATENCY_METRICS, LatencyCurve, LatencyProfiles

__all__ = ["KEY_COLUMNS", "METRIC_COLUMNS", "COLUMNS", "empty_table", "normalize", "read_table",
           "write_table", "monotone_envelope", "to_profiles", "to_profiles_by_gpu",
           "from_profiles"]

KEY_COLUMNS = ("model", "gpu", "tp", "compute_share", "load_rps")
METRIC_COLUMNS = tuple(f"{m}_ms" for m in LATENCY_METRICS)
COLUMNS = KEY_COLUMNS + ("num_requests", "duration_s") + METRIC_COLUMNS + (
    "saturated", "source", "provenance")
_DTYPES = {"model": str, "gpu": str, "tp": "int64", "compute_share": float, "load_rps": float,
           "num_requests": "int64", "duration_s": float, "saturated": bool, "source": str,
           "provenance": str, **{c: float for c in METRIC_COLUMNS}}


def empty_table() -> pd.DataFrame:
    return normalize(pd.DataFrame({c: [] for c in COLUMNS}))


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a profile table and return it with the schema's columns, order and dtypes.

    Missing metric columns are added as NaN; missing key/provenance columns are an error.
    """
    required = KEY_COLUMNS + ("saturated", "source")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValidationError(f"profile table lacks columns {missing}; the schema is "
                              f"{list(COLUMNS)} (see routerwise.data.latency_table)")
    out = df.copy()
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = {"num_requests": 0, "duration_s": np.nan, "provenance": ""}.get(c, np.nan)
    out = out[list(COLUMNS)].astype(_DTYPES)
    bad_src = sorted(set(out["source"]) - set(CURVE_SOURCES))
    if bad_src:
        raise ValidationError(f"profile table has unknown sources {bad_src}; use {CURVE_SOURCES}")
    tenths = out["compute_share"] * 10
    if len(out) and (not np.allclose(tenths, np.round(tenths)) or tenths.min() < 1 or tenths.max() > 10):
        raise ValidationError("compute_share must be a multiple of 0.1 in [0.1, 1.0]")
    if len(out) and ((out["tp"] < 1).any() or (out["load_rps"] < 0).any()):
        raise ValidationError("tp must be >= 1 and load_rps >= 0 in a profile table")
    dup = out.duplicated(list(KEY_COLUMNS))
    if dup.any():
        row = out[dup].iloc[0]
        raise ValidationError(f"profile table repeats the point {tuple(row[list(KEY_COLUMNS)])}; "
                              f"aggregate repeats before saving")
    return out.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no profile table at {path}")
    return normalize(pd.read_csv(path, keep_default_na=True))


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a normalized profile table atomically; credentials in ``provenance`` (an
    endpoint's ``user:password@``, API keys) are masked (:func:`routerwise.redact.redact_text`)."""
    from ..redact import redact_text

    df = normalize(df)
    if "provenance" in df.columns:
        df["provenance"] = df["provenance"].map(
            lambda v: redact_text(v) if isinstance(v, str) else v)
    return atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))


def monotone_envelope(latency_ms) -> np.ndarray:
    """Running maximum: the smallest non-decreasing curve at or above the data (conservative)."""
    return np.maximum.accumulate(np.asarray(latency_ms, dtype=float))


def to_profiles(df: pd.DataFrame, metric: str = "ttft_mean", *, gpu: str | None = None,
                monotone: str = "error", min_points: int = 1) -> LatencyProfiles:
    """Build one curve per (model, tp, compute_share) from a profile table.

    ``monotone="envelope"`` replaces a noisy curve by its running maximum (conservative) and
    says so in the curve's provenance; ``"error"`` raises on any dip. Points at and beyond the
    first saturated load are dropped; a key with fewer than ``min_points`` usable points gets
    no curve (the setup space then leaves that option out).
    """
    if metric not in LATENCY_METRICS:
        raise ValidationError(f"unknown metric {metric!r}; use one of {LATENCY_METRICS}")
    if monotone not in ("error", "envelope"):
        raise ValidationError("monotone must be 'error' or 'envelope'")
    df = normalize(df)
    if gpu is not None:
        df = df[df["gpu"] == gpu]
        if df.empty:
            raise ValidationError(f"profile table has no rows for gpu {gpu!r}")
    if df["gpu"].nunique() > 1:
        raise ValidationError(f"profile table mixes GPU types {sorted(df['gpu'].unique())}; "
                              f"pass gpu=... to pick one")
    col = f"{metric}_ms"
    curves = []
    for (model, tp, share), g in df.groupby(["model", "tp", "compute_share"], sort=True):
        g = g.sort_values("load_rps")
        sat = g["saturated"].to_numpy()
        if sat.any():
            g = g.iloc[: int(np.argmax(sat))]
        g = g[np.isfinite(g[col].to_numpy())]
        if len(g) < min_points:
            continue
        y = g[col].to_numpy()
        prov = "; ".join(sorted(set(p for p in g["provenance"] if p)))
        if monotone == "envelope" and np.any(np.diff(y) < 0):
            y = monotone_envelope(y)
            prov = (prov + "; " if prov else "") + "running-max envelope applied"
        sources = set(g["source"])
        if len(sources) != 1:
            raise ValidationError(f"curve {(model, tp, share)} mixes sources {sorted(sources)}")
        curves.append(LatencyCurve(str(model), int(tp), int(round(share * 10)),
                                   tuple(g["load_rps"]), tuple(y), metric, sources.pop(), prov))
    if not curves:
        raise ValidationError(f"no usable {metric} curve in the profile table (every point "
                              f"saturated or NaN)")
    return LatencyProfiles(tuple(curves), metric)


def to_profiles_by_gpu(df: pd.DataFrame, metric: str = "ttft_mean", *,
                       gpus: Sequence[str] | None = None, **kw) -> LatencyProfiles:
    """Curves for several GPU types from one table (a mixed cluster's curves): one curve per
    (model, gpu, tp, compute_share), each naming its type in ``LatencyCurve.gpu``.

    ``gpus``: the types to keep (default: every type in the table); a type without rows is a
    ValidationError. Other options as :func:`to_profiles`, applied per type."""
    df = normalize(df)
    have = sorted(set(df["gpu"]))
    gpus = tuple(have if gpus is None else gpus)
    missing = [g for g in gpus if g not in have]
    if missing:
        raise ValidationError(f"profile table has no rows for GPU type(s) {missing}; it has "
                              f"{have}. Profile or simulate them (routerwise.serving.curve_grid."
                              f"build_profile_tables)")
    if any(not g for g in gpus):
        raise ValidationError("profile table rows need a GPU type name in the gpu column")
    curves = []
    for g in gpus:
        curves += [replace(c, gpu=g) for c in to_profiles(df, metric, gpu=g, **kw).curves]
    return LatencyProfiles(tuple(curves), metric)


def from_profiles(profiles: LatencyProfiles, gpu: str) -> pd.DataFrame:
    """The inverse of :func:`to_profiles` for one metric (other metric columns NaN); a curve
    naming its GPU type keeps it, the others get ``gpu``."""
    rows = []
    for c in profiles.curves:
        for x, y in zip(c.load_rps, c.latency_ms):
            rows.append({"model": c.model, "gpu": c.gpu or gpu, "tp": c.tp,
                         "compute_share": c.compute_tenths / 10, "load_rps": x,
                         f"{profiles.metric}_ms": y, "saturated": False, "source": c.source,
                         "provenance": c.provenance})
    return normalize(pd.DataFrame(rows)) if rows else empty_table()
