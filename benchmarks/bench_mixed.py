"""Mixed GPU types: the default ladder on clusters of two GPU types, exact search vs MILP.

For each cluster it prints the setup-space stage counts, then the exact search's and the
MILP's status, score, proven bound, setup (each model's tp, compute share and GPU type) and
solve time, and the score of each pool alone (a homogeneous cluster of that type) for
comparison. Scores are predicted (RouteProfile, fitted predictor); latency curves are
simulated per GPU type on fitted step costs (``routerwise.paper.instances.mixed_problem``);
the first run builds each type's grid (minutes, cached).

    python benchmarks/bench_mixed.py [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import time

import routerwise as rw
from routerwise.io import write_json
from routerwise.optimize.setup_space import enumerate_setups
from routerwise.paper.instances import mixed_problem
from routerwise.problem import Cluster

CLUSTERS = ({"A100-80GB": 2, "H100-80GB": 2}, {"A100-80GB": 4, "H100-80GB": 4},
            {"A100-80GB": 2, "H200-141GB": 2})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--quick", action="store_true", help="the first cluster only")
    ap.add_argument("--num-models", type=int, default=3)
    ap.add_argument("--slo-ms", type=float, default=600.0)
    args = ap.parse_args(argv)
    rows = []
    for gpus in CLUSTERS[:1] if args.quick else CLUSTERS:
        p = mixed_problem(args.num_models, gpus, None, args.slo_ms)
        t0 = time.perf_counter()
        counts = enumerate_setups(p).stage_counts
        row = {"cluster": p.cluster.describe(), "arrival_rate_rps": p.arrival_rate_rps,
               "slo_ms": args.slo_ms, "stage_counts": counts,
               "enumerate_s": time.perf_counter() - t0}
        print(f"{p.name}: {p.arrival_rate_rps:.2f} req/s (50% of capacity), SLO "
              f"{args.slo_ms:g} ms; setups {counts}", flush=True)
        for method in ("exact", "milp"):
            sol = rw.solve(p, method)
            row[method] = {"status": sol.status, "score": sol.score, "bound": sol.bound,
                           "setup": sol.setup.label() if sol.feasible else None,
                           "solve_time_s": sol.solve_time_s}
            print(f"  {method:6s} {sol.status:10s} score {sol.score:.6f} bound "
                  f"{sol.bound if sol.bound is not None else float('nan'):.6f} "
                  f"{sol.solve_time_s:6.1f} s  {row[method]['setup']}", flush=True)
        row["agree_rel"] = abs(row["exact"]["score"] - row["milp"]["score"]) / max(
            abs(row["milp"]["score"]), 1e-12)
        for t, n in p.cluster.pools:
            alone = rw.solve(p.with_cluster(Cluster(t, n)), "exact")
            row[f"alone[{t.name}]"] = alone.score if alone.feasible else None
            print(f"  {n} x {t.name} alone: "
                  + (f"score {alone.score:.6f}" if alone.feasible else alone.status), flush=True)
        print(f"  exact vs MILP relative difference {row['agree_rel']:.2e}", flush=True)
        rows.append(row)
    if args.json:
        write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
