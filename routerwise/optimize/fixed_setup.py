"""Exact routing for a FIXED setup: the inner problem, solved to optimality.

For a fixed setup Theta (one curve per model) the routing problem is

    max_{w, z}  (1/N) sum_j sum_i s_ji z_ji
    s.t.  sum_i z_ji = n_j                      (R1: each prompt group routed)
          sum_j z_ji = N w_i                    (R2: model i's count; dual = price alpha_i)
          sum_i w_i = 1                         (R3)
          0 <= w_i <= w_top_i                   (load within the profiled range and below tau)
          sum_i phi_i(w_i) <= tau               (R5: SLO, aggregate "mean")
    or    l_i(lambda w_i) <= tau for all i      (aggregate "max": folded into w_top_i)

Two exact solvers:

* :class:`FixedSetupLP` (HiGHS, reused across setups): phi_i enters through its secant envelope
  (``routerwise.optimize.latency.mass_secants``, conservative by at most ``tol_ms`` per model) as
  ``t_i >= slope_p w_i + intercept_p`` (R4) when the envelope is convex, and through an
  incremental piecewise-linear formulation with binaries when it is not. This is the same
  latency model as the MILP, so the two agree exactly.
* :func:`solve_routing_cvxpy` (cvxpy): phi_i written exactly as max_k (a_k w + q_k w^2) over the
  curve's segments, valid for convex curves, solved by a conic solver. It checks the other two
  (agreement up to the secant tolerance) and the paper's dual method setup by setup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import SolverUnavailable, ValidationError
from ..problem import LatencyCurve, Problem, SystemSetup
from .assignment import ScoreGroups, group_scores, plan_prices, score_of_fractions
from .highs import new_highs
from .latency import (
    MassSecants,
    fraction_where_latency_reaches,
    mass_secants,
    max_fraction,
    plan_latency_ms,
    project_fractions,
)
from .solution import Solution

__all__ = ["INF", "mass_tol_ms", "option_limits", "RoutingResult", "FixedSetupLP", "evaluate_plan",
           "solve_routing", "solve_routing_cvxpy"]

INF = 1e30


def mass_tol_ms(problem: Problem) -> float:
    """Per-model secant tolerance: the M envelopes together over-estimate L by <= 1e-4 tau."""
    return 1e-4 * problem.slo.latency_ms / problem.num_models


def option_limits(curve: LatencyCurve, problem: Problem, tol_ms: float | None = None):
    """(w_top, secants or None) of one curve under the problem's SLO."""
    lam, tau = problem.arrival_rate_rps, problem.slo.latency_ms
    if problem.slo.aggregate == "max":
        return min(max_fraction(curve, lam), fraction_where_latency_reaches(curve, tau, lam)), None
    sec = mass_secants(curve, lam, tau, mass_tol_ms(problem) if tol_ms is None else tol_ms)
    return sec.w_top, sec


@dataclass
class RoutingResult:
    score: float
    fractions: np.ndarray
    prices: np.ndarray
    # Lagrange multipliers of R3 (nu) and R5 (beta, score per ms); None for a MIP solve.
    # With the un-centred prices they certify the optimum: see routerwise.optimize.exact_search.
    nu: float | None = None
    beta: float | None = None
    raw_prices: np.ndarray | None = None


class FixedSetupLP:
    """One HiGHS model for the routing LP, re-used across setups (only R4 rows and w bounds change)."""

    def __init__(self, groups: ScoreGroups, mean_aggregate: bool, tau_ms: float):
        import highspy
        self._hs = highspy
        self.groups = groups
        J, M = groups.scores.shape
        self.J, self.M, self.mean = J, M, mean_aggregate
        N = groups.num_prompts
        nz, nw, nt = J * M, M, M if mean_aggregate else 0
        self.w0, self.t0 = nz, nz + nw
        ncol = nz + nw + nt
        cost = np.zeros(ncol)
        cost[:nz] = groups.scores.ravel() / N
        lower = np.zeros(ncol)
        upper = np.full(ncol, INF)
        upper[nz:nz + nw] = 1.0
        # Rows R1 (J), R2 (M), R3 (1), R5 (1 if mean) in CSR form.
        starts, idx, val, lo, hi = [], [], [], [], []

        def row(cols, coefs, lb, ub):
            starts.append(len(idx))
            idx.extend(cols)
            val.extend(coefs)
            lo.append(lb)
            hi.append(ub)

        for j in range(J):
            row(range(j * M, j * M + M), [1.0] * M, groups.counts[j], groups.counts[j])
        for i in range(M):
            row(list(range(i, nz, M)) + [nz + i], [1.0] * J + [-float(N)], 0.0, 0.0)
        row(range(nz, nz + nw), [1.0] * M, 1.0, 1.0)
        if mean_aggregate:
            row(range(self.t0, self.t0 + M), [1.0] * M, -INF, tau_ms)
        self.num_base_rows = len(lo)
        h = new_highs()
        # Re-solved thousands of times with small changes: presolve would redo its work each
        # time, and primal simplex from the previous basis is fastest here (measured).
        h.setOptionValue("presolve", "off")
        h.setOptionValue("simplex_strategy", 4)
        h.addVars(ncol, lower, upper)
        h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32), cost)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        h.addRows(len(lo), np.array(lo), np.array(hi), len(idx), np.array(starts, dtype=np.int32),
                  np.array(idx, dtype=np.int32), np.array(val))
        self.h = h
        self._extra_cols = 0
        # R4 rows live in fixed per-model slots (t_i - slope w_i >= intercept) that are
        # rewritten in place, so the simplex basis of the previous setup warm-starts the next.
        self._slots: list[list[int]] = [[] for _ in range(M)]

    def _reset(self):
        h = self.h
        if self._extra_cols:   # the binaries of a non-convex envelope, and their rows
            extra_rows = h.getNumRow() - self._mip_row0
            h.deleteRows(extra_rows, np.arange(self._mip_row0, h.getNumRow(), dtype=np.int32))
            base = h.getNumCol() - self._extra_cols
            h.deleteCols(self._extra_cols, np.arange(base, h.getNumCol(), dtype=np.int32))
            self._extra_cols = 0
        for slots in self._slots:                     # free every slot
            if slots:
                h.changeRowsBounds(len(slots), np.array(slots, dtype=np.int32),
                                   np.full(len(slots), -INF), np.full(len(slots), INF))

    def _slot_rows(self, i: int, n: int) -> list[int]:
        h, slots = self.h, self._slots[i]
        while len(slots) < n:
            r = h.getNumRow()
            h.addRow(-INF, INF, 2, np.array([self.t0 + i, self.w0 + i], dtype=np.int32),
                     np.array([1.0, 0.0]))
            slots.append(r)
        return slots[:n]

    def solve(self, w_top: np.ndarray, secants: list[MassSecants] | None) -> RoutingResult | None:
        """Optimal routing for one setup, or None when no routing meets the limits."""
        h = self.h
        self._reset()
        M = self.M
        if np.sum(w_top) < 1 - 1e-12:
            return None
        h.changeColsBounds(M, np.arange(self.w0, self.w0 + M, dtype=np.int32), np.zeros(M),
                           np.asarray(w_top, dtype=float))
        if self.mean:
            self._mip_row0 = None
            # Convex envelopes first: their slots must precede the MIP rows deleted next time.
            for i in sorted(range(M), key=lambda i: not secants[i].convex):
                self._add_mass(i, secants[i])
        h.run()
        status = h.getModelStatus()
        S = self._hs.HighsModelStatus
        if status not in (S.kOptimal, S.kInfeasible):
            h.clearSolver()        # numerical trouble from the warm start: solve from scratch
            h.run()
            status = h.getModelStatus()
        if status == S.kInfeasible:
            return None
        if status != S.kOptimal:  # pragma: no cover - defensive
            raise RuntimeError(f"routing LP ended with status {h.modelStatusToString(status)}")
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        w = project_fractions(x[self.w0:self.w0 + M], w_top)
        score = float(h.getInfo().objective_function_value)
        if self._extra_cols:   # a MIP has no duals: price at the fixed w with the transport LP
            prices = score_of_fractions(self.groups, w / w.sum()).prices
            return RoutingResult(score, w / w.sum(), prices)
        # A unit more RHS on R2_i is a unit more count for model i, so alpha_i = N * dual_i
        # (HiGHS's sign for a maximisation; checked by finite differences in the tests).
        rd = np.asarray(sol.row_dual)
        raw = rd[self.J:self.J + M] * self.groups.num_prompts
        nu = float(rd[self.J + M])
        beta = float(rd[self.J + M + 1]) if self.mean else 0.0
        return RoutingResult(score, w / w.sum(), raw - raw.mean(), nu, max(beta, 0.0), raw)

    def _add_mass(self, i: int, sec: MassSecants):
        h, t_col, w_col = self.h, self.t0 + i, self.w0 + i
        if sec.w.size < 2:          # nothing routable: w_top == 0 forces w_i = 0, t_i >= 0
            return
        if sec.convex:              # R4: t_i >= slope_p * w_i + intercept_p
            rows = self._slot_rows(i, sec.slopes.size)
            for r, sl in zip(rows, sec.slopes):
                h.changeCoeff(r, w_col, -float(sl))
            h.changeRowsBounds(len(rows), np.array(rows, dtype=np.int32), sec.intercepts,
                               np.full(len(rows), INF))
            return
        # Incremental PWL: w_i = sum_p dw_p d_p, t_i >= sum_p dphi_p d_p, d_{p+1} <= y_p <= d_p.
        dw, dphi = np.diff(sec.w), np.diff(sec.phi)
        P = dw.size
        if self._mip_row0 is None:
            self._mip_row0 = h.getNumRow()
        base = h.getNumCol()
        h.addVars(2 * P, np.zeros(2 * P), np.ones(2 * P))
        self._extra_cols += 2 * P
        d = np.arange(base, base + P, dtype=np.int32)
        y = np.arange(base + P, base + 2 * P, dtype=np.int32)
        h.changeColsIntegrality(P, y, np.ones(P, dtype=np.uint8))
        h.addRow(0.0, 0.0, P + 1, np.concatenate([[w_col], d]).astype(np.int32),
                 np.concatenate([[-1.0], dw]))
        h.addRow(0.0, INF, P + 1, np.concatenate([[t_col], d]).astype(np.int32),
                 np.concatenate([[1.0], -dphi]))
        for p in range(P):
            h.addRow(0.0, INF, 2, np.array([d[p], y[p]], dtype=np.int32), np.array([1.0, -1.0]))
            if p + 1 < P:
                h.addRow(0.0, INF, 2, np.array([y[p], d[p + 1]], dtype=np.int32),
                         np.array([1.0, -1.0]))


def _setup_curves(problem: Problem, setup: SystemSetup) -> list[LatencyCurve]:
    curves = []
    for i, s in enumerate(setup.per_model):
        c = problem.curve(i, s)
        if c is None:
            raise ValidationError(f"no latency curve for model {problem.models[i].name!r} at "
                                  f"{s.label()}")
        curves.append(c)
    return curves


def evaluate_plan(problem: Problem, setup: SystemSetup, fractions) -> float:
    """L(Theta, w) under the problem's SLO aggregate (mean: weighted sum; max: worst model)."""
    return plan_latency_ms(_setup_curves(problem, setup), fractions, problem.arrival_rate_rps,
                           problem.slo.aggregate)


def solve_routing(problem: Problem, setup: SystemSetup, *, groups: ScoreGroups | None = None,
                  solver_name: str = "routing-lp") -> Solution | None:
    """Optimal routing of one setup with HiGHS (secant latency model). None if infeasible."""
    t0 = time.perf_counter()
    groups = groups or group_scores(problem.workload.scores)
    curves = _setup_curves(problem, setup)
    lims = [option_limits(c, problem) for c in curves]
    lp = FixedSetupLP(groups, problem.slo.aggregate == "mean", problem.slo.latency_ms)
    res = lp.solve(np.array([w for w, _ in lims]), [s for _, s in lims])
    if res is None:
        return None
    L = evaluate_plan(problem, setup, res.fractions)
    return Solution(setup, res.fractions, plan_prices(groups, res.fractions), res.score, L,
                    solver_name, "optimal",
                    bound=None, solve_time_s=time.perf_counter() - t0,
                    notes=(f"latency mass secant tolerance {mass_tol_ms(problem):.3g} ms/model",))


def solve_routing_cvxpy(problem: Problem, setup: SystemSetup, *, solver: str = "CLARABEL",
                        groups: ScoreGroups | None = None) -> Solution | None:
    """Optimal routing of one setup with the exact quadratic latency mass (convex curves only)."""
    try:
        import cvxpy as cp
    except ImportError as e:  # pragma: no cover
        raise SolverUnavailable("cvxpy is not installed: pip install cvxpy") from e
    if solver not in cp.installed_solvers():
        raise SolverUnavailable(f"cvxpy solver {solver!r} is not installed (have "
                                f"{cp.installed_solvers()}); pip install {solver.lower()}")
    t0 = time.perf_counter()
    groups = groups or group_scores(problem.workload.scores)
    curves = _setup_curves(problem, setup)
    lam, tau = problem.arrival_rate_rps, problem.slo.latency_ms
    J, M = groups.scores.shape
    N = groups.num_prompts
    z = cp.Variable((J, M), nonneg=True)
    w = cp.Variable(M, nonneg=True)
    cons = [cp.sum(z, axis=1) == groups.counts, cp.sum(z, axis=0) == N * w, cp.sum(w) == 1]
    if problem.slo.aggregate == "max":
        caps = [min(max_fraction(c, lam), fraction_where_latency_reaches(c, tau, lam))
                for c in curves]
        cons.append(w <= np.array(caps))
    else:
        t = cp.Variable(M)
        for i, c in enumerate(curves):
            if not c.is_convex():
                raise ValidationError(
                    f"curve {c.key} is not convex, so its latency mass is not a convex function "
                    f"and cvxpy cannot express it; use solve_routing (HiGHS, exact PWL) instead")
            cons.append(w[i] <= max_fraction(c, lam))
            # phi = max over segments k of (a_k w + q_k w^2); below the first point a = y0, q = 0.
            cons.append(t[i] >= c.y[0] * w[i])
            for k in range(c.x.size - 1):
                b = (c.y[k + 1] - c.y[k]) / (c.x[k + 1] - c.x[k])
                cons.append(t[i] >= (c.y[k] - b * c.x[k]) * w[i] + b * lam * cp.square(w[i]))
        cons.append(cp.sum(t) <= tau)
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(groups.scores, z)) / N), cons)
    try:
        prob.solve(solver=solver)
    except cp.error.SolverError as e:
        raise SolverUnavailable(f"cvxpy/{solver} failed on the routing problem: {e}") from e
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        return None
    if prob.status not in ("optimal", "optimal_inaccurate"):  # pragma: no cover
        raise RuntimeError(f"cvxpy ended with status {prob.status}")
    wv = np.clip(np.asarray(w.value, dtype=float), 0, None)
    wv = wv / wv.sum()
    score = score_of_fractions(groups, wv).score
    L = evaluate_plan(problem, setup, wv)
    return Solution(setup, wv, plan_prices(groups, wv), score, L, f"routing-cvxpy[{solver}]",
                    "optimal" if prob.status == "optimal" else "feasible",
                    solve_time_s=time.perf_counter() - t0)
