"""Score predictor: determinism, shapes, beating the column mean where text carries signal,
routing figures ordered as they must be, and the train/test overlap note."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_mirror

from routerwise.data.score_predictor import (
    HELD_OUT_FOLDS,
    HELD_OUT_SPLIT,
    PredictedScores,
    build_pipeline,
    cross_val_predict_scores,
    fit_predict_scores,
)
from routerwise.data.scores import QualityMatrix, load_routeprofile
from routerwise.errors import ValidationError
from routerwise.problem import Workload

FILLER = ("the of a to in is for on with as by at from that this it an be or are was which "
          "value number list string table river mountain city music garden window").split()


def keyword_matrix(n: int = 240, seed: int = 0) -> QualityMatrix:
    """Model "kw" scores 0.9 on prompts with the word "zebra" and 0.1 elsewhere, "plain" the
    reverse, "flat" 0.5 always; a little noise on top. Half the prompts carry the keyword."""
    rng = np.random.default_rng(seed)
    has = np.arange(n) % 2 == 0
    prompts = []
    for j in range(n):
        words = list(rng.choice(FILLER, size=12))
        if has[j]:
            words.insert(int(rng.integers(0, 12)), "zebra")
        prompts.append(" ".join(words))
    kw = np.where(has, 0.9, 0.1)
    scores = np.column_stack([kw, 1.0 - kw, np.full(n, 0.5)])
    scores = np.clip(scores + rng.normal(0, 0.05, scores.shape), 0, 1)
    scores[:, 2] = 0.5
    return QualityMatrix(source=("synthetic",), model_names=("kw", "plain", "flat"),
                         prompt_ids=[f"s/{j}" for j in range(n)],
                         tasks=["t0", "t1", "t2"] * (n // 3), prompts=prompts, scores=scores)


@pytest.fixture(scope="module")
def keyword_cv() -> PredictedScores:
    return cross_val_predict_scores(keyword_matrix(), n_folds=5, seed=0)


def test_out_of_fold_shapes_range_and_labels(keyword_cv):
    ps = keyword_cv
    assert ps.predicted.shape == ps.true.shape == ps.baseline.shape == (240, 3)
    assert ps.predicted.min() >= 0 and ps.predicted.max() <= 1
    assert ps.model_names == ("kw", "plain", "flat")
    assert ps.prompt_ids[0] == "s/0"
    assert ps.evaluation == HELD_OUT_FOLDS
    assert "5-fold" in ps.method and "stratified by task" in ps.method
    assert ps.fit_time_s > 0
    with pytest.raises(ValueError):
        ps.predicted[0, 0] = 0.0  # read-only


def test_deterministic_under_a_seed():
    qm = keyword_matrix()
    a = cross_val_predict_scores(qm, n_folds=4, seed=3)
    b = cross_val_predict_scores(qm, n_folds=4, seed=3)
    np.testing.assert_array_equal(a.predicted, b.predicted)
    np.testing.assert_array_equal(a.baseline, b.baseline)
    c = cross_val_predict_scores(qm, n_folds=4, seed=4)
    assert not np.array_equal(a.predicted, c.predicted)  # the seed does shuffle the folds


def test_beats_the_column_mean_where_a_keyword_decides(keyword_cv):
    table = keyword_cv.error_table()
    # Ridge shrinks (alpha is set for the real data), so the margin, not the fit, is checked.
    for model in ("kw", "plain"):
        row = table.loc[model]
        assert row.rmse < 0.8 * row.baseline_rmse, row
        assert row.pearson_r > 0.8
    assert table.loc["all models"].rmse < table.loc["all models"].baseline_rmse
    # A constant true column has no correlation to report.
    assert np.isnan(table.loc["flat", "pearson_r"])
    assert table.attrs["evaluation"] == HELD_OUT_FOLDS


def test_knn_also_learns_the_keyword():
    ps = cross_val_predict_scores(keyword_matrix(), method="knn", n_neighbors=10)
    row = ps.error_table().loc["all models"]
    assert row.rmse < 0.9 * row.baseline_rmse and row.pearson_r > 0.4
    assert "10-NN" in ps.method


def test_routing_figures_are_ordered(keyword_cv):
    r = keyword_cv.routing_table()
    oracle = r.loc["oracle", "mean_true_score"]
    argmax = r.loc["argmax predicted", "mean_true_score"]
    single = r.loc["best single model in hindsight", "mean_true_score"]
    trained = r.loc["single model, chosen on training data", "mean_true_score"]
    assert oracle >= argmax and oracle >= single >= trained
    assert r.loc["oracle", "fraction_of_oracle"] == pytest.approx(1.0)
    # The keyword decides which model is right: the predictor routes nearly like the oracle,
    # far above any single model (each gets 0.5 on average).
    assert argmax > 0.95 * oracle and argmax > single + 0.2


@needs_mirror
def test_routing_figures_are_ordered_on_routeprofile():
    ps = cross_val_predict_scores(load_routeprofile(), n_folds=5, seed=0)
    r = ps.routing_table()
    oracle = r.loc["oracle", "mean_true_score"]
    assert oracle >= r.loc["argmax predicted", "mean_true_score"]
    assert oracle >= r.loc["best single model in hindsight", "mean_true_score"]
    assert ps.predicted.shape == (500, 8)
    t = ps.error_table()
    assert t.loc["all models"].rmse < t.loc["all models"].baseline_rmse


def test_fit_predict_reports_overlap_and_checks_models():
    qm = keyword_matrix(n=300)
    train, test = qm.subset(np.arange(240)), qm.subset(np.arange(200, 300))
    ps = fit_predict_scores(train, test)
    assert ps.evaluation == HELD_OUT_SPLIT
    assert ps.predicted.shape == (100, 3) and ps.prompt_ids == test.prompt_ids
    assert ps.notes == ("40 of 100 test prompts also occur verbatim in the training prompts",)
    assert ps.error_table().loc["kw"].rmse < 0.8 * ps.error_table().loc["kw"].baseline_rmse
    clean = fit_predict_scores(qm.subset(np.arange(200)), qm.subset(np.arange(200, 300)))
    assert clean.notes == ()
    with pytest.raises(ValidationError, match="same models in the same order"):
        fit_predict_scores(train, test.select_models(["plain", "kw", "flat"]))


def test_to_workload_routes_on_predicted_and_reports_true(keyword_cv):
    w = keyword_cv.to_workload(50.0, label="synthetic")
    assert isinstance(w, Workload)
    np.testing.assert_array_equal(w.scores, keyword_cv.predicted)
    np.testing.assert_array_equal(w.true_scores, keyword_cv.true)
    assert w.model_names == keyword_cv.model_names and w.arrival_rate_rps == 50.0


def test_bad_arguments_are_validation_errors():
    qm = keyword_matrix(n=30)
    with pytest.raises(ValidationError, match="unknown predictor method"):
        build_pipeline("forest")
    with pytest.raises(ValidationError, match="n_folds"):
        cross_val_predict_scores(qm, n_folds=1)
    with pytest.raises(ValidationError, match="could not be fitted"):
        cross_val_predict_scores(qm, method="knn", n_neighbors=100)
