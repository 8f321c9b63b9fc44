"""Serving-model validation on measured online vLLM runs (held out, leave one run out).

    ROUTERWISE_DATA_MIRROR=/path/to/mirror python benchmarks/bench_latency_validation.py \
        [--json PATH] [--profile vllm-v1] [--max-nfev 40]

For every replayable measured run (routerwise.data.measured_runs; exclusions printed with their
reason) the engine profile's overheads are fitted on all OTHER runs, then the run is replayed
request by request and scored per load level: mean/p50/p90/p99 TTFT and TPOT, measured vs
simulated, signed and absolute % error; and measured vs simulated saturation rate. Prints the
table, the legacy replica's errors (the kit before engine profiles) for comparison, the fit on all runs
(the values for routerwise.serving.engine.V1_FIT) and the planning margin from the held-out signed
errors (the values for routerwise.serving.latency_validation.PLANNING_MARGINS). Targets (held-out
levels below 90% of the measured saturation rate): median |err| of mean TTFT and mean TPOT
<= 15%, p99 TTFT <= 25%, saturation rate within 10%.
"""

from __future__ import annotations

import argparse
import math
import time

import pandas as pd

from routerwise.io import write_json
from routerwise.serving import latency_validation as lv

TARGETS = {"median_abs_err_pct_ttft_mean": 15.0, "median_abs_err_pct_tpot_mean": 15.0,
           "median_abs_err_pct_ttft_p99": 25.0, "median_abs_err_pct_saturation_rate": 10.0}


def _margin_applied(levels: pd.DataFrame, margin: dict) -> dict:
    """Mean signed error with the margin, over all held-out levels and without the runs with
    prefix-cache evidence."""
    t = levels[levels["usable"] & levels["below_90pct_sat"]]
    out = {}
    for suffix, view in (("", t), ("_without_prefix_cache_runs", t[~t["prefix_cache_evidence"]])):
        for name in ("ttft", "tpot"):
            m = view[f"meas_{name}_mean_ms"]
            s = view[f"sim_{name}_mean_ms"] * margin[name]
            out[f"mean_signed_err_pct_{name}_mean_with_margin{suffix}"] = float(
                (100 * (s - m) / m).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--profile", default="vllm-v1")
    ap.add_argument("--max-nfev", type=int, default=40)
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs, skipped = lv.eligible_runs()
    print(f"replayable runs ({len(runs)}): {[r.meta.run_id for r in runs]}")
    for k, v in skipped.items():
        print(f"  not used: {k}: {v}")

    base_lv, base_sat, _ = lv.validate(runs, "legacy", split="none")
    base = lv.summary(base_lv, base_sat)
    levels, sats, cals = lv.validate(runs, args.profile, max_nfev=args.max_nfev)
    summ = lv.summary(levels, sats)
    full = lv.calibrate(runs, args.profile, max_nfev=args.max_nfev)
    margin = lv.planning_margin(levels)

    cols = ["run_id", "rate_rps", "requests", "below_90pct_sat", "meas_ttft_mean_ms",
            "sim_ttft_mean_ms", "signed_err_pct_ttft_mean", "meas_ttft_p99_ms",
            "sim_ttft_p99_ms", "signed_err_pct_ttft_p99", "meas_tpot_mean_ms",
            "sim_tpot_mean_ms", "signed_err_pct_tpot_mean"]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nheld-out levels (leave one run out; levels with >= "
              f"{lv.MIN_LEVEL_REQUESTS} requests):")
        print(levels[levels["usable"]][cols].round(2).to_string(index=False))
        print("\nsaturation rate (req/s), measured vs simulated:")
        print(sats[["run_id", "meas_saturation_rps", "sim_saturation_rps",
                    "saturation_err_pct", "saturation_rule"]].round(3).to_string(index=False))
        print("\nprefill floor check (lightest level's measured mean TTFT vs the datasheet "
              "floor if every prompt token were computed):")
        print(sats[["run_id", "lightest_meas_ttft_mean_ms", "prefill_floor_ms",
                    "prefix_cache_evidence"]].round(1).to_string(index=False))
    print("\nfits per held-out run:")
    for c in cals:
        print(f"  {c.label()}" + (f" [{'; '.join(c.notes)}]" if c.notes else ""))
    print(f"fit on all runs: {full.label()}")
    print(f"planning margin from held-out signed errors: {margin}")
    print("\nbaseline: the legacy replica (KV reserved at admission, 65,536 tokens, V0-era host "
          "terms, no request overhead), no fit:")
    for k, v in base.items():
        print(f"  {k}: {v:.2f}" if isinstance(v, float) else f"  {k}: {v}")
    print("held out (leave one run out):")
    for k, v in summ.items():
        tgt = TARGETS.get(k)
        flag = "" if tgt is None else (" (target <= {:g}: {})".format(
            tgt, "met" if math.isfinite(v) and v <= tgt else "MISSED"))
        print(f"  {k}: {v:.2f}{flag}" if isinstance(v, float) else f"  {k}: {v}")
    clean = lv.summary(levels, sats, without_prefix_cache_evidence=True)
    print("held out, without runs whose measured TTFT is below the prefill floor "
          "(prefix-cache hits the simulator does not model):")
    for k, v in clean.items():
        print(f"  {k}: {v:.2f}" if isinstance(v, float) else f"  {k}: {v}")
    with_margin = _margin_applied(levels, margin)
    for k, v in with_margin.items():
        print(f"  {k}: {v:.2f} (target >= 0)")
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.1f} s")
    if args.json:
        rows = levels.to_dict(orient="records")
        write_json(args.json, {
            **summ, **with_margin, "baseline_legacy": base,
            "without_prefix_cache_evidence": clean, "profile": args.profile,
            "split": "leave-one-run-out", "fit_all_runs": full.overheads,
            "fit_all_runs_label": full.label(), "planning_margin": margin,
            "saturation": sats.to_dict(orient="records"), "runs": rows,
            "not_used": skipped, "wall_s": wall})


if __name__ == "__main__":
    main()
