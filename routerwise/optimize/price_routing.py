"""Exact fixed-setup routing in price space: M prices instead of N x M assignment variables.

The routing LP of one setup (``routerwise.optimize.fixed_setup``) has N x M assignment variables but only
M "prices". With F the set of feasible fractions (simplex, ``0 <= w <= w_top``, the secant
SLO ``sum_i phi_hat_i(w_i) <= tau``; convex when every secant envelope is convex) and S the
score of fractions (``routerwise.optimize.assignment``: S(w) = min_alpha D(alpha) + alpha . w),

    max_{w in F} S(w) = max_{w in F} min_alpha [D(alpha) + alpha . w]
                      = min_alpha  g(alpha),     g(alpha) = D(alpha) + h(alpha),          (1)

    D(alpha) = (1/N) sum_j max_i (s_ji - alpha_i)       (each prompt to argmax_i s_ji - alpha_i)
    h(alpha) = max_{w in F} alpha . w                   (support function of F: a tiny LP)

by the minimax theorem (S(w) is concave in w, the inner function is convex in alpha, F is
convex and compact). g is convex and piecewise linear in M variables; g is invariant under
alpha -> alpha + c 1 (sum w = 1), so we fix sum_i alpha_i = 0, and an optimal alpha with
max alpha - min alpha <= 1 exists (scores lie in [0, 1]: raising a price past that point
removes no more prompts from D but only raises h), so the box -1 <= alpha_i <= 1 loses nothing.

Solver: Kelley's cutting planes on (1), with D and h cut separately. The master LP is

    min  t_D + t_H   s.t.  t_D >= D(alpha_k) - (n_k / N) . (alpha - alpha_k)   (lambda_k)
                           t_H >= w_l . alpha                                  (mu_l)
                           sum_i alpha_i = 0,  -1 <= alpha <= 1,

where n_k are the argmax counts at alpha_k (a subgradient of D is -n_k/N) and w_l the
maximiser of h at alpha_l (h is the max of the linear functions w_l . alpha). Its value is a
LOWER bound on min g; every g(alpha_k) is an UPPER bound. Its LP dual says the same from the
primal side: lambda and mu are convex weights with sum_k lambda_k n_k / N = sum_l mu_l w_l =: w*
(when the box is inactive), so routing every prompt by the lambda-mixture of the argmax
assignments at the alpha_k is a feasible assignment for the fractions w* in F, with score
sum_k lambda_k A_k (A_k: mean score of the argmax assignment at alpha_k) = the master value.
The loop stops when UB - LB <= ``tol`` (1e-9 by default); the result is then optimal to that
tolerance with a certificate on both sides, and w* is returned. Kelley's method terminates
finitely on a piecewise-linear function (finitely many cuts exist); ``max_iter`` caps it and
a run that does not certify (cap reached, active box, non-convex envelope) falls back to the
HiGHS LP of ``routerwise.optimize.fixed_setup`` -- never to an uncertified answer.

A non-convex secant envelope (a curve with a concave kink) makes F a union of convex pieces:
each model's envelope splits into maximal convex runs and every combination of runs is
solved as above (``max_regions`` caps the combinations; past it the HiGHS MIP of
``routerwise.optimize.fixed_setup`` runs instead). The best piece is the optimum over F.

Each iteration costs one pass over the N x M scores (argmax) and two LPs with M-ish columns,
so a setup over 10,000 prompts solves in milliseconds to tens of milliseconds, where the
N x M LP takes seconds. The multipliers (beta, nu) of h at the best alpha are returned too:
``routerwise.optimize.exact_search.LagrangianBounds`` bounds every other setup with them, as with the LP.
"""

from __future__ import annotations

import itertools

import numpy as np

from .assignment import ScoreGroups
from .fixed_setup import INF, FixedSetupLP, RoutingResult
from .highs import new_highs
from .latency import MassSecants, project_fractions
from .price_space import argmax_assignment, tighten

__all__ = ["PriceRouting", "convex_runs"]


def convex_runs(sec: MassSecants) -> list[tuple[float, float, MassSecants]]:
    """Split a secant envelope into maximal convex runs: [(w_lo, w_hi, envelope on the run)].

    A non-convex envelope makes the feasible set F a union of convex pieces, one per choice of
    run for every model; the optimum over F is the best optimum over the pieces (each exact).
    """
    if sec.w.size < 2 or sec.convex:
        return [(0.0, float(sec.w_top), sec)]
    s = sec.slopes
    scale = max(1.0, float(np.abs(s).max()))
    cut = np.flatnonzero(np.diff(s) < -1e-9 * scale) + 1      # breakpoint where slope falls
    starts = np.r_[0, cut]
    ends = np.r_[cut, sec.w.size - 1]
    out = []
    for a, b in zip(starts, ends):
        out.append((float(sec.w[a]), float(sec.w[b]),
                    MassSecants(sec.w[a:b + 1], sec.phi[a:b + 1], True, float(sec.w[b]))))
    return out


class _SupportLP:
    """h(alpha) = max alpha . w over the feasible fractions of one setup (secant SLO model)."""

    def __init__(self, w_lo: np.ndarray, w_top: np.ndarray, secants: list[MassSecants] | None,
                 tau_ms: float):
        import highspy
        M = w_top.size
        self.M = M
        mean = secants is not None
        h = new_highs()
        tighten(h)
        ncol = 2 * M if mean else M
        lower = np.r_[np.asarray(w_lo, float), np.zeros(ncol - M)]
        top = np.asarray(w_top, float)
        upper = np.r_[top, np.full(M, INF)] if mean else top
        h.addVars(ncol, lower, upper)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        h.addRow(1.0, 1.0, M, np.arange(M, dtype=np.int32), np.ones(M))          # sum w = 1
        if mean:
            h.addRow(-INF, tau_ms, M, np.arange(M, 2 * M, dtype=np.int32), np.ones(M))   # SLO
            for i, sec in enumerate(secants):
                for sl, ic in zip(sec.slopes, sec.intercepts):                   # t_i >= secant
                    h.addRow(float(ic), INF, 2, np.array([M + i, i], dtype=np.int32),
                             np.array([1.0, -float(sl)]))
        self.h, self.mean, self._hs = h, mean, highspy

    def solve(self, alpha: np.ndarray):
        """(h(alpha), maximiser w, beta, nu) or None when F is empty."""
        h = self.h
        h.changeColsCost(self.M, np.arange(self.M, dtype=np.int32), np.asarray(alpha, float))
        h.run()
        st = h.getModelStatus()
        if st != self._hs.HighsModelStatus.kOptimal:
            return None
        sol = h.getSolution()
        rd = np.asarray(sol.row_dual)
        w = np.asarray(sol.col_value)[:self.M]
        beta = max(0.0, float(rd[1])) if self.mean else 0.0
        return float(h.getInfo().objective_function_value), w, beta, float(rd[0])


class PriceRouting:
    """Exact routing of one setup by cutting planes over M prices (module docstring).

    Drop-in for :class:`routerwise.optimize.fixed_setup.FixedSetupLP`: ``solve(w_top, secants)`` returns a
    :class:`~routerwise.optimize.fixed_setup.RoutingResult` (or None when no routing meets the limits),
    with ``stats`` counting iterations and fallbacks.
    """

    def __init__(self, groups: ScoreGroups, mean_aggregate: bool, tau_ms: float, *,
                 tol: float = 1e-9, accept_tol: float = 1e-7, max_iter: int = 400,
                 max_regions: int = 64):
        self.groups, self.mean, self.tau = groups, mean_aggregate, float(tau_ms)
        self.tol, self.accept_tol, self.max_iter = tol, accept_tol, max_iter
        self.max_regions = max_regions
        self._lp: FixedSetupLP | None = None
        self.stats = {"solves": 0, "iterations": 0, "fallbacks": 0, "regions": 0}

    def _fallback(self, w_top, secants):
        self.stats["fallbacks"] += 1
        if self._lp is None:
            self._lp = FixedSetupLP(self.groups, self.mean, self.tau)
        return self._lp.solve(w_top, secants)

    def solve(self, w_top: np.ndarray, secants: list[MassSecants] | None) -> RoutingResult | None:
        self.stats["solves"] += 1
        w_top = np.asarray(w_top, dtype=float)
        M = w_top.size
        if np.sum(w_top) < 1 - 1e-12:
            return None
        if not self.mean:
            return self._solve_region(_SupportLP(np.zeros(M), w_top, None, self.tau), w_top,
                                      secants)
        runs = [convex_runs(sec) for sec in secants]
        regions = int(np.prod([len(r) for r in runs]))
        if regions > self.max_regions:
            return self._fallback(w_top, secants)
        self.stats["regions"] += regions
        best = None
        for combo in itertools.product(*runs):
            lo = np.array([c[0] for c in combo])
            hi = np.array([c[1] for c in combo])
            if lo.sum() > 1 + 1e-12 or hi.sum() < 1 - 1e-12:
                continue
            res = self._solve_region(_SupportLP(lo, hi, [c[2] for c in combo], self.tau),
                                     w_top, secants)
            if res is not None and (best is None or res.score > best.score):
                best = res
        return best

    def _solve_region(self, sup, w_top, secants) -> RoutingResult | None:
        import highspy
        M = w_top.size
        groups = self.groups
        # Master: columns alpha (M), t_D, t_H.
        m = new_highs()
        tighten(m)
        m.addVars(M + 2, np.r_[np.full(M, -1.0), -INF, -INF], np.r_[np.ones(M), INF, INF])
        m.changeColsCost(M + 2, np.arange(M + 2, dtype=np.int32), np.r_[np.zeros(M), 1.0, 1.0])
        m.addRow(0.0, 0.0, M, np.arange(M, dtype=np.int32), np.ones(M))
        cols = np.arange(M + 1, dtype=np.int32)
        kinds, A_vals, W = [], [], []   # per cut row: "D"/"H"; score A_k; n_k/N or w_l
        alpha = np.zeros(M)
        ub, best = np.inf, None
        lb = -np.inf
        for it in range(1, self.max_iter + 1):  # noqa: B007 (read after the loop)
            D, share, A, _ = argmax_assignment(groups, alpha)
            hs = sup.solve(alpha)
            if hs is None:
                return None                     # no fractions meet the limits
            hval, w, beta, nu = hs
            g = D + hval
            if g < ub:
                ub, best = g, (alpha.copy(), beta, nu)
            # D cut: t_D + share . alpha >= D + share . alpha_k
            m.addRow(D + float(share @ alpha), INF, M + 1, cols, np.r_[share, 1.0])
            kinds.append("D")
            A_vals.append(A)
            W.append(share)
            # H cut: t_H - w . alpha >= 0
            m.addRow(0.0, INF, M + 1, np.r_[np.arange(M), M + 1].astype(np.int32),
                     np.r_[-w, 1.0])
            kinds.append("H")
            A_vals.append(0.0)
            W.append(w)
            m.run()
            if m.getModelStatus() != highspy.HighsModelStatus.kOptimal:   # pragma: no cover
                break
            lb = float(m.getInfo().objective_function_value)
            if ub - lb <= self.tol * max(1.0, abs(ub)):
                break
            nxt = np.asarray(m.getSolution().col_value)[:M]
            if np.abs(nxt - alpha).max() <= 1e-13:
                break       # the master repeats its point: no cut can close the gap further
            alpha = nxt
        self.stats["iterations"] += it
        if ub - lb > self.accept_tol * max(1.0, abs(ub)):
            return self._fallback(w_top, secants)
        # Primal recovery from the master duals (mu on H cuts, lambda on D cuts).
        sol = m.getSolution()
        rd = np.abs(np.asarray(sol.row_dual)[1:])
        kinds = np.array(kinds)
        lam_d, mu_h = rd[kinds == "D"], rd[kinds == "H"]
        if abs(lam_d.sum() - 1) > 1e-7 or abs(mu_h.sum() - 1) > 1e-7 or \
                np.any(np.abs(np.asarray(sol.col_dual)[:M]) > 1e-9):
            return self._fallback(w_top, secants)   # box active: the certificate does not hold
        W = np.array(W)
        w_mix = mu_h @ W[kinds == "H"] / mu_h.sum()
        if np.abs(lam_d @ W[kinds == "D"] / lam_d.sum() - w_mix).max() > 1e-7:
            return self._fallback(w_top, secants)   # counts and fractions disagree: no certificate
        w_star = project_fractions(w_mix, w_top)
        score = float(np.array(A_vals)[kinds == "D"] @ lam_d / lam_d.sum())
        a_best, beta, nu = best
        return RoutingResult(min(score, ub), w_star, a_best - a_best.mean(), nu, beta, a_best)
