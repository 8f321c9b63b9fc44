"""The paper's solver: dual prices, projected gradient ascent, bisection on the latency penalty.

Three nested stages, implemented as the paper describes them (``../shared/PAPER.md``):

1. **Prices** for fractions w by subgradient steps on the dual of the assignment problem,
   ``alpha_i += step_t (n_i(alpha) - N w_i) / N`` with ``n_i`` the prompts whose
   ``argmax_i (s_ji - alpha_i)`` is i (``routerwise.optimize.assignment.prices_by_subgradient``).
2. For a fixed setup and latency penalty beta: **projected gradient ascent** on w with
   gradient ``alpha - beta dL/dw``, ``dL/dw_i = l_i + lambda w_i dl_i/dload`` (slope of the
   active piece), projecting onto the simplex (Duchi et al. 2008). Our curves have a profiled
   range, so the projection is onto the simplex intersected with the box w_i <= max load / lambda
   (with no box it is exactly Duchi's projection). An outer **bisection on beta** finds the
   smallest penalty whose fractions meet tau.
3. **Search** over retained setups, keeping the best score that meets tau.

Step sizes, iteration counts and the warm starts are ours (the paper does not state them); they
are fields of :class:`DualPriceConfig`. Everything is vectorised over a batch of setups.
The per-setup answer is the final w, scored exactly by S(w); the method has no optimality
guarantee, which the exact solvers in this kit measure.

Setups can be skipped without changing the answer: a setup whose upper bound (from
``routerwise.optimize.exact_search``, computed from the method's own prices) cannot beat the best plan found so
far cannot be chosen, since the method's score on a setup never exceeds that setup's optimum.
``exhaustive=True`` runs every setup, as the paper does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..problem import Problem
from .assignment import ScoreGroups, argmax_counts, score_of_fractions
from .bounds import LagrangianBounds, SearchContext, setup_bounds
from .diagnosis import infeasible_solution
from .fixed_setup import evaluate_plan
from .solution import Solution

__all__ = ["DualPriceConfig", "project_capped_simplex", "solve_dual_price"]


@dataclass(frozen=True)
class DualPriceConfig:
    price_steps: int = 2           # subgradient steps per gradient evaluation (warm-started)
    price_step0: float = 0.2       # subgradient step = price_step0 / sqrt(k), k counts all steps
    pga_iters: int = 100           # projected-gradient iterations per beta
    pga_step0: float = 0.2         # ascent step = pga_step0 / sqrt(t)
    bisection_iters: int = 16      # halvings of the beta bracket
    beta_start: float = 1e-4       # first penalty tried when beta = 0 is infeasible (score/ms)
    beta_growth: float = 4.0       # bracket growth factor
    beta_max: float = 10.0         # give up (setup infeasible for the method) beyond this
    batch_size: int = 128
    bound_from_top: int = 8        # setups of a batch whose multipliers bound the rest


def project_capped_simplex(v: np.ndarray, cap: np.ndarray, iters: int = 60) -> np.ndarray:
    """Euclidean projection of each row of v onto {w : sum w = 1, 0 <= w <= cap}.

    The projection is clip(v - theta, 0, cap) for the theta making the row sum 1 (KKT); theta is
    found by bisection. Requires sum(cap) >= 1 per row.
    """
    lo = (v - cap).min(axis=1) - 1.0
    hi = v.max(axis=1)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        s = np.clip(v - mid[:, None], 0.0, cap).sum(axis=1)
        big = s > 1
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
    w = np.clip(v - hi[:, None], 0.0, cap)
    # sum(w) <= 1 up to bisection precision: give the remainder to coordinates with room,
    # in proportion to that room, so no coordinate ever exceeds its cap.
    room = cap - w
    deficit = 1.0 - w.sum(axis=1, keepdims=True)
    return w + room * np.clip(deficit / np.maximum(room.sum(axis=1, keepdims=True), 1e-300), 0, 1)


class _Batch:
    """A batch of setups: their curves, caps and the latency evaluations PGA needs."""

    def __init__(self, ctx: SearchContext, rows: np.ndarray):
        self.ctx, self.rows = ctx, rows
        self.ids = ctx.setups[rows]                                   # (B, M)
        lam = ctx.problem.arrival_rate_rps
        self.lam = lam
        self.cap = np.minimum(1.0, ctx.bank.max_load_rps[self.ids] / lam)

    def latency(self, w):
        return np.where(w > 0, w * self.ctx.bank.latency(self.ids, self.lam * w), 0.0).sum(axis=1)

    def worst(self, w):
        lat = self.ctx.bank.latency(self.ids, self.lam * w)
        return np.where(w > 1e-12, lat, 0.0).max(axis=1)

    def grad(self, w):
        load = self.lam * w
        return self.ctx.bank.latency(self.ids, load) + load * self.ctx.bank.slope(self.ids, load)


def _pga(groups: ScoreGroups, batch: _Batch, beta: np.ndarray, w: np.ndarray, alpha: np.ndarray,
         cfg: DualPriceConfig):
    """Stage 2 for fixed beta (per row): projected gradient ascent with subgradient prices."""
    N = groups.num_prompts
    k = 0
    for t in range(1, cfg.pga_iters + 1):
        for _ in range(cfg.price_steps):                             # stage 1, warm-started
            k += 1
            n = argmax_counts(groups, alpha)
            alpha = alpha + (cfg.price_step0 / np.sqrt(k)) * (n / N - w)
        g = alpha - beta[:, None] * batch.grad(w)
        w = project_capped_simplex(w + (cfg.pga_step0 / np.sqrt(t)) * g, batch.cap)
    return w, alpha


def _solve_batch(groups: ScoreGroups, batch: _Batch, cfg: DualPriceConfig, mean: bool, tau: float):
    """Stages 1-2 with the beta bisection, for every setup of a batch."""
    B, M = batch.ids.shape
    feasible_caps = batch.cap.sum(axis=1) >= 1 - 1e-12
    if not feasible_caps.all():   # rows that cannot carry the load: no plan, skip them
        out = (np.full((B, M), np.nan), np.zeros((B, M)), np.full(B, np.nan))
        if feasible_caps.any():
            sub = _solve_batch(groups, _Batch(batch.ctx, batch.rows[feasible_caps]), cfg, mean, tau)
            for o, v in zip(out, sub):
                o[feasible_caps] = v
        return out
    w0 = project_capped_simplex(np.full((B, M), 1.0 / M), batch.cap)
    a0 = np.zeros((B, M))

    def meets(w):
        return (batch.latency(w) if mean else batch.worst(w)) <= tau * (1 + 1e-9)

    w, a = _pga(groups, batch, np.zeros(B), w0, a0, cfg)
    ok = meets(w) & feasible_caps
    best_w = np.where(ok[:, None], w, np.nan)
    best_a = a.copy()
    lo = np.zeros(B)
    hi = np.where(ok, 0.0, np.nan)
    # Grow the bracket until every row meets tau (or beta_max).
    beta = np.where(ok | ~feasible_caps, np.nan, cfg.beta_start)
    while np.any(np.isfinite(beta)):
        act = np.isfinite(beta)
        wb, ab = _pga(groups, batch, np.nan_to_num(beta), w, a, cfg)
        good = act & meets(wb)
        best_w[good], best_a[good], hi[good] = wb[good], ab[good], beta[good]
        w = np.where(act[:, None], wb, w)
        a = np.where(act[:, None], ab, a)
        lo = np.where(act & ~good, beta, lo)
        beta = np.where(act & ~good & (beta * cfg.beta_growth <= cfg.beta_max),
                        beta * cfg.beta_growth, np.nan)
    # Bisection: smallest beta whose fractions meet tau.
    bis = np.isfinite(hi) & (hi > 0)
    for _ in range(cfg.bisection_iters if bis.any() else 0):
        mid = np.where(bis, 0.5 * (lo + hi), 0.0)
        wb, ab = _pga(groups, batch, mid, np.where(bis[:, None], best_w, w0), best_a, cfg)
        good = bis & meets(wb)
        best_w[good], best_a[good], hi[good] = wb[good], ab[good], mid[good]
        lo = np.where(bis & ~good, mid, lo)
    return best_w, best_a, hi


def solve_dual_price(problem: Problem, *, config: DualPriceConfig | None = None,
                     exhaustive: bool = False, context: SearchContext | None = None,
                     time_limit_s: float | None = None) -> Solution:
    """The paper's method over all retained setups; returns the best plan meeting the SLO."""
    cfg = config or DualPriceConfig()
    t0 = time.perf_counter()
    ctx = context or SearchContext.build(problem)
    S = ctx.setups.shape[0]
    if S == 0:
        return infeasible_solution(problem, ctx, t0, "dual-price")
    mean = problem.slo.aggregate == "mean"
    tau = problem.slo.latency_ms
    groups = ctx.groups
    # Setups that cannot carry the load within their profiled range (or whose zero-load
    # latency already exceeds tau) are infeasible for any method: never evaluated.
    ub = ub0 = setup_bounds(ctx, np.zeros(problem.num_models))
    if exhaustive:
        ub = np.where(ub > -np.inf, np.inf, -np.inf)
    lag = None if exhaustive else LagrangianBounds(ctx)
    done = np.zeros(S, dtype=bool)
    best = (-np.inf, -1, None, None)
    evaluated = 0
    hist = []
    status = "feasible"
    while True:
        open_rows = np.flatnonzero(~done & (ub > best[0] + 1e-12))
        if open_rows.size == 0:
            break
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
            status = "time_limit"
            break
        rows = open_rows[np.argsort(-ub[open_rows], kind="stable")[:cfg.batch_size]]
        batch = _Batch(ctx, rows)
        w, a, beta = _solve_batch(groups, batch, cfg, mean, tau)
        done[rows] = True
        evaluated += rows.size
        scores = np.full(rows.size, -np.inf)
        for k, wr in enumerate(w):
            if np.all(np.isfinite(wr)):
                scores[k] = score_of_fractions(groups, wr).score
        k = int(np.argmax(scores))
        if scores[k] > best[0]:
            best = (float(scores[k]), int(rows[k]), w[k], a[k])
        if lag is not None:   # bound the rest with the multipliers of this batch's best setups
            g = batch.grad(np.nan_to_num(w))
            for k in np.argsort(-scores)[:cfg.bound_from_top]:
                rest = np.flatnonzero(~done & (ub > best[0]))
                if rest.size == 0 or not np.isfinite(scores[k]):
                    break
                inner = w[k] > 1e-9   # stationarity: alpha_i - beta dL/dw_i = nu where 0 < w_i
                nu = float(np.median((a[k] - beta[k] * g[k])[inner]))
                ub[rest] = np.minimum(ub[rest], lag.bound(a[k], beta[k], nu, rest))
        hist.append({"evaluated": evaluated, "time_s": time.perf_counter() - t0,
                     "incumbent": best[0]})
    if best[2] is None:
        return infeasible_solution(problem, ctx, t0, "dual-price")
    score, s, w, a = best
    setup = ctx.retained.setup(s)
    L = evaluate_plan(problem, setup, w)
    # Proven bound: every setup's Lagrangian bound (zero prices, tightened by the multipliers
    # met on the way; valid for any multipliers) caps its optimum; -inf marks proven infeasible.
    ubs = np.minimum(ub0, ub)
    bound = max(score, float(ubs[ubs > -np.inf].max()))
    return Solution(setup, w, a - a.mean(), score, L, "dual-price", status, bound=bound,
                    solve_time_s=time.perf_counter() - t0, history=pd.DataFrame(hist),
                    stats={"setups": S, "evaluated": evaluated, "skipped_by_bound": S - evaluated,
                           "exhaustive": exhaustive},
                    notes=("paper's method: subgradient prices, PGA, bisection on beta",))
