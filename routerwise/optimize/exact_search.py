"""Setup search with bounds: exact over the retained setups (the default on small setup spaces).

The paper solves every retained setup with its dual-price method. Here every setup gets a cheap valid
upper bound first, and only setups whose bound beats the best plan found so far are solved
exactly (``routerwise.optimize.fixed_setup.FixedSetupLP``). The result is the optimum over all retained
setups, with a certificate: every unsolved setup's bound is at most the incumbent.

The bounds themselves (and the context shared by every solver) are in ``bounds.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..parallel import map_tasks
from ..problem import Problem
from .assignment import ScoreGroups, plan_prices
from .bounds import LagrangianBounds, SearchContext, setup_bounds
from .diagnosis import infeasible_solution
from .fixed_setup import FixedSetupLP, evaluate_plan
from .highs import Deadline
from .price_routing import PriceRouting
from .setup_space import RetainedSetups
from .solution import Solution

__all__ = ["PRICE_ROUTING_MIN_GROUPS", "ROUTING_SOLVERS", "routing_solver", "solve_exact",
           "evaluate_all"]


PRICE_ROUTING_MIN_GROUPS = 1000
ROUTING_SOLVERS = ("auto", "lp", "price")


def routing_solver(groups: ScoreGroups, problem: Problem, routing: str = "auto"):
    """The exact fixed-setup routing solver named by ``routing`` (see :func:`solve_exact`)."""
    if routing not in ROUTING_SOLVERS:
        raise ValidationError(f"unknown routing solver {routing!r}; choose one of "
                              f"{ROUTING_SOLVERS}")
    if routing == "auto":
        routing = "price" if groups.scores.shape[0] >= PRICE_ROUTING_MIN_GROUPS else "lp"
    cls = PriceRouting if routing == "price" else FixedSetupLP
    return cls(groups, problem.slo.aggregate == "mean", problem.slo.latency_ms)


def solve_exact(problem: Problem, *, retained: RetainedSetups | None = None,
                rtol: float = 1e-7, time_limit_s: float | None = None,
                context: SearchContext | None = None, routing: str = "auto",
                clock=time.perf_counter) -> Solution:
    """Optimal setup and routing over all retained setups (bounded search, exact LPs).

    Best-bound-first: solve the setup with the highest bound, use its multipliers to tighten
    every other setup's bound, and stop when no unsolved bound exceeds the incumbent by more
    than ``rtol`` (relative). ``time_limit_s`` returns the incumbent with status
    ``time_limit`` and the proven bound (the largest of the incumbent and every unsolved
    setup's bound); the clock (``clock``) is checked between setup LPs, so the limit is
    overrun by at most one LP. Building the context (enumerating and placing every retained
    setup, skipped when ``context`` is given) counts against the limit but cannot be
    interrupted. ``routing`` picks the exact fixed-setup solver:
    ``"lp"`` (HiGHS LP over the N x M assignment), ``"price"`` (cutting planes over the M
    prices, ``routerwise.optimize.price_routing``; certified to 1e-9, falls back to the LP otherwise),
    or ``"auto"``: price when there are at least PRICE_ROUTING_MIN_GROUPS distinct prompts.
    """
    t0 = time.perf_counter()
    deadline = Deadline(time_limit_s, clock)
    ctx = context or SearchContext.build(problem, retained)
    S = ctx.setups.shape[0]
    if S == 0:
        return infeasible_solution(problem, ctx, t0, "routerwise-exact")
    lp = routing_solver(ctx.groups, problem, routing)
    lag = LagrangianBounds(ctx)
    ub = setup_bounds(ctx, np.zeros(problem.num_models))
    done = np.zeros(S, dtype=bool)
    best_val, best_s, best_res = -np.inf, -1, None
    n_solved = 0
    history = []
    status = "optimal"
    while True:
        open_ = ~done & (ub > -np.inf)
        if not open_.any():
            break
        rows = np.flatnonzero(open_)
        s = int(rows[np.argmax(ub[rows])])
        if ub[s] <= best_val + rtol * max(1.0, abs(best_val)):
            break
        if deadline.expired():
            status = "time_limit"
            break
        w_top, sec = ctx.setup_limits(s)
        res = lp.solve(w_top, sec)
        n_solved += 1
        done[s] = True
        if res is None:
            ub[s] = -np.inf
            continue
        ub[s] = res.score
        if res.score > best_val:
            best_val, best_s, best_res = res.score, s, res
            history.append({"solved": n_solved, "time_s": time.perf_counter() - t0,
                            "incumbent": best_val, "setup": s})
        rest = np.flatnonzero(~done & (ub > best_val))
        if rest.size and res.nu is not None:
            ub[rest] = np.minimum(ub[rest], lag.bound(res.raw_prices, res.beta, res.nu, rest))
    if best_res is None and status == "time_limit":
        return Solution(None, None, None, float("nan"), float("nan"), "routerwise-exact",
                        "time_limit", bound=float(ub[~done].max()) if (~done).any() else None,
                        solve_time_s=time.perf_counter() - t0)
    if best_res is None:
        return infeasible_solution(problem, ctx, t0, "routerwise-exact")
    unsolved = ~done & (ub > -np.inf)
    bound = max(best_val, float(ub[unsolved].max()) if unsolved.any() else best_val)
    setup = ctx.retained.setup(best_s)
    L = evaluate_plan(problem, setup, best_res.fractions)
    stats = {"setups": S, "solved": n_solved, "pruned_by_bound": int(S - n_solved)}
    # Widest-margin router prices need an LP over all prompts: for many prompts the optimal
    # prices of the price-space solver (a valid supergradient of S) are used instead.
    prices = (best_res.prices if isinstance(lp, PriceRouting) and best_res.nu is not None
              else plan_prices(ctx.groups, best_res.fractions))
    if isinstance(lp, PriceRouting):
        stats["price_routing"] = dict(lp.stats)
    return Solution(setup, best_res.fractions, prices,
                    best_val, L, "routerwise-exact",
                    status, bound=bound, solve_time_s=time.perf_counter() - t0,
                    history=pd.DataFrame(history), stats=stats,
                    notes=("exact over retained setups (bounded search + HiGHS LP per setup)",))


# ----------------------------------------------------------------------------- infeasibility

def evaluate_all(problem: Problem, *, context: SearchContext | None = None,
                 workers: int = 1, routing: str = "auto", executor=None) -> pd.DataFrame:
    """Every retained setup's best score (exact routing) and its latency: one row per setup.

    Infeasible setups (no routing meets the SLO) have ``feasible = False`` and NaN score.
    ``workers > 1`` splits the setups into ``workers`` chunks solved in parallel (each with its
    own LP), on ``executor`` when given (any :class:`concurrent.futures.Executor`, owned by the
    caller; see :mod:`routerwise.parallel`), else on local spawn-started processes. Rows come
    back in setup order whatever runs them.
    ``routing`` names the exact fixed-setup solver (see :func:`solve_exact`).
    """
    ctx = context or SearchContext.build(problem)
    S = ctx.setups.shape[0]
    if workers > 1 and S > 64:
        # "spawn", not "fork": HiGHS keeps a global thread pool that a forked child inherits
        # in a broken state (its threads do not survive the fork).
        chunks = np.array_split(np.arange(S), workers)
        parts = map_tasks(_evaluate_chunk, [(problem, ctx.retained, c, routing) for c in chunks],
                          executor=executor, workers=workers, start_method="spawn",
                          desc=f"setups of {problem.name or 'problem'}")
        return pd.concat(parts, ignore_index=True)
    return _evaluate_rows(np.arange(S), ctx, routing)


def _evaluate_chunk(args) -> pd.DataFrame:
    problem, retained, rows, routing = args
    return _evaluate_rows(rows, SearchContext.build(problem, retained), routing)


def _evaluate_rows(rows: np.ndarray, ctx: SearchContext, routing: str = "auto") -> pd.DataFrame:
    problem = ctx.problem
    lp = routing_solver(ctx.groups, problem, routing)
    out = []
    for s in rows:
        res = lp.solve(*ctx.setup_limits(int(s)))
        setup = ctx.retained.setup(int(s))
        L = evaluate_plan(problem, setup, res.fractions) if res is not None else np.nan
        # A plan counts as feasible only if its recomputed latency is finite and meets tau.
        if res is not None and not L <= problem.slo.latency_ms * (1 + 1e-6) + 1e-9:
            res, L = None, np.nan
        row = {"setup": setup.label(), "feasible": res is not None,
               "score": res.score if res is not None else np.nan, "latency_ms": L}
        for i, (name, o) in enumerate(zip(problem.model_names, setup.per_model)):
            row[f"tp[{name}]"] = o.tp
            row[f"rho[{name}]"] = o.compute_share
            if o.gpu:                       # mixed clusters: the GPU type of each model
                row[f"gpu[{name}]"] = o.gpu
            row[f"w[{name}]"] = res.fractions[i] if res is not None else np.nan
        out.append(row)
    return pd.DataFrame(out)
