"""Calibrate the serving model to one deployment from a measured load sweep.

Input: a :class:`routerwise.data.reports.Report` (what ``vllm bench serve``, GuideLLM,
inference-perf, genai-perf or ``python -m profiling sweep`` measured, read by
:func:`routerwise.data.reports.read_report`) and a :class:`Deployment` (what the report cannot
say: architecture, GPU, tp, engine profile and limits; or a measured step table in place of the
kit's fitted step model, e.g. for a CPU engine).

Prediction of a level
---------------------
Every level is simulated by :func:`routerwise.serving.engine.simulate_engine` (client-timed: the
request overhead is added to TTFT and E2E):

* with per-request data (``report.requests``), the level's successful requests are replayed with
  their measured arrival times and token counts;
* without, the level's requests are **synthesized** (an approximation, said in the notes): the
  level's arrival process at its offered rate (``poisson``; ``constant``; ``gamma`` with the
  level's burstiness as shape; ``burst``/``concurrency``: all sent at once), every request with
  the level's mean prompt and output tokens, the tool's warm-up (``warmup_s`` x rate requests)
  simulated first and left out of the statistics, averaged over :data:`SYNTH_SEEDS` seeds.

A load generator's concurrency cap (``max_concurrency``) holds request ``i`` back until one of
the ``cap`` requests in flight has finished: the send times are iterated to a fixed point with
the simulator's completions (each pass re-simulates with the held-back send times).

Fit
---
:func:`calibrate` fits on the lowest ``K`` measured levels that are **not saturated** (never a
saturated one) by least squares on ``log(predicted / measured)`` of mean TTFT and mean TPOT.
The request overhead adds a constant to every TTFT, so it is profiled out (its value at given
other terms is the mean measured - predicted TTFT gap); the rest is searched without
derivatives (``scipy.optimize.minimize_scalar`` on the iteration term, then Nelder-Mead with
the step scale: simulated statistics move in small jumps with the overheads). Terms:

* ``K = 1`` (two numbers): ``request_overhead_ms`` (from TTFT) and ``step_scale``, a factor on
  every step time, prefill and decode (from TPOT; it can move TPOT either way, an added
  overhead only up);
* ``K >= 2``: also ``iteration_overhead_ms``, with a weak prior pulling ``log(step_scale)`` to 0
  (two light levels barely separate the scale from the iteration term).

The other terms are kept at their priors (``iteration_overhead_ms`` with K = 1,
``seq_overhead_us``, ``layer_overhead_us``): the engine profile's fitted values on the kit's
step model; 0 on a measured step table (a probe of whole engine iterations already contains
them). The result names what was fitted and what was kept.

Saturation (measured and predicted, one rule): a level is saturated when its achieved rate is
below :data:`ACHIEVED_FRACTION` of what a run keeping up would achieve (``n`` requests at the
rate they were sent plus the last one's mean latency: ``n / ((n - 1) / rate + mean E2E)``; the
sent rate is read from the recorded arrivals where the tool kept them, else the offered one), or its
offered rate is at or above 90% of the knee of
:func:`routerwise.serving.latency_validation.saturation_rate` (mean TTFT crossing 3x its
lightest-load value).

Measurement noise
-----------------
With per-request data each level also carries the 95% half-width of its measured mean TTFT and
mean TPOT (batch means: the level's requests in arrival order in :data:`CI_BATCHES` batches,
Student's t over the batch means), and the document the median over the held-out values
(``median_ci95_pct_heldout``): a held-out error below it cannot be told from the measurement's
own noise.

Planning margin
---------------
The calibration's held-out levels (neither fitted nor saturated) give signed errors of mean TTFT
and mean TPOT; the margin is the factor that lifts their mean under-prediction to zero (the rule
of :func:`routerwise.serving.latency_validation.planning_margin`), at least 1. Without held-out
levels the validation's margins (:data:`~routerwise.serving.latency_validation.PLANNING_MARGINS`)
stay, and the calibration says so.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.reports import Report
from ..errors import DataError, ValidationError
from ..io import sha256_file, write_json
from . import architectures
from .architectures import Architecture
from .engine import PROFILES, get_profile, profile_step_params, setup_for, simulate_engine
from .hardware import GPUS, is_catalogued
from .simulator import Requests
from .stepcost import StepTimes, fit, measured_step_times, replica_step_times

__all__ = ["FIT_KEYS", "PRIOR_KEYS", "SYNTH_SEEDS", "ACHIEVED_FRACTION", "CalibrationInputError",
           "UnknownDeploymentGPU", "Deployment", "DeploymentCalibration", "scale_step_times",
           "predict_levels", "calibrate", "load_calibration", "CALIBRATION_KIND", "CI_BATCHES"]

CALIBRATION_KIND = "routerwise-deployment-calibration"
FIT_KEYS = ("request_overhead_ms", "step_scale", "iteration_overhead_ms")
PRIOR_KEYS = ("seq_overhead_us", "layer_overhead_us")
_LO = {"request_overhead_ms": 0.0, "iteration_overhead_ms": 0.0, "step_scale": 0.2}
_HI = {"request_overhead_ms": 5000.0, "iteration_overhead_ms": 500.0, "step_scale": 5.0}
SCALE_PRIOR_WEIGHT = 0.02  # residual weight of log(step_scale) (a weak pull to the step model)
SYNTH_SEEDS = (0, 1, 2, 3)
CI_BATCHES = 6  # batch means per level for the measurement's own uncertainty
MIN_SYNTH_REQUESTS = 50
ACHIEVED_FRACTION = 0.8
SAT_FRACTION = 0.9
CPU_KV_CACHE_GB = 1.0  # the kit's CPU engine default (VLLM_CPU_KVCACHE_SPACE=1)


class CalibrationInputError(DataError):
    """A report the calibration cannot use (no successful request, one level, only saturated
    levels, missing token counts, several models): the message says what and how to fix it."""


class UnknownDeploymentGPU(ValidationError):
    """``--gpu`` names no catalogued GPU and no measured step table was given."""


def _resolve_arch(name: str | Architecture) -> Architecture:
    """A registered architecture, or one read from a model folder / ``config.json``."""
    if isinstance(name, Architecture):
        return name
    p = Path(name)
    if p.is_dir() and (p / "config.json").is_file():
        return architectures.from_hf_config(p / "config.json", name=p.name)
    if p.is_file() and p.suffix == ".json":
        return architectures.from_hf_config(p, name=p.parent.name)
    return architectures.get(str(name))


@dataclass(frozen=True)
class Deployment:
    """What a report cannot say about the deployment it measured."""

    arch: str  # a registered architecture, or a model folder / config.json
    gpu: str
    tp: int = 1
    engine: str = "vllm-v1"
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    step_table: str | None = None  # a measured step table (python -m profiling steps)
    step_model: str | None = None  # its ``model`` rows (default: the only model in it)
    kv_capacity_tokens: int | None = None
    gpu_memory_utilization: float = 0.9

    def __post_init__(self):
        get_profile(self.engine)
        if self.engine == "legacy":
            raise ValidationError("calibrate a vLLM engine profile (vllm-v1 or vllm-v0): the "
                                  "legacy replica has no overheads to fit")
        if self.tp < 1:
            raise ValidationError(f"tp must be >= 1, got {self.tp}")
        if self.step_table is None and (self.gpu not in GPUS or not is_catalogued(GPUS[self.gpu])):
            known = sorted(n for n, g in GPUS.items() if is_catalogued(g))
            raise UnknownDeploymentGPU(
                f"GPU {self.gpu!r} is not in the kit's catalogue ({', '.join(known)}), so the "
                f"kit has no step model for it: give --gpu one of those, or measure the "
                f"engine's step times (python -m profiling steps --engine vllm ...) and pass "
                f"them with --step-table")

    def architecture(self) -> Architecture:
        return _resolve_arch(self.arch)

    def arch_label(self) -> str:
        """The architecture's name: a registered name, or the folder its config is in."""
        p = Path(self.arch)
        if p.suffix == ".json":
            return p.parent.name
        return p.name if p.is_dir() else self.arch

    def priors(self) -> dict[str, float]:
        """Host terms beside the step times: the engine profile's fitted values on the kit's
        step model; 0 on a measured step table (a probe of whole engine iterations already
        contains them)."""
        p = PROFILES[self.engine]
        if self.step_table is not None:
            return {"iteration_overhead_ms": 0.0, "seq_overhead_us": 0.0,
                    "layer_overhead_us": 0.0}
        return {"iteration_overhead_ms": p.iteration_overhead_ms,
                "seq_overhead_us": p.seq_overhead_us, "layer_overhead_us": p.layer_overhead_us}

    def prior_overheads(self) -> dict[str, float]:
        """The uncalibrated prediction's values: the engine profile's fitted overheads, step
        scale 1 (the iteration term as the per-sequence / per-layer ones: see :meth:`priors`)."""
        p = PROFILES[self.engine]
        return {"request_overhead_ms": p.request_overhead_ms, "step_scale": 1.0, **self.priors()}

    def step_times(self, longest_tokens: int) -> tuple[StepTimes, str]:
        budget = max(8192, int(longest_tokens), self.max_num_batched_tokens or 0)
        seqs = max(256, self.max_num_seqs or 0)
        if self.step_table is not None:
            table = pd.read_csv(self.step_table)
            model = self.step_model
            if model is None:
                models = sorted(set(table["model"].astype(str))) if "model" in table else []
                if len(models) != 1:
                    raise DataError(f"step table {self.step_table} holds models {models}: name "
                                    f"the one to use (step_model)")
                model = models[0]
            step = measured_step_times(table, model, max_batched_tokens=budget, max_seqs=seqs)
            return step, (f"step costs: measured step table {Path(self.step_table).name} "
                          f"(sha256 {sha256_file(self.step_table)[:12]}, model {model})")
        arch = self.architecture()
        step = replica_step_times(arch, self.gpu, self.tp, 1.0,
                                  params=profile_step_params(fit(), self.engine),
                                  max_batched_tokens=budget, max_seqs=seqs)
        return step, f"step costs: the kit's fitted step model for {arch.name} on {self.tp} x {self.gpu}"

    def kv_tokens(self, arch: Architecture) -> tuple[int | None, str]:
        if self.kv_capacity_tokens is not None:
            return int(self.kv_capacity_tokens), "given"
        if self.gpu in GPUS:
            return None, "memory model"
        return (int(CPU_KV_CACHE_GB * 2**30 // arch.kv_bytes_per_token(2)),
                f"{CPU_KV_CACHE_GB:g} GiB CPU KV space (the kit's CPU engine default)")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def scale_step_times(step: StepTimes, factor: float) -> StepTimes:
    """``step`` with every time multiplied by ``factor``."""
    if factor == 1.0:
        return step
    return replace(step, prefill_by_tokens_ms=step.prefill_by_tokens_ms * factor,
                   prefill_ms_per_sq_token=step.prefill_ms_per_sq_token * factor,
                   prefill_ms_per_seq=step.prefill_ms_per_seq * factor,
                   decode_base_ms=step.decode_base_ms * factor,
                   decode_ms_per_context_token=step.decode_ms_per_context_token * factor,
                   label=f"{step.label} x{factor:.4g}")


# ---------------------------------------------------------------------------------------------
# Requests of a level

@dataclass(frozen=True)
class _Level:
    """One level's simulated inputs: request streams (one per seed), scored slice, cap."""

    level: int
    streams: tuple[Requests, ...]
    skip: int  # warm-up requests at the head of each stream, not scored
    cap: int | None  # the load generator's concurrency cap
    replayed: bool


def _arrivals(kind: str, rate: float, n: int, burstiness: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind in ("burst", "concurrency") or not math.isfinite(rate):
        return np.zeros(n)
    if kind == "constant":
        return np.arange(n) / rate
    shape = burstiness if kind == "gamma" and math.isfinite(burstiness) and burstiness > 0 else 1.0
    gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def _level_inputs(report: Report, row: pd.Series) -> _Level:
    lvl = int(row["level"])
    cap = row["max_concurrency"]
    cap = int(cap) if math.isfinite(cap) and cap >= 1 else None
    if report.requests is not None:
        g = report.requests[report.requests["segment"] == lvl]
        g = g[np.isfinite(g["ttft_ms"].to_numpy(float))].sort_values("arrival_s")
        if len(g):
            if g[["prompt_tokens", "output_tokens"]].isna().any().any():
                raise CalibrationInputError(
                    f"level {lvl}: requests without prompt or output token counts; the replay "
                    f"needs both (record them in the load generator, e.g. vllm bench serve "
                    f"--save-detailed)")
            a = g["arrival_s"].to_numpy(float)
            req = Requests(a - a[0], g["prompt_tokens"].to_numpy(int).clip(1),
                           g["output_tokens"].to_numpy(int).clip(1),
                           label=f"level {lvl}: measured arrivals and tokens")
            return _Level(lvl, (req,), 0, cap, True)
    p, o = row["prompt_tokens_mean"], row["output_tokens_mean"]
    if not (math.isfinite(p) and math.isfinite(o)):
        raise CalibrationInputError(
            f"level {lvl} (rate {row['rate_rps']:g} req/s) has no prompt/output token counts: "
            f"the serving model needs them; use a report that records tokens per request or "
            f"their means")
    n = max(int(row["requests_ok"] + row["requests_failed"]), MIN_SYNTH_REQUESTS)
    rate = float(row["rate_rps"])
    warm = int(round(rate * row["warmup_s"])) if math.isfinite(rate) and row["warmup_s"] > 0 else 0
    streams = []
    for s in SYNTH_SEEDS:
        arr = _arrivals(str(row["arrival"]), rate, warm + n, float(row["burstiness"]), s)
        streams.append(Requests(arr, np.full(warm + n, max(1, round(p)), dtype=np.int64),
                                np.full(warm + n, max(1, round(o)), dtype=np.int64),
                                label=f"level {lvl}: synthesized {row['arrival']} arrivals"))
    return _Level(lvl, tuple(streams), warm, cap, False)


def _hold_back(sched: np.ndarray, finish: np.ndarray, cap: int) -> np.ndarray:
    """Send times under a cap of ``cap`` requests in flight, given completion times."""
    out = np.empty_like(sched)
    busy: list[float] = []
    last = 0.0
    for i, s in enumerate(sched):
        t = max(s, last)
        if len(busy) >= cap:
            t = max(t, heapq.heappop(busy))
        out[i] = last = t
        heapq.heappush(busy, t + finish[i])
    return out


def _simulate(step, setup, req: Requests, cap: int | None):
    """Simulated result and the send times it settled on (held back under ``cap``)."""
    res = simulate_engine(step, req, setup, warmup_fraction=0.0, add_request_overhead=True)
    if cap is None or cap >= len(req):
        return res, req
    sched = req.arrival_s
    for _ in range(30):
        sent = _hold_back(sched, res.e2e_ms / 1e3, cap)
        if np.allclose(sent, req.arrival_s, atol=1e-6):
            break
        req = Requests(sent, req.prompt_tokens, req.output_tokens, req.label)
        res = simulate_engine(step, req, setup, warmup_fraction=0.0, add_request_overhead=True)
    return res, req


def _tpot(res, req: Requests, skip: int) -> np.ndarray:
    o = req.output_tokens[skip:]
    m = o > 1
    return (res.e2e_ms[skip:][m] - res.ttft_ms[skip:][m]) / (o[m] - 1)


class _Model:
    """The serving model of one deployment, ready to predict a report's levels."""

    def __init__(self, dep: Deployment, report: Report):
        self.dep = dep
        self.arch = dep.architecture()
        lv = report.levels
        longest = 0
        if report.requests is not None and len(report.requests):
            longest = int((report.requests["prompt_tokens"] + report.requests["output_tokens"])
                          .max())
        tok = (lv["prompt_tokens_mean"] + lv["output_tokens_mean"]).to_numpy(float)
        if np.isfinite(tok).any():
            longest = max(longest, int(np.nanmax(tok)) + 1)
        self.step, self.step_source = dep.step_times(longest)
        self.kv, self.kv_source = dep.kv_tokens(self.arch)

    def setup(self, overheads: dict[str, float], step: StepTimes):
        o = {k: overheads[k] for k in ("request_overhead_ms", "iteration_overhead_ms",
                                       "seq_overhead_us", "layer_overhead_us")}
        return setup_for(self.dep.engine, step, arch=self.arch,
                         gpu=self.dep.gpu if self.dep.gpu in GPUS else None, tp=self.dep.tp,
                         max_num_seqs=self.dep.max_num_seqs,
                         max_num_batched_tokens=self.dep.max_num_batched_tokens,
                         gpu_memory_utilization=self.dep.gpu_memory_utilization,
                         kv_capacity_tokens=self.kv, **o)

    def predict(self, level: _Level, overheads: dict[str, float]) -> dict[str, float]:
        step = scale_step_times(self.step, overheads.get("step_scale", 1.0))
        setup = self.setup(overheads, step)
        ttft, tpot, e2e, done = [], [], [], []
        for stream in level.streams:
            res, req = _simulate(step, setup, stream, level.cap)
            k = level.skip
            ttft.append(res.ttft_ms[k:])
            tpot.append(_tpot(res, req, k))
            e2e.append(res.e2e_ms[k:])
            a = req.arrival_s[k:]
            span = float((a + res.e2e_ms[k:] / 1e3).max() - a[0])
            done.append(len(a) / span if span > 0 else math.nan)
        t = np.concatenate(ttft)
        p = np.concatenate(tpot)
        return {"ttft_mean_ms": float(t.mean()), "ttft_p99_ms": float(np.percentile(t, 99)),
                "tpot_mean_ms": float(p.mean()) if p.size else math.nan,
                "e2e_mean_ms": float(np.concatenate(e2e).mean()),
                "achieved_rps": float(np.nanmean(done))}


# ---------------------------------------------------------------------------------------------
# Saturation, fit, result

def _effective_rate(lv: pd.DataFrame) -> np.ndarray:
    """Offered rate, or the achieved one where the load was a closed loop or a burst."""
    r = lv["rate_rps"].to_numpy(float)
    return np.where(np.isfinite(r), r, lv["achieved_rps"].to_numpy(float))


def _sent_rate(report: Report, lv: pd.DataFrame, rate: np.ndarray) -> np.ndarray:
    """The rate requests were actually sent at, where the tool recorded their arrivals:
    ``(n - 1) / span`` of a level's arrivals. A short Poisson level's arrivals can span much
    longer than ``n / rate`` (10 requests at 2 req/s: often 1.2-1.4 req/s sent), which the
    offered rate would read as the engine falling behind. Else the (effective) offered rate."""
    out = rate.astype(float).copy()
    if report.requests is None:
        return out
    for i, level in enumerate(lv["level"].to_numpy()):
        t = report.requests.loc[report.requests["segment"] == level, "arrival_s"].to_numpy(float)
        t = t[np.isfinite(t)]
        if t.size >= 3 and t.max() > t.min():
            out[i] = (t.size - 1) / (t.max() - t.min())
    return out


def _knee(rate: np.ndarray, ttft: np.ndarray, requests: np.ndarray) -> tuple[float, str]:
    from .latency_validation import saturation_rate
    t = pd.DataFrame({"rate_rps": rate, "requests": requests, "x_ttft_mean_ms": ttft,
                      "x_completion_rps": np.nan})
    return saturation_rate(t, "x")


def _saturated(rate: np.ndarray, achieved: np.ndarray, n: np.ndarray, e2e_ms: np.ndarray,
               knee: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        keeping_up = n / ((n - 1) / rate + e2e_ms / 1e3)
    keeping_up = np.where(np.isfinite(keeping_up), keeping_up, rate)
    behind = np.isfinite(rate) & np.isfinite(achieved) & (achieved < ACHIEVED_FRACTION
                                                            * keeping_up)
    past = np.isfinite(rate) & (rate >= SAT_FRACTION * knee) if math.isfinite(knee) else \
        np.zeros(rate.size, bool)
    return behind | past


def _e2e_ms(lv: pd.DataFrame) -> np.ndarray:
    """Measured mean E2E, or TTFT + TPOT x (output - 1) where the tool gave none."""
    e = lv["e2e_mean_ms"].to_numpy(float)
    est = (lv["ttft_mean_ms"] + lv["tpot_mean_ms"] * (lv["output_tokens_mean"] - 1)).to_numpy(float)
    return np.where(np.isfinite(e), e, est)


@dataclass(frozen=True)
class DeploymentCalibration:
    """Fitted overheads of one deployment and the margin its held-out levels measured.

    What ``routerwise calibrate --out`` saves and what a problem file's
    ``[latency] calibration`` names; :func:`routerwise.serving.curve_grid.build_profile_table`
    simulates with it (``GridOptions.calibration``)."""

    deployment: Deployment
    values: tuple[tuple[str, float], ...]  # every overhead key + step_scale
    fitted: tuple[str, ...]  # which of ``values`` were fitted (the rest: priors)
    fit_levels_rps: tuple[float, ...]
    median_abs_err_pct_heldout: float
    margin: tuple[tuple[str, float], ...]  # ("ttft", f), ("tpot", g)
    margin_source: str
    report: str  # the measured input: format, model, files' sha256
    notes: tuple[str, ...] = field(default=())

    @property
    def overheads(self) -> dict[str, float]:
        v = dict(self.values)
        return {k: v[k] for k in ("request_overhead_ms", "iteration_overhead_ms",
                                  "seq_overhead_us", "layer_overhead_us")}

    @property
    def step_scale(self) -> float:
        return float(dict(self.values).get("step_scale", 1.0))

    @property
    def planning_margin(self) -> dict[str, float]:
        return dict(self.margin)

    def label(self) -> str:
        v = dict(self.values)
        d = self.deployment
        return (f"calibrated to the measured deployment ({self.report}; {d.arch_label()} on {d.tp} x "
                f"{d.gpu}, {d.engine}) on the lowest {len(self.fit_levels_rps)} unsaturated "
                f"level(s) {list(self.fit_levels_rps)} req/s: fitted "
                + ", ".join(f"{k} {v[k]:.4g}" for k in self.fitted)
                + "; kept at prior " + ", ".join(f"{k} {v[k]:.4g}" for k in v
                                                 if k not in self.fitted))

    def margin_label(self) -> str:
        m = self.planning_margin
        return (f"planning margin TTFT x{m['ttft']:.3f}, TPOT/E2E x{m['tpot']:.3f} "
                f"({self.margin_source})")

    def to_json(self) -> dict:
        return {"kind": CALIBRATION_KIND, "version": 1, "deployment": self.deployment.to_dict(),
                "values": dict(self.values), "fitted": list(self.fitted),
                "fit_levels_rps": list(self.fit_levels_rps),
                "median_abs_err_pct_heldout": self.median_abs_err_pct_heldout,
                "planning_margin": self.planning_margin, "margin_source": self.margin_source,
                "report": self.report, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, d: dict, origin: str = "calibration") -> DeploymentCalibration:
        if not isinstance(d, dict) or d.get("kind") != CALIBRATION_KIND:
            found = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise DataError(f"{origin}: not a deployment calibration (kind {found!r}; expected "
                            f"{CALIBRATION_KIND!r}, written by routerwise calibrate --out)")
        try:
            dep = Deployment(**d["deployment"])
            vals = {k: float(v) for k, v in d["values"].items()}
            missing = [k for k in (*FIT_KEYS, *PRIOR_KEYS) if k not in vals]
            if missing:
                raise DataError(f"{origin}: calibration lacks values {missing}")
            margin = {k: float(d["planning_margin"][k]) for k in ("ttft", "tpot")}
            return cls(dep, tuple(sorted(vals.items())), tuple(d["fitted"]),
                       tuple(float(r) for r in d["fit_levels_rps"]),
                       float(d["median_abs_err_pct_heldout"]), tuple(sorted(margin.items())),
                       str(d["margin_source"]), str(d["report"]), tuple(d.get("notes", ())))
        except (KeyError, TypeError) as e:
            raise DataError(f"{origin}: malformed calibration ({e!r}); write it again with "
                            f"routerwise calibrate --out") from None

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_json())

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def load_calibration(path: str | Path) -> DeploymentCalibration:
    """A calibration saved by ``routerwise calibrate --out``."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"no calibration file {p}: write one with routerwise calibrate "
                              f"... --out {p.name}")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not JSON ({e})") from None
    return DeploymentCalibration.from_json(d, str(p))


def _usable_levels(report: Report) -> tuple[pd.DataFrame, list[str]]:
    lv = report.levels
    notes = []
    if int(lv["requests_ok"].sum()) == 0:
        raise CalibrationInputError(
            f"the report ({report.format}, {report.model}) has no successful request: every "
            f"one of its {int(lv['requests_failed'].sum())} requests failed; fix the endpoint "
            f"and measure again")
    empty = lv[lv["requests_ok"] == 0]
    if len(empty):
        notes.append(f"levels {empty['level'].tolist()} had no successful request: left out")
        lv = lv[lv["requests_ok"] > 0]
    if len(lv) < 2:
        raise CalibrationInputError(
            f"the report has {len(lv)} load level with successful requests: a calibration "
            f"fits on the lowest levels and predicts the others, so it needs at least 2 (sweep "
            f"several rates, e.g. vllm bench serve --request-rate per level)")
    bad = lv[~np.isfinite(lv["ttft_mean_ms"]) | ~np.isfinite(lv["tpot_mean_ms"])]
    if len(bad):
        raise CalibrationInputError(f"levels {bad['level'].tolist()} lack mean TTFT or mean "
                                    f"TPOT: the calibration fits both (stream the responses)")
    if "," in str(report.model):
        raise CalibrationInputError(f"the report mixes models ({report.model}): calibrate one "
                                    f"deployment's model at a time")
    return lv.reset_index(drop=True), notes


def _measured_ci95_pct(report: Report, lvl: int) -> dict[str, float]:
    """The 95% half-width of a level's measured mean TTFT and mean TPOT, in % of the mean
    (measured; NaN without per-request data or with fewer than 2 x :data:`CI_BATCHES`
    requests): batch means, the level's successful requests in arrival order cut into
    :data:`CI_BATCHES` equal batches and Student's t over the batch means (consecutive
    requests share a queue, so their spread alone would understate it). A held-out error
    smaller than this cannot be told from the measurement's own noise."""
    from ..uncertainty import half_width_95

    out = {"ttft_mean": math.nan, "tpot_mean": math.nan}
    if report.requests is None:
        return out
    g = report.requests[report.requests["segment"] == lvl]
    g = g[np.isfinite(g["ttft_ms"].to_numpy(float))].sort_values("arrival_s")
    if len(g) < 2 * CI_BATCHES:
        return out
    batch = np.arange(len(g)) * CI_BATCHES // len(g)
    for key, col in (("ttft_mean", "ttft_ms"), ("tpot_mean", "tpot_ms")):
        v = g[col].to_numpy(float)
        ok = np.isfinite(v)
        if ok.sum() < 2 * CI_BATCHES:
            continue
        means = pd.Series(v[ok]).groupby(batch[ok]).mean().to_numpy(float)
        mean = float(np.mean(v[ok]))
        if means.size == CI_BATCHES and mean > 0:
            out[key] = 100.0 * half_width_95(means) / mean
    return out


def _errors(meas: dict, pred: dict) -> dict:
    return {f"signed_err_pct_{k}": 100.0 * (pred[f"{k}_ms"] - meas[f"{k}_ms"]) / meas[f"{k}_ms"]
            for k in ("ttft_mean", "tpot_mean", "ttft_p99")}


def _median_abs(rows: list[dict], keys=("ttft_mean", "tpot_mean")) -> float:
    v = np.array([abs(r[f"signed_err_pct_{k}"]) for r in rows for k in keys], float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _margin(rows: list[dict]) -> dict[str, float]:
    out = {}
    for name in ("ttft", "tpot"):
        v = np.array([r[f"signed_err_pct_{name}_mean"] for r in rows], float)
        v = v[np.isfinite(v)]
        f = max(1.0, 1.0 / (1.0 + v.mean() / 100.0)) if v.size else 1.0
        out[name] = math.ceil(f * 1e4) / 1e4
    return out


def predict_levels(report: Report, deployment: Deployment,
                   values: dict[str, float] | None = None) -> pd.DataFrame:
    """Predicted mean/p99 TTFT, mean TPOT and achieved rate of every usable level of
    ``report`` under ``values`` (default: the engine profile's, uncalibrated)."""
    lv, _ = _usable_levels(report)
    model = _Model(deployment, report)
    vals = values or deployment.prior_overheads()
    rows = [{"level": int(r["level"]), **model.predict(_level_inputs(report, r), vals)}
            for _, r in lv.iterrows()]
    return pd.DataFrame(rows)


def calibrate(report: Report, deployment: Deployment, fit_levels: int = 2, *,
              max_nfev: int = 80) -> tuple[DeploymentCalibration, dict]:
    """Fit on the lowest ``fit_levels`` unsaturated levels, predict the rest (module notes).

    Returns the calibration and the ``routerwise calibrate --json`` document."""
    from scipy.optimize import minimize, minimize_scalar

    if fit_levels < 1:
        raise ValidationError(f"fit_levels must be >= 1, got {fit_levels}")
    lv, notes = _usable_levels(report)
    rate = _effective_rate(lv)
    achieved = lv["achieved_rps"].to_numpy(float)
    knee_m, rule = _knee(rate, lv["ttft_mean_ms"].to_numpy(float), lv["requests_ok"].to_numpy())
    n_ok = lv["requests_ok"].to_numpy(float)
    sent = _sent_rate(report, lv, rate)
    sat_m = _saturated(sent, achieved, n_ok, _e2e_ms(lv), knee_m)
    order = np.argsort(rate, kind="stable")
    unsat = [int(i) for i in order if not sat_m[i]]
    if not unsat:
        raise CalibrationInputError(
            f"every level of the report is saturated (achieved rate below "
            f"{ACHIEVED_FRACTION:g} x the rate sent, or at or past the TTFT knee {knee_m:.3g} req/s): "
            f"nothing to fit on; measure lighter loads too")
    fit_idx = unsat[:fit_levels]
    if len(fit_idx) < fit_levels:
        notes.append(f"only {len(fit_idx)} unsaturated level(s): fitted on {len(fit_idx)}, not "
                     f"{fit_levels}")
    free = list(FIT_KEYS if len(fit_idx) >= 2 else FIT_KEYS[:2])  # K = 1: two numbers, two terms
    prior = deployment.prior_overheads()
    model = _Model(deployment, report)
    inputs = [_level_inputs(report, r) for _, r in lv.iterrows()]
    if not all(x.replayed for x in inputs):
        notes.append("levels without per-request data: requests synthesized from the level's "
                     "arrival process, rate, concurrency cap, warm-up and MEAN token counts "
                     f"(an approximation; {len(SYNTH_SEEDS)} seeds averaged)")
    meas = [{k: float(r[k]) for k in ("ttft_mean_ms", "tpot_mean_ms", "ttft_p99_ms")}
            for _, r in lv.iterrows()]

    def fit_at(scale: float, it: float) -> tuple[np.ndarray, dict[str, float]]:
        """Residuals at (step scale, iteration overhead), the request overhead profiled out:
        it adds a constant to every TTFT, so its least-squares value (ms, >= 0) is the mean
        gap between measured and predicted TTFT."""
        o = {**prior, "request_overhead_ms": 0.0, "iteration_overhead_ms": it,
             "step_scale": scale}
        preds = [model.predict(inputs[i], o) for i in fit_idx]
        gap = np.mean([meas[i]["ttft_mean_ms"] - p["ttft_mean_ms"]
                       for i, p in zip(fit_idx, preds, strict=True)])
        o["request_overhead_ms"] = float(min(max(gap, _LO["request_overhead_ms"]),
                                             _HI["request_overhead_ms"]))
        out = []
        for i, p in zip(fit_idx, preds, strict=True):
            out += [math.log(max(p["ttft_mean_ms"] + o["request_overhead_ms"], 1e-6)
                             / meas[i]["ttft_mean_ms"]),
                    math.log(max(p["tpot_mean_ms"], 1e-6) / meas[i]["tpot_mean_ms"])]
        if "iteration_overhead_ms" in free:  # K >= 2: keep the scale from trading freely
            out.append(SCALE_PRIOR_WEIGHT * math.log(scale))
        return np.array(out), o

    def cost(x) -> float:
        r, _ = fit_at(*x)
        return float(r @ r)

    it0 = prior["iteration_overhead_ms"]
    # the step scale first (a bounded 1-D search in log scale; TPOT grows with it), then, with
    # K >= 2, scale and iteration overhead together by Nelder-Mead from there (the simulated
    # statistics move in small jumps with the overheads: a derivative-free search is not
    # misled by them)
    one = minimize_scalar(lambda u: cost((math.exp(u), it0)), method="bounded",
                          bounds=(math.log(_LO["step_scale"]), math.log(_HI["step_scale"])),
                          options={"xatol": 1e-4, "maxiter": max_nfev})
    x = (math.exp(float(one.x)), it0)
    if "iteration_overhead_ms" in free:
        res = minimize(cost, np.array(x), method="Nelder-Mead",
                       bounds=[(_LO["step_scale"], _HI["step_scale"]),
                               (_LO["iteration_overhead_ms"], _HI["iteration_overhead_ms"])],
                       options={"xatol": 1e-4, "fatol": 1e-10, "maxfev": 2 * max_nfev,
                                "initial_simplex": np.array([x, (x[0] * 1.15, x[1]),
                                                             (x[0], x[1] * 1.3 + 0.2)])})
        if res.fun < cost(x):
            x = (float(res.x[0]), float(res.x[1]))
    resid, values = fit_at(*x)
    fit_cost = float(resid @ resid)

    rows, rows_unc, cis = [], [], []
    pred_all, unc_all = [], []
    for i in range(len(lv)):
        p = model.predict(inputs[i], values)
        u = model.predict(inputs[i], prior)
        pred_all.append(p)
        unc_all.append(u)
    knee_p, _ = _knee(rate, np.array([p["ttft_mean_ms"] for p in pred_all]),
                      lv["requests_ok"].to_numpy())
    knee_u, _ = _knee(rate, np.array([u["ttft_mean_ms"] for u in unc_all]),
                      lv["requests_ok"].to_numpy())
    sat_p = _saturated(sent, np.array([p["achieved_rps"] for p in pred_all]), n_ok,
                       np.array([p["e2e_mean_ms"] for p in pred_all]), knee_p)
    levels = []
    for i in order:
        i = int(i)
        m, p, u = meas[i], pred_all[i], unc_all[i]
        e, eu = _errors(m, p), _errors(m, u)
        held = i not in fit_idx and not sat_m[i]
        ci = _measured_ci95_pct(report, int(lv["level"].iloc[i]))
        if held:
            rows.append(e)
            rows_unc.append(eu)
            cis += [ci["ttft_mean"], ci["tpot_mean"]]
        levels.append({
            "level": int(lv["level"].iloc[i]), "rate_rps": float(rate[i]),
            "offered_rate_rps": float(lv["rate_rps"].iloc[i]),
            "arrival": str(lv["arrival"].iloc[i]), "requests_ok": int(lv["requests_ok"].iloc[i]),
            "used_for_fit": i in fit_idx, "held_out": held,
            "measured_saturated": bool(sat_m[i]), "predicted_saturated": bool(sat_p[i]),
            "replayed": inputs[i].replayed,
            "measured": {**m, "achieved_rps": float(achieved[i])},
            "predicted": {k: p[k] for k in ("ttft_mean_ms", "tpot_mean_ms", "ttft_p99_ms",
                                            "achieved_rps")},
            "predicted_uncalibrated": {k: u[k] for k in ("ttft_mean_ms", "tpot_mean_ms",
                                                         "ttft_p99_ms", "achieved_rps")},
            "errors_pct": e, "errors_pct_uncalibrated": eu, "measured_ci95_pct": ci})
    from .latency_validation import PLANNING_MARGIN_SOURCE, PLANNING_MARGINS
    if rows:
        margin = _margin(rows)
        msrc = (f"from this calibration's {len(rows)} held-out unsaturated level(s): the factor "
                f"that lifts their mean under-prediction of mean TTFT / TPOT to zero")
    else:
        margin = dict(PLANNING_MARGINS.get(deployment.engine, {"ttft": 1.0, "tpot": 1.0}))
        msrc = (f"no held-out unsaturated level in this calibration: the validation's margin "
                f"({PLANNING_MARGIN_SOURCE})")
        notes.append("no held-out level: the held-out error is not measured (NaN)")
    kept = [k for k in (*FIT_KEYS, *PRIOR_KEYS) if k not in free]
    digest = hashlib.sha256("".join(sorted(x.sha256 for x in report.sources)).encode()).hexdigest()
    tools = sorted({f"{x.tool} {x.tool_version}".strip() for x in report.sources})
    report_label = (f"{report.format} report of {report.model}"
                    + (f" ({len(report.sources)} file(s) by {', '.join(tools)}; sha256 of their "
                       f"sha256s {digest[:12]}"
                       + ("; written from the documented format"
                          if any(x.written_from_docs for x in report.sources) else "") + ")"
                       if report.sources else ""))
    cal = DeploymentCalibration(
        deployment, tuple(sorted(values.items())), tuple(free),
        tuple(float(rate[i]) for i in fit_idx), _median_abs(rows), tuple(sorted(margin.items())),
        msrc, report_label, tuple(notes))

    def err(rs, k):
        return _median_abs(rs, (k,))

    doc = {
        "levels": levels,
        "median_abs_err_pct_heldout": _median_abs(rows),
        "median_abs_err_pct_heldout_uncalibrated": _median_abs(rows_unc),
        # the measurement's own 95% half-width over the same values (batch means; NaN without
        # per-request data): an error below it is within the measurement's noise
        "median_ci95_pct_heldout": (float(np.nanmedian(cis)) if np.isfinite(cis).any()
                                    else math.nan),
        "median_abs_err_pct_heldout_ttft_mean": err(rows, "ttft_mean"),
        "median_abs_err_pct_heldout_tpot_mean": err(rows, "tpot_mean"),
        "median_abs_err_pct_heldout_ttft_p99": err(rows, "ttft_p99"),
        "median_abs_err_pct_heldout_ttft_mean_uncalibrated": err(rows_unc, "ttft_mean"),
        "median_abs_err_pct_heldout_tpot_mean_uncalibrated": err(rows_unc, "tpot_mean"),
        "median_abs_err_pct_heldout_ttft_p99_uncalibrated": err(rows_unc, "ttft_p99"),
        "levels_held_out": len(rows),
        "fit_levels_requested": int(fit_levels), "fit_levels_used": len(fit_idx),
        "fit_levels_rps": [float(rate[i]) for i in fit_idx],
        "fitted": {k: values[k] for k in free},
        "kept_at_prior": {k: values[k] for k in kept},
        "uncalibrated_values": prior,
        "saturation": {"measured_rps": knee_m, "predicted_rps": knee_p,
                       "predicted_rps_uncalibrated": knee_u, "rule": rule,
                       "level_rule": f"saturated: achieved < {ACHIEVED_FRACTION:g} x the rate of a run "
                                     f"keeping up, or offered >= {SAT_FRACTION:g} x the TTFT "
                                     f"knee"},
        "planning_margin": margin, "margin_source": msrc,
        "deployment": deployment.to_dict(), "step_costs": model.step_source,
        "kv_capacity": model.kv_source,
        "report": {"format": report.format, "model": report.model,
                   "sources": report.provenance(), "notes": list(report.notes)},
        "labels": {"measured": "measured by the load generator (its own token counting)",
                   "predicted": "modelled: the kit's serving model with the fitted values",
                   "predicted_uncalibrated": "modelled: the engine profile's values",
                   "fitted": f"fitted by robust least squares on {len(fit_idx)} level(s)"},
        "fit_cost": fit_cost, "notes": notes,
    }
    return cal, doc
