"""How an MPS compute share rho changes step time: an ASSUMPTION until measured, kept here only.

Under NVIDIA MPS, ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = 100 * rho`` limits the fraction of
streaming multiprocessors (SMs) a client's kernels may occupy. Memory bandwidth is not
partitioned, but a few SMs cannot issue enough loads to saturate HBM, so a small share also
slows memory-bound kernels. The modelled law (``source = "modelled"``):

* compute-bound work (prefill GEMMs, prefill attention) scales with the SM count:
  ``t(rho) = t(1) / rho``;
* memory-bound work (decode: weight and KV-cache reads) runs at
  ``bandwidth * min(1, rho / RHO_BW)``: ``t(rho) = t(1) * max(1, RHO_BW / rho)``, where
  ``RHO_BW`` is the SM fraction that saturates HBM;
* fixed host-side overhead (scheduling, sampling, kernel launches) does not depend on rho.

``RHO_BW = 0.4`` is a modelled constant: a streaming-read kernel on an A100/H100 needs roughly
40% of the SMs to reach its bandwidth plateau (the ratio of per-SM load throughput to HBM
bandwidth; no public measurement of MPS shares was available to fit it). Co-located
interference (other clients contending for the same HBM) is **not** modelled, as in the paper.

A measured table replaces the law: a CSV with columns ``compute_share, step_kind,
slowdown`` (step_kind ``compute`` or ``memory``; slowdown = t(rho) / t(1), 1.0 at rho = 1),
e.g. written by a GPU profiling run under ``data/measured/``, loaded with
:meth:`ComputeShareModel.from_table`; or a step table measured under MPS at several shares
(``profiling.gpu_steps``), reduced with :meth:`ComputeShareModel.from_step_table`. Between
measured shares the slowdown is interpolated linearly in 1/rho (constant beyond them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, ValidationError
from ..io import blank

__all__ = ["RHO_BW", "STEP_KINDS", "ComputeShareModel", "DEFAULT", "step_time_scale"]

RHO_BW = 0.4
STEP_KINDS = ("compute", "memory")


@dataclass(frozen=True)
class ComputeShareModel:
    """Slowdown factors t(rho)/t(1) for compute- and memory-bound step work.

    ``table`` (optional) holds measured ``(compute_share, compute_slowdown, memory_slowdown)``
    rows sorted by share; without it the modelled law above applies.
    """

    rho_bw: float = RHO_BW
    table: tuple[tuple[float, float, float], ...] | None = None
    source: str = "modelled"
    provenance: str = (f"MPS share law (modelled): compute-bound 1/rho, memory-bound "
                       f"max(1, {RHO_BW}/rho), host overhead unscaled")

    def __post_init__(self):
        if not 0 < self.rho_bw <= 1:
            raise ValidationError(f"rho_bw must be in (0, 1], got {self.rho_bw}")

    def slowdown(self, compute_share: float, step_kind: str) -> float:
        """t(rho) / t(1) for work of ``step_kind`` ('compute' or 'memory')."""
        rho = _check_share(compute_share)
        if step_kind not in STEP_KINDS:
            raise ValidationError(f"step_kind must be one of {STEP_KINDS}, got {step_kind!r}")
        if self.table is not None:
            shares = np.array([r[0] for r in self.table])
            col = 1 if step_kind == "compute" else 2
            vals = np.array([r[col] for r in self.table])
            return float(np.interp(1.0 / rho, 1.0 / shares[::-1], vals[::-1]))
        if step_kind == "compute":
            return 1.0 / rho
        return max(1.0, self.rho_bw / rho)

    def label(self) -> str:
        return f"{self.source}: {self.provenance}"

    @classmethod
    def from_table(cls, path: str | Path) -> ComputeShareModel:
        """Measured slowdowns from a CSV (``compute_share, step_kind, slowdown``)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no compute-share table at {path}")
        df = pd.read_csv(path)
        need = {"compute_share", "step_kind", "slowdown"}
        if not need <= set(df.columns):
            raise DataError(f"{path} lacks columns {sorted(need - set(df.columns))}; expected "
                            f"compute_share, step_kind, slowdown")
        wide = df.pivot_table(index="compute_share", columns="step_kind", values="slowdown",
                              aggfunc="median")
        missing = [k for k in STEP_KINDS if k not in wide.columns]
        if missing or wide.isna().any().any():
            raise DataError(f"{path} must give a slowdown for both step kinds {STEP_KINDS} at "
                            f"every compute_share")
        rows = tuple((float(s), float(r["compute"]), float(r["memory"]))
                     for s, r in wide.sort_index().iterrows())
        for s, c, m in rows:
            _check_share(s)
            if c <= 0 or m <= 0:
                raise DataError(f"{path}: slowdowns must be positive (share {s})")
        return cls(table=rows, source="measured", provenance=f"slowdown table {path.name}")

    @classmethod
    def from_step_table(cls, steps: pd.DataFrame, label: str = "step table") -> \
            ComputeShareModel:
        """Slowdowns from step times measured at several shares (e.g. ``profiling.gpu_steps``
        under MPS): prefill rows give the compute slowdown, decode rows the memory one, each the
        median of t(rho)/t(1) over the points measured at both rho and 1.0."""
        need = {"model", "phase", "batch_size", "context_len", "compute_share", "step_ms_median"}
        if not need <= set(steps.columns):
            raise DataError(f"step table lacks columns {sorted(need - set(steps.columns))}")
        df = steps
        if "error" in df.columns:
            df = df[blank(df["error"])]
        key = ["model", "phase", "batch_size", "context_len"]
        full = df[np.isclose(df["compute_share"].astype(float), 1.0)].set_index(key)
        rows = []
        for share, g in df.groupby("compute_share"):
            ratio = g.set_index(key)["step_ms_median"] / full["step_ms_median"]
            ratio = ratio.dropna()
            phase = ratio.index.get_level_values("phase")
            c, m = ratio[phase == "prefill"], ratio[phase == "decode"]
            if len(c) and len(m):
                rows.append((float(share), float(c.median()), float(m.median())))
        if not any(np.isclose(r[0], 1.0) for r in rows) or len(rows) < 2:
            raise DataError("the step table needs prefill and decode points at compute share 1.0 "
                            "and at least one other share")
        return cls(table=tuple(sorted(rows)), source="measured",
                   provenance=f"median step-time ratios from {label}")


def _check_share(compute_share: float) -> float:
    rho = float(compute_share)
    if not 0 < rho <= 1:
        raise ValidationError(f"compute share must be in (0, 1], got {compute_share}")
    return rho


DEFAULT = ComputeShareModel()


def step_time_scale(compute_share: float, step_kind: str,
                    model: ComputeShareModel = DEFAULT) -> float:
    """Factor by which ``step_kind`` work slows at ``compute_share`` (1.0 at a full GPU)."""
    return model.slowdown(compute_share, step_kind)
