"""The joint problem as typed, validated records.

Symbols follow the paper's restatement (see ``routerwise.optimize.milp`` for the full formulation):

* ``i = 1..M`` models (:class:`ModelSpec`), ``g = 1..G`` GPUs (:class:`Cluster`): identical, or
  pools of several GPU types (``Cluster.mixed``; a setup then names its type, ``ModelSetup.gpu``).
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .errors import ValidationError

__all__ = ["as_pairs", "check_model_name", "LATENCY_METRICS", "CURVE_SOURCES", "LOAD_RTOL",
           "beyond_range", "ModelSpec", "GPUType",
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


def as_pairs(raw, error: str) -> list[tuple]:
    """``raw`` as a list of tuples: a mapping's items, or the entries of a sequence of pairs;
    ``ValidationError(error)`` when it is neither. Callers check each entry's length and types."""
    try:
        return list(raw.items()) if isinstance(raw, Mapping) else [tuple(p) for p in raw]
    except TypeError as e:
        raise ValidationError(error) from e


def _as_int(x, what: str) -> int:
    """``x`` as an int when it is an integral real number (2, 2.0, np.int64(2)); else a
    ValidationError naming ``what``."""
    if not _is_real(x) or not math.isfinite(float(x)) or float(x) != int(x):
        raise ValidationError(f"{what} must be an integer, got {x!r}")
    return int(x)


def check_model_name(name) -> str:
    """``name`` if it can name a model, else a ValidationError saying what is allowed.

    Names key score tables, curve tables and plans, and end up in file names (the curve grid's
    per-setup files), so a name must not be able to point at another path."""
    allowed = ("a model name is a non-empty string of printable characters (letters, digits, "
               "spaces, '-', '_', '.', '+', ':', '@' ...) without path separators ('/' or '\\'), "
               "control characters or '..'")
    if not isinstance(name, str) or not name:
        raise ValidationError(f"model name {name!r} is not usable: {allowed}")
    bad = sorted({c for c in name if c in "/\\" or not c.isprintable()})
    if bad or ".." in name:
        what = f"characters {bad}" if bad else "'..'"
        raise ValidationError(f"model name {name!r} holds {what}: {allowed}, e.g. "
                              f"'llama-3.1-8b-instruct'")
    return name


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
        check_model_name(self.name)
        if not (_is_real(self.params_b) and math.isfinite(self.params_b)
                and self.params_b > 0):
            raise ValidationError(f"model {self.name!r}: params_b must be a positive number of "
                                  f"billions, got {self.params_b!r}")
        object.__setattr__(self, "params_b", float(self.params_b))
        raw = self.shard_mem_gb
        items = as_pairs(raw, f"model {self.name!r}: shard_mem_gb must map tp to GB, as a "
                              f"dict or ((tp, gb), ...); got {raw!r}")
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
    """GPUs to deploy on: ``num_gpus`` of one type, or several pools of different types.

    ``Cluster(gpu, num_gpus)`` is a homogeneous cluster (one pool). :meth:`mixed` builds one of
    several GPU types, ``pools = ((GPUType, count), ...)``; then ``gpu`` is the first pool's
    type and ``num_gpus`` the total. GPUs are numbered pool by pool, in pool order, so GPU
    ``g`` of the cluster is of type :meth:`gpu_of` ``(g)``. A cluster of one pool is the same
    cluster however it was built (equal, same setups and results).
    """

    gpu: GPUType
    num_gpus: int
    pools: tuple = ()

    def __post_init__(self):
        if len(self.pools) <= 1:
            # one type: gpu and num_gpus say it all (also after dataclasses.replace)
            if not isinstance(self.gpu, GPUType):
                raise ValidationError(f"Cluster.gpu must be a GPUType, got {self.gpu!r}")
            if not isinstance(self.num_gpus, (int, np.integer)) or isinstance(self.num_gpus, bool) \
                    or self.num_gpus < 1:
                raise ValidationError(f"Cluster.num_gpus must be an integer >= 1, got "
                                      f"{self.num_gpus!r}")
            object.__setattr__(self, "num_gpus", int(self.num_gpus))
            object.__setattr__(self, "pools", ((self.gpu, self.num_gpus),))
            return
        pools = _check_pools(self.pools)
        if self.gpu != pools[0][0] or self.num_gpus != sum(n for _, n in pools):
            raise ValidationError("Cluster with pools: gpu must be the first pool's type and "
                                  "num_gpus the total; build it with Cluster.mixed(pools)")
        object.__setattr__(self, "num_gpus", int(self.num_gpus))
        object.__setattr__(self, "pools", pools)

    @classmethod
    def mixed(cls, pools) -> Cluster:
        """A cluster of several GPU types: ``pools`` = [(GPUType, count), ...] (or a mapping
        GPUType -> count), each type once, counts >= 1; GPUs are numbered in this order."""
        pools = _check_pools(pools)
        return cls(pools[0][0], sum(n for _, n in pools), pools)

    @property
    def is_mixed(self) -> bool:
        """More than one GPU type."""
        return len(self.pools) > 1

    @property
    def gpu_types(self) -> tuple[GPUType, ...]:
        return tuple(t for t, _ in self.pools)

    def gpu_type(self, name: str = "") -> GPUType:
        """The GPUType called ``name``; ``""`` names the only type of a homogeneous cluster."""
        if name == "" and not self.is_mixed:
            return self.gpu
        for t, _ in self.pools:
            if t.name == name:
                return t
        if name == "":
            raise ValidationError(f"this cluster mixes GPU types {[t.name for t in self.gpu_types]}"
                                  f"; name the GPU type (ModelSetup.gpu, LatencyCurve.gpu)")
        raise ValidationError(f"GPU type {name!r} is not in the cluster; it has "
                              f"{[t.name for t in self.gpu_types]}")

    def count(self, type_name: str = "") -> int:
        """Number of GPUs of type ``type_name`` (``""``: the only type of a homogeneous one)."""
        t = self.gpu_type(type_name)
        return next(n for u, n in self.pools if u == t)

    def gpu_indices(self, type_name: str = "") -> range:
        """Global indices of the GPUs of type ``type_name`` (one contiguous range per pool)."""
        t = self.gpu_type(type_name)
        start = 0
        for u, n in self.pools:
            if u == t:
                return range(start, start + n)
            start += n
        raise AssertionError("unreachable")  # pragma: no cover

    def gpu_of(self, g: int) -> GPUType:
        """The GPUType of GPU index ``g`` (0-based, pool by pool)."""
        g = _as_int(g, "GPU index")
        start = 0
        for t, n in self.pools:
            if start <= g < start + n:
                return t
            start += n
        raise ValidationError(f"GPU index {g} is outside 0..{self.num_gpus - 1}")

    def describe(self) -> str:
        """E.g. ``4 x A100-80GB (80 GB each)`` or ``4 x A100-80GB (80 GB) + 2 x H100-80GB (80 GB)``."""
        if not self.is_mixed:
            return f"{self.num_gpus} x {self.gpu.name} ({self.gpu.mem_gb:g} GB each)"
        return " + ".join(f"{n} x {t.name} ({t.mem_gb:g} GB)" for t, n in self.pools)


def _check_pools(pools) -> tuple:
    """Pools as ((GPUType, int >= 1), ...) with distinct type names, or a ValidationError."""
    items = as_pairs(pools, f"Cluster pools must be [(GPUType, count), ...], got {pools!r}")
    if not items:
        raise ValidationError("a cluster needs at least one pool of GPUs")
    out = []
    for p in items:
        if len(p) != 2 or not isinstance(p[0], GPUType):
            raise ValidationError(f"each cluster pool is (GPUType, count), got {p!r}")
        n = p[1]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValidationError(f"pool of {p[0].name}: the GPU count must be an integer >= 1, "
                                  f"got {n!r}")
        out.append((p[0], int(n)))
    names = [t.name for t, _ in out]
    if len(set(names)) != len(names):
        raise ValidationError(f"GPU types repeat in the cluster pools: {names}; give each type "
                              f"once with its total count")
    return tuple(out)


@dataclass(frozen=True, order=True)
class ModelSetup:
    """theta_i: tensor-parallel degree, compute share in tenths, memory share of each GPU, and
    the GPU type its shards run on (``gpu``; ``""`` on a homogeneous cluster = its only type;
    all shards of one model are on GPUs of one type)."""

    tp: int
    compute_tenths: int
    mem_share: float = 0.0
    gpu: str = ""

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
        if not isinstance(self.gpu, str):
            raise ValidationError(f"ModelSetup.gpu must be a GPU type name (str), got {self.gpu!r}")

    @property
    def compute_share(self) -> float:
        return self.compute_tenths / 10.0

    @property
    def compute_units_tenths(self) -> int:
        """tp * rho in tenths of a GPU: this setup's contribution to C(Theta)."""
        return self.tp * self.compute_tenths

    def label(self) -> str:
        base = f"tp{self.tp}/rho{self.compute_share:.1f}"
        return f"{base}@{self.gpu}" if self.gpu else base


@dataclass(frozen=True)
class SystemSetup:
    """Theta: one ModelSetup per model (in problem order) and, optionally, a shard placement.

    ``placement[i]`` lists the GPU index of each of model i's ``tp_i`` shards (global indices:
    on a mixed cluster GPUs are numbered pool by pool, see :class:`Cluster`).
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
    ``gpu`` names the GPU type it was profiled or simulated on (``""``: the cluster's only type;
    on a mixed cluster every curve must name its type).
    """

    model: str
    tp: int
    compute_tenths: int
    load_rps: tuple[float, ...]
    latency_ms: tuple[float, ...]
    metric: str = "ttft_mean"
    source: str = "simulated"
    provenance: str = ""
    gpu: str = ""

    def __post_init__(self):
        _check_metric(self.metric)
        if self.source not in CURVE_SOURCES:
            raise ValidationError(f"curve source must be one of {CURVE_SOURCES}, got {self.source!r}")
        if not isinstance(self.gpu, str):
            raise ValidationError(f"LatencyCurve.gpu must be a GPU type name (str), got {self.gpu!r}")
        name = f"latency curve {self.model!r}"
        tp = _as_int(self.tp, f"{name}: tp (tensor-parallel degree)")
        tenths = _as_int(self.compute_tenths, f"{name}: compute_tenths (compute share in tenths)")
        if tp < 1 or not 1 <= tenths <= 10:
            raise ValidationError(f"{name}: tp must be >= 1 and compute_tenths in 1..10, got "
                                  f"tp={tp}, compute_tenths={tenths}")
        object.__setattr__(self, "tp", tp)
        object.__setattr__(self, "compute_tenths", tenths)
        what = f"{name} tp={tp} rho={tenths / 10:.1f}" + (f" on {self.gpu}" if self.gpu else "")
        try:
            x = np.asarray(self.load_rps, dtype=float).ravel()
            y = np.asarray(self.latency_ms, dtype=float).ravel()
        except (TypeError, ValueError) as e:
            raise ValidationError(f"{what}: load_rps and latency_ms must be sequences of numbers "
                                  f"({e})") from None
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
        """(model, tp, compute_tenths): the setup the curve describes, GPU type aside."""
        return (self.model, self.tp, self.compute_tenths)

    @property
    def gpu_key(self) -> tuple[str, int, int, str]:
        """(model, tp, compute_tenths, gpu): the key of :class:`LatencyProfiles`."""
        return (self.model, self.tp, self.compute_tenths, self.gpu)

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
    """All curves of one metric, keyed by (model, tp, compute_tenths, gpu) (``gpu`` = ""
    for curves that do not name a GPU type)."""

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
            if c.gpu_key in seen:
                raise ValidationError(f"two curves for {c.key}"
                                      + (f" on {c.gpu}" if c.gpu else "")
                                      + "; keep one per (model, tp, rho, GPU type)")
            seen[c.gpu_key] = c
        object.__setattr__(self, "curves", curves)
        object.__setattr__(self, "_by_key", seen)

    def get(self, model: str, tp: int, compute_tenths: int, gpu: str = "") -> LatencyCurve | None:
        """The curve of exactly this (model, tp, compute_tenths, gpu), or None."""
        return self._by_key.get((model, int(tp), int(compute_tenths), gpu))

    def __contains__(self, key) -> bool:
        key = tuple(key)
        return (key if len(key) == 4 else key + ("",)) in self._by_key

    @property
    def gpus(self) -> set[str]:
        """GPU type names the curves name (``""`` for curves that name none)."""
        return {c.gpu for c in self.curves}

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

    def with_rate(self, arrival_rate_rps: float) -> Workload:
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
            raise ValidationError(f"rho_min must be a number in [0, 1], got {self.rho_min!r}")
        for flag in ("check_memory", "check_compute"):
            # "no" is a truthy string: it would keep on a filter meant to be off
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValidationError(f"SetupSpace.{flag} must be True or False, got "
                                      f"{getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
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
        cl = self.cluster
        if cl.is_mixed and "" in self.profiles.gpus:
            bad = sorted({c.model for c in self.profiles.curves if not c.gpu})
            raise ValidationError(
                f"the cluster mixes GPU types {[t.name for t in cl.gpu_types]} but the latency "
                f"curves of {bad} do not name a GPU type; set LatencyCurve.gpu (a 'gpu' column "
                f"in the profile table) to the type each curve was profiled on")
        G = cl.num_gpus
        for m in models:
            fits = [(tp, t) for t, n in cl.pools for tp in self.space.tp_degrees
                    if tp in m.tp_degrees and tp <= n and m.mem_gb(tp) <= t.mem_gb]
            if self.space.check_memory and not fits:
                need = {tp: round(m.mem_gb(tp), 1) for tp in m.tp_degrees}
                if not cl.is_mixed:
                    raise ValidationError(
                        f"model {m.name!r} cannot be deployed on {G} x {cl.gpu.name} "
                        f"({cl.gpu.mem_gb:g} GB each): per-shard need by tp {need} GB. "
                        f"Add GPUs, allow a larger tp, or use a GPU with more memory")
                raise ValidationError(
                    f"model {m.name!r} cannot be deployed: it fits no GPU type of the cluster "
                    f"({cl.describe()}): per-shard need by tp {need} GB, and its tp is at most "
                    f"the GPU count of one type. Add GPUs, allow a larger tp, or use a GPU with "
                    f"more memory")
            has_curve = [tp for tp in self.space.tp_degrees for t in cl.gpu_types
                         if any(self.curve_for(m.name, tp, r, t.name if cl.is_mixed else "")
                                for r in self.space.compute_tenths)]
            if not has_curve:
                raise ValidationError(f"no latency curve for model {m.name!r} at any tp in "
                                      f"{self.space.tp_degrees} on {cl.describe()}"
                                      + (f" (curves name GPU types {sorted(self.profiles.gpus)})"
                                         if self.profiles.gpus - {""} else "")
                                      + "; profile it first")

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
        return self.curve_for(self.models[i].name, setup.tp, setup.compute_tenths, setup.gpu)

    def curve_for(self, model: str, tp: int, compute_tenths: int, gpu: str = "") -> LatencyCurve | None:
        """The curve the problem uses for (model, tp, compute_tenths) on GPU type ``gpu``.

        Mixed cluster: the curve naming ``gpu``. Homogeneous cluster (``gpu`` "" or its type):
        a curve naming no type, else one naming the cluster's type; curves of other types are
        not used."""
        if self.cluster.is_mixed:
            return self.profiles.get(model, tp, compute_tenths, gpu)
        c = self.profiles.get(model, tp, compute_tenths, "")
        return c if c is not None else self.profiles.get(model, tp, compute_tenths,
                                                         self.cluster.gpu.name)

    def model_setup(self, i: int, tp: int, compute_tenths: int, gpu: str = "") -> ModelSetup:
        """The ModelSetup of model i on GPU type ``gpu`` (``""``: a homogeneous cluster's only
        type), its memory share derived from its shard need and that type's memory. On a
        homogeneous cluster ``gpu`` is stored as ``""`` (same setups as before types existed)."""
        m = self.models[i]
        t = self.cluster.gpu_type(gpu)
        share = min(1.0, m.mem_gb(tp) / t.mem_gb) if tp in m.tp_degrees else 1.0
        return ModelSetup(tp=tp, compute_tenths=compute_tenths, mem_share=share,
                          gpu=t.name if self.cluster.is_mixed else "")

    def with_slo(self, slo: SLO | float) -> Problem:
        if not isinstance(slo, SLO):
            slo = SLO(float(slo), self.slo.metric, self.slo.aggregate)
        return replace(self, slo=slo)

    def with_rate(self, arrival_rate_rps: float) -> Problem:
        return replace(self, workload=self.workload.with_rate(arrival_rate_rps))

    def with_cluster(self, cluster: Cluster | int) -> Problem:
        """The problem on another cluster: a :class:`Cluster`, or a GPU count (homogeneous
        clusters only: the same GPU type, ``cluster`` GPUs)."""
        if isinstance(cluster, Cluster):
            return replace(self, cluster=cluster)
        if self.cluster.is_mixed:
            raise ValidationError("with_cluster(num_gpus) keeps a homogeneous cluster's GPU type; "
                                  "this cluster mixes types: pass a Cluster (Cluster.mixed(...))")
        return replace(self, cluster=Cluster(self.cluster.gpu, cluster))

    def with_space(self, space: SetupSpace) -> Problem:
        return replace(self, space=space)


def curves_from_points(points: Mapping[tuple, tuple[Iterable[float], Iterable[float]]],
                       metric: str = "ttft_mean", source: str = "synthetic",
                       provenance: str = "") -> LatencyProfiles:
    """Build a LatencyProfiles from {(model, tp, tenths[, gpu]): (loads, latencies)}."""
    return LatencyProfiles(tuple(
        LatencyCurve(k[0], k[1], k[2], tuple(x), tuple(y), metric, source, provenance,
                     k[3] if len(k) > 3 else "")
        for k, (x, y) in points.items()), metric)
