"""S(w), its prices, and the paper's subgradient: against brute force and duality."""

import itertools

import numpy as np
import pytest

from routerwise.optimize.assignment import (
    argmax_counts,
    dual_value,
    group_scores,
    prices_by_subgradient,
    score_of_fractions,
)


def brute_force_score(scores, counts):
    """Best integral assignment with exactly counts[i] prompts on model i."""
    N, M = scores.shape
    best = -np.inf
    for labels in itertools.product(range(M), repeat=N):
        if np.all(np.bincount(labels, minlength=M) == counts):
            best = max(best, scores[np.arange(N), labels].sum())
    return best / N


def test_score_matches_brute_force_at_integral_counts():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.uniform(size=(7, 3)).round(2)
        counts = rng.multinomial(7, [1 / 3] * 3)
        got = score_of_fractions(group_scores(s), counts / 7).score
        assert got == pytest.approx(brute_force_score(s, counts), abs=1e-9)


def test_grouping_identical_rows_is_exact():
    rng = np.random.default_rng(1)
    base = rng.uniform(size=(5, 3))
    s = base[rng.integers(0, 5, 40)]
    g = group_scores(s)
    assert g.scores.shape[0] <= 5 and g.num_prompts == 40
    w = np.array([0.2, 0.5, 0.3])
    # Against the LP on the ungrouped matrix (each row its own group).
    ungrouped = type(g)(s, np.ones(40), np.arange(40))
    assert score_of_fractions(g, w).score == pytest.approx(score_of_fractions(ungrouped, w).score)


def test_prices_are_supergradients_and_weak_duality_holds():
    rng = np.random.default_rng(2)
    g = group_scores(rng.uniform(size=(60, 4)))
    w = np.array([0.1, 0.2, 0.3, 0.4])
    r = score_of_fractions(g, w)
    assert dual_value(g, r.prices, w) == pytest.approx(r.score, abs=1e-9)   # strong duality
    for _ in range(50):
        v = rng.dirichlet(np.ones(4))
        assert score_of_fractions(g, v).score <= r.score + r.prices @ (v - w) + 1e-9
        assert dual_value(g, rng.normal(0, 0.3, 4), v) >= score_of_fractions(g, v).score - 1e-9


def test_paper_subgradient_prices_converge_to_the_counts():
    rng = np.random.default_rng(3)
    g = group_scores(rng.uniform(size=(400, 3)))
    w = np.array([0.5, 0.3, 0.2])
    a, hist = prices_by_subgradient(g, w, iters=3000, step=0.2, record=True)
    assert hist[-1] < hist[0]
    assert np.abs(argmax_counts(g, a) / 400 - w).max() <= 0.02
    assert dual_value(g, a, w) == pytest.approx(score_of_fractions(g, w).score, abs=2e-3)


def test_argmax_counts_batched_matches_single():
    rng = np.random.default_rng(4)
    g = group_scores(rng.uniform(size=(50, 3)))
    a = rng.normal(0, 0.2, (6, 3))
    batched = argmax_counts(g, a)
    for row, c in zip(a, batched):
        np.testing.assert_array_equal(argmax_counts(g, row), c)
        assert c.sum() == 50
