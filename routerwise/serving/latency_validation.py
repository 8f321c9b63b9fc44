"""Calibrate the engine profiles' overheads on measured online runs; validate on held-out runs.

Replay
------
Every measured run (:mod:`routerwise.data.measured_runs`) is replayed request by request: each
replay group is simulated by :func:`routerwise.serving.engine.simulate_engine` with its own measured
arrival times and token counts (no warm-up is dropped: the measured statistics cover every
request too), on the run's engine settings (``max_num_seqs``, ``max_num_batched_tokens``,
``gpu_memory_utilization``, vLLM's defaults where the run did not set them) and the fitted step
costs of its (architecture, GPU, tp) (:func:`routerwise.serving.stepcost.replica_step_times`: no run
here has static step measurements of its own, so every run's step costs are the fitted model's
and each row names that substitution). KV capacity comes from the memory model. The
per-request overhead is added only to runs timed at the client.

Errors
------
Per run and load level (segment): mean, p50, p90, p99 of TTFT and TPOT, measured and
simulated; signed error ``100 (sim - meas) / meas`` and its absolute value.

Saturation rate (the same rule on measured and simulated latencies):

* a run with a throughput burst (GuideLLM's "throughput" phase: a segment offered more than
  :data:`BURST_RATE_FACTOR` x the run's median segment rate) saturates at the burst's
  completion rate ``(requests - 1) / (last finish - first arrival)``;
* otherwise at the rate where mean TTFT crosses :data:`KNEE_TTFT_FACTOR` x the lightest load's
  mean TTFT, interpolated linearly in rate and log TTFT between the neighbouring levels (NaN
  when it never crosses: not reached within the measured rates).

Targets concern levels below 90% of the MEASURED saturation rate (``below_90pct_sat``).

Calibration
-----------
:func:`calibrate` fits the engine profile's overheads (``request_overhead_ms``,
``iteration_overhead_ms``, ``seq_overhead_us``, ``layer_overhead_us``) to a named split of runs by robust least
squares (``scipy.optimize.least_squares``, soft-L1 loss, f_scale 0.1) on ``log(sim / meas)`` of
mean TTFT and mean TPOT per level below 90% of saturation, every run weighted equally.
:func:`validate` scores runs held out of the fit: leave-one-run-out by default.

Planning margin
---------------
:func:`planning_margin` turns held-out signed errors into multiplicative factors on simulated
latency (per statistic family: TTFT, TPOT) so that the margin-corrected signed error is not
negative on average: ``margin = max(1, 1 / (1 + mean signed error / 100))`` over the held-out
levels below 90% of saturation, i.e. the factor that lifts the mean under-prediction to zero.
The values used by :mod:`routerwise.serving.curve_grid` are :data:`PLANNING_MARGINS` (fitted by
``benchmarks/bench_latency_validation.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from ..data import measured_runs as mr
from ..errors import DataError, ValidationError
from ..parallel import map_tasks
from . import architectures
from .architectures import Architecture
from .engine import get_profile, profile_step_params, setup_for, simulate_engine
from .hardware import GPUS
from .simulator import Requests
from .stepcost import StepCostParams, fit, replica_step_times

__all__ = ["OVERHEAD_KEYS", "BURST_RATE_FACTOR", "KNEE_TTFT_FACTOR", "PLANNING_MARGINS",
           "eligible_runs", "step_times_for", "prefill_floor_ms", "replay", "level_table", "saturation_rate",
           "run_table", "Calibration", "calibrate", "validate", "summary", "planning_margin",
           "apply_planning_margin", "margin_label", "UnknownArchitecture", "architecture_of"]

OVERHEAD_KEYS = ("request_overhead_ms", "iteration_overhead_ms", "seq_overhead_us",
                 "layer_overhead_us")
_X0 = np.array([10.0, 1.0, 20.0, 20.0])
_UPPER = np.array([200.0, 50.0, 2000.0, 500.0])
BURST_RATE_FACTOR = 10.0
KNEE_TTFT_FACTOR = 3.0
MIN_LEVEL_REQUESTS = 10
STATS = ("mean", "p50", "p90", "p99")

# Fitted by benchmarks/bench_latency_validation.py from the leave-one-run-out signed errors
# (see planning_margin); 1.0 = no correction. Per engine profile and statistic family.
PLANNING_MARGINS: dict[str, dict[str, float]] = {
    "vllm-v1": {"ttft": 1.0, "tpot": 1.0896},
}
PLANNING_MARGIN_SOURCE = ("leave-one-run-out on llm-d-benchmark exp-0 and four inference-sim "
                          "sweeps: held-out mean TTFT is over-predicted on average (no "
                          "correction), mean TPOT under-predicted (corrected); "
                          "benchmarks/bench_latency_validation.py prints the errors")


class UnknownArchitecture(ValidationError):
    """A run's model has no entry in :mod:`routerwise.serving.architectures`."""


def architecture_of(meta: mr.RunMeta) -> Architecture:
    """The registry architecture of a run's model, or :class:`UnknownArchitecture`.

    Models listed in :data:`routerwise.data.measured_runs.ARCH_SUBSTITUTES` use the registry entry with the same layer
    shapes (Llama-3.1-70B and Llama-3.3-70B share layers, widths, heads and vocabulary; the
    base Llama-3.1-8B and its instruct model share every shape).
    """
    name = meta.hf_architecture or mr.ARCH_SUBSTITUTES.get(meta.model, meta.model)
    try:
        return architectures.get(name)
    except ValidationError as e:
        raise UnknownArchitecture(f"run {meta.run_id!r}: model {meta.model!r} has no "
                                  f"architecture entry ({e})") from None



def eligible_runs() -> tuple[list[mr.MeasuredRun], dict[str, str]]:
    """Runs the validation can replay, and {run: reason} for the rest."""
    runs, skipped = mr.load_all()
    keep = []
    for r in runs:
        if r.meta.gpu not in GPUS:
            skipped[r.meta.run_id] = (f"excluded: GPU {r.meta.gpu!r} has no fitted step costs "
                                      f"(the step-cost model is fitted on A100/H100 only; "
                                      f"consumer Ada/Blackwell cards would borrow another "
                                      f"family's efficiencies) and the run is overloaded "
                                      f"(Poisson ~10 req/s, one rate)")
            continue
        try:
            architecture_of(r.meta)
        except UnknownArchitecture as e:
            skipped[r.meta.run_id] = f"excluded: {e}"
            continue
        keep.append(r)
    return keep, skipped


@lru_cache(maxsize=32)
def _steps(arch_name: str, gpu: str, tp: int, table_tokens: int, params_json: str | None,
           profile: str):
    import json
    params = fit() if params_json is None else StepCostParams.from_json(json.loads(params_json))
    return replica_step_times(arch_name, gpu, tp, 1.0,
                              params=profile_step_params(params, profile),
                              max_batched_tokens=table_tokens, max_seqs=256)


def step_times_for(run: mr.MeasuredRun, params: StepCostParams | None = None,
                   profile: str = "vllm-v1"):
    """Fitted step times of a run's (architecture, GPU, tp), and the substitution it makes."""
    import json
    arch = architecture_of(run.meta)
    longest = int((run.requests["prompt_tokens"] + run.requests["output_tokens"]).max())
    table = max(8192, longest, run.meta.max_num_batched_tokens or 0)
    pj = None if params is None else json.dumps(params.to_json(), sort_keys=True)
    step = _steps(arch.name, run.meta.gpu, int(run.meta.tp), table, pj, profile)
    sub = (f"step costs: fitted model (no static measurement of this run's setup) for "
           f"{arch.name} on {run.meta.tp} x {run.meta.gpu}")
    if arch.name != run.meta.model.split("/")[-1]:
        sub += f" (model {run.meta.model} -> architecture {arch.name})"
    if run.meta.gpu_note:
        sub += f"; {run.meta.gpu_note}"
    return step, sub


LEGACY_KV_TOKENS = 65536  # the legacy replica's constant KV capacity


def _setup(run: mr.MeasuredRun, step, profile: str, overheads: dict | None):
    m = run.meta
    legacy = profile == "legacy"
    # the legacy replica prefills up to the step table's budget whatever the run's was
    return setup_for(profile, step, arch=architecture_of(m), gpu=m.gpu, tp=int(m.tp),
                     kv_capacity_tokens=LEGACY_KV_TOKENS if legacy else None,
                     max_num_seqs=m.max_num_seqs,
                     max_num_batched_tokens=None if legacy else m.max_num_batched_tokens,
                     gpu_memory_utilization=m.gpu_memory_utilization or 0.9,
                     **(overheads or {}))


def replay(run: mr.MeasuredRun, profile: str = "vllm-v1", overheads: dict | None = None,
           params: StepCostParams | None = None) -> pd.DataFrame:
    """The run's requests with simulated ``sim_ttft_ms``, ``sim_e2e_ms``, ``sim_tpot_ms``."""
    step, _ = step_times_for(run, params, profile)
    setup = _setup(run, step, profile, overheads)
    df = run.requests.copy()
    for c in ("sim_ttft_ms", "sim_e2e_ms", "sim_tpot_ms"):
        df[c] = np.nan
    for _, g in df.groupby("replay"):
        req = Requests(g["arrival_s"].to_numpy(float), g["prompt_tokens"].to_numpy(),
                       g["output_tokens"].to_numpy())
        res = simulate_engine(step, req, setup, warmup_fraction=0.0,
                              add_request_overhead=run.meta.timing == "client")
        df.loc[g.index, "sim_ttft_ms"] = res.ttft_ms
        df.loc[g.index, "sim_e2e_ms"] = res.e2e_ms
    multi = df["output_tokens"] > 1
    df["sim_tpot_ms"] = np.where(multi, (df["sim_e2e_ms"] - df["sim_ttft_ms"])
                                 / (df["output_tokens"] - 1).clip(lower=1), np.nan)
    return df


def _stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if not v.size:
        return {s: np.nan for s in STATS}
    q = np.percentile(v, [50, 90, 99])
    return {"mean": float(v.mean()), "p50": q[0], "p90": q[1], "p99": q[2]}


def level_table(run: mr.MeasuredRun, df: pd.DataFrame) -> pd.DataFrame:
    """Per segment: measured and simulated statistics, errors, completion throughput."""
    rows = []
    for seg, g in df.groupby("segment"):
        row = {"run_id": run.meta.run_id, "segment": int(seg),
               "rate_rps": float(g["rate_rps"].iloc[0]), "requests": len(g)}
        a0 = g["arrival_s"].min()
        for who, pre in (("meas", ""), ("sim", "sim_")):
            end = (g["arrival_s"] + g[f"{pre}e2e_ms"] / 1e3).max()
            row[f"{who}_completion_rps"] = (len(g) - 1) / (end - a0) if end > a0 else np.nan
            for name in ("ttft", "tpot"):
                for s, v in _stats(g[f"{pre}{name}_ms"].to_numpy(float)).items():
                    row[f"{who}_{name}_{s}_ms"] = v
        for name in ("ttft", "tpot"):
            for s in STATS:
                m, p = row[f"meas_{name}_{s}_ms"], row[f"sim_{name}_{s}_ms"]
                row[f"signed_err_pct_{name}_{s}"] = 100.0 * (p - m) / m if m > 0 else np.nan
                row[f"abs_err_pct_{name}_{s}"] = abs(row[f"signed_err_pct_{name}_{s}"])
        rows.append(row)
    return pd.DataFrame(rows)


def saturation_rate(levels: pd.DataFrame, who: str) -> tuple[float, str]:
    """Saturation rate of a run from its level table (``who`` = "meas" or "sim"); see the
    module docstring for the rule. Returns (rate, rule)."""
    lv = levels[levels["requests"] >= MIN_LEVEL_REQUESTS].sort_values("rate_rps")
    lv = lv[np.isfinite(lv["rate_rps"])]
    if lv.empty:
        return math.nan, "no level"
    med = float(lv["rate_rps"].median())
    burst = lv[lv["rate_rps"] > BURST_RATE_FACTOR * med]
    if len(burst):
        b = burst.iloc[0]
        return float(b[f"{who}_completion_rps"]), "throughput burst completion rate"
    ttft = lv[f"{who}_ttft_mean_ms"].to_numpy(float)
    rate = lv["rate_rps"].to_numpy(float)
    if len(lv) < 3:
        return math.nan, "fewer than 3 levels"
    thr = KNEE_TTFT_FACTOR * ttft[0]
    for k in range(1, len(ttft)):
        if ttft[k] >= thr:
            lo, hi = math.log(ttft[k - 1]), math.log(ttft[k])
            f = (math.log(thr) - lo) / (hi - lo) if hi > lo else 1.0
            return float(rate[k - 1] + f * (rate[k] - rate[k - 1])), \
                f"mean TTFT crosses {KNEE_TTFT_FACTOR:g}x its lightest-load value"
    return math.nan, "knee not reached within the measured rates"


def prefill_floor_ms(run: mr.MeasuredRun, budget: int | None = None) -> float:
    """A physical lower bound (ms, modelled from datasheet peaks) on the mean TTFT of the
    run's lightest level if every prompt token is computed: the larger of (a) the passes a
    prompt of mean length needs at the token budget, each reading the weights once at the
    GPU's peak HBM bandwidth, and (b) its FLOPs (2 x active parameters per token) at peak
    bf16 throughput. A measured mean TTFT below it means prompt tokens were NOT all computed
    (prefix-cache hits: the engines here ran with prefix caching on), which the simulator does
    not model."""
    from .hardware import gpu_spec

    arch = architecture_of(run.meta)
    spec = gpu_spec(run.meta.gpu)
    tp = int(run.meta.tp)
    lv = run.rates()
    lv = lv[lv["requests"] >= MIN_LEVEL_REQUESTS].sort_values("rate_rps")
    seg = int(lv["segment"].iloc[0])
    p_mean = float(run.requests.loc[run.requests["segment"] == seg, "prompt_tokens"].mean())
    b = budget or run.meta.max_num_batched_tokens or 8192
    passes = math.ceil(p_mean / b)
    weights_ms = arch.weight_bytes(2) / tp / (spec.hbm_gbs * 1e6)
    flops_ms = 2.0 * arch.active_params() * p_mean / tp / (spec.peak_bf16_tflops * 1e9)
    return max(passes * weights_ms, flops_ms)


def run_table(run: mr.MeasuredRun, profile: str = "vllm-v1", overheads: dict | None = None,
              params: StepCostParams | None = None) -> tuple[pd.DataFrame, dict]:
    """Level table of one run plus its saturation summary."""
    df = replay(run, profile, overheads, params)
    lv = level_table(run, df)
    sat_m, rule = saturation_rate(lv, "meas")
    sat_s, _ = saturation_rate(lv, "sim")
    lv["meas_saturation_rps"] = sat_m
    lv["sim_saturation_rps"] = sat_s
    lv["below_90pct_sat"] = (lv["rate_rps"] < 0.9 * sat_m) if math.isfinite(sat_m) else False
    lv["usable"] = lv["requests"] >= MIN_LEVEL_REQUESTS
    _, sub = step_times_for(run, params)
    lv["step_costs"] = sub
    lv["profile"] = profile
    floor = prefill_floor_ms(run)
    light = lv[lv["usable"]].sort_values("rate_rps").iloc[0]
    lv["prefix_cache_evidence"] = bool(light["meas_ttft_mean_ms"] < floor)
    info = {"run_id": run.meta.run_id, "meas_saturation_rps": sat_m,
            "prefill_floor_ms": floor, "lightest_meas_ttft_mean_ms":
                float(light["meas_ttft_mean_ms"]),
            "prefix_cache_evidence": bool(light["meas_ttft_mean_ms"] < floor),
            "sim_saturation_rps": sat_s, "saturation_rule": rule,
            "saturation_err_pct": 100.0 * (sat_s - sat_m) / sat_m
            if math.isfinite(sat_m) and math.isfinite(sat_s) else math.nan}
    return lv, info


@dataclass(frozen=True)
class Calibration:
    profile: str
    fit_runs: tuple[str, ...]
    overheads: dict
    cost: float
    source: str = "fitted"
    levels_used: int = 0
    notes: tuple[str, ...] = field(default=())

    def label(self) -> str:
        o = self.overheads
        return (f"{self.profile} overheads fitted on {list(self.fit_runs)} "
                f"({self.levels_used} levels): request {o['request_overhead_ms']:.3g} ms, "
                f"iteration {o['iteration_overhead_ms']:.3g} ms + "
                f"{o['layer_overhead_us']:.3g} us/layer, {o['seq_overhead_us']:.3g} us/seq")


def calibrate(runs: list[mr.MeasuredRun], profile: str = "vllm-v1",
              params: StepCostParams | None = None, *, max_nfev: int = 60) -> Calibration:
    """Fit the profile's overheads to ``runs`` (see the module docstring)."""
    from scipy.optimize import least_squares

    get_profile(profile)
    if not runs:
        raise ValidationError("calibrate needs at least one run")
    client_timed = any(r.meta.timing == "client" for r in runs)
    # a request overhead is only seen by client-timed runs: without one it is not identified
    free = [0, 1, 2, 3] if client_timed else [1, 2, 3]
    # levels used by the fit: below 90% of measured saturation, enough requests
    base = {r.meta.run_id: run_table(r, profile, dict(zip(OVERHEAD_KEYS, _X0)), params)
            for r in runs}
    sel = {}
    for rid, (lv, _) in base.items():
        ok = lv["usable"] & lv["below_90pct_sat"]
        sel[rid] = lv.loc[ok, "segment"].tolist()
    used = sum(len(v) for v in sel.values())
    if used == 0:
        raise DataError(f"no level below 90% of the measured saturation rate in "
                        f"{[r.meta.run_id for r in runs]}: nothing to calibrate on")

    def unpack(x):
        full = _X0.copy()
        full[free] = x
        if not client_timed:
            full[0] = _X0[0]
        return dict(zip(OVERHEAD_KEYS, map(float, full)))

    def resid(x):
        o = unpack(x)
        out = []
        for r in runs:
            segs = sel[r.meta.run_id]
            if not segs:
                continue
            df = replay(r, profile, o, params)
            lv = level_table(r, df).set_index("segment").loc[segs]
            w = 1.0 / math.sqrt(len(segs))
            for name in ("ttft", "tpot"):
                m = lv[f"meas_{name}_mean_ms"].to_numpy(float)
                s = lv[f"sim_{name}_mean_ms"].to_numpy(float)
                out.append(w * np.log(np.maximum(s, 1e-6) / m))
        return np.concatenate(out)

    x0 = _X0[free]
    sol = least_squares(resid, x0, bounds=(np.zeros(len(free)), _UPPER[free]),
                        loss="cauchy", f_scale=0.1, x_scale=x0, diff_step=0.05,
                        max_nfev=max_nfev)
    notes = () if client_timed else (
        f"request_overhead_ms not identified (no client-timed run in the fit): kept at "
        f"{_X0[0]:g} ms (modelled prior)",)
    return Calibration(profile, tuple(r.meta.run_id for r in runs), unpack(sol.x),
                       float(sol.cost), levels_used=used, notes=notes)


def validate(runs: list[mr.MeasuredRun] | None = None, profile: str = "vllm-v1",
             params: StepCostParams | None = None, *, split: str = "leave-one-run-out",
             max_nfev: int = 60, executor=None, workers: int = 1,
             checkpoint=None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, list[Calibration]]:
    """Held-out level rows, per-run saturation rows and the calibrations.

    ``split``: ``"leave-one-run-out"`` (each run scored by a fit on all the others) or
    ``"none"`` (the profile's own overheads, no fitting; with ``profile="legacy"`` this is
    the kit's original replica: the baseline before engine profiles).

    Each held-out run (its fit on the others, then its replay) is one task of
    :func:`routerwise.parallel.map_tasks`: on ``executor`` (any
    :class:`concurrent.futures.Executor`, owned by the caller), else on ``workers`` local
    processes; rows come in run order whatever runs them. ``checkpoint`` (a folder) keeps each
    finished run so that a failed sweep (:class:`~routerwise.errors.SweepFailed`) resumes.
    ``progress``: a bar over the runs (``ROUTERWISE_PROGRESS`` picks its kind).
    """
    if runs is None:
        runs, _ = eligible_runs()
    if split not in ("leave-one-run-out", "none"):
        raise ValidationError(f"unknown split {split!r}; use 'leave-one-run-out' or 'none'")
    runs = list(runs)
    tasks = [(k, runs, profile, params, split, max_nfev) for k in range(len(runs))]
    out = map_tasks(_validate_run, tasks, executor=executor, workers=workers,
                    checkpoint=checkpoint, salt=f"latency-validation {profile} {split}",
                    progress=progress, desc="held-out runs")
    levels, sats, cals = [], [], []
    for lv, info, cal in out:
        levels.append(lv)
        sats.append(info)
        if cal is not None:
            cals.append(cal)
    return pd.concat(levels, ignore_index=True), pd.DataFrame(sats), cals


def _validate_run(task):
    """One held-out run of :func:`validate`: (level rows, saturation row, calibration)."""
    k, runs, profile, params, split, max_nfev = task
    r = runs[k]
    cal = None
    if split == "none":
        o, label = None, f"{profile} profile defaults (no fit)"
    else:
        cal = calibrate(runs[:k] + runs[k + 1:], profile, params, max_nfev=max_nfev)
        o, label = cal.overheads, cal.label()
    lv, info = run_table(r, profile, o, params)
    lv["calibration"] = label
    return lv, {**info, "calibration": label}, cal


def summary(levels: pd.DataFrame, sats: pd.DataFrame, *,
            without_prefix_cache_evidence: bool = False) -> dict:
    """The benchmark's JSON keys (medians over held-out levels below 90% of saturation);
    ``without_prefix_cache_evidence`` drops runs flagged by :func:`prefill_floor_ms`."""
    if without_prefix_cache_evidence:
        levels = levels[~levels["prefix_cache_evidence"]]
        sats = sats[~sats["prefix_cache_evidence"]]
    t = levels[levels["usable"] & levels["below_90pct_sat"]]

    def med(col):
        v = t[col].to_numpy(float)
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else math.nan

    s = sats["saturation_err_pct"].to_numpy(float)
    s = np.abs(s[np.isfinite(s)])
    return {
        "median_abs_err_pct_ttft_mean": med("abs_err_pct_ttft_mean"),
        "median_abs_err_pct_tpot_mean": med("abs_err_pct_tpot_mean"),
        "median_abs_err_pct_ttft_p99": med("abs_err_pct_ttft_p99"),
        "median_abs_err_pct_saturation_rate": float(np.median(s)) if s.size else math.nan,
        "median_signed_err_pct_ttft_mean": med("signed_err_pct_ttft_mean"),
        "median_signed_err_pct_tpot_mean": med("signed_err_pct_tpot_mean"),
        "levels_scored": int(len(t)),
        "runs_scored": int(t["run_id"].nunique()),
    }


def planning_margin(levels: pd.DataFrame) -> dict[str, float]:
    """Multiplicative margins {"ttft": f, "tpot": g} (>= 1) from held-out signed errors.

    The factor that lifts the mean signed error of the held-out levels (below 90% of
    saturation) to zero, taken as the larger of two views when the levels carry
    ``prefix_cache_evidence``: all runs, and the runs without that evidence (a run the
    simulator over-predicts for a reason it does not model must not hide under-prediction
    elsewhere)."""
    t = levels[levels["usable"] & levels["below_90pct_sat"]]
    views = [t]
    if "prefix_cache_evidence" in t.columns:
        views.append(t[~t["prefix_cache_evidence"].astype(bool)])
    out = {}
    for name in ("ttft", "tpot"):
        factor = 1.0
        for view in views:
            v = view[f"signed_err_pct_{name}_mean"].to_numpy(float)
            v = v[np.isfinite(v)]
            if v.size:
                factor = max(factor, 1.0 / (1.0 + v.mean() / 100.0))
        # rounded UP to 4 decimals so the corrected mean error is >= 0, not -1e-16
        out[name] = math.ceil(factor * 1e4) / 1e4
    return out


def margin_label(profile: str) -> str:
    m = PLANNING_MARGINS.get(profile)
    if m is None:
        return f"planning margin: none for engine profile {profile!r} (not calibrated)"
    return (f"planning margin (fitted on held-out measured runs, {PLANNING_MARGIN_SOURCE}): "
            f"TTFT x{m['ttft']:.3f}, TPOT/E2E x{m['tpot']:.3f} for {profile}")


def apply_planning_margin(df: pd.DataFrame, profile: str, margins: dict[str, float] | None = None,
                          label: str | None = None) -> pd.DataFrame:
    """Multiply a profile table's latency columns by the profile's planning margin (TTFT
    columns by the TTFT factor, TPOT and E2E columns by the TPOT factor) and say so in the
    provenance. Profiles without a calibrated margin pass through, named in the provenance.
    ``margins`` / ``label``: another margin (e.g. a deployment calibration's held-out one)."""
    m = PLANNING_MARGINS.get(profile) if margins is None else margins
    df = df.copy()
    if m is not None:
        for c in df.columns:
            if c.endswith("_ms") and c.startswith("ttft_"):
                df[c] = df[c] * m["ttft"]
            elif c.endswith("_ms") and (c.startswith("tpot_") or c.startswith("e2e_")):
                df[c] = df[c] * m["tpot"]
    if "provenance" in df.columns:
        df["provenance"] = df["provenance"] + "; " + (label or margin_label(profile))
    return df
