"""Plans that hold: every default notebook panel planned, replayed, and compared (figures only).

For each panel the notebooks solve (``routerwise.paper.experiments.notebook_panels``: 3 and 4
models, G = 4 and 8, the paper's loads, SLOs 400-800 ms mean TTFT) it prints today's exact plan
(whole-mix curves, no headroom) and the consistent plan (``routerwise.consistency``: headroom,
routed-mix re-profiling, replay check): score, predicted and replayed mean TTFT, replayed p99,
SLO met, |predicted - replayed| / replayed, rounds and solve time. Then the speed figures of
per-prompt routing (``benchmarks/bench_routing.py``) unless ``--no-speed``.

All latencies are simulated (discrete-event simulator on fitted step costs); the script calls
the simulator and profile grid through the package, so it reruns unchanged when they change
(re-profiled curves are cached by their inputs' hash and rebuilt when those change).

    python benchmarks/bench_plans.py [--json PATH] [--headroom 0.8] [--quick] [--no-speed]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from routerwise.paper.experiments import check_plans, notebook_panels, panel_problem
from routerwise.io import write_json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--headroom", type=float, nargs="+", default=None,
                    help="load cap(s) as a fraction of each curve's range, most headroom first "
                         "(default: the package's ladder 0.8 0.85 0.9 0.95)")
    ap.add_argument("--quick", action="store_true", help="the four 60%%/600 ms panels only")
    ap.add_argument("--no-speed", action="store_true", help="skip the routing speed figures")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    panels = notebook_panels()
    if args.quick:
        panels = [p for p in panels if p["load_percent"] == 60]
    rows = []
    t0 = time.perf_counter()
    for spec in panels:
        prob = panel_problem(**spec)
        row = {**spec, **check_plans(prob, headroom=args.headroom, workers=args.workers)}
        rows.append(row)
        print(f"{prob.name:22s} {spec['load_percent']:3d}% {spec['slo_ms']:5.0f} ms | today "
              f"score {row.get('today_score', np.nan):.4f} pred {row.get('today_predicted_ms', np.nan):6.0f}"
              f" replay {row.get('today_replayed_mean_ms', np.nan):7.0f} | plan score "
              f"{row['score']:.4f} pred {row['predicted_ms']:6.1f} replay mean "
              f"{row['replayed_mean_ms']:6.1f} p99 {row['replayed_p99_ms']:7.1f} gap "
              f"{row['rel_gap_pct']:+6.1f}% SLO {'met' if row['slo_met'] else 'MISSED'} "
              f"{'verified' if row['verified'] else 'unverified'} rounds {row['rounds']} "
              f"headroom {row['headroom']:.2f} "
              f"{row['solve_time_s']:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    out = {"panels": df.replace({np.nan: None}).to_dict("records"),
           "max_rel_gap_pct": float(df["rel_gap_pct"].abs().max()),
           "panels_meeting_slo": int(df["slo_met"].sum()),
           "panels_verified": int(df["verified"].sum()), "num_panels": len(df),
           "today_panels_meeting_slo": int(df.get("today_slo_met", pd.Series(dtype=bool)).sum()),
           "today_max_rel_gap_pct": float(df["today_rel_gap_pct"].abs().max()),
           "score_cost_pct_median": float(df["score_cost_pct"].median()),
           "score_cost_pct_max": float(df["score_cost_pct"].max()),
           "headroom_used": df["headroom"].tolist(), "total_s": time.perf_counter() - t0,
           "kind": "latencies simulated; scores predicted (fitted)"}
    print(f"\nmax |gap| {out['max_rel_gap_pct']:.1f}% (today {out['today_max_rel_gap_pct']:.0f}%); "
          f"SLO met on {out['panels_meeting_slo']}/{len(df)} panels (today "
          f"{out['today_panels_meeting_slo']}); verified {out['panels_verified']}/{len(df)}; "
          f"score cost vs today median {out['score_cost_pct_median']:.2f}% max "
          f"{out['score_cost_pct_max']:.2f}%; {out['total_s']:.0f} s")
    if not args.no_speed:
        import bench_routing
        print("\nper-prompt routing speed (10,000 prompts, continuous scores):")
        out["speed"] = bench_routing.main([])
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
