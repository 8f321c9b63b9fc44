"""Simulated latency profiles for every (model, tp, compute share) of a setup space.

Each curve is a load sweep of :func:`routerwise.serving.simulator.simulate` on the fitted step costs
(:mod:`routerwise.serving.stepcost`) scaled to the compute share by :mod:`routerwise.serving.compute_share`,
with the KV capacity of the memory model (:mod:`routerwise.serving.memory`). Rows follow the shared
schema of :mod:`routerwise.data.latency_table` with ``source = "simulated"`` and a provenance naming the
step-cost fit, the compute-share assumption, the memory model, the length sample and the seed.

Load grid (adaptive, per curve)
-------------------------------
1. A throughput estimate ``mu0`` from the step times (full batch, mean lengths) brackets the
   saturation load ``lambda*``; bisection with runs of the same length and seed as the curve's
   points finds the smallest load flagged saturated, to 3% relative (so the point at
   ``lambda*`` is flagged in the curve too: near the knee "keeps up" depends on run length).
2. The curve's points are ``LOAD_FRACTIONS * lambda*``: sparse at light load, dense near the
   knee, and two points past it, so piecewise-linear interpolation is accurate up to the knee
   and the curve ends where the replica stops keeping up.

Every point of a curve reuses one seed, so the arrival pattern at load ``x`` is the pattern at
load ``y`` compressed in time (common random numbers): latency then rises with load with
little noise. Any dip that remains among the unsaturated points is replaced by the running
maximum (conservative), and the provenance says so.

Caching: chunks of one curve each are written atomically under
``<cache>/profiles/<hash>/chunks/``, where ``<hash>`` covers every input; an interrupted build
resumes by skipping finished chunks, then assembles ``table.csv`` and ``manifest.json``.
Curves are simulated on any :class:`concurrent.futures.Executor` (``executor=``; see
:mod:`routerwise.parallel`): a worker returns its curve and this process writes the chunk as
each one arrives, so workers need no shared file system, and a build whose executor fails
keeps every finished curve (:class:`~routerwise.errors.SweepFailed`; rerun to finish).
Setups whose shard does not fit one GPU are skipped and listed in the manifest (and in
``df.attrs["skipped"]``).

A build of some curves only (``only=``: e.g. the ones a problem's setup space can use,
:func:`routerwise.planning.problem_file.read_problem_file`) caches each curve on its own under
``<cache>/curves/``, keyed on that curve's inputs alone (model architecture, GPU, tp, compute
share, the model's length sample, options, step-cost fit, compute-share model): another
problem with the same model, GPU and lengths reuses it whatever its other models or space.
A curve is the same whichever build simulates it.

Integrity: the manifest records the sha256 and row count of ``table.csv``, and every chunk has
a ``<chunk>.sha256`` beside it. A cached table whose manifest is unreadable, of another
version or key, or whose bytes or row count differ (a flipped bit, a table cut at a row
boundary or mid-row, an empty or garbage file) is never used: it is rebuilt from its verified
chunks with a :class:`RuntimeWarning` naming the folder, and a chunk that fails its checksum
is simulated again. (A chunk from before checksums were recorded is adopted only if it parses
with the expected columns and one row per load fraction.) Builds of one grid are serialized by
an exclusive lock on ``<hash>/.lock`` (POSIX ``flock``), so concurrent processes build each
curve once; without ``fcntl`` the atomic renames still keep every file whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import settings
from ..data.latency_table import METRIC_COLUMNS, normalize
from ..errors import DataError, ValidationError
from ..io import atomic_write, atomic_write_with, cache_write, safe_name, sha256_file, write_json
from ..parallel import map_tasks
from . import architectures
from .calibration import DeploymentCalibration, scale_step_times
from .compute_share import DEFAULT as DEFAULT_SHARE
from .compute_share import ComputeShareModel
from .engine import DEFAULT_PROFILE, get_profile, profile_step_params, setup_for, simulate_engine
from .hardware import GPUS, GPUSpec, gpu_spec, is_catalogued
from .memory import DEFAULT as DEFAULT_MEMORY
from .memory import MemoryAssumptions, fits, shard_memory_gb
from .simulator import poisson_requests
from .stepcost import FAMILIES, StepCostParams, StepTimes, fit, fit_provenance, measured_step_times, replica_step_times

__all__ = ["GRID_VERSION", "DEFAULT_MODELS", "LOAD_FRACTIONS", "BISECT_RTOL", "LengthSample",
           "routeprofile_lengths", "GridOptions", "grid_setup", "calibrated_terms", "plan_curves",
           "build_profile_table", "build_profile_tables", "check_gpu_data", "load_or_build",
           "read_cached", "cached_grids", "read_cached_grid"]

GRID_VERSION = "profile-grid-v2"  # v2: engine profiles, memory-model KV, saturation fix
DEFAULT_MODELS = ("llama-3.2-3b-instruct", "llama-3.1-8b-instruct",
                  "mistral-small-24b-instruct-2501-bf16", "llama-3.3-70b-instruct")
LOAD_FRACTIONS = (0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.77, 0.83, 0.88, 0.92, 0.95, 0.98, 1.0, 1.08)
BISECT_RTOL = 0.03


@dataclass(frozen=True)
class LengthSample:
    """Observed (prompt, output) token counts; request j of a run draws pair j jointly."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    label: str

    def __post_init__(self):
        p = np.maximum(np.asarray(self.prompt_tokens, dtype=np.int64), 1)
        o = np.maximum(np.asarray(self.output_tokens, dtype=np.int64), 1)
        if p.ndim != 1 or p.shape != o.shape or p.size == 0:
            raise ValidationError("LengthSample needs two equally long, non-empty 1-D arrays")
        object.__setattr__(self, "prompt_tokens", p)
        object.__setattr__(self, "output_tokens", o)

    def digest(self) -> str:
        h = hashlib.sha256(self.prompt_tokens.tobytes())
        h.update(self.output_tokens.tobytes())
        return h.hexdigest()[:16]


def routeprofile_lengths(models: Sequence[str]) -> dict[str, LengthSample]:
    """Each model's own prompt/completion token counts on the RouteProfile prompts (measured)."""
    from ..data.scores import load_routeprofile

    qm = load_routeprofile()
    if qm.prompt_tokens is None or qm.completion_tokens is None:
        raise ValidationError("the RouteProfile matrix carries no token counts")
    out = {}
    for m in models:
        if m not in qm.model_names:
            raise ValidationError(f"model {m!r} is not in RouteProfile; known {qm.model_names}")
        i = qm.model_names.index(m)
        out[m] = LengthSample(qm.prompt_tokens[:, i], qm.completion_tokens[:, i],
                              f"RouteProfile token counts of {m} ({len(qm.prompt_ids)} prompts)")
    return out


@dataclass(frozen=True)
class GridOptions:
    """Everything besides the setups that shapes a profile table (hashed into its cache key)."""

    num_requests: int = 4000
    seed: int = 0
    warmup_fraction: float = 0.1
    max_num_seqs: int = 256
    engine: str = "vllm"  # the step-cost fit's engine
    memory: MemoryAssumptions = field(default_factory=lambda: DEFAULT_MEMORY)
    engine_profile: str = DEFAULT_PROFILE  # routerwise.serving.engine profile (scheduler, overheads)
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int | None = None  # None: the profile's vLLM default
    planning_margin: bool = True  # multiply latencies by the calibrated planning margin
    # a deployment's calibration (routerwise calibrate --out): its fitted overheads and step
    # scale replace the profile's, its held-out margin replaces the validation's
    calibration: DeploymentCalibration | None = None

    def __post_init__(self):
        if self.num_requests < 50:
            raise ValidationError("use at least 50 requests per load point")
        get_profile(self.engine_profile)  # typed error listing the known profiles
        cal = self.calibration
        if cal is not None and cal.deployment.engine != self.engine_profile:
            raise ValidationError(f"the calibration was fitted for engine profile "
                                  f"{cal.deployment.engine!r}, the grid simulates "
                                  f"{self.engine_profile!r}: set engine_profile to "
                                  f"{cal.deployment.engine!r}")


@dataclass(frozen=True)
class _Curve:
    model: str
    tp: int
    tenths: int

    @property
    def chunk_name(self) -> str:
        # the model name is the user's: never a path (see routerwise.io.safe_name)
        return f"{safe_name(self.model)}__tp{self.tp}__r{self.tenths:02d}.csv"


def _key(spec, opts, params, share, measured, **what) -> str:
    """A cache key: ``what`` (the grid's or the curve's own inputs) plus every input they share."""
    # a user-described GPU's figures enter the key (a catalogued one's keys stay as they were)
    described = {} if is_catalogued(spec) else {"gpu_spec": repr(spec)}
    blob = json.dumps({
        **described, **what,
        "version": GRID_VERSION, "gpu": spec.name,
        "opts": _opts_key(opts), "params": params.to_json(),
        "share": [share.rho_bw, share.table, share.source], "fractions": LOAD_FRACTIONS,
        # the engine profile's fitted overheads and the planning margin in force: a refit of
        # either must not reuse curves cached under the old values
        "engine": get_profile(opts.engine_profile).label(), "margin": _margin_key(opts),
        "measured": None if measured is None else hashlib.sha256(
            measured.to_csv(index=False).encode()).hexdigest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _grid_hash(archs, spec, tps, tenths, lengths, opts, params, share, measured) -> str:
    models = list(archs)
    # the architectures themselves: a user's model may reuse a registered name
    return _key(spec, opts, params, share, measured, models=models, tp=list(tps),
                architectures={m: repr(archs[m]) for m in models}, tenths=list(tenths),
                lengths={m: lengths[m].digest() for m in models})


def _opts_key(opts: GridOptions) -> dict:
    """The options in the cache key; without a calibration the key is the one grids had before
    calibrations existed (cached grids stay valid)."""
    d = asdict(opts)
    cal = d.pop("calibration")
    if cal is not None:
        d["calibration"] = opts.calibration.to_json()
    return d


CURVES_DIR = "curves"   # <cache>/curves/: curves built one by one (``only=``), shared by problems


def _curve_hash(c: _Curve, arch, spec, lengths: LengthSample, opts, params, share,
                measured) -> str:
    """The cache key of one curve: every input of :func:`_build_curve` (the architecture less
    its ``source`` and ``notes`` texts), nothing of the grid or problem it was asked for."""
    # the architecture's figures, not where they were read from (a config.json's path differs
    # between problem folders that hold the same model)
    return _key(spec, opts, params, share, measured, model=c.model, tp=c.tp, tenths=c.tenths,
                architecture=repr(replace(arch, source="", notes="")), lengths=lengths.digest())


def _margin_key(opts: GridOptions) -> str:
    from .latency_validation import margin_label
    if not opts.planning_margin:
        return "off"
    if opts.calibration is not None:
        return f"{opts.calibration.margin_label()} [{opts.calibration.digest()}]"
    return margin_label(opts.engine_profile)


def _capacity_guess_rps(step: StepTimes, lengths: LengthSample, kv_cap: int,
                        max_seqs: int) -> float:
    """Requests/s at a full decode batch with mean lengths (a bracket for the search only)."""
    p, o = lengths.prompt_tokens.mean(), lengths.output_tokens.mean()
    b = int(max(1, min(max_seqs, step.max_seqs, kv_cap // (p + o))))
    per_token_ms = step.decode_ms(b, b * (p + o / 2)) / b
    pre_ms = step.prefill_ms(int(min(step.max_batched_tokens, round(p))), p * p, 1)
    return 1e3 / (per_token_ms * max(o - 1, 0) + pre_ms)


def calibrated_terms(opts: GridOptions, measured: bool = False) -> tuple[dict, float, str]:
    """What of ``opts.calibration`` a curve uses: (engine overrides, step scale, note).

    The request overhead always carries over (a front-end cost). The step scale and the host
    terms are relative to the step source the calibration was fitted on (the kit's step model,
    or a measured step table, whose probe includes the host costs): they carry over only to
    curves on the same kind of source; otherwise the profile's values stay and the note says so.
    """
    cal = opts.calibration
    if cal is None:
        return {}, 1.0, ""
    if (cal.deployment.step_table is not None) == measured:
        return cal.overheads, cal.step_scale, cal.label()
    src = "a measured step table" if cal.deployment.step_table is not None else "the kit's step model"
    return ({"request_overhead_ms": cal.overheads["request_overhead_ms"]}, 1.0,
            f"{cal.label()}; only its request overhead is used here: its step scale and host "
            f"terms are relative to {src}, which these curves do not simulate on")


def grid_setup(step: StepTimes, model: str | architectures.Architecture, gpu: str | GPUSpec,
               tp: int,
               compute_share: float,
               opts: GridOptions, measured: bool = False):
    """The engine of one grid curve (:class:`routerwise.serving.engine.EngineSetup`).

    KV capacity (modelled): the memory model at ``gpu_memory_utilization x compute share`` of
    each GPU (a replica sharing a GPU is taken to get the same share of its memory), but never
    below the placement's per-replica reserve ``memory.kv_reserve_tokens``, which the setup
    space reserves for every replica it places (:func:`routerwise.serving.memory.shard_memory_gb`).
    With ``opts.calibration``, its fitted terms (:func:`calibrated_terms`; ``measured``: the
    step times come from a measured table) replace the profile's.
    """
    from .memory import kv_capacity_tokens

    arch = architectures.resolve(model)
    kv = kv_capacity_tokens(arch, tp, gpu, min(1.0, opts.gpu_memory_utilization
                                               * compute_share), opts.memory)
    kv = max(kv, opts.memory.kv_reserve_tokens)
    overheads = calibrated_terms(opts, measured)[0]
    return setup_for(opts.engine_profile, step, max_num_seqs=opts.max_num_seqs,
                     max_num_batched_tokens=opts.max_num_batched_tokens, gpu=gpu,
                     kv_capacity_tokens=kv, arch=arch, **overheads)


def _simulate_at(step, lengths, cfg, opts, rate: float, runs: dict | None = None):
    """The curve's run at ``rate`` (seed and length as every point of the curve); ``runs``
    keeps each result by rate, so a load simulated twice is simulated once."""
    if runs is not None and rate in runs:
        return runs[rate]
    req = poisson_requests(rate, opts.num_requests, lengths.prompt_tokens,
                           lengths.output_tokens, opts.seed)
    res = simulate_engine(step, req, cfg, warmup_fraction=opts.warmup_fraction, load_rps=rate)
    if runs is not None:
        runs[rate] = res
    return res


def _saturation_load(step, lengths, cfg, opts, runs: dict | None = None) -> float:
    def sat(rate):
        return _simulate_at(step, lengths, cfg, opts, rate, runs).saturated

    mu0 = _capacity_guess_rps(step, lengths, cfg.kv_capacity_tokens, cfg.max_num_seqs)
    lo, hi = 0.25 * mu0, 2.0 * mu0
    while sat(lo) and lo > 1e-6:
        hi, lo = lo, lo / 4
    while not sat(hi):
        if hi > 1e3 * mu0:
            raise ValidationError(f"the replica never saturated up to {hi:.3g} req/s: check its "
                                  f"step times ({step.label})")
        lo, hi = hi, hi * 2
    while hi / lo > 1 + BISECT_RTOL:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if sat(mid) else (mid, hi)
    return hi


def _build_curve(task) -> pd.DataFrame:
    """Simulate one curve; returns its rows (the caller writes the chunk named in the task)."""
    (curve, gpu, lengths, opts, params_json, share, measured, provenance, chunk, arch) = task
    # wide enough for a whole request: a non-chunking profile recomputes prompt + generated
    # tokens in one pass after a preemption
    budget = max(8192, int((lengths.prompt_tokens + lengths.output_tokens).max()))
    if measured is not None:
        step = measured_step_times(measured, curve.model, curve.tenths / 10, tp=curve.tp,
                                   max_batched_tokens=budget, max_seqs=opts.max_num_seqs)
    else:
        step = replica_step_times(arch, gpu, curve.tp,
                                  curve.tenths / 10, params=profile_step_params(
                                      StepCostParams.from_json(params_json),
                                      opts.engine_profile),
                                  engine=opts.engine, share_model=share,
                                  max_batched_tokens=budget, max_seqs=opts.max_num_seqs)
    if opts.calibration is not None:
        _, scale, note = calibrated_terms(opts, measured is not None)
        step = scale_step_times(step, scale)
        provenance = f"{provenance}; {note}"
    cfg = grid_setup(step, arch, gpu, curve.tp, curve.tenths / 10, opts, measured is not None)
    runs: dict = {}     # the load lambda* itself was run by the search: not run again
    lam = _saturation_load(step, lengths, cfg, opts, runs)
    rows = [_simulate_at(step, lengths, cfg, opts, lam * frac, runs).row()
            for frac in LOAD_FRACTIONS]
    df = pd.DataFrame(rows)
    df.insert(0, "compute_share", curve.tenths / 10)
    df.insert(0, "tp", curve.tp)
    df.insert(0, "gpu", gpu_spec(gpu).name)
    df.insert(0, "model", curve.model)
    df["source"] = "simulated"
    df["provenance"] = (f"{provenance}; {cfg.label()}; saturation load {lam:.4g} req/s")
    df = _monotone(df)
    if opts.planning_margin:
        from .latency_validation import apply_planning_margin
        cal = opts.calibration
        df = apply_planning_margin(df, opts.engine_profile,
                                   None if cal is None else cal.planning_margin,
                                   None if cal is None else cal.margin_label())
    return df


def _checksum_path(chunk: Path) -> Path:
    return chunk.with_name(chunk.name + ".sha256")


def _write_chunk(chunk: Path, df: pd.DataFrame) -> None:
    """The chunk, then its checksum: a chunk without a matching checksum is not finished."""
    atomic_write_with(chunk, lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(_checksum_path(chunk), sha256_file(chunk) + "\n")


def _chunk_ok(chunk: Path, cache: Path | None = None) -> bool:
    """True when ``chunk`` is a finished, intact curve (see the module notes on integrity)."""
    if not chunk.is_file():
        return False
    side = _checksum_path(chunk)
    if side.is_file():
        return side.read_text().strip() == sha256_file(chunk)
    try:  # written before checksums were recorded: adopt it only if it parses completely
        df = pd.read_csv(chunk)
        normalize(df)
    except Exception:  # noqa: BLE001 - any parse failure means "simulate it again"
        return False
    if len(df) != len(LOAD_FRACTIONS):
        return False
    cache_write(cache or chunk.parent, lambda: atomic_write(side, sha256_file(chunk) + "\n"))
    return True


def _monotone(df: pd.DataFrame) -> pd.DataFrame:
    ok = ~df["saturated"].to_numpy()
    if ok.sum() < 2:
        return df
    last = int(np.flatnonzero(ok)[-1]) + 1
    changed = 0
    for c in METRIC_COLUMNS:
        v = df[c].to_numpy(float, copy=True)
        head = v[:last]
        env = np.fmax.accumulate(head)
        changed += int(np.sum(env > head + 1e-12))
        v[:last] = env
        df[c] = v
    if changed:
        df["provenance"] = df["provenance"] + f"; running-max envelope applied to {changed} values"
    return df


def plan_curves(models: Sequence, gpu: str | GPUSpec, tp_degrees, compute_tenths,
                memory: MemoryAssumptions = DEFAULT_MEMORY):
    """The curves to build and the skipped (model, tp) with the reason (models: names or
    :class:`~routerwise.serving.architectures.Architecture` objects)."""
    spec = gpu_spec(gpu)
    curves, skipped = [], []
    for arch in map(architectures.resolve, models):
        m = arch.name
        for tp in sorted(set(int(t) for t in tp_degrees)):
            if not fits(arch, tp, spec, memory):
                skipped.append({"model": m, "tp": tp, "reason": (
                    f"shard needs {shard_memory_gb(arch, tp, memory):.1f} GB > "
                    f"{spec.memory_gb:.1f} GB of one {spec.name} ({memory.label()})")})
                continue
            curves += [_Curve(m, tp, int(r)) for r in sorted(set(compute_tenths))]
    return curves, skipped


def check_gpu_data(gpu: str | GPUSpec, params: StepCostParams | None = None,
                   engine: str = "vllm") -> None:
    """Raise a ValidationError naming what to add when ``gpu`` cannot be simulated: a type not
    in the GPU catalogue (``routerwise.serving.hardware.GPUS``), or one whose family has no
    fitted step costs (``params``: the fit used; default: the families the fit covers,
    ``routerwise.serving.stepcost.FAMILIES``)."""
    spec = gpu_spec(gpu)
    fams = set(FAMILIES) if params is None else {
        f for f in params.family if f in params.engine.get(engine, {})}
    if spec.family not in fams:
        ok = sorted(n for n, g in GPUS.items() if g.family in fams)
        raise ValidationError(
            f"GPU type {spec.name!r} (family {spec.family!r}) has no step-cost data: the fitted step "
            f"costs cover the families {sorted(fams)}. Add measured step times of a "
            f"{spec.family} GPU to the step-cost fit (routerwise.serving.stepcost: its "
            f"measurement sources and FAMILIES), or pass measured_steps=... (a step table, "
            f"routerwise.serving.stepcost.measured_step_times); GPU types that can be "
            f"simulated now: {ok}")


def build_profile_tables(models: Sequence = DEFAULT_MODELS, gpus: Sequence[str] = ("A100-80GB",),
                         tp_degrees=(1, 2, 4), compute_tenths=tuple(range(1, 11)),
                         lengths: Mapping[str, LengthSample] | LengthSample | None = None,
                         **kw) -> pd.DataFrame:
    """One profile table for several GPU types (its ``gpu`` column names each row's type):
    :func:`build_profile_table` per type (each cached on its own, so a type's grid is the
    same whether built alone or with others), concatenated. Every type is checked
    (:func:`check_gpu_data`) before anything is simulated.
    ``routerwise.data.latency_table.to_profiles_by_gpu`` turns it into curves naming their type."""
    gpus = tuple(gpus)
    if not gpus or len({gpu_spec(g).name for g in gpus}) != len(gpus):
        raise ValidationError(f"build_profile_tables needs distinct GPU type names, got {gpus}")
    if kw.get("measured_steps") is None:
        params = kw.get("params")
        params = params if params is not None else fit()
        engine = kw.get("options", GridOptions()).engine
        for g in gpus:
            check_gpu_data(g, params, engine)
    parts = [build_profile_table(models, g, tp_degrees, compute_tenths, lengths, **kw)
             for g in gpus]
    skipped = [dict(d, gpu=gpu_spec(g).name) for g, t in zip(gpus, parts) for d in t.attrs.get("skipped", [])]
    out = normalize(pd.concat(parts, ignore_index=True))
    out.attrs["skipped"] = skipped
    return out


def build_profile_table(models: Sequence = DEFAULT_MODELS, gpu: str | GPUSpec = "A100-80GB",
                        tp_degrees=(1, 2, 4), compute_tenths=tuple(range(1, 11)),
                        lengths: Mapping[str, LengthSample] | LengthSample | None = None, *,
                        options: GridOptions = GridOptions(),
                        params: StepCostParams | None = None,
                        share_model: ComputeShareModel = DEFAULT_SHARE,
                        measured_steps: pd.DataFrame | None = None, workers: int = 2,
                        progress: bool = True, cache_dir: Path | None = None,
                        executor=None, only=None) -> pd.DataFrame:
    """Simulate (or resume) the profile table of every (model, tp, compute share).

    ``lengths`` maps each model to its :class:`LengthSample` (one sample for all models is
    accepted); default: each model's RouteProfile token counts. ``measured_steps`` (a step
    table, see :func:`routerwise.serving.stepcost.measured_step_times`) replaces the fitted step costs
    for every (model, tp, compute share) it covers. Returns the normalized table;
    ``df.attrs["skipped"]`` lists setups left out because the shard does not fit a GPU.

    ``models`` are registered names or :class:`~routerwise.serving.architectures.Architecture`
    objects (your own models: the table names each by ``arch.name``); ``gpu`` a catalogued
    name or a :class:`~routerwise.serving.hardware.GPUSpec` (e.g. ``described_gpu``). Workers
    receive the objects, so architectures and GPUs made at run time work with any process
    start method.

    ``executor`` (any :class:`concurrent.futures.Executor`, e.g. a Dask client's
    ``get_executor()``; the caller owns it) simulates the pending curves; without one,
    ``workers > 1`` uses a local process pool. The table is the same whatever runs it. A
    failed curve raises :class:`~routerwise.errors.SweepFailed` after every finished curve
    has been written as a chunk: the next call simulates only the missing ones.

    ``only``: (model name, tp, compute tenths) triples: build just these curves of the grid
    (the others are neither simulated nor returned), each cached on its own under
    ``<cache>/curves/`` so that any later build needing it reuses it (see the module notes).
    """
    if not tuple(models):
        raise ValidationError("build_profile_table needs at least one model")
    archs = {a.name: a for a in map(architectures.resolve, models)}
    models = tuple(archs)
    tenths = tuple(sorted(set(int(r) for r in compute_tenths)))
    if not tenths or tenths[0] < 1 or tenths[-1] > 10:
        raise ValidationError(f"compute_tenths must be integers in 1..10, got {compute_tenths}")
    if lengths is None:
        lengths = routeprofile_lengths(models)
    elif isinstance(lengths, LengthSample):
        lengths = {m: lengths for m in models}
    missing = [m for m in models if m not in lengths]
    if missing:
        raise ValidationError(f"no length sample for models {missing}")
    params = params if params is not None else fit()
    spec = gpu_spec(gpu)
    if measured_steps is None:
        check_gpu_data(spec, params, options.engine)
    tps = tuple(sorted(set(int(t) for t in tp_degrees)))
    key = _grid_hash(archs, spec, tps, tenths, lengths, options, params, share_model,
                     measured_steps)
    cache = cache_dir or settings.cache_dir()
    root = cache / "profiles" / key
    table_path, manifest_path = root / "table.csv", root / "manifest.json"
    curves, skipped = plan_curves(tuple(archs.values()), spec, tps, tenths, options.memory)
    if only is not None:
        want = {(str(m), int(tp), int(r)) for m, tp, r in only}
        curves = [c for c in curves if (c.model, c.tp, c.tenths) in want]
        df = _build_some(curves, archs, spec, lengths, options, params, share_model,
                         measured_steps, workers, progress, cache, executor)
        df.attrs["skipped"] = skipped
        return df
    cached = _cached(root, key)
    if cached is not None:
        return cached
    with _locked(root, cache):
        cached = _cached(root, key)  # another process may have built it while we waited
        if cached is not None:
            return cached
        chunks = root / "chunks"
        pending = [c for c in curves if not _chunk_ok(chunks / c.chunk_name, cache)]
        pj = params.to_json()
        tasks = []
        for c in pending:
            measured = _measured_rows(measured_steps, c)
            tasks.append((c, spec, lengths[c.model], options, pj, share_model, measured,
                          _provenance(c, lengths[c.model], options, params, share_model,
                                      measured),
                          chunks / c.chunk_name, archs[c.model]))
        # chunks the cache could not take come back as CSV text: read the same way as a file
        unwritten = _run(tasks, workers, progress, total=len(curves),
                         done=len(curves) - len(pending), executor=executor, cache=cache)
        parts = [pd.read_csv(io.StringIO(unwritten[p]) if p in unwritten else p)
                 for p in (chunks / c.chunk_name for c in curves)]
        df = normalize(pd.concat(parts, ignore_index=True)) if parts else normalize(
            pd.DataFrame({c: [] for c in ("model", "gpu", "tp", "compute_share", "load_rps",
                                          "saturated", "source")}))

        def save() -> None:
            atomic_write_with(table_path, lambda tmp: df.to_csv(tmp, index=False))
            write_json(manifest_path, {
                "version": GRID_VERSION, "key": key, "models": list(models), "gpu": spec.name,
                "tp_degrees": list(tps), "compute_tenths": list(tenths), "curves": len(curves),
                "skipped": skipped, "step_cost": params.label(),
                "step_cost_inputs": fit_provenance().splitlines(), "options": repr(options),
                "table_sha256": sha256_file(table_path), "table_rows": int(len(df))})

        cache_write(cache, save)
    df.attrs["skipped"] = skipped
    return df


def _build_some(curves, archs, spec, lengths, options, params, share_model, measured_steps,
                workers, progress, cache: Path, executor) -> pd.DataFrame:
    """The rows of ``curves``, each read from or simulated into ``<cache>/curves/``."""
    root = cache / CURVES_DIR
    pj = params.to_json()
    with _locked(root, cache):
        paths, tasks = [], []
        for c in curves:
            measured = _measured_rows(measured_steps, c)
            chunk = root / (c.chunk_name[:-len(".csv")] + "__" + _curve_hash(
                c, archs[c.model], spec, lengths[c.model], options, params, share_model,
                measured) + ".csv")
            paths.append(chunk)
            if not _chunk_ok(chunk, cache):
                tasks.append((c, spec, lengths[c.model], options, pj, share_model, measured,
                              _provenance(c, lengths[c.model], options, params, share_model,
                                          measured), chunk, archs[c.model]))
        unwritten = _run(tasks, workers, progress, total=len(curves),
                         done=len(curves) - len(tasks), executor=executor, cache=cache)
        parts = [pd.read_csv(io.StringIO(unwritten[p]) if p in unwritten else p) for p in paths]
    if not parts:
        raise ValidationError("no curve to build: every (model, tp, compute share) asked for "
                              "is outside the grid or does not fit one GPU")
    return normalize(pd.concat(parts, ignore_index=True))


def load_or_build(models: Sequence[str] = DEFAULT_MODELS, gpu: str = "A100-80GB",
                  tp_degrees=(1, 2, 4), compute_tenths=tuple(range(1, 11)), lengths=None,
                  **kw) -> pd.DataFrame:
    """The cached table for these inputs, built first if absent (same arguments as
    :func:`build_profile_table`)."""
    return build_profile_table(models, gpu, tp_degrees, compute_tenths, lengths, **kw)


def read_cached(root: Path, key: str | None = None) -> pd.DataFrame:
    """The table cached in the grid folder ``root``, verified against its manifest.

    Raises :class:`DataError` naming the folder when the manifest is missing or unreadable, is
    of another grid version or key, or when ``table.csv`` fails its sha256 or row count or
    does not parse as a profile table.
    """
    root = Path(root)
    table_path, manifest_path = root / "table.csv", root / "manifest.json"
    fix = f"delete the folder {root} to rebuild it"

    def bad(why: str) -> DataError:
        return DataError(f"profile-grid cache {root} fails its integrity check: {why}; {fix}")

    if not manifest_path.is_file() or not table_path.is_file():
        raise DataError(f"profile-grid cache {root} is incomplete (needs table.csv and "
                        f"manifest.json); {fix}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"manifest.json is not JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise bad("manifest.json is not a JSON object")
    if manifest.get("version") != GRID_VERSION or (key is not None and manifest.get("key") != key):
        raise bad(f"manifest.json names version {manifest.get('version')!r}, key "
                  f"{manifest.get('key')!r}; expected {GRID_VERSION!r}, {key!r}")
    want = manifest.get("table_sha256")
    if not isinstance(want, str):
        raise bad("manifest.json records no table_sha256 (written by an older version)")
    got = sha256_file(table_path)
    if got != want:
        raise bad(f"table.csv has sha256 {got[:12]}..., its manifest records {want[:12]}...")
    try:
        df = normalize(pd.read_csv(table_path))
    except Exception as e:  # noqa: BLE001 - a checksummed table should parse; say why not
        raise bad(f"table.csv does not parse as a profile table ({type(e).__name__}: {e})") from e
    if len(df) != manifest.get("table_rows"):
        raise bad(f"table.csv has {len(df)} rows, its manifest records "
                  f"{manifest.get('table_rows')}")
    df.attrs["skipped"] = manifest.get("skipped", [])
    return df


def cached_grids(cache_dir: Path | None = None) -> pd.DataFrame:
    """One row per profile grid in the cache (``ROUTERWISE_CACHE_DIR``/profiles): its key,
    GPU, models, tp degrees, compute tenths, curves, status (``complete``, or ``partial``: the
    chunks of a build that has not finished; the next build resumes it) and when it was
    written; newest first."""
    import time
    root = (cache_dir or settings.cache_dir()) / "profiles"
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else ():
        if not d.is_dir():
            continue
        try:
            m = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            m = None
        chunks = [c for c in (d / "chunks").glob("*.csv")] if (d / "chunks").is_dir() else []
        newest = max((p.stat().st_mtime for p in [d, *chunks]), default=d.stat().st_mtime)
        if isinstance(m, dict) and (d / "table.csv").is_file():
            rows.append({"key": d.name, "gpu": m.get("gpu"),
                         "models": ", ".join(m.get("models", [])),
                         "tp": " ".join(map(str, m.get("tp_degrees", []))),
                         "compute_tenths": " ".join(map(str, m.get("compute_tenths", []))),
                         "curves": m.get("curves"), "status": "complete",
                         "written": newest})
        else:
            models = sorted({c.name.split("__")[0] for c in chunks})
            rows.append({"key": d.name, "gpu": "", "models": ", ".join(models), "tp": "",
                         "compute_tenths": "", "curves": len(chunks), "status": "partial",
                         "written": newest})
    df = pd.DataFrame(rows, columns=["key", "gpu", "models", "tp", "compute_tenths", "curves",
                                     "status", "written"])
    df = df.sort_values("written", ascending=False, kind="stable").reset_index(drop=True)
    df["written"] = [time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in df["written"]]
    return df


def read_cached_grid(key: str, cache_dir: Path | None = None) -> pd.DataFrame:
    """The verified table of the cached grid ``key`` (a unique prefix is enough; see
    :func:`cached_grids`). :class:`DataError` when none or several match, or the grid's build
    has not finished."""
    root = (cache_dir or settings.cache_dir()) / "profiles"
    grids = cached_grids(cache_dir)
    hits = grids[grids["key"].str.startswith(key)] if key else grids.iloc[:0]
    if len(hits) != 1:
        known = ", ".join(grids["key"]) or "none (routerwise profiles builds the default grid)"
        raise DataError(f"{'no' if hits.empty else 'several'} cached profile grid(s) match "
                        f"{key!r} in {root}; cached: {known}")
    row = hits.iloc[0]
    if row["status"] != "complete":
        raise DataError(f"profile grid {row['key']} in {root} is partial ({row['curves']} curves "
                        f"so far): rerun the command that builds it to finish it")
    return read_cached(root / row["key"], row["key"])


def _cached(root: Path, key: str) -> pd.DataFrame | None:
    """The verified cached table; None when absent. A corrupt one is removed (with a warning)
    so that the caller rebuilds it from the chunks."""
    table_path, manifest_path = root / "table.csv", root / "manifest.json"
    if not (table_path.exists() or manifest_path.exists()):
        return None
    try:
        return read_cached(root, key)
    except DataError as e:
        warnings.warn(f"{e}. Rebuilding it from its chunks.", RuntimeWarning, stacklevel=3)
        for p in (manifest_path, table_path):
            with contextlib.suppress(OSError):   # absent, or a read-only cache: rebuilt anyway
                p.unlink()
        return None


@contextlib.contextmanager
def _locked(root: Path, cache: Path | None = None):
    """Hold an exclusive lock on ``root/.lock`` (one builder per grid at a time); without one
    when the cache folder cannot take the lock file (read-only, full: nothing is written
    there either, so there is nothing to serialize)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: atomic renames only
        yield
        return
    fh = None

    def open_lock() -> None:
        nonlocal fh
        root.mkdir(parents=True, exist_ok=True)
        fh = open(root / ".lock", "a+")

    if not cache_write(cache or root, open_lock):
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _measured_rows(table: pd.DataFrame | None, c: _Curve) -> pd.DataFrame | None:
    """The rows of a measured step table for curve ``c`` (None when it has too few)."""
    if table is None:
        return None
    t = table[(table["model"] == c.model)
              & np.isclose(table["compute_share"].astype(float), c.tenths / 10)]
    t = t[t["tp"] == c.tp] if "tp" in t.columns else (t if c.tp == 1 else t.iloc[:0])
    phases = t["phase"].value_counts()
    return t if phases.get("prefill", 0) >= 4 and phases.get("decode", 0) >= 3 else None


def _provenance(c: _Curve, lengths: LengthSample, opts: GridOptions, params: StepCostParams,
                share: ComputeShareModel, measured: pd.DataFrame | None) -> str:
    steps = ("measured step table (least-squares step model)" if measured is not None else
             f"{params.label()}, engine {opts.engine}; compute share: {share.label()}")
    return (f"simulated by routerwise.serving.engine ({GRID_VERSION}); {steps}; "
            f"{opts.memory.label()}, gpu_memory_utilization {opts.gpu_memory_utilization:g}; "
            f"lengths: {lengths.label}; Poisson arrivals seed {opts.seed}, "
            f"{opts.num_requests} requests/point, first {opts.warmup_fraction:.0%} warm-up")


def _run(tasks, workers: int, progress: bool, total: int, done: int, executor=None,
         cache: Path | None = None) -> dict[Path, str]:
    """Simulate ``tasks`` (on ``executor`` or ``workers`` local processes) and write each
    curve's chunk here, as it arrives (task order is irrelevant: one chunk per curve).
    Returns {chunk path: CSV text} for the chunks the cache could not take (best effort)."""
    from ..settings import progress_bar

    bar = progress_bar(total=total, initial=done, desc="latency profiles", unit="curve",
                       disable=not progress)
    unwritten: dict[Path, str] = {}

    def write(i: int, df: pd.DataFrame) -> None:
        chunk = Path(tasks[i][8])
        if not cache_write(cache or chunk.parent, lambda: _write_chunk(chunk, df)):
            unwritten[chunk] = df.to_csv(index=False)
        bar.update(1)

    try:
        map_tasks(_run_task, tasks, executor=executor, workers=max(1, int(workers)),
                  on_result=write, desc="latency profiles")
    finally:
        bar.close()
    return unwritten


def _run_task(task) -> pd.DataFrame:
    # a module-level name that pickles by reference; _build_curve is looked up at call time
    return _build_curve(task)
