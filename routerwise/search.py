"""Setup search with bounds: the kit's default solver, exact over the retained setups.

The paper solves every retained setup (about 1 s each). Here every setup gets a cheap valid
upper bound first, and only setups whose bound beats the best plan found so far are solved
exactly (``routerwise.routing.FixedSetupLP``). The result is the optimum over all retained
setups, with a certificate: every unsolved setup's bound is at most the incumbent.

The bound of setup Theta, for any prices alpha (LP duality of the score S, see
``routerwise.assignment``)::

    max_{w in F_Theta} S(w) <= D(alpha) + max_{w in F_Theta} alpha . w
                            <= D(alpha) + hbar_Theta(alpha),

    D(alpha)        = (1/N) sum_j max_i (s_ji - alpha_i)
    hbar_Theta(alpha) = max { alpha . w : sum_i w_i = 1, 0 <= w_i <= wtop_i,
                              sum_i l_i(0) w_i <= tau }           (aggregate "mean")

because l_i(lambda w) >= l_i(0) (curves are non-decreasing) makes the last constraint a
relaxation of the SLO, and ``wtop_i`` (range end, or where w l_i(lambda w) reaches tau) relaxes
the rest. ``hbar`` is a two-constraint LP solved in closed form: its Lagrangian dual in the
latency multiplier beta is convex and piecewise linear with breakpoints where two models'
coefficients alpha_i - beta l_i(0) tie, so the minimum over beta is attained at beta = 0 or at
one of those M(M-1)/2 breakpoints, each evaluated by a greedy fill. Vectorised over all setups.
The prices alpha come from the setups solved so far (a growing pool); the bound only tightens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .assignment import ScoreGroups, group_scores, plan_prices
from scipy.optimize import linprog

from .latency import (CurveBank, MassSecants, fraction_where_latency_reaches, mass_secants,
                      max_fraction)
from .errors import ValidationError
from .price_routing import PriceRouting
from .problem import Problem
from .routing import FixedSetupLP, evaluate_plan, option_limits
from .setups import RetainedSetups, enumerate_setups
from .solution import Infeasibility, Solution


@dataclass
class SearchContext:
    """Per-option data flattened over models (option id o = offset[i] + k)."""

    problem: Problem
    retained: RetainedSetups
    groups: ScoreGroups
    setups: np.ndarray          # (S, M) global option ids
    curves: list
    bank: CurveBank
    w_top: np.ndarray           # (O,)
    l0: np.ndarray              # (O,) latency at zero load, ms
    secants: list               # (O,) MassSecants or None

    @classmethod
    def build(cls, problem: Problem, retained: RetainedSetups | None = None,
              groups: ScoreGroups | None = None) -> "SearchContext":
        retained = retained if retained is not None else enumerate_setups(problem)
        groups = groups or group_scores(problem.workload.scores)
        offsets = np.cumsum([0] + [len(o) for o in retained.options[:-1]])
        curves = [problem.curve(i, s) for i, opts in enumerate(retained.options) for s in opts]
        lims = [option_limits(c, problem) for c in curves]
        return cls(problem, retained, groups, retained.index + offsets[None, :].astype(np.int32),
                   curves, CurveBank.from_curves(curves), np.array([w for w, _ in lims]),
                   np.array([c.y[0] for c in curves]), [s for _, s in lims])

    def setup_limits(self, s: int) -> tuple[np.ndarray, list[MassSecants] | None]:
        ids = self.setups[s]
        sec = None if self.problem.slo.aggregate == "max" else [self.secants[o] for o in ids]
        return self.w_top[ids], sec


def dual_part(groups: ScoreGroups, alpha: np.ndarray) -> float:
    """D(alpha) = (1/N) sum_j max_i (s_ji - alpha_i)."""
    return float(groups.counts @ np.max(groups.scores - alpha[None, :], axis=1)
                 / groups.num_prompts)


def _greedy_fill(coef: np.ndarray, cap: np.ndarray):
    """max coef . w s.t. sum w = 1, 0 <= w <= cap, per row; returns (value, w)."""
    order = np.argsort(-coef, axis=1, kind="stable")
    c = np.take_along_axis(coef, order, 1)
    u = np.take_along_axis(cap, order, 1)
    before = np.cumsum(u, axis=1) - u
    amt = np.clip(1.0 - before, 0.0, u)
    w = np.empty_like(amt)
    np.put_along_axis(w, order, amt, 1)
    return np.sum(c * amt, axis=1), w


def setup_bounds(ctx: SearchContext, alpha: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """D(alpha) + hbar_Theta(alpha) for the given setups (all by default); -inf if infeasible."""
    ids = ctx.setups if rows is None else ctx.setups[rows]
    cap = ctx.w_top[ids]
    feasible = cap.sum(axis=1) >= 1 - 1e-12
    a = np.broadcast_to(alpha, cap.shape)
    if ctx.problem.slo.aggregate == "max":
        h, _ = _greedy_fill(a, cap)
    else:
        tau = ctx.problem.slo.latency_ms
        l0 = ctx.l0[ids]
        # Lowest l0-weighted latency any fill reaches: above tau means infeasible.
        _, w_fast = _greedy_fill(-l0, cap)
        feasible &= np.sum(l0 * w_fast, axis=1) <= tau * (1 + 1e-12)
        M = cap.shape[1]
        betas = [np.zeros(cap.shape[0])]
        for i in range(M):
            for j in range(i + 1, M):
                dl = l0[:, i] - l0[:, j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    b = (a[:, i] - a[:, j]) / dl
                betas.append(np.where((dl != 0) & (b > 0), b, 0.0))
        h = np.full(cap.shape[0], np.inf)
        for b in betas:
            val, _ = _greedy_fill(a - b[:, None] * l0, cap)
            h = np.minimum(h, b * tau + val)
    return np.where(feasible, dual_part(ctx.groups, alpha) + h, -np.inf)


class LagrangianBounds:
    """Bounds for ALL setups from one solved setup's multipliers, in one vectorised pass.

    Relaxing R2 (prices alpha), R3 (nu) and R5 (beta >= 0) of the routing LP
    (``routerwise.routing``) gives, for every setup Theta and any (alpha, beta, nu),

        max_{w in F_Theta} S(w) <= D(alpha) + nu + beta tau + sum_i psi_{o_i}(alpha_i - nu, beta),
        psi_o(c, beta) = max_{0 <= w <= wtop_o} (c w - beta phi_hat_o(w)),

    where phi_hat_o is option o's secant envelope (aggregate "max": phi_hat = 0). The bound is
    separable over models, so psi is tabulated once per option on a grid of nu and summed per
    setup; the minimum over the grid is taken. With a setup's own optimal multipliers the bound
    equals its optimum (LP strong duality); multipliers of similar setups bound the rest tightly.
    psi_o is the maximum of a concave piecewise-linear function, attained at a breakpoint.
    """

    def __init__(self, ctx: SearchContext):
        self.ctx = ctx
        mean = ctx.problem.slo.aggregate == "mean"
        pts = [(s.w, s.phi) if mean else (np.array([0.0, w]), np.zeros(2))
               for s, w in zip(ctx.secants, ctx.w_top)]
        P = max(len(w) for w, _ in pts)
        self.W = np.array([np.pad(w, (0, P - len(w)), mode="edge") for w, _ in pts])
        self.PHI = np.array([np.pad(f, (0, P - len(f)), mode="edge") for _, f in pts])
        self.model_of = np.concatenate([np.full(len(o), i)
                                        for i, o in enumerate(ctx.retained.options)])

    def bound(self, alpha: np.ndarray, beta: float, nu: float, rows: np.ndarray) -> np.ndarray:
        ctx = self.ctx
        spread = float(np.ptp(alpha)) + 0.05
        steps = np.geomspace(1e-5, 2.0, 24) * spread
        grid = nu + np.concatenate([-steps[::-1], [0.0], steps])              # (K,)
        c = alpha[self.model_of][:, None] - grid[None, :]                     # (O, K)
        psi = np.max(c[:, :, None] * self.W[:, None, :] - beta * self.PHI[:, None, :], axis=2)
        tot = psi[ctx.setups[rows]].sum(axis=1)                                # (R, K)
        base = dual_part(ctx.groups, alpha) + beta * ctx.problem.slo.latency_ms
        return base + np.min(grid[None, :] + tot, axis=1)


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
                context: SearchContext | None = None, routing: str = "auto") -> Solution:
    """Optimal setup and routing over all retained setups (bounded search, exact LPs).

    Best-bound-first: solve the setup with the highest bound, use its multipliers to tighten
    every other setup's bound, and stop when no unsolved bound exceeds the incumbent by more
    than ``rtol`` (relative). ``time_limit_s`` returns the incumbent with status
    ``time_limit`` and the proven bound. ``routing`` picks the exact fixed-setup solver:
    ``"lp"`` (HiGHS LP over the N x M assignment), ``"price"`` (cutting planes over the M
    prices, ``routerwise.price_routing``; certified to 1e-9, falls back to the LP otherwise),
    or ``"auto"``: price when there are at least PRICE_ROUTING_MIN_GROUPS distinct prompts.
    """
    t0 = time.perf_counter()
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
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
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

def min_latency(ctx: SearchContext, s: int) -> tuple[float, np.ndarray]:
    """Lowest L over fractions for setup s (ignoring tau), with the fractions reaching it."""
    prob = ctx.problem
    ids = ctx.setups[s]
    lam = prob.arrival_rate_rps
    curves = [ctx.curves[o] for o in ids]
    caps = np.array([max_fraction(c, lam) for c in curves])
    if caps.sum() < 1 - 1e-12:
        return np.inf, caps
    M = len(curves)
    if prob.slo.aggregate == "max":
        lo, hi = 0.0, max(float(c.y[-1]) for c in curves)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            cap = [min(caps[i], fraction_where_latency_reaches(c, mid, lam)) for i, c in enumerate(curves)]
            lo, hi = (lo, mid) if sum(cap) >= 1 else (mid, hi)
        cap = np.array([min(caps[i], fraction_where_latency_reaches(c, hi, lam)) for i, c in enumerate(curves)])
        w = cap / cap.sum()
        return hi, w
    # min sum_i t_i  s.t. t_i >= secant lines of phi_i (tau = inf), sum w = 1, w <= caps.
    A, b = [], []
    for i, c in enumerate(curves):
        sec = mass_secants(c, lam, np.inf, 1e-6 * max(1.0, float(c.y[0])))
        for sl, ic in zip(sec.slopes, sec.intercepts):
            row = np.zeros(2 * M)
            row[i], row[M + i] = sl, -1.0
            A.append(row)
            b.append(-ic)
    res = linprog(np.r_[np.zeros(M), np.ones(M)], A_ub=np.array(A), b_ub=np.array(b),
                  A_eq=np.r_[np.ones(M), np.zeros(M)][None, :], b_eq=[1.0],
                  bounds=[(0, caps[i]) for i in range(M)] + [(None, None)] * M, method="highs")
    w = np.clip(res.x[:M], 0, None)
    w = w / w.sum()
    return float(sum(c.latency_at(lam * wi) * wi for c, wi in zip(curves, w) if wi > 0)), w


def diagnoseinfeasible_solution(problem: Problem, ctx: SearchContext) -> Infeasibility:
    """Which limit makes the SLO unreachable, and the lowest latency any setup reaches."""
    tau = problem.slo.latency_ms
    S = ctx.setups.shape[0]
    if S == 0:
        return Infeasibility("setup_space", "no setup survives the utilization and "
                             "deployability filters; relax rho_min, add GPUs or allow larger tp",
                             np.inf)
    lam = problem.arrival_rate_rps
    cap = np.minimum(1.0, ctx.bank.max_load_rps[ctx.setups] / lam)
    if np.all(cap.sum(axis=1) < 1 - 1e-12):
        best = int(np.argmax(cap.sum(axis=1)))
        return Infeasibility(
            "capacity", f"no setup can carry {lam:g} req/s within its profiled loads: the "
            f"largest total profiled capacity is {cap[best].sum() * lam:.2f} req/s "
            f"({ctx.retained.setup(best).label()}). Lower the arrival rate, add GPUs, or profile "
            f"higher loads", np.inf, ctx.retained.setup(best))
    # Lower bound on each setup's min latency by l0-weighted fill; refine best-first exactly.
    l0 = ctx.l0[ctx.setups]
    _, wf = _greedy_fill(-l0, np.where(cap.sum(axis=1, keepdims=True) >= 1 - 1e-12, cap, 0.0))
    lb = np.where(cap.sum(axis=1) >= 1 - 1e-12,
                  np.max(l0 * (wf > 0), axis=1) if problem.slo.aggregate == "max"
                  else np.sum(l0 * wf, axis=1), np.inf)
    best_L, best_s, best_w = np.inf, -1, None
    for s in np.argsort(lb):
        if lb[s] >= best_L or not np.isfinite(lb[s]):
            break
        L, w = min_latency(ctx, int(s))
        if L < best_L:
            best_L, best_s, best_w = L, int(s), w
    setup = ctx.retained.setup(best_s)
    what = "mean" if problem.slo.aggregate == "mean" else "worst-model"
    return Infeasibility(
        "latency", f"the SLO of {tau:g} ms ({problem.slo.metric}, {what}) is below the lowest "
        f"latency any retained setup reaches at {lam:g} req/s: {best_L:.1f} ms with "
        f"{setup.label()}. Raise the SLO to at least that, lower the load, or add GPUs",
        best_L, setup, best_w)


def infeasible_solution(problem: Problem, ctx: SearchContext, t0: float, solver: str) -> Solution:
    """The ``status="infeasible"`` result of ``solver``, with its diagnosis."""
    diag = diagnoseinfeasible_solution(problem, ctx)
    return Solution(None, None, None, float("nan"), float("nan"), solver, "infeasible",
                    solve_time_s=time.perf_counter() - t0, infeasibility=diag)


def evaluate_all(problem: Problem, *, context: SearchContext | None = None,
                 workers: int = 1, routing: str = "auto") -> pd.DataFrame:
    """Every retained setup's best score (exact routing) and its latency: one row per setup.

    Infeasible setups (no routing meets the SLO) have ``feasible = False`` and NaN score.
    ``workers > 1`` splits the setups over processes (each solves its share with its own LP).
    ``routing`` names the exact fixed-setup solver (see :func:`solve_exact`).
    """
    ctx = context or SearchContext.build(problem)
    S = ctx.setups.shape[0]
    if workers > 1 and S > 64:
        # "spawn", not "fork": HiGHS keeps a global thread pool that a forked child inherits
        # in a broken state (its threads do not survive the fork).
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing as mp
        chunks = np.array_split(np.arange(S), workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_evaluate_chunk, [(problem, ctx.retained, c, routing)
                                                    for c in chunks]))
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
            row[f"w[{name}]"] = res.fractions[i] if res is not None else np.nan
        out.append(row)
    return pd.DataFrame(out)
