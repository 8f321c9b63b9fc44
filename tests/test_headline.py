"""The headline's bounds, the spread sensitivity and the LLMRouter ladder's inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mirror
from scipy.optimize import linprog

from routerwise.errors import ValidationError
from routerwise.optimize.assignment import group_scores, score_of_fractions
from routerwise.optimize.exact_search import evaluate_all
from routerwise.paper import headline as h
from routerwise.problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
)
from routerwise.serving import architectures


def share_problem(scores, capacity_rps, base_ms, *, rate=10.0, tau=300.0, aggregate="mean"):
    """Models on ONE GPU whose compute shares sum to 1 (every split of ten tenths is a setup);
    model i at share rho carries up to ``capacity_rps[i] * rho`` req/s with latency rising from
    ``base_ms[i] / rho`` to three times that at capacity: setups differ, so their optima do."""
    scores = np.asarray(scores, dtype=float)
    names = tuple("abcdefgh"[: scores.shape[1]])
    curves = []
    for n, cap, l0 in zip(names, capacity_rps, base_ms):
        for r in range(1, 10):
            rho = r / 10
            curves.append(LatencyCurve(n, 1, r, (0.0, cap * rho / 2, cap * rho),
                                       (l0 / rho, 1.5 * l0 / rho, 3 * l0 / rho), "ttft_mean",
                                       "synthetic"))
    models = tuple(ModelSpec(n, 1.0 + i, ((1, 10.0), (2, 10.0))) for i, n in enumerate(names))
    return Problem(models, Cluster(GPUType("toy-80GB", 80.0), 1),
                   Workload(scores, rate, names), LatencyProfiles(tuple(curves), "ttft_mean"),
                   SLO(tau, "ttft_mean", aggregate),
                   SetupSpace(tp_degrees=(1,), compute_tenths=tuple(range(1, 10)), rho_min=1.0))


# ----------------------------------------------------------------------------- bounds

@pytest.mark.parametrize("seed", range(6))
def test_every_solved_setup_lies_inside_the_bounds(seed):
    rng = np.random.default_rng(seed)
    M = 2 + seed % 2
    scores = np.round(rng.beta(2, 2, size=(40, M)) * rng.uniform(0.3, 1.0, size=M), 3)
    curves = np.random.default_rng(100 + seed)
    p = share_problem(scores, curves.uniform(10, 30, M), curves.uniform(15, 60, M),
                      aggregate="max" if seed % 3 == 0 else "mean")
    df = evaluate_all(p)                       # brute force: every setup solved exactly
    f = df.loc[df["feasible"], "score"].to_numpy()
    assert f.size >= 3 and f.max() - f.min() > 1e-4    # the setups do differ
    b = h.variation_bounds(scores)
    assert b.lower - 1e-9 <= f.min() and f.max() <= b.upper + 1e-9
    assert 100 * (f.max() - f.min()) / f.min() <= b.max_variation_pct + 1e-7
    h.check_inside(b, f)


def test_bounds_against_independent_computations():
    rng = np.random.default_rng(3)
    s = rng.uniform(size=(30, 3))
    b = h.variation_bounds(s, ("x", "y", "z"))
    g = group_scores(s)
    # U = max over w of S(w): the transportation LP with w free (variables z only)
    res = linprog(-s.ravel(), A_eq=np.kron(np.eye(30), np.ones((1, 3))), b_eq=np.ones(30),
                  bounds=(0, None), method="highs")
    assert b.upper == pytest.approx(-res.fun / 30, abs=1e-9)
    # L = min over the simplex of the concave S(w): at a vertex, S(e_i) = m_i
    vertex = [score_of_fractions(g, np.eye(3)[i]).score for i in range(3)]
    assert b.lower == pytest.approx(min(vertex), abs=1e-9)
    assert b.weakest_model == "xyz"[int(np.argmin(vertex))]
    for w in rng.dirichlet(np.ones(3), size=20):        # S(w) >= sum_i w_i m_i >= L
        sw = score_of_fractions(g, w).score
        assert sw >= float(w @ vertex) - 1e-9 >= b.lower - 1e-9


def test_bound_is_attained_when_one_setup_leaves_only_the_weakest_model():
    # b beats a on every prompt: the oracle is b's mean (0.8), the weakest mean is a's (0.3).
    # Under "max" a model is usable only below tau; b at share 0.1 starts at 1000 ms > tau,
    # so that setup routes everything to a; at share 0.9 b carries the whole load alone.
    s = np.array([[0.2, 0.9], [0.4, 0.7]] * 10)
    p = share_problem(s, [100.0, 100.0], [20.0, 100.0], aggregate="max", tau=300.0)
    df = evaluate_all(p)
    f = df.loc[df["feasible"], "score"]
    b = h.variation_bounds(s)
    assert (b.lower, b.upper) == pytest.approx((0.3, 0.8))
    assert f.min() == pytest.approx(0.3, abs=1e-9) and f.max() == pytest.approx(0.8, abs=1e-9)
    assert 100 * (f.max() - f.min()) / f.min() == pytest.approx(b.max_variation_pct)
    assert b.max_variation_pct == pytest.approx(100 * 0.5 / 0.3)


def test_check_inside_and_headline_row_catch_a_wrong_matrix():
    b = h.variation_bounds([[0.5, 0.6], [0.7, 0.2]])
    with pytest.raises(ValidationError, match="outside the bounds"):
        h.check_inside(b, [0.30, 0.62])
    summary = pd.DataFrame({"variation_pct": [10.0], "score_min": [0.5], "score_max": [0.8]})
    with pytest.raises(ValidationError, match="outside the bounds"):
        h.headline_row("toy", summary, b)


def test_headline_row_and_sentence_follow_the_numbers():
    b = h.variation_bounds([[0.5, 0.9], [0.7, 0.3]])          # L 0.6, U 0.8: at most 33.3%
    summary = pd.DataFrame({"variation_pct": [5.0, 10.0, 20.0], "score_min": [0.62, 0.6, 0.61],
                            "score_max": [0.7, 0.66, 0.73]})
    row = h.headline_row("toy", summary, b)
    assert row["measured_max_pct"] == 20.0 and row["measured_median_pct"] == 10.0
    assert row["max_variation_allowed_pct"] == pytest.approx(100 * 0.2 / 0.6)
    assert row["share_of_allowed_pct"] == pytest.approx(20.0 / (100 * 0.2 / 0.6) * 100)
    text = h.headline_sentence(row)
    assert "cannot reach the paper's 87%" in text and "33.3%" in text and "20.0%" in text
    wide = h.headline_row("wide", summary.assign(score_min=0.3),
                          h.variation_bounds([[0.1, 0.9], [0.3, 0.7]]))
    assert "the scores alone would allow the paper's 87%" in h.headline_sentence(wide)


@pytest.mark.parametrize("bad", [np.zeros(3), [[0.2, 1.5]], [[np.nan, 0.1]], np.zeros((0, 2))])
def test_bad_score_matrices_are_refused(bad):
    with pytest.raises(ValidationError):
        h.variation_bounds(bad)


# ----------------------------------------------------------------------------- sensitivity

def _monotone_checks(s, factors):
    rows = [h.variation_bounds(h.spread_scores(s, k)) for k in factors]
    lower = np.array([r.lower for r in rows])
    best = np.array([r.best_single for r in rows])
    assert np.all(np.diff(lower) <= 1e-12)          # the weakest mean only falls
    assert np.all(np.diff(best) >= -1e-12)          # the best single model only rises
    assert np.all(np.diff(best - lower) >= -1e-12)
    return rows


def test_spread_transform_is_monotone_and_exact_where_nothing_clips():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.3, 0.7, size=(200, 4)) + np.array([-0.05, 0.0, 0.02, 0.1])
    m = s.mean(0)
    assert np.array_equal(h.spread_scores(s, 1.0), s)
    # factor 0 equalizes the means; factor 2 doubles every deviation (no clipping here)
    assert np.allclose(h.spread_scores(s, 0.0).mean(0), m.mean())
    assert np.allclose(h.spread_scores(s, 2.0).mean(0) - m.mean(), 2 * (m - m.mean()))
    _monotone_checks(s, np.linspace(0, 8, 17))     # clipping sets in at the larger factors
    with pytest.raises(ValidationError, match="spread factor"):
        h.spread_scores(s, -1.0)


@needs_mirror
def test_spread_is_monotone_on_the_llmrouter_matrix():
    from routerwise.data.scores import load_llmrouter
    s = load_llmrouter("test").scores
    rows = _monotone_checks(s, [0, 0.5, 1, 2, 3, 4, 6])
    assert rows[2].lower == pytest.approx(s.mean(0).min())


def test_spread_sensitivity_solves_inside_the_bounds():
    rng = np.random.default_rng(1)
    s = np.round(rng.uniform(0.2, 0.8, size=(30, 2)), 3)
    p = share_problem(s, [20.0, 12.0], [30.0, 90.0])
    t = h.spread_sensitivity(p, (0.0, 1.0, 3.0))
    assert list(t["factor"]) == [0.0, 1.0, 3.0]
    assert (t["score_min"] >= t["lower_bound"] - 1e-9).all()
    assert (t["score_max"] <= t["upper_bound"] + 1e-9).all()
    base = evaluate_all(p)                                   # factor 1 is the data itself
    f = base.loc[base["feasible"], "score"]
    assert t.loc[1, "measured_variation_pct"] == pytest.approx(100 * (f.max() - f.min()) / f.min())
    weakest = "ab"[int(np.argmin(s.mean(0)))]
    assert t.loc[1, "weakest_share_at_min"] == pytest.approx(
        base.loc[f.idxmin(), f"w[{weakest}]"])


def test_spread_for_variation_interpolates_the_crossing():
    t = pd.DataFrame({"factor": [0.0, 1.0, 2.0, 4.0], "mean_gap": [0.0, 0.1, 0.2, 0.4],
                      "measured_variation_pct": [0.0, 10.0, 50.0, 110.0],
                      "max_variation_allowed_pct": [5.0, 40.0, 120.0, 300.0],
                      "lower_bound": [0.5, 0.45, 0.4, 0.3], "upper_bound": [0.6, 0.62, 0.65, 0.7],
                      "best_single_mean": [0.5, 0.55, 0.6, 0.7], "weakest_model": ["a"] * 4,
                      "weakest_share_at_min": [0.1, 0.2, 0.3, 0.25]})
    found = h.spread_for_variation(t, 87.0)
    k = 2 + 2 * 37 / 60
    assert found["measured_factor"] == pytest.approx(k)
    assert found["measured_mean_gap"] == pytest.approx(0.2 + 0.2 * 37 / 60)
    assert found["measured_weakest_mean"] == pytest.approx(0.4 - 0.1 * 37 / 60)
    assert found["bound_factor"] == pytest.approx(1 + 47 / 80)
    assert (found["data_mean_gap"], found["data_lower"], found["data_upper"]) == (0.1, 0.45, 0.62)
    text = h.sensitivity_sentence("toy", found)
    assert "reaches 87% at spread factor 3.23" in text
    assert f"{0.62 / 1.87:.3f} here; the data's is 0.450, too high" in text
    never = h.spread_for_variation(t.assign(measured_variation_pct=[0, 1, 2, 3.0]), 87.0)
    assert never["measured_factor"] is None and never["last_measured_pct"] == 3.0
    assert "never gives a measured 87% up to factor 4" in h.sensitivity_sentence("toy", never)
    assert "sends it 25% of the prompts" in h.sensitivity_sentence("toy", never)
    with pytest.raises(ValidationError, match="needs factor 1"):
        h.spread_for_variation(t[t["factor"] != 1.0])


# ----------------------------------------------------------------------------- LLMRouter ladder

@needs_mirror
def test_substitution_table_covers_every_llmrouter_model():
    from routerwise.data.scores import load_llmrouter
    table = h.llmrouter_substitutions()
    assert sorted(table["model"]) == sorted(load_llmrouter("test").model_names)
    for row in table.itertuples():
        arch = architectures.get(row.architecture)            # every stand-in is registered
        assert row.architecture_params_b == arch.params_b
        used = h.llmrouter_architecture(row.model)
        assert used.name == row.model and used.num_layers == arch.num_layers
        if row.kind == "registered":
            assert row.architecture == row.model and row.why == "registered"
        else:
            assert row.kind == "substituted" and row.model not in architectures.REGISTRY
            assert row.why and "substituted: shapes of " + row.architecture in used.notes
    assert set(h.LLMROUTER_LADDER_3) <= set(h.LLMROUTER_LADDER_4) <= set(table["model"])
    # the ladders hold the largest model, chosen by size
    sizes = table.set_index("model")["nominal_params_b"]
    assert sizes.idxmax() in h.LLMROUTER_LADDER_3


@needs_mirror
def test_llmrouter_token_counts_are_modelled_and_labelled():
    from routerwise.data.scores import load_routeprofile
    sample = h.llmrouter_lengths()
    assert sample.label.startswith("modelled:")
    qm = load_routeprofile()
    assert sample.prompt_tokens.size == qm.num_prompts * qm.num_models
    assert sample.output_tokens.mean() == pytest.approx(
        np.maximum(qm.completion_tokens, 1).mean())


def test_llmrouter_arguments_are_checked_before_data_are_read(monkeypatch):
    def never(*a, **kw):
        raise AssertionError("data were read before the arguments were checked")

    monkeypatch.setattr(h, "llmrouter_scores", never)
    monkeypatch.setattr(h, "llmrouter_profile_table", never)
    with pytest.raises(ValidationError):
        h.llmrouter_problem(5)
    with pytest.raises(ValidationError, match="SLO"):
        h.llmrouter_problem(3, 4, 10.0, slo_ms=-1)
    with pytest.raises(ValidationError, match="not an LLMRouter model"):
        h.llmrouter_architecture("gpt-5")


def test_typed_notebook_parameters_are_read():
    from routerwise.paper import reproduce
    p = reproduce.notebook_parameters("09_headline_explained")
    assert p["num_models"] == 3 and p["space"] == "paper" and p["workers"] == 1
    assert p["spread_factors"][:2] == [0.0, 1.0]
    assert "09_headline_explained" in reproduce.NOTEBOOKS
