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

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, ValidationError
from ..io import atomic_write_with
from ..problem import CURVE_SOURCES, LATENCY_METRICS, LatencyCurve, LatencyProfiles

__all__ = ["KEY_COLUMNS", "METRIC_COLUMNS", "COLUMNS", "empty_table", "normalize", "read_table",
           "write_table", "monotone_envelope", "envelope_change", "envelope_notes", "to_profiles",
           "to_profiles_by_gpu", "from_profiles"]

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

    Missing metric columns are added as NaN; missing key/provenance columns are an error. A bad
    value is a ValidationError naming its row (1-based, in the order given: a CSV's data row)
    and column: ``tp`` and ``num_requests`` must be whole numbers, the other numeric columns
    numbers, ``saturated`` one of true/false/yes/no/1/0 (any case), and a latency statistic
    either absent (NaN) or a finite number of ms above zero.
    """
    return _finish(_typed(df, "profile table"), "profile table")


def _typed(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """``df`` checked cell by cell and cast to the schema's dtypes, rows in the order given."""
    required = KEY_COLUMNS + ("saturated", "source")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValidationError(f"{where} lacks columns {missing}; the schema is "
                              f"{list(COLUMNS)} (see routerwise.data.latency_table)")
    out = df.reset_index(drop=True)
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = {"num_requests": 0, "duration_s": np.nan, "provenance": ""}.get(c, np.nan)
    out = out[list(COLUMNS)].copy()

    def bad(mask, col, what, fix):
        r = int(np.flatnonzero(np.asarray(mask))[0])
        v = df[col].iloc[r]
        raise ValidationError(f"{where}: row {r + 1}, column {col}: "
                              f"{repr(v) if isinstance(v, str) else v} {what}; {fix}")

    for c in COLUMNS:
        if _DTYPES[c] not in (float, "int64"):
            continue
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            num = out[c].astype(float)
        else:
            num = pd.to_numeric(out[c], errors="coerce").astype(float)
            text = out[c].astype(str).str.strip().str.lower()
            stray = num.isna() & out[c].notna() & ~text.isin(("nan", ""))
            if stray.any():
                bad(stray, c, "is not a number", "write a plain number")
        if _DTYPES[c] == "int64":
            if num.isna().any():
                bad(num.isna(), c, "is missing", "give a whole number")
            if (num != np.round(num)).any():
                bad(num != np.round(num), c, "is not a whole number", "give a whole number")
        out[c] = num
    if len(out) and (out["tp"] < 1).any():
        bad(out["tp"] < 1, "tp", "is below 1", "tp is a tensor-parallel degree >= 1")
    if len(out) and (out["load_rps"] < 0).any():
        bad(out["load_rps"] < 0, "load_rps", "is negative", "loads are requests/s >= 0")
    tenths = out["compute_share"] * 10
    off = ~(np.isclose(tenths, np.round(tenths)) & (tenths >= 1 - 1e-9) & (tenths <= 10 + 1e-9))
    if off.any():
        bad(off, "compute_share", "is not a multiple of 0.1 in [0.1, 1.0]",
            "compute_share is the MPS share of each GPU in tenths")
    for c in METRIC_COLUMNS:
        v = out[c].to_numpy(float)
        wrong = ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))
        if wrong.any():
            bad(wrong, c, "is not a latency", "a latency is a finite number of ms above zero "
                "(leave the cell empty when the statistic is absent)")
    flags = out["saturated"]
    if not pd.api.types.is_bool_dtype(flags):
        flags = flags.map(_flag)
    if flags.isna().any():
        bad(flags.isna(), "saturated", "is not a saturation flag",
            "write true or false (yes/no and 1/0 are read too)")
    out["saturated"] = flags.astype(bool)
    return out.astype(_DTYPES)


_FLAGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _flag(v) -> bool | None:
    """A saturation flag as a bool; None for anything else (NaN included)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return bool(v) if v in (0, 1) else None
    if isinstance(v, str):
        return _FLAGS.get(v.strip().lower())
    return None


def _finish(out: pd.DataFrame, where: str) -> pd.DataFrame:
    """Table-wide checks on a :func:`_typed` table; rows sorted by the key columns."""
    bad_src = sorted(set(out["source"]) - set(CURVE_SOURCES))
    if bad_src:
        raise ValidationError(f"{where} has unknown sources {bad_src}; use {CURVE_SOURCES}")
    dup = out.duplicated(list(KEY_COLUMNS))
    if dup.any():
        row = out[dup].iloc[0]
        raise ValidationError(f"{where} repeats the point {tuple(row[list(KEY_COLUMNS)])} "
                              f"(row {int(out.index[dup][0]) + 1}); aggregate repeats "
                              f"before saving")
    return out.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


def _check_gaps(t: pd.DataFrame, cols, where: str) -> None:
    """Reject a statistic missing (NaN) at a usable point of a curve that has it elsewhere:
    the point would be dropped and interpolated across. ``t`` is :func:`_typed` (rows in the
    order given, so that the message names the row)."""
    if t.empty:
        return
    order = t.sort_values(["model", "gpu", "tp", "compute_share", "load_rps"], kind="stable")
    key = order[["model", "gpu", "tp", "compute_share"]]
    new_curve = (key != key.shift()).any(axis=1).to_numpy()
    curve = np.cumsum(new_curve)
    # a point is usable while no earlier (or this) point of its curve is saturated
    sat_seen = order["saturated"].astype(int).groupby(curve).cummax().to_numpy().astype(bool)
    usable = ~sat_seen
    for c in cols:
        v = order[c].to_numpy(float)
        has = pd.Series(usable & ~np.isnan(v)).groupby(curve).transform("any").to_numpy()
        gap = usable & np.isnan(v) & has
        if gap.any():
            r = int(order.index[np.flatnonzero(gap)[0]])
            p = t.loc[r]
            raise ValidationError(
                f"{where}: row {r + 1}, column {c}: missing (NaN) at a load below saturation "
                f"({p['model']}, {p['gpu']}, tp {p['tp']}, compute_share {p['compute_share']:g}, "
                f"load_rps {p['load_rps']:g}) while the curve has it at other loads; give the "
                f"value, mark the point saturated, or drop the row")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a profile table (CSV); its problems are typed errors naming the file and, for a
    bad value, the data row and column (see :func:`normalize`). A latency statistic a curve
    gives at some loads must be there at every load below saturation."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no profile table at {path}")
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\0" in head:
        raise DataError(f"{path}: a binary file, not a CSV profile table; write it with "
                        f"routerwise.data.latency_table.write_table (columns {list(COLUMNS)})")
    try:
        raw = pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the profile table is empty; it needs a header row naming the "
                        f"columns {list(COLUMNS)} and one row per load point") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: not a readable CSV profile table ({e})") from e
    t = _typed(raw, str(path))
    _check_gaps(t, METRIC_COLUMNS, str(path))
    return _finish(t, str(path))


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a normalized profile table atomically; credentials in ``provenance`` (an
    endpoint's ``user:password@``, API keys) are masked (:func:`routerwise.redact.redact_text`)."""
    from ..redact import redact_text

    df = normalize(df)
    if "provenance" in df.columns:
        df["provenance"] = df["provenance"].map(
            lambda v: redact_text(v) if isinstance(v, str) else v)
    return atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))


_ENVELOPE_NOTE = "running-max envelope raised {} of {} points, by up to {:.4g} ms"
_ENVELOPE_RE = re.compile(r"running-max envelope raised (\d+) of (\d+) points, by up to "
                          r"([-+0-9.eE]+) ms")


def envelope_change(provenance: str) -> tuple[int, int, float] | None:
    """(points raised, points, largest rise in ms) when :func:`to_profiles` replaced a curve
    by its running maximum (read from the curve's provenance); None when it did not."""
    m = _ENVELOPE_RE.search(provenance or "")
    return (int(m[1]), int(m[2]), float(m[3])) if m else None


def envelope_notes(problem, setup=None) -> tuple[str, ...]:
    """One line per curve of ``setup`` (a plan's SystemSetup) that an envelope changed, and
    one line counting such curves among the rest of ``problem``'s curves."""
    used = {id(problem.curve(i, s)) for i, s in enumerate(setup.per_model)} \
        if setup is not None else set()
    mine, other = [], []
    for c in problem.profiles.curves:
        ch = envelope_change(c.provenance)
        if ch is None:
            continue
        what = (f"{c.model} tp{c.tp}/rho{c.compute_tenths / 10:.1f}"
                + (f" on {c.gpu}" if c.gpu else ""))
        (mine if id(c) in used else other).append((ch, what))
    notes = [f"input: the {problem.profiles.metric} curve of {what} (in this plan) is a "
             f"running-max envelope: it raised {k} of {n} points, by up to {d:.4g} ms, over a "
             f"dip in the data" for (k, n, d), what in mine]
    if other:
        (k, n, d), what = max(other, key=lambda o: o[0][2])
        notes.append(f"input: {len(other)} other {problem.profiles.metric} curve(s) are "
                     f"running-max envelopes over dips in the data (largest rise {d:.4g} ms, "
                     f"{what})")
    return tuple(notes)


def monotone_envelope(latency_ms) -> np.ndarray:
    """Running maximum: the smallest non-decreasing curve at or above the data (conservative)."""
    return np.maximum.accumulate(np.asarray(latency_ms, dtype=float))


def to_profiles(df: pd.DataFrame, metric: str = "ttft_mean", *, gpu: str | None = None,
                monotone: str = "error", min_points: int = 1) -> LatencyProfiles:
    """Build one curve per (model, tp, compute_share) from a profile table.

    ``monotone="envelope"`` replaces a noisy curve by its running maximum (conservative) and
    says in the curve's provenance how many points it raised and by how much at most
    (:func:`envelope_change` reads it back; :func:`routerwise.solve` repeats it in the plan's
    notes); ``"error"`` raises on any dip. Points at and beyond the first saturated load are
    dropped; a key with fewer than ``min_points`` usable points gets no curve (the setup space
    then leaves that option out). The metric missing (NaN) at some usable points of a curve
    but not at others is a ValidationError naming the row: it would be interpolated across.
    """
    if metric not in LATENCY_METRICS:
        raise ValidationError(f"unknown metric {metric!r}; use one of {LATENCY_METRICS}")
    if monotone not in ("error", "envelope"):
        raise ValidationError("monotone must be 'error' or 'envelope'")
    col = f"{metric}_ms"
    t = _typed(df, "profile table")
    _check_gaps(t if gpu is None else t[t["gpu"] == gpu], (col,), "profile table")
    df = _finish(t, "profile table")
    if gpu is not None:
        df = df[df["gpu"] == gpu]
        if df.empty:
            raise ValidationError(f"profile table has no rows for gpu {gpu!r}")
    if df["gpu"].nunique() > 1:
        raise ValidationError(f"profile table mixes GPU types {sorted(df['gpu'].unique())}; "
                              f"pass gpu=... to pick one")
    curves = []
    for (model, tp, share), g in df.groupby(["model", "tp", "compute_share"], sort=True):
        g = g.sort_values("load_rps")
        sat = g["saturated"].to_numpy()
        if sat.any():
            g = g.iloc[: int(np.argmax(sat))]
        g = g[np.isfinite(g[col].to_numpy())]  # all-NaN only: the metric is absent here
        if len(g) < min_points:
            continue
        y = g[col].to_numpy()
        prov = "; ".join(sorted(set(p for p in g["provenance"] if p)))
        if monotone == "envelope" and np.any(np.diff(y) < 0):
            env = monotone_envelope(y)
            raised = env - y
            prov = (prov + "; " if prov else "") + _ENVELOPE_NOTE.format(
                int(np.sum(raised > 0)), len(y), float(raised.max()))
            y = env
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
