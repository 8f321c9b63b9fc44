"""Plans that hold: every default notebook panel planned, replayed, and compared (figures only).

For each panel the notebooks solve (``routerwise.paper.experiments.notebook_panels``: 3 and 4
models, G = 4 and 8, the paper's loads, SLOs 400-800 ms mean TTFT) it prints today's exact plan
(whole-mix curves, no headroom) and the consistent plan (``routerwise.planning.consistency``: headroom,
routed-mix re-profiling, replay check): score, predicted and replayed mean TTFT, replayed p99,
SLO met, |predicted - replayed| / replayed, rounds and solve time. Then the speed figures of
per-prompt routing (``benchmarks/bench_routing.py``) unless ``--no-speed``.

All latencies are simulated (discrete-event simulator on fitted step costs); the script calls
the simulator and profile grid through the package, so it reruns unchanged when they change
(re-profiled curves are cached by their inputs' hash and rebuilt when those change).

    python benchmarks/bench_plans.py [--json PATH] [--headroom 0.8] [--quick] [--no-speed]

``--fresh-seeds N`` (a mode of its own) checks what "verified" promises: every panel (and the
worked example of ``data/examples`` at ``--example-slos``, default 120 ms) is planned
consistently with the
statistical replay check (``--replays``, ``--confidence``: the package's defaults 8 and 0.95),
then each verified plan is replayed with N fresh seeds, none of them among those that
verified it, and the share of fresh replays missing the SLO is printed beside the stated
risk (1 - confidence). ``--replays 1`` shows the single-replay check it replaced.

    python benchmarks/bench_plans.py --fresh-seeds 30 [--quick] [--replays 8] [--json PATH]
                                     [--example-slos 110 120 130] [--examples-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from routerwise.io import json_safe, write_json
from routerwise.paper.experiments import check_plans, notebook_panels, panel_problem
from routerwise.planning.consistency import (
    DEFAULT_CONFIDENCE,
    DEFAULT_HEADROOM_LADDER,
    DEFAULT_REPLAYS,
    plan_consistently,
    replay_record,
)

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
    ap.add_argument("--fresh-seeds", type=int, default=0, metavar="N",
                    help="mode: verify each panel's plan, replay it with N fresh seeds, print "
                         "how often it misses the SLO")
    ap.add_argument("--replays", type=int, default=DEFAULT_REPLAYS,
                    help=f"replays behind verification (default {DEFAULT_REPLAYS})")
    ap.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                    help=f"confidence of verification (default {DEFAULT_CONFIDENCE})")
    ap.add_argument("--example-slos", type=float, nargs="+", default=[120.0], metavar="MS",
                    help="SLOs at which --fresh-seeds also plans the worked example (default "
                         "120: the reported case; its plans sit at the SLO, unlike the "
                         "panels', which headroom keeps far below it)")
    ap.add_argument("--examples-only", action="store_true",
                    help="--fresh-seeds on the worked example only, not the panels")
    args = ap.parse_args(argv)
    panels = notebook_panels()
    if args.quick:
        panels = [p for p in panels if p["load_percent"] == 60]
    if args.fresh_seeds:
        return fresh_seed_misses(panels, args)
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


# Fresh replays start here: replay_seeds(FRESH_SEED, N) never meets the verifying seeds
# (12345 + 1000 r + model index) for N, replays < 900.
FRESH_SEED = 1_000_000


def _example_at(slo_ms: float):
    from routerwise.planning.problem_file import read_problem_file
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inputs = read_problem_file(os.path.join(repo, "data", "examples", "problem.toml"))
    return inputs.problem.with_slo(slo_ms), inputs.scores, inputs.architectures, None


def _panel(spec):
    from routerwise.paper.instances import default_p99_profiles, predicted_scores
    prob = panel_problem(**spec)
    qm, _ = predicted_scores(prob.model_names)
    return prob, qm, None, default_p99_profiles(prob)


def fresh_seed_misses(panels, args) -> dict:
    """Verify, then replay each verified plan with fresh seeds: the miss rate vs the risk."""
    headroom = DEFAULT_HEADROOM_LADDER if args.headroom is None else args.headroom
    cases = [(f"example@{t:g}ms", lambda t=t: _example_at(t)) for t in args.example_slos]
    cases += [] if args.examples_only else [
        (f"{s['models']}m G{s['gpus']} {s['load_percent']}% {s['slo_ms']:.0f}ms",
         lambda s=s: _panel(s)) for s in panels]
    risk = 1 - args.confidence
    print(f"verification: {args.replays} replay(s), confidence {args.confidence:g} (stated risk "
          f"{100 * risk:g}% of fresh replays); then {args.fresh_seeds} fresh seeds per verified "
          f"plan (simulated)", flush=True)
    rows, t0 = [], time.perf_counter()
    for name, make in cases:
        prob, qm, archs, p99 = make()
        tau = prob.slo.latency_ms
        cp = plan_consistently(prob, qm, headroom=headroom, p99_profiles=p99, archs=archs,
                               workers=args.workers, replays=args.replays,
                               confidence=args.confidence)
        row = {"case": name, "slo_ms": tau, "verified": cp.verified,
               "score": cp.solution.score if cp.solution.feasible else np.nan,
               "planning_slo_ms": cp.planning_slo_ms, "rounds": len(cp.rounds)}
        if cp.verified:
            fresh = replay_record(cp.problem.with_slo(tau), cp.solution, qm, archs=archs,
                                  seed=FRESH_SEED, replays=args.fresh_seeds,
                                  confidence=args.confidence)
            v = np.array(fresh["replayed_ms_per_replay"])
            row.update(verify_mean_ms=cp.replay["replayed_ms"],
                       verify_upper_ms=cp.replay.get("replayed_upper_ms"),
                       fresh_mean_ms=float(v.mean()), fresh_max_ms=float(v.max()),
                       fresh_misses=int((v > tau).sum()),
                       fresh_saturated=any(r["saturated"] for r in fresh["per_model"]))
        rows.append(row)
        upper = row.get("verify_upper_ms")
        print(f"{name:24s} SLO {tau:5.0f} | plan to {row['planning_slo_ms']:6.1f} score "
              f"{row['score']:.4f} rounds {row['rounds']:2d} "
              + (f"verified: mean {row['verify_mean_ms']:6.1f} bound "
                 f"{upper if upper is not None else np.nan:6.1f} | fresh mean "
                 f"{row['fresh_mean_ms']:6.1f} max {row['fresh_max_ms']:6.1f} misses "
                 f"{row['fresh_misses']}/{args.fresh_seeds}"
                 + (" (saturated)" if row["fresh_saturated"] else "")
                 if cp.verified else "NOT verified"), flush=True)
    df = pd.DataFrame(rows)
    ver = df[df["verified"]]
    misses = int(ver["fresh_misses"].sum()) if len(ver) else 0
    total = len(ver) * args.fresh_seeds
    out = {"replays": args.replays, "confidence": args.confidence, "risk": risk,
           "fresh_seeds": args.fresh_seeds, "cases": json_safe(df.to_dict("records")),
           "verified": len(ver), "num_cases": len(df), "fresh_misses": misses,
           "fresh_replays": total, "miss_rate": misses / total if total else None,
           "worst_plan_miss_rate": (float(ver["fresh_misses"].max()) / args.fresh_seeds
                                    if len(ver) else None),
           "total_s": time.perf_counter() - t0,
           "kind": "latencies simulated; scores predicted (fitted or synthetic example)"}
    print(f"\nverified {len(ver)}/{len(df)}; fresh replays missing the SLO: {misses}/{total}"
          + (f" = {100 * misses / total:.1f}%" if total else "")
          + f" (stated risk {100 * risk:g}%); worst plan "
          + (f"{100 * out['worst_plan_miss_rate']:.1f}%" if len(ver) else "-")
          + f"; {out['total_s']:.0f} s")
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
