"""The joint problem as typed, validated records.

Symbols follow the paper's restatement (see ``routerwise.optimize.milp`` for the full formulation):

* ``i = 1..M`` models (:class:`ModelSpec`), ``g = 1..G`` identical GPUs (:class:`Cluster`).
* ``theta_i = (tp_i, rho_i, mu_i)``: a model's setup (:class:`ModelSetup`). ``rho_i`` is the
  compute share of each of its GPUs, kept as an integer number of tenths so that sums are
  exact; ``mu_i`` is the memory share of each of its GPUs.
* ``s_i(x_j)``: the N x M score matrix of a :class:`Workload`; ``lambda``: its arrival rate.
* ``l_i(theta_i, load)``: a :class:`LatencyCurve`, piecewise linear in load (req/s).
* ``tau``: the :class:`SLO`.

Every record validates itself on construction and raises :class:`ValidationError` with a
message that names the offending field and says what to fix.

Latency beyond a curve's profiled range is **never** extrapolated: a model asked to carry more
load than its curve covers is infeasible at that load (``latency_at`` returns ``inf``). A load
within ``LOAD_RTOL`` (relative) of the range end is floating-point noise of the solvers (a
fraction ``w / sum(w)`` renormalised, an LP's feasibility tolerance), not extra load: it is
clipped to the end point and reads the end point's latency. Below
the first profiled load the first point's latency is used, which over-estimates latency
because curves are non-decreasing, so it can only make a plan look worse than it is.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import ValidationError

__all__ = ["LATENCY_METRICS", "CURVE_SOURCES", "LOAD_RTOL", "beyond_range", "ModelSpec", "GPUType",
           "Cluster", "ModelSetup", "SystemSetup", "LatencyCurve", "LatencyProfiles", "SLO",
           "Workload", "SetupSpace", "Problem", "curves_from_points"]

# Latency metrics a curve may carry. Column names in profile tables are f"{metric}_ms".
LATENCY_METRICS = (
    "ttft_mean", "ttft_p50", "ttft_p95", "ttft_p99",
    "tpot_mean", "tpot_p50", "tpot_p95", "tpot_p99",
    "e2e_mean", "e2e_p50", "e2e_p95", "e2e_p99",
)
CURVE_SOURCES = ("measured", "simulated", "synthetic")
# A load at most this far (relative) past a curve's last point is read as the last point.
# Solvers compute w_top = max_load / lambda and renormalise fractions, which can leave a load
# ~1e-11 req/s past the end; 1e-9 is far above that noise and far below any real overload.
LOAD_RTOL = 1e-9


def beyond_range(load, end_load) -> np.ndarray:
    """True where ``load`` exceeds ``end_load`` by more than the relative tolerance LOAD_RTOL."""
    load = np.asarray(load, dtype=float)
    return load > np.asarray(end_load, dtype=float) * (1 + LOAD_RTOL)


def _is_real(x) -> bool:
    """A real number (Python or numpy scalar, not bool): np.int64 and np.float32 count."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _as_int(x, what: str) -> int:
    """``x`` as an int when it is an integral real number (2, 2.0, np.int64(2)); else a
    ValidationError naming ``what``."""
    if not _is_real(x) or not math.isfinite(float(x)) or float(x) != int(x):
        raise ValidationError(f"{what} must be an integer, got {x!r}")
    return int(x)


def _check_metric(metric: str) -> None:
    if metric not in LATENCY_METRICS:
        raise ValidationError(f"unknown latency metric {metric!r}; use one of {LATENCY_METRICS}")


@dataclass(frozen=True)
class ModelSpec:
    """One LLM that can be deployed.

    ``shard_mem_gb`` maps a tensor-parallel degree to the GPU memory one shard needs at that
    degree (weights / tp + KV-cache reserve + runtime overhead), as ``((tp, gb), ...)``.
    """

    name: str
    params_b: float
    shard_mem_gb: tuple[tuple[int, float], ...]

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValidationError("ModelSpec.name must be a non-empty string")
        if not (_is_real(self.params_b) and math.isfinite(self.params_b)
                and self.params_b > 0):
            raise ValidationError(f"model {self.name!r}: params_b must be a positive number of "
                                  f"billions, got {self.params_b!r}")
        object.__setattr__(self, "params_b", float(self.params_b))
        raw = self.shard_mem_gb
        try:
            items = list(raw.items()) if isinstance(raw, Mapping) else [tuple(p) for p in raw]
        except TypeError as e:
            raise ValidationError(f"model {self.name!r}: shard_mem_gb must map tp to GB, as a "
                                  f"dict or ((tp, gb), ...); got {raw!r}") from e
        if any(len(p) != 2 for p in items):
            raise ValidationError(f"model {self.name!r}: shard_mem_gb entries must be (tp, gb) "
                                  f"pairs; got {raw!r}")
        tps = [_as_int(tp, f"model {self.name!r}: shard_mem_gb tp key") for tp, _ in items]
        if len(set(tps)) != len(tps):
            dup = sorted({t for t in tps if tps.count(t) > 1})
            raise ValidationError(f"model {self.name!r}: shard_mem_gb lists tp {dup} more than "
                                  f"once; give one memory figure per tensor-parallel degree")
        for tp, (_, gb) in zip(tps, items):
            if not _is_real(gb):
                raise ValidationError(f"model {self.name!r}: shard_mem_gb[{tp}] = {gb!r} is not "
                                      f"a number of GB")
        pairs = tuple(sorted((tp, float(gb)) for tp, (_, gb) in zip(tps, items)))
        if not pairs:
            raise ValidationError(f"model {self.name!r}: shard_mem_gb is empty; give the memory "
                                  f"one shard needs for each tensor-parallel degree")
        for tp, gb in pairs:
            if tp < 1 or not math.isfinite(gb) or gb <= 0:
                raise ValidationError(f"model {self.name!r}: shard_mem_gb[{tp}] = {gb} is not a "
                                      f"positive memory size in GB for tp >= 1")
        object.__setattr__(self, "shard_mem_gb", pairs)

    def mem_gb(self, tp: int) -> float:
        """GPU memory (GB) one shard needs at tensor-parallel degree ``tp``."""
        for t, gb in self.shard_mem_gb:
            if t == tp:
                return gb
        raise ValidationError(f"model {self.name!r} has no memory figure for tp={tp}; known: "
                              f"{[t for t, _ in self.shard_mem_gb]}")

    @property
    def tp_degrees(self) -> tuple[int, ...]:
        return tuple(t for t, _ in self.shard_mem_gb)


@dataclass(frozen=True)
class GPUType:
    name: str
    mem_gb: float

    def __post_init__(self):
        if not self.name:
            raise ValidationError("GPUType.name must be non-empty (e.g. 'A100-80GB')")
        if not (_is_real(self.mem_gb) and math.isfinite(self.mem_gb) and self.mem_gb > 0):
            raise ValidationError(f"GPU {self.name!r}: mem_gb must be positive, got {self.mem_gb!r}")
        object.__setattr__(self, "mem_gb", float(self.mem_gb))


@dataclass(frozen=True)
class Cluster:
    gpu: GPUType
    num_gpus: int

    def __post_init__(self):
        if not isinstance(self.num_gpus, (int, np.integer)) or isinstance(self.num_gpus, bool) \
                or self.num_gpus < 1:
            raise ValidationError(f"Cluster.num_gpus must be an integer >= 1, got {self.num_gpus!r}")
        object.__setattr__(self, "num_gpus", int(self.num_gpus))


@dataclass(frozen=True, order=True)
class ModelSetup:
    """theta_i: tensor-parallel degree, compute share in tenths, memory share of each GPU."""

    tp: int
    compute_tenths: int
    mem_share: float = 0.0

    def __post_init__(self):
        if not (_is_real(self.tp) and math.isfinite(self.tp) and int(self.tp) == self.tp
                and self.tp >= 1):
            raise ValidationError(f"ModelSetup.tp must be an integer >= 1, got {self.tp!r}")
        if not (_is_real(self.compute_tenths) and math.isfinite(self.compute_tenths)
                and int(self.compute_tenths) == self.compute_tenths
                and 1 <= self.compute_tenths <= 10):
            raise ValidationError("ModelSetup.compute_tenths is the compute share in tenths, an "
                                  f"integer 1..10; got {self.compute_tenths}")
        if not (0.0 <= self.mem_share <= 1.0):
            raise ValidationError(f"ModelSetup.mem_share must be in [0, 1], got {self.mem_share}")

    @property
    def compute_share(self) -> float:
        return self.compute_tenths / 10.0

    @property
    def compute_units_tenths(self) -> int:
        """tp * rho in tenths of a GPU: this setup's contribution to C(Theta)."""
        return self.tp * self.compute_tenths

    def label(self) -> str:
        return f"tp{self.tp}/rho{self.compute_share:.1f}"


@dataclass(frozen=True)
class SystemSetup:
    """Theta: one ModelSetup per model (in problem order) and, optionally, a shard placement.

    ``placement[i]`` lists the GPU index of each of model i's ``tp_i`` shards.
    """

    per_model: tuple[ModelSetup, ...]
    placement: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "per_model", tuple(self.per_model))
        if self.placement is not None:
            pl = tuple(tuple(int(g) for g in p) for p in self.placement)
            if len(pl) != len(self.per_model):
                raise ValidationError("SystemSetup.placement needs one GPU list per model")
            for i, (p, s) in enumerate(zip(pl, self.per_model)):
                if len(p) != s.tp or len(set(p)) != len(p):
                    raise ValidationError(f"placement of model {i} must list {s.tp} distinct "
                                          f"GPUs (one per shard), got {p}")
            object.__setattr__(self, "placement", pl)

    @property
    def compute_units_tenths(self) -> int:
        return sum(s.compute_units_tenths for s in self.per_model)

    def label(self) -> str:
        return " | ".join(s.label() for s in self.per_model)


@dataclass(frozen=True)
class LatencyCurve:
    """Piecewise-linear latency (ms) of one (model, tp, compute share) against load (req/s).

    ``source`` says where it came from: ``measured`` on hardware, ``simulated`` by the serving
    simulator from fitted step costs, or ``synthetic`` (a modelled stand-in for tests/demos).
    """

    model: str
    tp: int
    compute_tenths: int
    load_rps: tuple[float, ...]
    latency_ms: tuple[float, ...]
    metric: str = "ttft_mean"
    source: str = "simulated"
    provenance: str = ""

    def __post_init__(self):
        _check_metric(self.metric)
        if self.source not in CURVE_SOURCES:
            raise ValidationError(f"curve source must be one of {CURVE_SOURCES}, got {self.source!r}")
        x = np.asarray(self.load_rps, dtype=float).ravel()
        y = np.asarray(self.latency_ms, dtype=float).ravel()
        what = f"latency curve {self.model!r} tp={self.tp} rho={self.compute_tenths / 10:.1f}"
        if x.size == 0:
            raise ValidationError(f"{what} is empty: profile at least one load point")
        if x.size != y.size:
            raise ValidationError(f"{what}: {x.size} loads but {y.size} latencies")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValidationError(f"{what} has NaN/inf values; drop saturated or failed points "
                                  f"before building the curve")
        if np.any(x < 0) or np.any(y <= 0):
            raise ValidationError(f"{what}: loads must be >= 0 and latencies > 0")
        if np.any(np.diff(x) <= 0):
            raise ValidationError(f"{what}: loads must be strictly increasing, got {x.tolist()}")
        if np.any(np.diff(y) < -1e-9 * max(1.0, float(y.max()))):
            bad = int(np.argmax(np.diff(y) < 0))
            raise ValidationError(
                f"{what} is not monotone: latency falls from {y[bad]:.3f} ms at {x[bad]:g} req/s to "
                f"{y[bad + 1]:.3f} ms at {x[bad + 1]:g} req/s. Latency must not fall as load rises; "
                f"average repeats or use routerwise.data.latency_table.monotone_envelope() on noisy data")
        object.__setattr__(self, "load_rps", tuple(float(v) for v in x))
        object.__setattr__(self, "latency_ms", tuple(float(v) for v in np.maximum.accumulate(y)))

    @cached_property
    def x(self) -> np.ndarray:
        a = np.asarray(self.load_rps, dtype=float)
        a.setflags(write=False)
        return a

    @cached_property
    def y(self) -> np.ndarray:
        a = np.asarray(self.latency_ms, dtype=float)
        a.setflags(write=False)
        return a

    @property
    def max_load_rps(self) -> float:
        return float(self.x[-1])

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.model, self.tp, self.compute_tenths)

    def latency_at(self, load_rps) -> np.ndarray | float:
        """l(load): linear interpolation; first value below the range; ``inf`` above it (beyond
        the last load by more than LOAD_RTOL relative; closer loads read the last point)."""
        q = np.asarray(load_rps, dtype=float)
        out = np.interp(q, self.x, self.y)
        out = np.where(beyond_range(q, self.x[-1]), np.inf, out)
        return float(out) if out.ndim == 0 else out

    def slope_at(self, load_rps) -> np.ndarray | float:
        """dl/dload of the active linear piece (right derivative; 0 below the first point)."""
        q = np.asarray(load_rps, dtype=float)
        if self.x.size == 1:
            out = np.zeros_like(q)
        else:
            slopes = np.diff(self.y) / np.diff(self.x)
            idx = np.clip(np.searchsorted(self.x, q, side="right") - 1, -1, slopes.size - 1)
            out = np.where(idx < 0, 0.0, slopes[np.maximum(idx, 0)])
        return float(out) if np.ndim(out) == 0 else out

    def is_convex(self, rtol: float = 1e-9) -> bool:
        """True when the slopes never decrease (then load x latency is convex in load)."""
        if self.x.size < 3:
            return True
        slopes = np.diff(self.y) / np.diff(self.x)
        scale = max(1.0, float(np.abs(slopes).max()))
        return bool(np.all(np.diff(slopes) >= -rtol * scale))


@dataclass(frozen=True)
class LatencyProfiles:
    """All curves of one metric, keyed by (model, tp, compute_tenths)."""

    curves: tuple[LatencyCurve, ...]
    metric: str = "ttft_mean"

    def __post_init__(self):
        _check_metric(self.metric)
        curves = tuple(self.curves)
        seen: dict = {}
        for c in curves:
            if c.metric != self.metric:
                raise ValidationError(f"curve {c.key} has metric {c.metric!r} but the profile set "
                                      f"is {self.metric!r}; build one LatencyProfiles per metric")
            if c.key in seen:
                raise ValidationError(f"two curves for {c.key}; keep one per (model, tp, rho)")
            seen[c.key] = c
        object.__setattr__(self, "curves", curves)
        object.__setattr__(self, "_by_key", seen)

    def get(self, model: str, tp: int, compute_tenths: int) -> LatencyCurve | None:
        return self._by_key.get((model, int(tp), int(compute_tenths)))

    def __contains__(self, key) -> bool:
        return tuple(key) in self._by_key

    def __len__(self) -> int:
        return len(self.curves)

    @property
    def models(self) -> set[str]:
        return {c.model for c in self.curves}

    @property
    def sources(self) -> set[str]:
        return {c.source for c in self.curves}


@dataclass(frozen=True)
class SLO:
    """The latency service-level objective.

    ``aggregate="mean"`` is the paper's constraint, sum_i w_i * l_i(lambda * w_i) <= tau (for a
    mean metric this is exactly the system mean). ``aggregate="max"`` asks every model that
    receives traffic to meet ``tau`` on its own; for a percentile metric (e.g. ``ttft_p99``)
    this is a sound sufficient condition for the system-wide percentile, since the mixture's
    tail mass is the w-weighted average of the per-model tail masses.
    """

    latency_ms: float
    metric: str = "ttft_mean"
    aggregate: str = "mean"

    def __post_init__(self):
        _check_metric(self.metric)
        if not (_is_real(self.latency_ms) and math.isfinite(self.latency_ms)
                and self.latency_ms > 0):
            raise ValidationError(f"SLO.latency_ms must be a positive number of ms, got "
                                  f"{self.latency_ms!r}")
        object.__setattr__(self, "latency_ms", float(self.latency_ms))
        if self.aggregate not in ("mean", "max"):
            raise ValidationError("SLO.aggregate must be 'mean' (paper: weighted mean over models)"
                                  f" or 'max' (every routed model meets it), got {self.aggregate!r}")


@dataclass(frozen=True)
class Workload:
    """Prompts as an N x M matrix of predicted scores in [0, 1], plus the arrival rate.

    ``true_scores`` (same shape, optional) are realized scores used only for reporting.
    """

    scores: np.ndarray
    arrival_rate_rps: float
    model_names: tuple[str, ...]
    true_scores: np.ndarray | None = None
    prompt_ids: tuple[str, ...] | None = None
    label: str = ""

    def __post_init__(self):
        names = tuple(self.model_names)
        object.__setattr__(self, "model_names", names)
        s = _score_matrix(self.scores, names, "scores")
        object.__setattr__(self, "scores", s)
        if self.true_scores is not None:
            t = _score_matrix(self.true_scores, names, "true_scores")
            if t.shape != s.shape:
                raise ValidationError(f"true_scores shape {t.shape} differs from scores {s.shape}")
            object.__setattr__(self, "true_scores", t)
        if self.prompt_ids is not None:
            ids = tuple(str(p) for p in self.prompt_ids)
            if len(ids) != s.shape[0]:
                raise ValidationError(f"{len(ids)} prompt_ids for {s.shape[0]} score rows")
            object.__setattr__(self, "prompt_ids", ids)
        r = self.arrival_rate_rps
        if not (_is_real(r) and math.isfinite(r) and r > 0):
            raise ValidationError(f"arrival_rate_rps must be a positive finite rate in req/s, "
                                  f"got {r!r}")
        object.__setattr__(self, "arrival_rate_rps", float(r))

    @property
    def num_prompts(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_models(self) -> int:
        return int(self.scores.shape[1])

    def with_rate(self, arrival_rate_rps: float) -> "Workload":
        return Workload(self.scores, arrival_rate_rps, self.model_names, self.true_scores,
                        self.prompt_ids, self.label)


def _score_matrix(a, names: Sequence[str], what: str) -> np.ndarray:
    s = np.array(a, dtype=float, copy=True)
    if s.ndim != 2 or s.shape[0] == 0:
        raise ValidationError(f"{what} must be a non-empty 2-D (prompts x models) array, "
                              f"got shape {s.shape}")
    if s.shape[1] != len(names):
        raise ValidationError(f"{what} has {s.shape[1]} columns but {len(names)} model names")
    if len(set(names)) != len(names):
        raise ValidationError(f"model names repeat: {names}")
    bad = ~np.isfinite(s)
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise ValidationError(f"{what} has {int(bad.sum())} NaN/inf entries (first: prompt {j}, "
                              f"model {names[i]!r}); drop or impute those prompts first")
    if s.min() < 0 or s.max() > 1:
        j, i = np.unravel_index(np.argmax((s < 0) | (s > 1)), s.shape)
        raise ValidationError(f"{what} must lie in [0, 1]; prompt {j}, model {names[i]!r} has "
                              f"{s[j, i]:g}. Clip predicted scores or rescale the metric")
    s.setflags(write=False)
    return s


@dataclass(frozen=True)
class SetupSpace:
    """Which per-model setups to enumerate and which filters to apply.

    ``rho_min``: the utilization filter keeps setups with
    G * rho_min <= sum_i tp_i * rho_i <= G (the paper uses rho_min = 1, i.e. exactly G).
    ``check_memory`` / ``check_compute``: deployability filters; shards must be placeable so
    that no GPU exceeds 100% memory / 100% compute (the paper checks memory only).
    """

    tp_degrees: tuple[int, ...] = (1, 2, 4)
    compute_tenths: tuple[int, ...] = tuple(range(1, 11))
    rho_min: float = 1.0
    check_memory: bool = True
    check_compute: bool = True

    def __post_init__(self):
        def ints(v, what):
            if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
                raise ValidationError(f"SetupSpace.{what} must be a sequence of integers, e.g. "
                                      f"(1, 2, 4); got {v!r}")
            return [_as_int(x, f"SetupSpace.{what} entry") for x in v]

        tps = tuple(sorted(set(ints(self.tp_degrees, "tp_degrees"))))
        rts = tuple(sorted(set(ints(self.compute_tenths, "compute_tenths"))))
        if not tps or tps[0] < 1:
            raise ValidationError(f"tp_degrees must be positive integers, got {self.tp_degrees}")
        if not rts or rts[0] < 1 or rts[-1] > 10:
            raise ValidationError(f"compute_tenths must be integers in 1..10, got "
                                  f"{self.compute_tenths}")
        if not (_is_real(self.rho_min) and 0.0 <= self.rho_min <= 1.0):
            raise ValidationError(f"rho_min must be in [0, 1], got {self.rho_min}")
        object.__setattr__(self, "tp_degrees", tps)
        object.__setattr__(self, "compute_tenths", rts)


@dataclass(frozen=True)
class Problem:
    """Everything the solvers need: models, cluster, workload, latency curves, SLO, setup space."""

    models: tuple[ModelSpec, ...]
    cluster: Cluster
    workload: Workload
    profiles: LatencyProfiles
    slo: SLO
    space: SetupSpace = field(default_factory=SetupSpace)
    name: str = ""
    assumptions: tuple[str, ...] = ()   # what the inputs rest on (measured/fitted/modelled)

    def __post_init__(self):
        object.__setattr__(self, "assumptions", tuple(self.assumptions))
        models = tuple(self.models)
        object.__setattr__(self, "models", models)
        names = tuple(m.name for m in models)
        if not models:
            raise ValidationError("Problem needs at least one model")
        if len(set(names)) != len(names):
            raise ValidationError(f"model names repeat: {names}")
        if tuple(self.workload.model_names) != names:
            unknown = sorted(set(self.workload.model_names) - set(names))
            missing = sorted(set(names) - set(self.workload.model_names))
            raise ValidationError(
                "workload score columns must be the problem's models in the same order; "
                f"workload has {self.workload.model_names}, problem has {names}"
                + (f"; unknown models in the workload: {unknown}" if unknown else "")
                + (f"; models without scores: {missing}" if missing else ""))
        if self.slo.metric != self.profiles.metric:
            raise ValidationError(f"SLO metric {self.slo.metric!r} but curves are "
                                  f"{self.profiles.metric!r}; load profiles for the SLO's metric")
        unknown = sorted(self.profiles.models - set(names))
        if unknown:
            raise ValidationError(f"latency curves for unknown models {unknown}; problem models "
                                  f"are {list(names)}")
        G = self.cluster.num_gpus
        for m in models:
            fits = [tp for tp in self.space.tp_degrees if tp in m.tp_degrees and tp <= G
                    and m.mem_gb(tp) <= self.cluster.gpu.mem_gb]
            if self.space.check_memory and not fits:
                need = {tp: round(m.mem_gb(tp), 1) for tp in m.tp_degrees}
                raise ValidationError(
                    f"model {m.name!r} cannot be deployed on {G} x {self.cluster.gpu.name} "
                    f"({self.cluster.gpu.mem_gb:g} GB each): per-shard need by tp {need} GB. "
                    f"Add GPUs, allow a larger tp, or use a GPU with more memory")
            has_curve = [tp for tp in self.space.tp_degrees
                         if any(self.profiles.get(m.name, tp, r) for r in self.space.compute_tenths)]
            if not has_curve:
                raise ValidationError(f"no latency curve for model {m.name!r} at any tp in "
                                      f"{self.space.tp_degrees}; profile it first")

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def arrival_rate_rps(self) -> float:
        return self.workload.arrival_rate_rps

    def curve(self, i: int, setup: ModelSetup) -> LatencyCurve | None:
        return self.profiles.get(self.models[i].name, setup.tp, setup.compute_tenths)

    def model_setup(self, i: int, tp: int, compute_tenths: int) -> ModelSetup:
        """The ModelSetup of model i with its memory share derived from its shard need."""
        m = self.models[i]
        share = min(1.0, m.mem_gb(tp) / self.cluster.gpu.mem_gb) if tp in m.tp_degrees else 1.0
        return ModelSetup(tp=tp, compute_tenths=compute_tenths, mem_share=share)

    def with_slo(self, slo: SLO | float) -> "Problem":
        if not isinstance(slo, SLO):
            slo = SLO(float(slo), self.slo.metric, self.slo.aggregate)
        return replace(self, slo=slo)

    def with_rate(self, arrival_rate_rps: float) -> "Problem":
        return replace(self, workload=self.workload.with_rate(arrival_rate_rps))

    def with_cluster(self, num_gpus: int) -> "Problem":
        return replace(self, cluster=Cluster(self.cluster.gpu, num_gpus))

    def with_space(self, space: SetupSpace) -> "Problem":
        return replace(self, space=space)


def curves_from_points(points: Mapping[tuple[str, int, int], tuple[Iterable[float], Iterable[float]]],
                       metric: str = "ttft_mean", source: str = "synthetic",
                       provenance: str = "") -> LatencyProfiles:
    """Build a LatencyProfiles from {(model, tp, tenths): (loads, latencies)}."""
    return LatencyProfiles(tuple(
        LatencyCurve(m, tp, r, tuple(x), tuple(y), metric, source, provenance)
        for (m, tp, r), (x, y) in points.items()), metric)
