"""Per-setup search context and the Lagrangian upper bounds every setup-space solver prunes with.

The bound of setup Theta, for any prices alpha (LP duality of the score S, see
``routerwise.optimize.assignment``)::

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

from dataclasses import dataclass

import numpy as np

from ..problem import Problem
from .assignment import ScoreGroups, group_scores
from .fixed_setup import option_limits
from .latency import CurveBank, MassSecants
from .setup_space import RetainedSetups, enumerate_setups

__all__ = ["SearchContext", "dual_part", "greedy_fill", "setup_bounds", "LagrangianBounds"]


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
              groups: ScoreGroups | None = None) -> SearchContext:
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


def unlimited_capacity_bound(problem: Problem) -> float:
    """U = (1/N) sum_j max_i s_ji: the score if every prompt went to its best model.

    No cluster, setup or SLO can do better (every plan's score is a mean over prompts of a
    convex combination of that prompt's model scores), so it caps any proven bound: a master
    stopped before its root LP otherwise reports bounds above 1 for a mean score in [0, 1].
    """
    return float(problem.workload.scores.max(axis=1).mean())


def capped_bound(problem: Problem, bound: float | None) -> float | None:
    """``bound`` no higher than :func:`unlimited_capacity_bound` (None stays None)."""
    return None if bound is None else min(float(bound), unlimited_capacity_bound(problem))


def dual_part(groups: ScoreGroups, alpha: np.ndarray) -> float:
    """D(alpha) = (1/N) sum_j max_i (s_ji - alpha_i)."""
    return float(groups.counts @ np.max(groups.scores - alpha[None, :], axis=1)
                 / groups.num_prompts)


def greedy_fill(coef: np.ndarray, cap: np.ndarray):
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
        h, _ = greedy_fill(a, cap)
    else:
        tau = ctx.problem.slo.latency_ms
        l0 = ctx.l0[ids]
        # Lowest l0-weighted latency any fill reaches: above tau means infeasible.
        _, w_fast = greedy_fill(-l0, cap)
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
            val, _ = greedy_fill(a - b[:, None] * l0, cap)
            h = np.minimum(h, b * tau + val)
    return np.where(feasible, dual_part(ctx.groups, alpha) + h, -np.inf)


class LagrangianBounds:
    """Bounds for ALL setups from one solved setup's multipliers, in one vectorised pass.

    Relaxing R2 (prices alpha), R3 (nu) and R5 (beta >= 0) of the routing LP
    (``routerwise.optimize.fixed_setup``) gives, for every setup Theta and any (alpha, beta, nu),

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
