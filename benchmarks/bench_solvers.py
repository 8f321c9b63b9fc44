"""Solver benchmark on paper-scale instances: prints its figures (no assertions).

For 3 and 4 models, G = 4 and 8, two loads and two SLOs per panel it prints, per instance:
retained setups; the default exact search's time (median of 3), setups/s and solved count; the
paper's dual-price method's time, setups it evaluated, setups/s and its gap to the optimum; the
MILP's time, status and proven gap; and the score each reaches.

Two setup spaces: ``utilization`` (the utilization filter only, as the paper's counts: 669 /
16,660 / 141 / 7,764 setups where every option has a curve) and ``ours`` (memory AND compute
placement checked exactly).

Instances are the real-data defaults (``routerwise.paper.instances``; needs the data mirror or a
download) or, with ``--synthetic``, the labelled synthetic ones (``routerwise.paper.synthetic``).

    python benchmarks/bench_solvers.py              # full table (~10-20 min on 2 cores)
    python benchmarks/bench_solvers.py --quick      # one load/SLO per panel
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from routerwise.optimize.bounds import SearchContext
from routerwise.optimize.dual_price import DualPriceConfig, _Batch, _solve_batch, solve_dual_price
from routerwise.optimize.exact_search import solve_exact
from routerwise.optimize.milp import solve_milp
from routerwise.problem import SetupSpace

SPACES = {"utilization": SetupSpace(check_memory=False, check_compute=False), "ours": SetupSpace()}


def instances(synthetic: bool, quick: bool):
    if synthetic:
        from routerwise.paper.synthetic import synthetic_problem
        for M in (3, 4):
            for G in (4, 8):
                for lam, tau in ([(40.0, 300.0)] if quick else [(30.0, 300.0), (60.0, 500.0)]):
                    yield lambda sp, M=M, G=G, lam=lam, tau=tau: synthetic_problem(
                        M, G, arrival_rate_rps=lam, slo_ms=tau, num_prompts=500, space=sp)
        return
    from routerwise.paper.instances import default_problem, paper_loads
    for M in (3, 4):
        loads = paper_loads(M)
        for G in (4, 8):
            pairs = [(loads[1], 600.0)] if quick else [(loads[0], 400.0), (loads[3], 800.0)]
            for lam, tau in pairs:
                yield lambda sp, M=M, G=G, lam=lam, tau=tau: default_problem(
                    M, G, lam, tau, space=sp)


def dual_rate(problem, ctx, n=64) -> float:
    """Setups/s of the dual method on a batch of n setups that can carry the load (vectorised,
    as in the search); setups that cannot are never run by the method."""
    from routerwise.optimize.bounds import setup_bounds
    ok = np.flatnonzero(setup_bounds(ctx, np.zeros(problem.num_models)) > -np.inf)
    rows = ok[np.linspace(0, ok.size - 1, min(n, ok.size)).astype(int)]
    t0 = time.perf_counter()
    _solve_batch(ctx.groups, _Batch(ctx, rows), DualPriceConfig(), problem.slo.aggregate == "mean",
                 problem.slo.latency_ms)
    return rows.size / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="labelled synthetic instances")
    ap.add_argument("--quick", action="store_true", help="one load/SLO per panel")
    ap.add_argument("--milp-time-limit", type=float, default=120.0)
    args = ap.parse_args()
    rows = []
    for make in instances(args.synthetic, args.quick):
        for space_name, sp in SPACES.items():
            p = make(sp)
            t0 = time.perf_counter()
            ctx = SearchContext.build(p)
            build_s = time.perf_counter() - t0
            times, ex = [], None
            for _ in range(3):
                t0 = time.perf_counter()
                ex = solve_exact(p, context=ctx)
                times.append(time.perf_counter() - t0)
            S = ctx.setups.shape[0]
            row = {"instance": p.name, "space": space_name, "rate_rps": p.arrival_rate_rps,
                   "slo_ms": p.slo.latency_ms, "setups": S, "setup_build_s": round(build_s, 2),
                   "exact_s": round(statistics.median(times), 3),
                   "exact_setups_per_s": round(S / statistics.median(times)),
                   "exact_solved": ex.stats.get("solved"), "exact_score": ex.score,
                   "status": ex.status}
            if ex.feasible:
                t0 = time.perf_counter()
                du = solve_dual_price(p, context=ctx)
                dt = time.perf_counter() - t0
                mi = solve_milp(p, time_limit_s=args.milp_time_limit)
                rate = dual_rate(p, ctx)
                row.update({
                    "dual_s": round(dt, 1), "dual_evaluated": du.stats.get("evaluated"),
                    "dual_setups_per_s": round(rate, 1),
                    "dual_exhaustive_s_extrapolated": round(S / rate, 0),
                    "dual_score": du.score,
                    "dual_gap_to_opt_%": round(100 * (mi.score - du.score) / mi.score, 3),
                    "milp_s": round(mi.solve_time_s, 1), "milp_status": mi.status,
                    "milp_gap_%": None if mi.gap is None else round(100 * mi.gap, 4),
                    "milp_score": mi.score,
                    "exact_gap_to_milp_%": round(100 * (mi.score - ex.score) / mi.score, 5)})
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1), flush=True)
    df = pd.DataFrame(rows)
    print("\nSummary (times are wall-clock seconds on this machine; medians of 3 for exact):")
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(df.to_string(index=False))


if __name__ == "__main__":
    main()
