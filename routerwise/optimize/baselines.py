"""The paper's baseline deployments, each with its routing optimized for its setup.

* **Equal-Split**: every model targets G/M GPUs of compute (tp_i * rho_i = G / M).
* **Size-Proportional**: model i targets G * params_i / sum(params).
* **Isolated**: no co-location: every shard alone on a whole GPU (rho = 1), sum tp_i <= G.

"Nearest feasible setup" is made precise as: among retained setups whose routing can meet the
SLO, those at the smallest L1 distance between (tp_i * rho_i)_i and the target; ties go to
the best optimized score (the most favourable reading for the baseline). Isolated setups may
leave GPUs idle, so they are exempt from the utilization filter (they are verified with
rho_min = 0); among isolated setups the best-scoring one is reported. Routing is solved exactly
(``routerwise.optimize.fixed_setup``), so a baseline's gap to the optimum is due to its setup alone.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import numpy as np

from ..errors import ValidationError
from ..problem import Problem, SystemSetup
from .assignment import group_scores, plan_prices
from .bounds import SearchContext, setup_bounds
from .diagnosis import infeasible_solution
from .fixed_setup import FixedSetupLP, evaluate_plan, option_limits
from .placement import ShardDemand, place_exact
from .solution import Infeasibility, Solution

__all__ = ["BASELINES", "compute_targets_tenths", "nearest_setup_baseline", "isolated_baseline",
           "isolated_problem", "run_baselines"]

BASELINES = ("equal-split", "size-proportional", "isolated")


def compute_targets_tenths(problem: Problem, kind: str) -> np.ndarray:
    """Target tp_i * rho_i per model, in tenths of a GPU."""
    G, M = problem.cluster.num_gpus, problem.num_models
    if kind == "equal-split":
        return np.full(M, 10.0 * G / M)
    if kind == "size-proportional":
        p = np.array([m.params_b for m in problem.models])
        return 10.0 * G * p / p.sum()
    raise ValueError(f"no compute target for baseline {kind!r}")


def _best_of(problem: Problem, ctx: SearchContext, rows, name: str, t0: float, lp=None):
    lp = lp or FixedSetupLP(ctx.groups, problem.slo.aggregate == "mean", problem.slo.latency_ms)
    best = None
    for s in rows:
        res = lp.solve(*ctx.setup_limits(int(s)))
        if res is not None and (best is None or res.score > best[1].score):
            best = (int(s), res)
    if best is None:
        return None
    s, res = best
    setup = ctx.retained.setup(s)
    return Solution(setup, res.fractions, plan_prices(ctx.groups, res.fractions), res.score,
                    evaluate_plan(problem, setup, res.fractions), name, "optimal",
                    solve_time_s=time.perf_counter() - t0)


def nearest_setup_baseline(problem: Problem, kind: str, *,
                           context: SearchContext | None = None) -> Solution:
    """Equal-Split or Size-Proportional: nearest retained setup that can meet the SLO."""
    t0 = time.perf_counter()
    ctx = context or SearchContext.build(problem)
    if ctx.setups.shape[0] == 0:
        return infeasible_solution(problem, ctx, t0, kind)
    dist = np.abs(ctx.retained.compute_units_tenths() - compute_targets_tenths(problem, kind)[None, :]).sum(axis=1)
    lp = FixedSetupLP(ctx.groups, problem.slo.aggregate == "mean", problem.slo.latency_ms)
    for d in np.unique(np.round(dist, 9)):
        sol = _best_of(problem, ctx, np.flatnonzero(np.isclose(dist, d)), kind, t0, lp)
        if sol is not None:
            # A proven bound on the joint optimum (not on this baseline's setup): the largest
            # zero-price Lagrangian setup bound (routerwise.optimize.bounds); loose but valid.
            ub = setup_bounds(ctx, np.zeros(problem.num_models))
            return replace(sol, bound=max(sol.score, float(ub.max())),
                           notes=(f"L1 distance to the {kind} target: {d / 10:g} GPUs",
                                  "bound: zero-price Lagrangian bound over every retained "
                                  "setup (loose; solve(method='exact') for the optimum)"),
                           stats={"target_gpus": (compute_targets_tenths(problem, kind) / 10).tolist(),
                                  "distance_gpus": float(d / 10)})
    return infeasible_solution(problem, ctx, t0, kind)


def isolated_baseline(problem: Problem) -> Solution:
    """Every shard alone on a whole GPU; the best-scoring such deployment that meets the SLO."""
    t0 = time.perf_counter()
    if problem.cluster.is_mixed:
        raise ValidationError("the Isolated baseline is not supported on mixed clusters yet "
                              f"({problem.cluster.describe()}); run it per GPU type, or use the "
                              f"equal-split / size-proportional baselines")
    G, mem = problem.cluster.num_gpus, problem.cluster.gpu.mem_gb
    sp = problem.space
    per_model = []
    for m in problem.models:
        tps = [tp for tp in sp.tp_degrees if tp <= G and tp in m.tp_degrees and 10 in sp.compute_tenths
               and m.mem_gb(tp) <= mem and problem.profiles.get(m.name, tp, 10) is not None]
        per_model.append(tps)
    groups = group_scores(problem.workload.scores)
    lp = FixedSetupLP(groups, problem.slo.aggregate == "mean", problem.slo.latency_ms)
    best = None
    for tps in itertools.product(*per_model):
        if sum(tps) > G:
            continue
        demands = [ShardDemand(tp, 10, problem.models[i].mem_gb(tp)) for i, tp in enumerate(tps)]
        placement = place_exact(demands, G, mem)
        if placement is None:
            continue
        setup = SystemSetup(tuple(problem.model_setup(i, tp, 10) for i, tp in enumerate(tps)),
                            placement)
        lims = [option_limits(problem.curve(i, s), problem) for i, s in enumerate(setup.per_model)]
        res = lp.solve(np.array([w for w, _ in lims]), [s for _, s in lims])
        if res is not None and (best is None or res.score > best[1].score):
            best = (setup, res)
    name = "isolated"
    if best is None:
        exists = any(sum(t) <= G for t in itertools.product(*per_model)) and all(per_model)
        msg = ("no isolated deployment meets the SLO" if exists else
               f"models cannot each have whole GPUs of their own on {G} GPUs "
               f"(smallest total tp: {sum(min(t) for t in per_model if t) if all(per_model) else 'n/a'})")
        return Solution(None, None, None, float("nan"), float("nan"), name, "infeasible",
                        solve_time_s=time.perf_counter() - t0,
                        infeasibility=Infeasibility("setup_space" if not exists else "latency",
                                                    msg, np.inf))
    setup, res = best
    return Solution(setup, res.fractions, plan_prices(groups, res.fractions), res.score,
                    evaluate_plan(problem, setup, res.fractions), name, "optimal",
                    solve_time_s=time.perf_counter() - t0,
                    notes=("isolated deployments may leave GPUs idle: exempt from the "
                           "utilization filter (verify with rho_min = 0)",
                           "no bound: isolated deployments lie outside the utilization-filtered "
                           "setup space the bounds cover"))


def isolated_problem(problem: Problem) -> Problem:
    """The problem an Isolated plan is verified against (utilization floor removed)."""
    return problem.with_space(replace(problem.space, rho_min=0.0))


def run_baselines(problem: Problem, context: SearchContext | None = None) -> dict[str, Solution]:
    """Every baseline, verified. On a mixed cluster "isolated" is left out (not supported
    there yet); the nearest-setup baselines run over the mixed setup space."""
    ctx = context or SearchContext.build(problem)
    out = {k: nearest_setup_baseline(problem, k, context=ctx)
           for k in ("equal-split", "size-proportional")}
    if not problem.cluster.is_mixed:
        out["isolated"] = isolated_baseline(problem)
    for k, sol in out.items():
        sol.verify(isolated_problem(problem) if k == "isolated" else problem)
    return out
