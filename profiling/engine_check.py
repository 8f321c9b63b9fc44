"""The kit's serving model against a live engine: replay measured load points, calibrate, score.

Input: per load point (model, rate, repeat) the client's request table
(:mod:`profiling.loadgen` columns) and, per model, the engine's measured step table
(:mod:`profiling.served_steps`: iterations of the served engine, timed by its metrics). Each
point is replayed request by request with :func:`routerwise.serving.engine.simulate_engine`
(profile ``vllm-v1``: vLLM's V1 scheduler, chunked prefill, paged KV) on
:func:`routerwise.serving.stepcost.measured_step_times` of that table, with the measured send
times and token counts; nothing is dropped as warm-up on either side.

* :func:`calibrate` fits the request and iteration overheads and a step-time factor on the
  given points (the lowest rates) by least squares on ``log(sim / meas)`` of mean TTFT and mean TPOT. The
  per-sequence and per-layer terms are 0: the probe timed whole served iterations at every
  batch size (per-sequence host costs are in the step table), one model's depth is fixed (a
  per-layer term is the iteration term), and light load (batches of 1-3) cannot tell a
  per-sequence cost from a per-iteration one anyway.
* :func:`level_table` gives per (model, rate) the measured and simulated mean / p99 TTFT and
  mean TPOT, averaged over the repeats, their errors, and the repeats' spread (the noise floor:
  ``100 (max - min) / mean`` of a statistic over the repeats).
* :class:`FrontEnd` models what the constant request overhead misses where the API server
  shares a core (here with the load generator): a processor-sharing CPU whose work per
  request, per output token and per engine iteration :func:`probe_front_end` measures, and
  whose busy share at a rate follows from the simulated engine's iteration count at that rate;
  :func:`evaluate` uses it when each model has a probe and its points recorded the front end's
  busy shares.
* :func:`summary` gives the benchmark's keys: median absolute errors over the rates not used
  by the calibration, the signed saturation-rate error (the rule of
  :func:`routerwise.serving.latency_validation.saturation_rate`: mean TTFT crossing 3x its
  lightest-load value), the median repeat spread.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from routerwise.errors import DataError, ValidationError
from routerwise.serving.architectures import Architecture
from routerwise.serving.calibration import SCALE_PRIOR_WEIGHT, scale_step_times
from routerwise.serving.engine import PROFILES, setup_for, simulate_engine
from routerwise.serving.latency_validation import saturation_rate
from routerwise.serving.simulator import Requests, SimResult
from routerwise.serving.stepcost import StepTimes, measured_step_times

__all__ = ["Point", "ModelSetup", "CALIBRATED_KEYS", "default_overheads", "sim_requests",
           "measured_stats", "simulate_point", "calibrate", "level_table", "summary",
           "sched_totals", "cpu_share", "point_requests", "measure_model", "STEPS_FILE",
           "STRUCTURE_KEYS", "linear_step_times", "structure_check", "FRONT_END_COLUMNS",
           "front_end_check", "FrontEnd", "FRONT_END_FILE", "FRONT_END_BURSTS",
           "FRONT_END_TOKENS", "point_busy", "front_end_costs", "fit_front_end",
           "probe_front_end", "read_front_end", "run_point", "speed_index_ms", "SPEED_FILE",
           "DRIFT_BATCH", "steps_path", "read_step_rounds", "steal_totals", "steal_share"]

PROFILE = "vllm-v1"
CALIBRATED_KEYS = ("request_overhead_ms", "iteration_overhead_ms", "step_scale")
_LOG_SCALE = (math.log(0.5), math.log(2.0))  # the step factor's search range
STATS = ("ttft_mean", "ttft_p99", "tpot_mean")


@dataclass(frozen=True)
class Point:
    """One measured load point: the client's request table at one offered rate."""

    model: str
    rate_rps: float
    repeat: int
    requests: pd.DataFrame


def default_overheads() -> dict[str, float]:
    """The ``vllm-v1`` profile's fitted overheads (from GPU runs), per-layer term folded in at
    0 layers: the uncalibrated prediction."""
    p = PROFILES[PROFILE]
    return {"request_overhead_ms": p.request_overhead_ms,
            "iteration_overhead_ms": p.iteration_overhead_ms,
            "seq_overhead_us": p.seq_overhead_us, "layer_overhead_us": p.layer_overhead_us}


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["ok"].astype(bool)].sort_values("send_s")
    if len(ok) < 2:
        raise DataError(f"a load point has {len(ok)} completed requests; need >= 2")
    return ok


def sim_requests(df: pd.DataFrame) -> Requests:
    """The completed requests of a point as the simulator's input: send times from the first
    send, the server's prompt and completion token counts."""
    ok = _ok(df)
    t = ok["send_s"].to_numpy(float)
    return Requests(t - t[0], ok["prompt_tokens"].to_numpy(int),
                    ok["completion_tokens"].to_numpy(int))


def _stats(ttft: np.ndarray, tpot: np.ndarray) -> dict[str, float]:
    tpot = tpot[np.isfinite(tpot)]
    return {"ttft_mean": float(np.mean(ttft)), "ttft_p99": float(np.percentile(ttft, 99)),
            "tpot_mean": float(np.mean(tpot)) if tpot.size else math.nan}


def measured_stats(df: pd.DataFrame) -> dict[str, float]:
    ok = _ok(df)
    return _stats(ok["ttft_ms"].to_numpy(float), ok["tpot_ms"].to_numpy(float))


def run_point(step: StepTimes, df: pd.DataFrame, overheads: Mapping[str, float], *,
              arch: Architecture, max_num_batched_tokens: int, max_num_seqs: int,
              kv_capacity_tokens: int) -> SimResult:
    """The simulated engine's run of one point's requests under ``overheads``."""
    setup = setup_for(PROFILE, step, arch=arch, max_num_seqs=max_num_seqs,
                      max_num_batched_tokens=max_num_batched_tokens,
                      kv_capacity_tokens=kv_capacity_tokens, **dict(overheads))
    return simulate_engine(step, sim_requests(df), setup, warmup_fraction=0.0)


def simulate_point(step: StepTimes, df: pd.DataFrame, overheads: Mapping[str, float], *,
                   arch: Architecture, max_num_batched_tokens: int, max_num_seqs: int,
                   kv_capacity_tokens: int) -> dict[str, float]:
    """Simulated statistics of one point's requests under ``overheads``."""
    res = run_point(step, df, overheads, arch=arch, max_num_batched_tokens=max_num_batched_tokens,
                    max_num_seqs=max_num_seqs, kv_capacity_tokens=kv_capacity_tokens)
    return _stats(res.ttft_ms, res.tpot_ms)


FRONT_END_COLUMNS = ("api_server_busy", "loadgen_busy")
FRONT_END_MAX_BUSY = 0.99  # the processor-sharing stretch is capped here; past 1, a backlog


@dataclass(frozen=True)
class FrontEnd:
    """The request path outside the engine core as one processor-sharing CPU (modelled).

    The kit's engine profiles add a constant request overhead to every TTFT. A served engine's
    API server is one Python process; on a core it shares (here with the load generator) its
    busy share ``u`` grows with the load, and the CPU work on each request's way to its first
    token, ``cpu_ms_per_request + cpu_ms_per_token``, stretches to that work ``/ (1 - u)``
    (processor sharing: every runnable task gets the ``1 - u`` of the core that others
    leave). The rest of the calibrated request overhead (loopback, waiting for the engine's
    next step) does not stretch: the overhead, calibrated at busy share ``calibration_busy``,
    becomes ``request_overhead_ms + work * (1 / (1 - u) - 1 / (1 - calibration_busy))``.
    Past ``u = 1`` the core falls behind: a request arriving ``t`` s into the point also waits
    the backlog ``(u - 1) t`` (fluid).

    The core's work is ``cpu_ms_per_request`` per request (HTTP, tokenizing, the response),
    ``cpu_ms_per_token`` per streamed output token (detokenizing, one SSE chunk out and
    parsed) and ``cpu_ms_per_iteration`` per engine iteration (each iteration's outputs are one
    message the API server unpacks for every running request: under load one message serves
    more requests, which is why the measured busy share grows slower than the rate). ``u`` =
    that work over the simulated point's duration, from the simulated engine's own iteration
    count: predicted from the rate, not measured at it.

    ``spread_quantiles_ms`` spreads the overhead over requests as it was spread at the
    calibration points (each request's measured TTFT minus its simulated TTFT, quantiles less
    their mean): the tail a p99 sees. Requests draw from it in a fixed, seeded order; empty,
    every request takes the mean.
    """

    cpu_ms_per_request: float
    cpu_ms_per_token: float
    cpu_ms_per_iteration: float
    request_overhead_ms: float  # calibrated at calibration_busy
    calibration_busy: float
    spread_quantiles_ms: tuple[float, ...] = ()

    def busy(self, res: SimResult, requests: Requests) -> float:
        """The front end's busy share over the simulated run ``res`` of ``requests``."""
        work_ms = (self.cpu_ms_per_request * len(requests)
                   + self.cpu_ms_per_token * float(np.sum(requests.output_tokens))
                   + self.cpu_ms_per_iteration * res.iterations)
        return work_ms / (1e3 * res.duration_s) if res.duration_s > 0 else 0.0

    def spread_ms(self, n: int) -> np.ndarray:
        """Offsets of mean 0 for ``n`` requests (see ``spread_quantiles_ms``)."""
        if not self.spread_quantiles_ms:
            return np.zeros(n)
        q = np.asarray(self.spread_quantiles_ms, float)
        rank = np.random.default_rng(0).permutation(n)
        v = np.interp((rank + 0.5) / n, np.linspace(0.0, 1.0, q.size), q)
        return v - v.mean()

    def extra_ms(self, res: SimResult, requests: Requests) -> np.ndarray:
        """Per request: the front end's delay beyond the calibrated request overhead."""
        u = self.busy(res, requests)
        work = self.cpu_ms_per_request + self.cpu_ms_per_token
        stretch = work / (1.0 - min(u, FRONT_END_MAX_BUSY)) \
            - work / (1.0 - min(self.calibration_busy, FRONT_END_MAX_BUSY))
        t = np.asarray(requests.arrival_s, float)
        return self.spread_ms(t.size) + stretch + max(u - 1.0, 0.0) * 1e3 * (t - t.min())


def point_busy(df: pd.DataFrame) -> float:
    """The front end's measured busy share at a point (API server + load generator; NaN when
    the point did not record them)."""
    if not all(c in df.columns for c in FRONT_END_COLUMNS):
        return math.nan
    return float(sum(float(df[c].iloc[0]) for c in FRONT_END_COLUMNS))


FRONT_END_FILE = "front-end.csv"  # the front-end probe's bursts (measure_model)
FRONT_END_BURSTS = (1, 16, 64)  # concurrent requests per burst
FRONT_END_TOKENS = (8, 32)  # output tokens per request of a burst


def front_end_costs(probe: pd.DataFrame) -> tuple[float, float, float]:
    """CPU ms per request, per output token and per engine iteration of the front end, fitted
    by non-negative least squares to the front-end probe's bursts (:func:`probe_front_end`):
    each burst's front-end CPU time (API server + load generator) against its requests, output
    tokens and iterations, plus a constant per burst (the load generator's own set-up per run,
    which a sweep's point pays once: not carried into the model). The repeats of each burst
    (same ``burst`` and ``output_tokens``) enter as their median: tokens and iterations move
    together across bursts, so one stalled repeat (seen: 86 iterations where its twins took
    35 and 39) would otherwise triple the per-iteration cost."""
    from scipy.optimize import nnls

    need = {"requests", "tokens", "iterations", "api_server_cpu_s", "loadgen_cpu_s"}
    if probe.empty or not need <= set(probe.columns):
        raise DataError(f"a front-end probe needs rows with columns {sorted(need)}; got "
                        f"{sorted(probe.columns)} ({len(probe)} rows)")
    keys = [c for c in ("burst", "output_tokens") if c in probe.columns]
    if keys:
        probe = probe.groupby(keys, as_index=False)[sorted(need)].median()
    a = np.column_stack([np.ones(len(probe)),
                         probe[["requests", "tokens", "iterations"]].to_numpy(float)])
    cpu_ms = 1e3 * (probe["api_server_cpu_s"] + probe["loadgen_cpu_s"]).to_numpy(float)
    (_, per_request, per_token, per_iteration), _ = nnls(a, cpu_ms)
    return float(per_request), float(per_token), float(per_iteration)


SPREAD_QUANTILES = 201  # quantiles kept of the calibration points' request overheads


def fit_front_end(setup: ModelSetup, probe: pd.DataFrame | None, points: Sequence[Point],
                  overheads: Mapping[str, float]) -> FrontEnd | None:
    """The :class:`FrontEnd` of a model: its work terms from the front-end ``probe``
    (:func:`front_end_costs`); its calibration busy share, the mean measured at the
    calibration ``points``; its spread, their requests' measured TTFT minus simulated TTFT
    (under the calibrated ``overheads``). None without a probe or measured busy shares."""
    busy = np.array([point_busy(p.requests) for p in points])
    if probe is None or not points or not np.all(np.isfinite(busy)):
        return None
    per_request, per_token, per_iteration = front_end_costs(probe)
    gaps = np.concatenate([_ok(p.requests)["ttft_ms"].to_numpy(float)
                           - setup.run(p.requests, overheads).ttft_ms for p in points])
    q = np.quantile(gaps - gaps.mean(), np.linspace(0.0, 1.0, SPREAD_QUANTILES))
    return FrontEnd(per_request, per_token, per_iteration,
                    float(overheads["request_overhead_ms"]), float(np.mean(busy)),
                    tuple(map(float, q)))


@dataclass(frozen=True)
class ModelSetup:
    """What the replay of one model needs: its step times and the server's limits."""

    step: StepTimes
    arch: Architecture
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_capacity_tokens: int
    # scale each point's steps by its re-measured decode row (decode_step_ms column) over the
    # step table's: the machine's drift measured on the served engine, not fitted
    measured_drift: bool = False

    @classmethod
    def from_table(cls, steps: pd.DataFrame, model: str, *, arch: Architecture,
                   max_num_batched_tokens: int, max_num_seqs: int,
                   kv_capacity_tokens: int) -> ModelSetup:
        step = measured_step_times(steps, model, max_batched_tokens=max(
            max_num_batched_tokens, 4096), max_seqs=max(max_num_seqs, 256))
        return cls(step, arch, max_num_batched_tokens, max_num_seqs, kv_capacity_tokens)

    def run(self, df: pd.DataFrame, overheads: Mapping[str, float]) -> SimResult:
        """The simulated engine's run of ``df``'s requests under ``overheads`` (the profile's
        overhead terms; ``step_scale``, when given, multiplies every step time)."""
        over = dict(overheads)
        step = scale_step_times(self.step, float(over.pop("step_scale", 1.0))
                                * self.drift_factor(df))
        return run_point(step, df, over, arch=self.arch,
                         max_num_batched_tokens=self.max_num_batched_tokens,
                         max_num_seqs=self.max_num_seqs, kv_capacity_tokens=self.kv_capacity_tokens)

    def drift_factor(self, df: pd.DataFrame) -> float:
        """The point's re-measured decode row over the step table's (1 unless
        ``measured_drift`` and the point recorded ``decode_step_ms``)."""
        if not self.measured_drift or "decode_step_ms" not in df.columns:
            return 1.0
        from .served_steps import decode_context_len
        ref = self.step.decode_ms(DRIFT_BATCH, DRIFT_BATCH * decode_context_len(PROMPT_WORDS + 1))
        now = float(df["decode_step_ms"].iloc[0])
        return now / ref if now > 0 and ref > 0 else 1.0

    def simulate(self, df: pd.DataFrame, overheads: Mapping[str, float],
                 front_end: FrontEnd | None = None) -> dict[str, float]:
        """Statistics of ``df``'s requests replayed under ``overheads``; with ``front_end``,
        each TTFT also carries that front end's queueing delay at the point's load."""
        res = self.run(df, overheads)
        ttft = res.ttft_ms
        if front_end is not None:
            ttft = np.maximum(ttft + front_end.extra_ms(res, sim_requests(df)), 0.0)
        return _stats(ttft, res.tpot_ms)


def calibrate(setup: ModelSetup, points: Sequence[Point]) -> dict[str, float]:
    """The terms of :data:`CALIBRATED_KEYS` (per-sequence and per-layer terms 0) that fit mean
    TTFT and mean TPOT of ``points`` best (least squares on the log ratio).

    The terms are those :func:`routerwise.serving.calibration.calibrate` fits on two or more
    levels, searched the same way: the request overhead adds a constant to every TTFT, so it is
    profiled out (at given other terms, the mean measured - simulated TTFT gap, at least 0);
    the iteration overhead and ``log(step_scale)`` are searched without derivatives (a coarse
    grid, then Nelder-Mead: simulated statistics move in small jumps), with the weak prior
    pulling ``log(step_scale)`` to 0. The factor matters on a machine whose speed drifts: the
    step probe and the sweep run minutes apart (on the kit's shared 2-core machine the same
    probe read tiny-llama-m's batch-4 decode at 5.9-6.7 ms in one run and 10.9-12.1 ms in
    another), and an added overhead can only lengthen steps, never shorten them.
    """
    from scipy.optimize import minimize

    if not points:
        raise ValidationError("calibrate needs at least one load point")
    meas = [measured_stats(p.requests) for p in points]

    def terms(io: float, log_scale: float, ro: float = 0.0) -> dict[str, float]:
        return {"request_overhead_ms": float(ro), "iteration_overhead_ms": float(io),
                "step_scale": float(math.exp(log_scale)), "seq_overhead_us": 0.0,
                "layer_overhead_us": 0.0}

    def fit(x) -> tuple[float, float]:
        io, log_scale = float(np.clip(x[0], 0.0, 100.0)), float(np.clip(x[1], *_LOG_SCALE))
        sims = [setup.simulate(p.requests, terms(io, log_scale)) for p in points]
        ro = max(0.0, float(np.mean([m["ttft_mean"] - s["ttft_mean"]
                                     for s, m in zip(sims, meas, strict=True)])))
        r = [math.log(max(s["ttft_mean"] + ro, 1e-6) / m["ttft_mean"]) for s, m in
             zip(sims, meas, strict=True)]
        r += [math.log(max(s["tpot_mean"], 1e-6) / m["tpot_mean"]) for s, m in
              zip(sims, meas, strict=True)]
        return float(np.sum(np.square(r)) + (SCALE_PRIOR_WEIGHT * log_scale) ** 2), ro

    # a grid fine enough that light levels, which barely tell the two apart, keep the factor
    # at 1 where it fits as well (the grid holds log 1 = 0; ties go to the first, smaller io)
    grid = [(io, ls) for ls in sorted(np.linspace(*_LOG_SCALE, 17), key=abs)
            for io in np.arange(0.0, 4.01, 0.25)]
    scored = [(fit(x), x) for x in grid]
    (cost0, ro0), x0 = min(scored, key=lambda t: t[0][0])
    res = minimize(lambda x: fit(x)[0], np.array(x0), method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-7, "maxfev": 120,
                            "initial_simplex": np.array([x0, (x0[0] + 0.25, x0[1]),
                                                         (x0[0], x0[1] + 0.05)])})
    if res.fun > cost0:
        return terms(x0[0], x0[1], ro0)
    io, log_scale = float(np.clip(res.x[0], 0.0, 100.0)), float(np.clip(res.x[1], *_LOG_SCALE))
    return terms(io, log_scale, fit((io, log_scale))[1])


def level_table(points: Sequence[Point], setups: Mapping[str, ModelSetup],
                overheads: Mapping[str, Mapping[str, float]], label: str,
                front_ends: Mapping[str, FrontEnd | None] | None = None) -> pd.DataFrame:
    """Per (model, rate): measured and simulated statistics (means over the repeats), signed
    and absolute errors in %, and the repeats' spread; ``label`` names the overheads used
    (and ``front_ends``, per model, the front end modelled: see :class:`FrontEnd`)."""
    rows = []
    for p in points:
        m = measured_stats(p.requests)
        s = setups[p.model].simulate(p.requests, overheads[p.model],
                                     (front_ends or {}).get(p.model))
        ok = _ok(p.requests)
        span = ok["end_s"].max() - ok["send_s"].min()
        rows.append({"model": p.model, "rate_rps": p.rate_rps, "repeat": p.repeat,
                     "requests": len(ok), "meas_completion_rps": (len(ok) - 1) / span,
                     **{f"meas_{k}_ms": v for k, v in m.items()},
                     **{f"sim_{k}_ms": v for k, v in s.items()}})
    df = pd.DataFrame(rows)
    agg = df.groupby(["model", "rate_rps"], as_index=False).mean(numeric_only=True)
    agg["repeats"] = df.groupby(["model", "rate_rps"]).size().to_numpy()
    agg["sim_completion_rps"] = agg["meas_completion_rps"]  # not used: no throughput bursts
    for k in STATS:
        agg[f"signed_err_pct_{k}"] = 100.0 * (agg[f"sim_{k}_ms"] - agg[f"meas_{k}_ms"]) \
            / agg[f"meas_{k}_ms"]
        agg[f"abs_err_pct_{k}"] = agg[f"signed_err_pct_{k}"].abs()
        spread = df.groupby(["model", "rate_rps"])[f"meas_{k}_ms"].agg(
            lambda v: 100.0 * (v.max() - v.min()) / v.mean() if len(v) > 1 else math.nan)
        agg[f"repeat_spread_pct_{k}"] = spread.to_numpy()
    agg["overheads"] = label
    return agg.drop(columns=["repeat"])


def summary(levels: pd.DataFrame, calibration_rates: Mapping[str, Sequence[float]]) -> dict:
    """The benchmark's keys from a level table (see the module notes)."""
    held = levels[[r not in calibration_rates[m]
                   for m, r in zip(levels["model"], levels["rate_rps"], strict=True)]]
    out = {f"median_abs_err_pct_{k}": float(held[f"abs_err_pct_{k}"].median()) for k in STATS}
    sat = []
    per_model = {}
    for model, lv in levels.groupby("model"):
        lv = lv.sort_values("rate_rps")
        ms, ss = saturation_rate(lv, "meas")[0], saturation_rate(lv, "sim")[0]
        err = 100.0 * (ss - ms) / ms if math.isfinite(ms) and math.isfinite(ss) else math.nan
        per_model[model] = {"meas_saturation_rps": ms, "sim_saturation_rps": ss,
                            "saturation_rate_err_pct": err}
        sat.append(err)
    # signed: the error of largest magnitude over the models (the worst, with its sign); NaN
    # when a model's saturation was not found on one side (see per_model)
    out["saturation_rate_err_pct"] = (max(sat, key=abs) if sat and all(map(math.isfinite, sat))
                                      else math.nan)
    spreads = levels[[f"repeat_spread_pct_{k}" for k in STATS]].to_numpy(float).ravel()
    spreads = spreads[np.isfinite(spreads)]
    out["repeat_noise_pct"] = float(np.median(spreads)) if spreads.size else math.nan
    out["per_model"] = per_model
    return out


# ---------------------------------------------------------------------------------------------
# Measuring: one engine per model, resumable points

PROMPT_WORDS, MAX_TOKENS = 127, 32  # 128-token prompts (BOS included), 32 output tokens
# The server's limits, set explicitly on server and probe alike: vLLM's defaults differ
# between its API server (2048 tokens, 128 sequences on CPU) and its offline LLM class.
SERVER_LIMITS = {"max_num_batched_tokens": 2048, "max_num_seqs": 128}
STEPS_FILE = "steps-served.csv"  # the step table measure_model probes on the served engine
SERVER_ARGS = ("--no-enable-prefix-caching",  # the simulator does not model prefix hits
               "--max-num-batched-tokens", str(SERVER_LIMITS["max_num_batched_tokens"]),
               "--max-num-seqs", str(SERVER_LIMITS["max_num_seqs"]))


def steps_path(results: Path, model: str, probe_round: int = 0) -> Path:
    """The step table of probe round ``probe_round`` (0: before any point)."""
    name = STEPS_FILE if probe_round == 0 else STEPS_FILE.replace(".csv", f"-{probe_round}.csv")
    return Path(results) / model / name


def read_step_rounds(results: str | Path, model: str) -> list[pd.DataFrame]:
    """Every probe round's step table of ``model`` under ``results``, in round order."""
    from .gpu_steps import read_steps
    out, k = [], 0
    while steps_path(results, model, k).is_file():
        out.append(read_steps(steps_path(results, model, k)))
        k += 1
    return out


def point_path(results: Path, model: str, rate: float, repeat: int) -> Path:
    return Path(results) / model / f"rate-{rate:g}rps-rep{repeat}.csv"


def read_point(path: Path, model: str, rate: float, repeat: int) -> Point:
    from .loadgen import read_requests
    return Point(model, float(rate), int(repeat), read_requests(path))


def point_requests(rate_rps: float, num_requests: int, min_duration_s: float) -> int:
    """Requests of a point at ``rate_rps``: ``num_requests``, or more to last ``min_duration_s``
    of arrivals (100 requests at 80 req/s are a 1.3 s transient from an empty engine; the
    repeats of such points spread 50-120%)."""
    return max(int(num_requests), int(math.ceil(rate_rps * min_duration_s)))


CAPACITY_FILE = "capacity.json"  # the closed-loop capacity probe (measure_model)


def probe_capacity(ep, *, concurrency: int = SERVER_LIMITS["max_num_seqs"],
                   waves: int = 4, seed: int = 0) -> dict:
    """The served model's capacity in req/s (measured): ``waves * concurrency`` requests of the
    sweep's shape, closed loop (``concurrency`` in flight; each completion sends the next),
    through the load generator's :class:`profiling.loadgen.Endpoint` ``ep``. The rate is the
    completions per second between the ``concurrency``-th completion and the
    ``concurrency``-th before the last, where the batch stays full (the first wave arrives at
    once, the last drains). At ``max_num_seqs`` in flight the engine runs its largest batches,
    as it does once a Poisson queue backs up: the knee of a sweep lies just below this rate
    (front end included, on this machine, now). Nothing else may use the server meanwhile.
    """
    from .errors import ProfilingError
    from .loadgen import run_load, synthetic_prompts, trace_schedule

    if not (isinstance(concurrency, int) and concurrency >= 1 and isinstance(waves, int)
            and waves >= 3):
        raise ValidationError(f"capacity probe: concurrency must be an integer >= 1 and waves "
                              f">= 3, got {concurrency!r} and {waves!r}")
    n = waves * concurrency
    prompts = synthetic_prompts(n, prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS,
                                seed=9 * 10**6 + seed)
    t0 = time.perf_counter()
    res = run_load(trace_schedule([0.0] * n), prompts, replace(ep, max_concurrency=concurrency),
                   progress=False)
    wall = time.perf_counter() - t0
    df = res.requests
    ok = int(df["ok"].astype(bool).sum())
    if ok != n:
        raise ProfilingError(f"capacity probe: {n - ok} of {n} requests failed "
                             f"({df.loc[~df['ok'].astype(bool), 'error_kind'].value_counts().to_dict()})")
    return {"capacity_rps": capacity_rps(df["end_s"].to_numpy(float), concurrency),
            "concurrency": concurrency, "requests": n, "wall_s": wall,
            "prompt_tokens": PROMPT_WORDS + 1, "output_tokens": MAX_TOKENS,
            "how": "closed loop at max_num_seqs in flight (profiling.engine_check.probe_capacity)"}


def capacity_rps(end_s, concurrency: int) -> float:
    """Completions per second of a closed-loop run between the ``concurrency``-th completion
    and the ``concurrency``-th before the last (``end_s``: every request's completion time)."""
    t = np.sort(np.asarray(end_s, dtype=float))
    lo, hi = concurrency - 1, len(t) - 1 - concurrency
    if hi <= lo or not t[hi] > t[lo]:
        raise ValidationError(f"capacity: {len(t)} completions leave no steady window at "
                              f"{concurrency} in flight (need more than {2 * concurrency})")
    return float((hi - lo) / (t[hi] - t[lo]))


def capacity_rates(capacity: float, fractions: Sequence[float]) -> tuple[float, ...]:
    """A sweep's rates as ``fractions`` of a measured ``capacity`` (req/s), each to two
    significant digits: a grid that stays light load to past the knee on a slower or faster
    machine, where fixed rates land most points past the knee of a slow one."""
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValidationError(f"capacity must be a positive req/s, got {capacity!r}")
    if not fractions or any(not (math.isfinite(f) and f > 0) for f in fractions):
        raise ValidationError(f"rate fractions must be positive numbers, got {fractions!r}")
    rates = sorted({float(f"{f * capacity:.2g}") for f in fractions})
    if len(rates) != len(fractions):
        raise ValidationError(f"rate fractions {list(fractions)} of {capacity:.3g} req/s give "
                              f"only {len(rates)} distinct rates at two significant digits")
    return tuple(rates)


def read_capacity(results: str | Path, model: str) -> dict | None:
    """The capacity probe of ``model`` under ``results`` (:func:`measure_model`), or None."""
    import json
    path = Path(results) / model / CAPACITY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def measure_model(model: str, results: str | Path, rates: Sequence[float] | None, *,
                  repeats: int = 3, num_requests: int = 100, min_duration_s: float = 0.0,
                  cpu_cores: str | None = None,
                  frontend_cores: str | None = None, warmup_requests: int = 40, seed: int = 0,
                  front_end_probe: bool = False, probe_rounds: int = 1,
                  rate_fractions: Sequence[float] | None = None,
                  log=print) -> tuple[list[Point], pd.DataFrame, dict]:
    """Measure ``model`` (a name of :data:`profiling.tiny_models.TINY_MODELS`): its step table
    (``<results>/<model>/steps-served.csv``: the served engine's iterations, probed through
    the server by :func:`profiling.served_steps.probe_served_steps` after the warm-up, before
    any point; with ``probe_rounds`` > 1 again before the first point of each later repeat
    cycle, ``steps-served-<k>.csv``, and the returned table is their point-wise median
    (:func:`profiling.gpu_steps.median_steps`): a table that sees the machine as the points
    did, where one probe at the start carries that moment's speed into every prediction) and
    every (rate, repeat) point not yet in ``results`` (one CSV per point of
    :func:`point_requests` requests: the request table plus the 1-minute load average before
    and after it and ``engine_cpu_share``, the share of its runnable time the engine core ran
    during the point, from the kernel's ``schedstat``: how much other processes took its core;
    ``steal_share_engine`` and ``steal_share_frontend``, the share of the point the hypervisor
    gave those cores to other guests, from ``/proc/stat``: a slowness no process here shows).

    One server for what is missing, started with :data:`SERVER_ARGS` and stopped
    before returning; repeats run round-robin over the rates (machine load drifts spread over
    every rate). Returns the points, the step table and provenance.

    With ``frontend_cores`` (and ``cpu_cores``) the deployment is split as a real one would be
    (:func:`profiling.vllm_server.vllm_spec`): the engine core and the step probe on
    ``cpu_cores``, the API server and this process (the load generator) on
    ``frontend_cores``, so that front-end work does not take the engine's CPU.

    ``front_end_probe``: also probe the front end's CPU costs once, after the step probe
    (:func:`probe_front_end`; ``<results>/<model>/front-end.csv``, read by
    :func:`read_front_end`).

    ``rate_fractions`` (with ``rates=None``): the rates are these fractions of the model's
    capacity, probed once after the warm-up (:func:`probe_capacity`;
    ``<results>/<model>/capacity.json``, reused by a rerun) and set by
    :func:`capacity_rates`; provenance gives the probe and the rates.
    """
    from routerwise.io import atomic_write_with, write_json

    from .gpu_steps import median_steps, read_shape, write_steps
    from .launcher import engine_version, launch
    from .loadgen import Endpoint, poisson_schedule, run_load, synthetic_prompts
    from .served_steps import decode_step_ms, probe_served_steps
    from .tiny_models import build_tiny_model
    from .vllm_server import ENGINE_CORE_PROCESS, vllm_spec

    results = Path(results)
    if (rates is None) == (rate_fractions is None):
        raise ValidationError("measure_model: give either rates or rate_fractions (of the "
                              "probed capacity), not both or neither")
    folder = build_tiny_model(results / "models" / model, model, seed=seed)
    vocab = read_shape(folder / "config.json").vocab_size
    if probe_rounds < 1:
        raise ValidationError(f"probe_rounds must be >= 1, got {probe_rounds}")
    rounds = [steps_path(results, model, k) for k in range(probe_rounds)]
    prov = {"engine_version": engine_version(), "server_args": list(SERVER_ARGS),
            "prompt_tokens": PROMPT_WORDS + 1, "output_tokens": MAX_TOKENS,
            "repeats": repeats, "engine_cores": cpu_cores, "frontend_cores": frontend_cores,
            "steps": "served engine, its /metrics (profiling.served_steps)",
            "step_probe_rounds": probe_rounds}

    def set_rates(capacity: dict | None) -> None:
        nonlocal rates, todo
        if rate_fractions is not None and capacity is not None:
            rates = capacity_rates(capacity["capacity_rps"], rate_fractions)
            prov["capacity"] = capacity
            prov["rate_fractions"] = [float(f) for f in rate_fractions]
        if rates is not None:
            rates = tuple(float(r) for r in rates)
            todo = [(k, r) for k in range(repeats) for r in rates
                    if not point_path(results, model, r, k).is_file()]
            prov["rates_rps"] = list(rates)
            prov["num_requests"] = {f"{r:g}": point_requests(r, num_requests, min_duration_s)
                                    for r in rates}

    todo: list = []
    set_rates(read_capacity(results, model) if rate_fractions is not None else None)
    front_csv = results / model / FRONT_END_FILE
    if rates is None or todo or not all(f.is_file() for f in rounds) or (
            front_end_probe and not front_csv.is_file()):
        spec = vllm_spec(folder, cpu_cores=cpu_cores, frontend_cores=frontend_cores,
                         extra_args=SERVER_ARGS)
        engine_cores = tuple(spec.child_cpu_affinity.get(ENGINE_CORE_PROCESS, ()))
        with launch(spec, log_path=results / model / "engine.log") as eng, \
                _on_cores(spec.cpu_affinity):
            prov["engine_startup_s"] = eng.provenance().get("engine_startup_s")
            prov["engine_processes"] = eng.processes()
            # token ids in every chunk: a random model's tokens may detokenize to nothing
            ep = Endpoint(eng.base_url, spec.served_model_name, exact_length=True,
                          extra_body={"return_token_ids": True}, request_timeout_s=300.0)
            # untimed warm-up: the CPU build builds kernels for each new batch shape
            run_load(poisson_schedule(max(rates[len(rates) // 2], 1.0) if rates else 8.0,
                                      num_requests=warmup_requests, seed=10**6),
                     synthetic_prompts(warmup_requests, prompt_words=PROMPT_WORDS,
                                       max_tokens=MAX_TOKENS, seed=10**6), ep, progress=False)
            if rates is None:
                log(f"{model}: probing its capacity (closed loop)")
                capacity = probe_capacity(ep, seed=seed)
                write_json(results / model / CAPACITY_FILE, capacity)
                set_rates(capacity)
                log(f"{model}: capacity {capacity['capacity_rps']:.1f} req/s; rates "
                    f"{', '.join(f'{r:g}' for r in rates)} req/s")

            def probe_steps(k: int) -> None:
                if rounds[k].is_file():
                    return
                log(f"{model}: probing the served engine's step costs (round {k})")
                if k == 0:
                    write_json(results / model / SPEED_FILE,
                               {"speed_index_ms": speed_index_ms(engine_cores),
                                "when": "before the step probe"})
                write_steps(probe_served_steps(
                    eng.base_url, spec.served_model_name, folder / "config.json",
                    max_num_batched_tokens=SERVER_LIMITS["max_num_batched_tokens"],
                    engine=engine_version(), seed=seed + k), rounds[k])

            probe_steps(0)
            if front_end_probe and not front_csv.is_file():
                log(f"{model}: probing the front end's CPU costs")
                probe = probe_front_end(ep, eng.base_url, eng.process.pid, seed=seed)
                atomic_write_with(front_csv, lambda tmp: probe.to_csv(tmp, index=False))
            core = [p["pid"] for p in eng.processes() if p["pid"] != eng.process.pid
                    and p["name"].startswith(ENGINE_CORE_PROCESS)]
            for k, r in todo:
                if k < probe_rounds:  # before this repeat cycle's first point
                    probe_steps(k)
                s = 1000 * k + int(round(r * 10))  # fresh arrivals and prompts per point
                speed = speed_index_ms(engine_cores)
                # the served engine's own drift: one decode row of the step probe, now
                drift = decode_step_ms(eng.base_url, spec.served_model_name, vocab,
                                       batch_size=DRIFT_BATCH, prompt_len=PROMPT_WORDS + 1,
                                       seed=s)
                load0 = os.getloadavg()[0]
                steal_cores = {"engine": engine_cores, "frontend": spec.cpu_affinity}
                steal0 = {name: steal_totals(c) for name, c in steal_cores.items()}
                sched0 = sched_totals(core[0]) if core else None
                api0, gen0, t0 = sched_totals(eng.process.pid), time.process_time(), \
                    time.perf_counter()
                n = point_requests(r, num_requests, min_duration_s)
                res = run_load(poisson_schedule(r, num_requests=n, seed=s),
                               synthetic_prompts(n, prompt_words=PROMPT_WORDS,
                                                 max_tokens=MAX_TOKENS, seed=s), ep,
                               progress=False)
                wall = time.perf_counter() - t0
                share = cpu_share(sched0, sched_totals(core[0])) if core else math.nan
                # the front end's busy shares (API server, this load generator): on a
                # shared core they delay every request's first token as they near 1
                df = res.requests.assign(
                    loadavg_1m_start=load0, loadavg_1m_end=os.getloadavg()[0],
                    engine_cpu_share=share, speed_index_ms=speed, decode_step_ms=drift,
                    **{f"steal_share_{name}": steal_share(steal0[name], steal_totals(c))
                       for name, c in steal_cores.items()},
                    api_server_busy=(sched_totals(eng.process.pid)[0] - api0[0]) / wall,
                    loadgen_busy=(time.process_time() - gen0) / wall)
                path = point_path(results, model, r, k)
                atomic_write_with(path, lambda tmp, df=df: df.to_csv(tmp, index=False))
                log(f"{model} {r:g} rps repeat {k}: {int(df['ok'].sum())}/{len(df)} ok, "
                    f"mean TTFT {df['ttft_ms'].mean():.1f} ms, load average {load0:.2f}, "
                    f"engine CPU share {share:.2f}")
            for k in range(probe_rounds):  # rounds whose points were all measured before
                probe_steps(k)
    points = [read_point(point_path(results, model, r, k), model, r, k)
              for k in range(repeats) for r in rates]
    return points, median_steps(read_step_rounds(results, model)[:probe_rounds]), prov


def probe_front_end(ep, base_url: str, api_server_pid: int, *,
                    bursts: Sequence[int] = FRONT_END_BURSTS,
                    tokens: Sequence[int] = FRONT_END_TOKENS, repeats: int = 3,
                    seed: int = 0) -> pd.DataFrame:
    """The front end's CPU work per burst of concurrent streaming requests (measured).

    Bursts of ``b`` requests of the sweep's prompts with ``n`` output tokens each, all sent at
    once through the load generator's :class:`profiling.loadgen.Endpoint` ``ep``, one burst
    at a time, every (``b``, ``n``) ``repeats`` times: per burst the API server's CPU seconds
    (its threads' ``schedstat``, process ``api_server_pid``), the load generator's (this
    process's CPU time), the requests, output tokens and the engine iterations the server
    counted (``vllm:iteration_tokens_total``'s count). A burst of 1 runs one request's
    iterations, a burst of 64 serves 64 requests in about as many, and 8 against 32 tokens
    changes both tokens and iterations: the work terms of :class:`FrontEnd` separate
    (:func:`front_end_costs`). Nothing else may use the server meanwhile.
    """
    from . import server_metrics
    from .errors import ProfilingError
    from .loadgen import run_load, synthetic_prompts, trace_schedule

    rows = []
    for k in range(repeats):
        for b, n in ((b, n) for b in bursts for n in tokens):
            s = 7 * 10**6 + 10**4 * k + 100 * n + b  # prompts apart from the points'
            prompts = synthetic_prompts(b, prompt_words=PROMPT_WORDS, max_tokens=int(n),
                                        seed=s)
            before = server_metrics.scrape(base_url)
            api0, gen0, t0 = sched_totals(api_server_pid)[0], time.process_time(), \
                time.perf_counter()
            res = run_load(trace_schedule([0.0] * b), prompts, ep, progress=False)
            api1, gen1, t1 = sched_totals(api_server_pid)[0], time.process_time(), \
                time.perf_counter()
            d = server_metrics.delta(before, server_metrics.scrape(base_url), ep.model)
            ok = int(res.requests["ok"].sum())
            if ok != b or d.get("requests_ok") != b or not d.get("iterations"):
                raise ProfilingError(
                    f"front-end probe burst of {b}: {ok} requests ok, the server counted "
                    f"{d.get('requests_ok')} and {d.get('iterations')} iterations: something "
                    f"else is using the server, or it exports no vllm:iteration_tokens_total")
            rows.append({"burst": b, "output_tokens": n, "repeat": k, "requests": b,
                         "tokens": int(res.requests["completion_tokens"].sum()),
                         "iterations": int(d["iterations"]),
                         "api_server_cpu_s": api1 - api0, "loadgen_cpu_s": gen1 - gen0,
                         "wall_s": t1 - t0})
    return pd.DataFrame(rows)


def read_front_end(results: str | Path, model: str) -> pd.DataFrame | None:
    """The front-end probe of ``model`` under ``results`` (:func:`measure_model`), or None."""
    path = Path(results) / model / FRONT_END_FILE
    return pd.read_csv(path) if path.is_file() else None


DRIFT_BATCH = 4  # the decode row re-measured before every point (decode_step_ms column)
SPEED_FILE = "speed-index.json"  # speed_index_ms on the engine's cores before the step probe


def speed_index_ms(cores: Sequence[int] = (), *, repeats: int = 5) -> float:
    """The machine's speed now, on ``cores`` (measured; lower is faster): the median CPU ms of
    a fixed workload shaped like a tiny model's step (small single-threaded matrix products
    and element-wise ops in a Python loop). :func:`measure_model` records it before the step
    probe and before every point: a point whose index differs from the probe's ran on a faster
    or slower machine than the step table was measured on."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((16, 256)).astype(np.float32)
    w = (rng.standard_normal((256, 256)) / 16).astype(np.float32)

    def once() -> float:  # CPU time, not wall time: a core taken by others is not slowness
        t = time.thread_time()
        x = x0
        for _ in range(100):
            x = np.tanh(x @ w)
        return 1e3 * (time.thread_time() - t)

    with _on_cores(cores):
        return float(np.median([once() for _ in range(repeats)]))


def sched_totals(pid: int) -> tuple[float, float]:
    """Seconds process ``pid`` has run on a CPU and waited, runnable, for one, summed over its
    threads (Linux ``/proc/<pid>/task/*/schedstat``; threads that ended are not counted)."""
    run = wait = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            r, w, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:3]
            run, wait = run + int(r), wait + int(w)
    return run / 1e9, wait / 1e9


def steal_totals(cores: Sequence[int] = ()) -> tuple[int, int]:
    """Clock ticks the hypervisor gave other guests (steal) and all ticks, summed over
    ``cores`` (every core if empty), from Linux ``/proc/stat``; (0, 0) where it is missing."""
    want = {f"cpu{c}" for c in (cores or ())} or {"cpu"}
    steal = total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            f = line.split()
            if f and f[0] in want:
                ticks = [int(x) for x in f[1:9]]  # user .. steal (guest time is in user)
                steal, total = steal + ticks[7], total + sum(ticks)
    return steal, total


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the time between two :func:`steal_totals` readings that the hypervisor
    ran someone else on those cores (measured; 0 on a machine of one's own, NaN unreadable)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else math.nan


def cpu_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of its runnable time a process ran, between two :func:`sched_totals`
    readings: 1 on an idle machine, lower when other processes take its cores."""
    run, wait = after[0] - before[0], after[1] - before[1]
    if run < 0 or wait < 0:
        raise ValidationError(f"sched_totals went backwards ({before} -> {after}): the two "
                              f"readings are not of one process")
    return run / (run + wait) if run + wait > 0 else math.nan


@contextlib.contextmanager
def _on_cores(cores: Sequence[int]):
    """Run this process (the load generator) on ``cores`` for the block; nothing if empty."""
    if not cores:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def kv_capacity_tokens(arch: Architecture, kv_cache_gb: float = 1.0) -> int:
    """Tokens the CPU build's KV space (``VLLM_CPU_KVCACHE_SPACE`` GiB) holds for ``arch``."""
    return int(kv_cache_gb * 2**30 // arch.kv_bytes_per_token(2))


STRUCTURE_KEYS = ("decode_base_ms", "decode_ms_per_seq", "prefill_base_ms",
                  "prefill_ms_per_token", "request_overhead_ms")


def linear_step_times(decode_base_ms: float, decode_ms_per_seq: float, prefill_base_ms: float,
                      prefill_ms_per_token: float, *, max_tokens: int = 4096,
                      max_seqs: int = 256) -> StepTimes:
    """Step times linear in the batch (decode) and in the batched tokens (prefill), no context
    term: the fewest numbers that describe an engine's iterations (modelled)."""
    pre = prefill_base_ms + prefill_ms_per_token * np.arange(max_tokens + 1.0)
    dec = decode_base_ms + decode_ms_per_seq * np.arange(max_seqs + 1.0)
    pre[0] = dec[0] = 0.0
    return StepTimes(pre, 0.0, 0.0, dec, 0.0, label="linear step times (structure check)",
                     source="fitted")


def structure_check(setup: ModelSetup, points: Sequence[Point]) -> dict:
    """Can the kit's scheduler model reproduce *every* measured rate with *some* step costs?

    Fits :data:`STRUCTURE_KEYS` (linear step times and the request overhead) on all ``points``
    at once (in-sample, least squares on ``log(sim / meas)`` of mean TTFT and mean TPOT) and
    returns the fitted values and the per-rate errors left. Small errors at every rate say the
    scheduler model is right and only the step costs (the probe) or overheads were off; errors
    that no step costs remove point at the scheduler (or at something outside the engine, such
    as a saturated front end). A diagnostic, not a prediction: nothing is held out.
    """
    from scipy.optimize import least_squares

    rates = sorted({p.rate_rps for p in points})
    meas = {r: {k: float(np.mean([measured_stats(p.requests)[k] for p in points
                                  if p.rate_rps == r])) for k in STATS} for r in rates}

    def sim(x, r):
        step = linear_step_times(*x[:4], max_tokens=max(setup.max_num_batched_tokens, 4096),
                                 max_seqs=max(setup.max_num_seqs, 256))
        over = {"request_overhead_ms": x[4], "iteration_overhead_ms": 0.0,
                "seq_overhead_us": 0.0, "layer_overhead_us": 0.0}
        out = [simulate_point(step, p.requests, over, arch=setup.arch,
                              max_num_batched_tokens=setup.max_num_batched_tokens,
                              max_num_seqs=setup.max_num_seqs,
                              kv_capacity_tokens=setup.kv_capacity_tokens)
               for p in points if p.rate_rps == r]
        return {k: float(np.mean([o[k] for o in out])) for k in STATS}

    def resid(x):
        sims = {r: sim(x, r) for r in rates}  # one simulation per rate, both statistics
        return np.array([math.log(max(sims[r][k], 1e-6) / meas[r][k]) for r in rates
                         for k in ("ttft_mean", "tpot_mean")])

    # start from the probed table's decode and prefill lines and the lightest rate's TTFT gap
    st = setup.step
    x0 = np.array([max(st.decode_base_ms[1], 0.1), max(st.decode_base_ms[2]
                   - st.decode_base_ms[1], 0.01), max(st.prefill_by_tokens_ms[1], 0.1),
                   max(st.prefill_by_tokens_ms[2] - st.prefill_by_tokens_ms[1], 1e-3), 5.0])
    sol = least_squares(resid, x0, bounds=(np.zeros(5), np.array([500.0, 50.0, 500.0, 10.0,
                                                                 1000.0])),
                        x_scale=x0, diff_step=0.05, max_nfev=80)
    rows = []
    for r in rates:
        s = sim(sol.x, r)
        rows.append({"rate_rps": r, **{f"meas_{k}_ms": meas[r][k] for k in STATS},
                     **{f"sim_{k}_ms": s[k] for k in STATS},
                     **{f"signed_err_pct_{k}": 100.0 * (s[k] - meas[r][k]) / meas[r][k]
                        for k in STATS}})
    return {"fitted": dict(zip(STRUCTURE_KEYS, map(float, sol.x))), "levels": rows}


def front_end_check(levels: pd.DataFrame, points: Sequence[Point],
                    overheads: Mapping[str, Mapping[str, float]],
                    calibration_rates: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Mean TTFT with the front end modelled as one M/M/1 server, at each level's **measured**
    busy share: a diagnostic of what the constant request overhead misses, not a prediction.

    The kit adds a constant request overhead to every TTFT. The API server is one Python
    process; in the benchmark's layout it shares a core with the load generator, whose busy
    shares (``api_server_busy + loadgen_busy`` = ``u``, recorded per point) grow with the rate.
    A single-server queue stretches a service time ``S`` to ``S / (1 - u)``; ``S`` is the
    calibrated overhead times ``1 - u`` at the calibration rates. Returns per (model, rate)
    ``front_end_busy``, ``front_end_extra_ms`` (added to the calibrated simulation's TTFT) and
    ``signed_err_pct_ttft_mean_front_end``. Levels whose points lack the columns get NaN.
    """
    rows = []
    for p in points:
        rows.append({"model": p.model, "rate_rps": p.rate_rps,
                     "front_end_busy": point_busy(p.requests)})
    busy = pd.DataFrame(rows).groupby(["model", "rate_rps"], as_index=False).mean()
    out = levels[["model", "rate_rps", "meas_ttft_mean_ms", "sim_ttft_mean_ms"]].merge(
        busy, on=["model", "rate_rps"], how="left")
    extra = []
    for _, r in out.iterrows():
        cal = busy[(busy["model"] == r["model"])
                   & busy["rate_rps"].isin(calibration_rates[r["model"]])]["front_end_busy"]
        service = overheads[r["model"]]["request_overhead_ms"] * (1.0 - float(cal.mean()))
        u = min(float(r["front_end_busy"]), 0.99)
        extra.append(service / (1.0 - u) - overheads[r["model"]]["request_overhead_ms"])
    out["front_end_extra_ms"] = extra
    out["signed_err_pct_ttft_mean_front_end"] = 100.0 * (
        out["sim_ttft_mean_ms"] + out["front_end_extra_ms"] - out["meas_ttft_mean_ms"]) \
        / out["meas_ttft_mean_ms"]
    return out


def evaluate(points: Sequence[Point], setups: Mapping[str, ModelSetup], *,
             calibration_count: int = 2,
             front_end_probes: Mapping[str, pd.DataFrame | None] | None = None,
             measured_drift: bool = True) -> dict:
    """Calibrate each model's overheads on its ``calibration_count`` lowest rates, predict every
    rate with and without that calibration; the level tables and the benchmark's keys.

    With a front-end probe per model (:func:`probe_front_end`) and points that recorded the
    front end's busy shares, ``levels`` (and the keys) model the front end's queue
    (:class:`FrontEnd`); ``levels_constant_overhead`` keeps the constant request overhead
    alone, for comparison. With ``measured_drift`` and points that re-measured a decode row
    (``decode_step_ms``), the same again with each point's steps scaled by it
    (:meth:`ModelSetup.drift_factor`): keys ``*_measured_drift``, ``levels_measured_drift``."""
    cal_rates, fitted, default, fronts = {}, {}, {}, {}
    for model in setups:
        mine = [p for p in points if p.model == model]
        rates = sorted({p.rate_rps for p in mine})
        if len(rates) <= calibration_count:
            raise ValidationError(f"{model}: {len(rates)} rates; need more than the "
                                  f"{calibration_count} used for calibration")
        cal_rates[model] = rates[:calibration_count]
        cal_points = [p for p in mine if p.rate_rps in cal_rates[model]]
        fitted[model] = calibrate(setups[model], cal_points)
        fronts[model] = fit_front_end(setups[model], (front_end_probes or {}).get(model),
                                      cal_points, fitted[model])
        default[model] = default_overheads()
    engine_only = level_table(points, setups, fitted, "calibrated on the lowest rates")
    if all(f is not None for f in fronts.values()):
        cal = level_table(points, setups, fitted, "calibrated on the lowest rates, front end "
                          "modelled", fronts)
    else:  # points without the front end's busy shares: the constant overhead only
        cal = engine_only
    unc = level_table(points, setups, default, "vllm-v1 profile defaults (GPU fit)")
    out = summary(cal, cal_rates)
    base = summary(unc, cal_rates)
    alone = summary(engine_only, cal_rates)
    for k in (*(f"median_abs_err_pct_{s}" for s in STATS), "saturation_rate_err_pct"):
        out[f"{k}_uncalibrated"] = base[k]
        out[f"{k}_constant_overhead"] = alone[k]
    out["per_model_uncalibrated"] = base["per_model"]
    out["per_model_constant_overhead"] = alone["per_model"]
    out["calibration_rates_rps"] = cal_rates
    out["overheads"] = fitted
    out["front_end"] = {m: (None if f is None else asdict(f)) for m, f in fronts.items()}
    res = {"summary": out, "levels": cal, "levels_constant_overhead": engine_only,
           "levels_uncalibrated": unc}
    if measured_drift and all("decode_step_ms" in p.requests.columns for p in points):
        drifted = evaluate(points, {m: replace(s, measured_drift=True) for m, s in
                                    setups.items()}, calibration_count=calibration_count,
                           front_end_probes=front_end_probes, measured_drift=False)
        d = drifted["summary"]
        for k in (*(f"median_abs_err_pct_{s}" for s in STATS), "saturation_rate_err_pct"):
            out[f"{k}_measured_drift"] = d[k]
        out["per_model_measured_drift"] = d["per_model"]
        out["overheads_measured_drift"] = d["overheads"]
        res["levels_measured_drift"] = drifted["levels"]
    return res
