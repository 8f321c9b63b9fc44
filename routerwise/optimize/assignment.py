"""The score of routing fractions, S(w), its prices, and the paper's subgradient for them.

For fractions w on the simplex,

    S(w) = (1/N) max_z  sum_j sum_i s_ji z_ji
           s.t. sum_i z_ji = 1 (each prompt routed once),  sum_j z_ji = N w_i (model i's count),
                z >= 0.

This is a transportation problem: its constraint matrix is totally unimodular, so whenever
N w_i are integers the LP optimum is an integral assignment, and otherwise the LP value is the
natural fractional extension. S is concave and piecewise linear in w. By LP duality

    S(w) = min_alpha  (1/N) sum_j max_i (s_ji - alpha_i) + sum_i alpha_i w_i,

and any optimal alpha is a supergradient of S at w: the *prices*. Given prices, each prompt goes
to argmax_i (s_ji - alpha_i); prompts tied at the prices are split by the LP (ties need care:
the argmax rule alone cannot realise a split, see ``routerwise.planning.online_router``). Prices are defined
up to a common constant (sum_i w_i = 1); we normalise them to mean zero.

Identical score rows are merged with multiplicities (:class:`ScoreGroups`), which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ..errors import ValidationError

__all__ = ["ScoreGroups", "group_scores", "AssignmentResult", "PRICE_SPACE_MIN_GROUPS",
           "score_of_fractions", "argmax_counts", "prices_by_subgradient", "dual_value",
           "central_prices", "prompt_shares", "plan_prices"]


@dataclass(frozen=True)
class ScoreGroups:
    """Unique score rows (J x M) with multiplicities; N = total prompts."""

    scores: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray

    @property
    def num_prompts(self) -> int:
        return int(self.counts.sum())

    @property
    def num_models(self) -> int:
        return int(self.scores.shape[1])


def group_scores(scores: np.ndarray) -> ScoreGroups:
    s = np.asarray(scores, dtype=float)
    uniq, inverse, counts = np.unique(s, axis=0, return_inverse=True, return_counts=True)
    return ScoreGroups(uniq, counts.astype(float), inverse.ravel())


@dataclass(frozen=True)
class AssignmentResult:
    score: float             # S(w)
    prices: np.ndarray       # alpha (mean zero)
    z: np.ndarray            # J x M prompts of each group sent to each model


def _transport_lp(groups: ScoreGroups):
    J, M = groups.scores.shape
    rows_a = sp.kron(sp.eye(J), np.ones((1, M)))          # sum_i z_ji = n_j
    rows_b = sp.kron(np.ones((1, J)), sp.eye(M))          # sum_j z_ji = N w_i
    return sp.vstack([rows_a, rows_b]).tocsr()


PRICE_SPACE_MIN_GROUPS = 1000


def score_of_fractions(groups: ScoreGroups, fractions) -> AssignmentResult:
    """Exact S(w) with prices, by the transportation LP (HiGHS through SciPy), or for at least
    PRICE_SPACE_MIN_GROUPS distinct prompts by cutting planes over the M prices
    (``routerwise.optimize.price_space.score_at_fractions``, certified to 1e-9)."""
    w = np.asarray(fractions, dtype=float)
    M = groups.num_models
    if w.shape != (M,) or not np.all(np.isfinite(w)) or w.min() < -1e-9 or abs(w.sum() - 1) > 1e-6:
        raise ValidationError(f"fractions must be {M} non-negative numbers summing to 1, got {w}")
    w = np.clip(w, 0, None)
    w = w / w.sum()
    N = groups.num_prompts
    J = groups.scores.shape[0]
    if J >= PRICE_SPACE_MIN_GROUPS:
        # Many distinct prompts: the LP below takes minutes at 10,000 x 4; the M-price
        # cutting planes give the same optimum with a certificate (None: not certified).
        from .price_space import score_at_fractions
        r = score_at_fractions(groups, w)
        if r is not None:
            return AssignmentResult(r[0], r[1], r[2])
    A = _transport_lp(groups)
    b = np.concatenate([groups.counts, N * w])
    # Unscaled costs: with costs s / N the default dual tolerance (1e-7) is large against
    # costs of 1e-4 at N = 10,000 and the optimum was off by 1e-6 (measured).
    c = -groups.scores.ravel()
    res = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
    if res.status != 0:  # pragma: no cover - the transportation LP is always feasible
        raise RuntimeError(f"assignment LP failed: {res.message}")
    duals = res.eqlin.marginals[J:]  # d(-N S)/d(N w_i)
    prices = -duals
    return AssignmentResult(float(-res.fun) / N, prices - prices.mean(),
                            res.x.reshape(J, M))


def argmax_counts(groups: ScoreGroups, prices: np.ndarray) -> np.ndarray:
    """n_i(alpha): prompts whose argmax_i (s_ji - alpha_i) is i (ties to the lowest index).

    ``prices`` may be (M,) or a batch (B, M); the result has the same leading shape.
    """
    a = np.asarray(prices, dtype=float)
    batch = a.ndim == 2
    a2 = a if batch else a[None, :]
    B, M = a2.shape
    # Running argmax over the few models: cheaper than materialising (B, J, M).
    best = np.zeros((B, groups.scores.shape[0]), dtype=np.intp)
    best_val = groups.scores[None, :, 0] - a2[:, 0:1]
    for i in range(1, M):
        v = groups.scores[None, :, i] - a2[:, i:i + 1]
        better = v > best_val
        best[better] = i
        best_val = np.where(better, v, best_val)
    idx = best + M * np.arange(B)[:, None]
    counts = np.bincount(idx.ravel(), weights=np.tile(groups.counts, B),
                         minlength=B * M).reshape(B, M)
    return counts if batch else counts[0]


def prices_by_subgradient(groups: ScoreGroups, fractions, *, prices0=None, iters: int = 200,
                          step: float = 0.5, record: bool = False):
    """The paper's stage 1: alpha_i += step_t * (n_i(alpha) - c_i) / N with c_i = N w_i.

    ``fractions`` and ``prices0`` may be batched (B, M). Step ``step / sqrt(t)`` (diminishing,
    the textbook choice for a subgradient method; the paper does not state its rule). Returns the
    final prices (mean zero) and, if ``record``, the per-iteration max |n_i - c_i| / N.
    """
    w = np.asarray(fractions, dtype=float)
    N = groups.num_prompts
    a = np.zeros_like(w) if prices0 is None else np.array(prices0, dtype=float)
    hist = []
    for t in range(1, iters + 1):
        n = argmax_counts(groups, a)
        mismatch = n / N - w
        if record:
            hist.append(float(np.abs(mismatch).max()))
        a = a + (step / np.sqrt(t)) * mismatch
    a = a - a.mean(axis=-1, keepdims=True)
    return (a, hist) if record else a


def dual_value(groups: ScoreGroups, prices, fractions) -> float:
    """(1/N) sum_j max_i (s_ji - alpha_i) + alpha . w: an upper bound on S(w) for any alpha."""
    a = np.asarray(prices, dtype=float)
    w = np.asarray(fractions, dtype=float)
    return float(groups.counts @ np.max(groups.scores - a[None, :], axis=1)
                 / groups.num_prompts + a @ w)


def central_prices(groups: ScoreGroups, z: np.ndarray, tol: float = 1e-6,
                   fallback: np.ndarray | None = None) -> np.ndarray:
    """Optimal prices with the widest margin: the prices the online router should use.

    At a kink of S many price vectors are optimal (any alpha satisfying complementary
    slackness with the assignment z). A vertex solution leaves some prompts exactly tied, so
    the argmax rule cannot reproduce the plan. Among all optimal prices this picks the one
    maximising the margin delta by which every prompt prefers its planned model:

        max delta  s.t.  s_ji - alpha_i >= s_jk - alpha_k + delta   (z_ji > 0, z_jk = 0)
                         s_ji - alpha_i  = s_jk - alpha_k           (z_ji > 0, z_jk > 0)
                         sum_i alpha_i = 0,   0 <= delta <= 1.

    delta = 0 is feasible in exact arithmetic (LP duality); every constraint gets a slack of
    1e-9 for floating-point noise in z, and if the LP is still infeasible the given
    ``fallback`` prices (the assignment LP's duals) are returned. The result is an optimal dual,
    hence still a supergradient of S.
    """
    J, M = groups.scores.shape
    used = np.asarray(z) > tol * np.maximum(groups.counts, 1.0)[:, None]
    A_ub, b_ub, A_eq, b_eq = [], [], [], []
    s = groups.scores
    for i in range(M):
        for k in range(M):
            if i == k:
                continue
            # rows j where i is used: alpha_k - alpha_i (+ delta) vs s_jk - s_ji
            row = np.zeros(M + 1)
            row[k], row[i] = 1.0, -1.0
            strict = used[:, i] & ~used[:, k]
            if strict.any():
                r = row.copy()
                r[M] = -1.0                      # -(alpha_k - alpha_i - delta) <= -(s_jk - s_ji)
                A_ub.append(np.repeat(-r[None, :], strict.sum(), 0))
                b_ub.append(-(s[strict, k] - s[strict, i]) + 1e-9)
            both = used[:, i] & used[:, k]
            if both.any():   # ties both ways, within the slack
                A_ub.append(np.repeat(-row[None, :], both.sum(), 0))
                b_ub.append(-(s[both, k] - s[both, i]) + 1e-9)
    A_eq.append(np.r_[np.ones(M), 0.0][None, :])
    b_eq.append(np.zeros(1))
    c = np.zeros(M + 1)
    c[M] = -1.0
    res = linprog(c, A_ub=np.vstack(A_ub) if A_ub else None,
                  b_ub=np.concatenate(b_ub) if b_ub else None,
                  A_eq=np.vstack(A_eq), b_eq=np.concatenate(b_eq),
                  bounds=[(None, None)] * M + [(0.0, 1.0)], method="highs")
    if res.status != 0:
        if fallback is None:
            raise RuntimeError(f"central price LP failed: {res.message}")
        return np.asarray(fallback, dtype=float) - np.mean(fallback)
    return res.x[:M]


def prompt_shares(groups: ScoreGroups, fractions) -> np.ndarray:
    """N x M: the share of each prompt the exact assignment at ``fractions`` sends to each model
    (a group split between models spreads evenly over its member prompts)."""
    z = score_of_fractions(groups, fractions).z
    return (z / groups.counts[:, None])[groups.inverse]


def plan_prices(groups: ScoreGroups, fractions) -> np.ndarray:
    """Router prices for a plan: the widest-margin optimal prices of S at ``fractions``."""
    r = score_of_fractions(groups, fractions)
    return central_prices(groups, r.z, fallback=r.prices)
