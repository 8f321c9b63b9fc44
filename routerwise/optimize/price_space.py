"""S(w) in price space: the score of fixed fractions by cutting planes over the M prices.

For fixed fractions w, ``S(w) = min_alpha D(alpha) + alpha . w`` with
``D(alpha) = (1/N) sum_j max_i (s_ji - alpha_i)`` (LP duality of the assignment, see
``routerwise.optimize.assignment``). D is convex and piecewise linear; its cutting planes at
the argmax assignments give the exact value with a two-sided certificate in a few dozen small
LPs over M + 1 variables, whatever the number of prompts. ``groups`` is a
``routerwise.optimize.assignment.ScoreGroups``.
"""

from __future__ import annotations

import numpy as np

from .highs import new_highs

__all__ = ["argmax_assignment", "tighten", "score_at_fractions"]

INF = 1e30  # HiGHS reads anything above 1e20 as infinite (as in fixed_setup)


def argmax_assignment(groups, alpha: np.ndarray):
    """(D(alpha), n(alpha)/N, A(alpha), argmax index per group) at prices alpha."""
    v = groups.scores - alpha[None, :]
    idx = np.argmax(v, axis=1)
    N = groups.num_prompts
    best = v[np.arange(v.shape[0]), idx]
    D = float(groups.counts @ best) / N
    share = np.bincount(idx, weights=groups.counts, minlength=groups.scores.shape[1]) / N
    A = D + float(alpha @ share)
    return D, share, A, idx


def tighten(h) -> None:
    # Both LPs are tiny; tighter than default tolerances let the certificate reach 1e-9.
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)


def score_at_fractions(groups, fractions, *, tol: float = 1e-9,
                       max_iter: int = 400):
    """S(w) = min_alpha D(alpha) + alpha . w for FIXED fractions, by the same cutting planes.

    Returns ``(score, prices, z)`` with z (J x M) the lambda-mixture of argmax assignments
    (counts N w up to 1e-7), or None when the certificate is not reached (the caller then uses
    the transportation LP). Here h(alpha) = alpha . w is linear, so only D is cut.
    """
    import highspy
    w = np.asarray(fractions, dtype=float)
    M = w.size
    m = new_highs()
    tighten(m)
    m.addVars(M + 1, np.r_[np.full(M, -1.0), -INF], np.r_[np.ones(M), INF])
    m.changeColsCost(M + 1, np.arange(M + 1, dtype=np.int32), np.r_[w, 1.0])
    m.addRow(0.0, 0.0, M, np.arange(M, dtype=np.int32), np.ones(M))
    cols = np.arange(M + 1, dtype=np.int32)
    alpha = np.zeros(M)
    ub, a_best, idxs, A_vals, shares = np.inf, alpha, [], [], []
    lb = -np.inf
    for _ in range(max_iter):
        D, share, A, idx = argmax_assignment(groups, alpha)
        if D + alpha @ w < ub:
            ub, a_best = D + float(alpha @ w), alpha.copy()
        m.addRow(D + float(share @ alpha), INF, M + 1, cols, np.r_[share, 1.0])
        idxs.append(idx)
        A_vals.append(A)
        shares.append(share)
        m.run()
        if m.getModelStatus() != highspy.HighsModelStatus.kOptimal:   # pragma: no cover
            return None
        lb = float(m.getInfo().objective_function_value)
        if ub - lb <= tol * max(1.0, abs(ub)):
            break
        nxt = np.asarray(m.getSolution().col_value)[:M]
        if np.abs(nxt - alpha).max() <= 1e-13:
            break
        alpha = nxt
    sol = m.getSolution()
    lam = np.abs(np.asarray(sol.row_dual)[1:])
    if ub - lb > 1e-7 * max(1.0, abs(ub)) or abs(lam.sum() - 1) > 1e-7 or \
            np.any(np.abs(np.asarray(sol.col_dual)[:M]) > 1e-9) or \
            np.abs(lam @ np.array(shares) - w).max() > 1e-7:
        return None
    lam = lam / lam.sum()
    J = groups.scores.shape[0]
    z = np.zeros((J, M))
    for l, idx in zip(lam, idxs):
        if l > 0:
            z[np.arange(J), idx] += l * groups.counts
    return min(float(np.array(A_vals) @ lam), ub), a_best - a_best.mean(), z
