"""Per-prompt routing speed on many prompts: prints its figures (no assertions).

Workload: 10,000 prompts whose score rows are drawn from the default instance's out-of-fold
predicted RouteProfile scores plus Gaussian noise (sd 0.02, clipped to [0, 1]): continuous
scores, every row distinct (a labelled synthetic resample, not new measurements). Curves,
setups, loads and SLO are the default instance's (60% paper load, 600 ms).

Figures: one fixed setup (4 models) with the price-space solver (``routerwise.optimize.price_routing``)
and the HiGHS LP; one exact panel of the 3-model G = 4 space: ``solve_exact`` (bounded search)
and ``evaluate_all`` (every retained setup solved; our space and the paper's memory-only
space), plus the score agreement of both solvers.

    python benchmarks/bench_routing.py [--prompts 10000] [--lp] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from routerwise.io import write_json
from routerwise.optimize.exact_search import SearchContext, evaluate_all, solve_exact
from routerwise.optimize.fixed_setup import FixedSetupLP
from routerwise.optimize.price_routing import PriceRouting
from routerwise.paper.instances import default_problem, paper_loads
from routerwise.problem import SetupSpace, Workload


def many_prompts(problem, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    s = problem.workload.scores
    rows = np.clip(s[rng.integers(0, s.shape[0], n)] + rng.normal(0, 0.02, (n, s.shape[1])), 0, 1)
    return replace(problem, workload=Workload(rows, problem.arrival_rate_rps, problem.model_names,
                                              label=f"{n} resampled prompts (synthetic)"))


def run(num_prompts: int = 10_000, with_lp: bool = False) -> dict:
    out = {"prompts": num_prompts}
    p4 = many_prompts(default_problem(4, 4, paper_loads(4)[1], 600.0), num_prompts)
    ctx = SearchContext.build(p4)
    # the fixed setup: the 4-model optimum's setup (a setup that carries the load)
    best = solve_exact(p4, context=ctx)
    s = int(best.history["setup"].iloc[-1])
    lims = ctx.setup_limits(s)
    times = []
    for _ in range(3):
        pr = PriceRouting(ctx.groups, True, p4.slo.latency_ms)
        t0 = time.perf_counter()
        res = pr.solve(*lims)
        times.append(time.perf_counter() - t0)
    out["fixed_setup_4m_price_s"] = float(np.median(times))
    out["fixed_setup_4m_score"] = res.score
    out["fixed_setup_4m_iterations"] = pr.stats["iterations"]
    if with_lp:
        t0 = time.perf_counter()
        lp = FixedSetupLP(ctx.groups, True, p4.slo.latency_ms).solve(*lims)
        out["fixed_setup_4m_lp_s"] = time.perf_counter() - t0
        out["fixed_setup_4m_score_gap_vs_lp"] = abs(lp.score - res.score)
    p3 = many_prompts(default_problem(3, 4, paper_loads(3)[1], 600.0), num_prompts)
    t0 = time.perf_counter()
    ctx3 = SearchContext.build(p3)
    sol = solve_exact(p3, context=ctx3).verify(p3)
    out["panel_3m_G4_solve_exact_s"] = time.perf_counter() - t0
    out["panel_3m_G4_setups"] = int(ctx3.setups.shape[0])
    out["panel_3m_G4_score"] = sol.score
    t0 = time.perf_counter()
    df = evaluate_all(p3, context=ctx3, routing="price")
    out["panel_3m_G4_all_setups_s"] = time.perf_counter() - t0
    out["panel_3m_G4_all_setups_best_score"] = float(df["score"].max())
    out["panel_3m_G4_best_agrees"] = bool(abs(df["score"].max() - sol.score) <= 1e-7)
    # the paper's setup space (utilization + memory only): more retained setups
    pp = p3.with_space(SetupSpace(check_compute=False))
    t0 = time.perf_counter()
    ctxp = SearchContext.build(pp)
    evaluate_all(pp, context=ctxp, routing="price")
    out["panel_3m_G4_paper_space_setups"] = int(ctxp.setups.shape[0])
    out["panel_3m_G4_paper_space_all_setups_s"] = time.perf_counter() - t0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--lp", action="store_true", help="also time the HiGHS LP on the fixed setup")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    out = run(args.prompts, args.lp)
    for k, v in out.items():
        print(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
