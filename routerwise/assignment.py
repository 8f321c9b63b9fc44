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
the argmax rule alone cannot realise a split, see ``routerwise.router``). Prices are defined
up to a common constant (sum_i w_i = 1); we normalise them to mean zero.

Identical score rows are merged with multiplicities (:class:`ScoreGroups`), which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from .errors import ValidationError


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


def score_of_fractions(groups: ScoreGroups, fractions) -> AssignmentResult:
    """Exact S(w) with prices, by the transportation LP (HiGHS through SciPy)."""
    w = np.asarray(fractions, dtype=float)
    M = groups.num_models
    if w.shape != (M,) or not np.all(np.isfinite(w)) or w.min() < -1e-9 or abs(w.sum() - 1) > 1e-6:
        raise ValidationError(f"fractions must be {M} non-negative numbers summing to 1, got {w}")
    w = np.clip(w, 0, None)
    w = w / w.sum()
    N = groups.num_prompts
    A = _transport_lp(groups)
    b = np.concatenate([groups.counts, N * w])
    c = -groups.scores.ravel() / N
    res = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
    if res.status != 0:  # pragma: no cover - the transportation LP is always feasible
        raise RuntimeError(f"assignment LP failed: {res.message}")
    J = groups.scores.shape[0]
    duals = res.eqlin.marginals[J:]  # d(-S)/d(N w_i)
    prices = -duals * N
    return AssignmentResult(float(-res.fun), prices - prices.mean(),
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
