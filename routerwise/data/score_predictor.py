"""Score predictor: per-model quality predicted from prompt text, with held-out evaluation.

The paper routes on scores predicted by a DeBERTa-v3-large regressor with one head per model.
The kit stands in a model that trains on CPU cores in seconds: TF-IDF features of the
prompt (word 1-2 grams and in-word character 2-5 grams, sublinear term frequency) followed by
one ridge regression with one output per model (``method="ridge"``, :func:`build_pipeline`).
Predictions are clipped to [0, 1]. Everything is deterministic; the seed only shuffles folds.

Why ridge on word + character TF-IDF (alpha = 10)
    Selection criterion: cross-validated RMSE. The optimizer sums predicted scores over prompts,
    so the predictor must estimate the *conditional mean* score, which squared error targets;
    MAE rewards pushing binary-scored prompts to 0 or 1 and is reported, not optimized.
    ``benchmarks/bench_predictor.py`` prints the comparison behind this choice (pooled 5-fold
    out-of-fold RMSE and fit times of ridge on word + character n-grams, ridge on words only,
    and cosine kNN, on RouteProfile and LLMRouter): ridge on word + character n-grams has the
    lowest RMSE on RouteProfile and is within noise of kNN on LLMRouter, so it is the default;
    ``char_ngrams=False`` trades a little RMSE for a much faster fit, and ``method="knn"`` is
    kept for the comparison.
    The margins over the column mean are small: most scores are 0/1 outcomes of a single
    sampled answer, and the text explains a modest part of them: routing each held-out prompt
    to its argmax predicted model can realize less than always using the best single model
    (:meth:`PredictedScores.routing_table`; the benchmark prints it for both sources, and
    counts LLMRouter test prompts that also occur in its training file). Read predicted scores
    as noisy estimates, not as the realized quality of a plan.

Evaluation (every figure is **measured** on prompts the predictor did not see)
    :func:`cross_val_predict_scores` returns out-of-fold predictions from k-fold splits
    stratified by task (RouteProfile ships only a test split, so k-fold is the honest choice);
    :func:`fit_predict_scores` fits on one matrix and predicts another (LLMRouter's train and
    test files), and reports how many test prompts also occur verbatim in the training data.
    :meth:`PredictedScores.error_table` and :meth:`PredictedScores.routing_table` compare with
    the training-fold column mean (scikit-learn's ``DummyRegressor``), the same held-out rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import FeatureUnion, Pipeline

from ..errors import ValidationError
from ..problem import Workload
from .scores import QualityMatrix

__all__ = ["METHODS", "HELD_OUT_FOLDS", "HELD_OUT_SPLIT", "build_pipeline", "PredictedScores",
           "cross_val_predict_scores", "stable_scores", "fit_predict_scores"]

METHODS = ("ridge", "knn")
HELD_OUT_FOLDS = "measured-on-held-out-folds"
HELD_OUT_SPLIT = "measured-on-held-out-test-split"


def build_pipeline(method: str = "ridge", *, alpha: float = 10.0, n_neighbors: int = 25,
                   char_ngrams: bool = True) -> Pipeline:
    """An unfitted scikit-learn pipeline mapping prompt strings to an (N, M) score estimate.

    ``"ridge"``: TF-IDF -> ``Ridge(alpha)``, one output per model (columns of ``y``).
    ``"knn"``: TF-IDF -> distance-weighted mean of the ``n_neighbors`` nearest training prompts
    by cosine distance. ``char_ngrams=False`` uses word 1-2 grams only. Outputs are not clipped
    here; the evaluation functions clip to [0, 1].
    """
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    if char_ngrams:
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                min_df=2, max_features=200_000)
        features = FeatureUnion([("word", words), ("char", chars)])
    else:
        features = words
    if method == "ridge":
        if not alpha > 0:
            raise ValidationError(f"ridge alpha must be positive, got {alpha!r}")
        head = Ridge(alpha=alpha)
    elif method == "knn":
        if not (isinstance(n_neighbors, int) and n_neighbors >= 1):
            raise ValidationError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
        head = KNeighborsRegressor(n_neighbors=n_neighbors, weights="distance",
                                   metric="cosine", algorithm="brute")
    else:
        raise ValidationError(f"unknown predictor method {method!r}; use one of {METHODS}")
    return Pipeline([("features", features), ("regressor", head)])


def _describe(pipe: Pipeline) -> str:
    head = pipe.named_steps["regressor"]
    feats = ("TF-IDF word 1-2 + char_wb 2-5 grams"
             if isinstance(pipe.named_steps["features"], FeatureUnion)
             else "TF-IDF word 1-2 grams")
    if isinstance(head, Ridge):
        return f"{feats} -> Ridge(alpha={head.alpha:g}), one output per model, clipped to [0, 1]"
    return f"{feats} -> {head.n_neighbors}-NN (cosine, distance-weighted), clipped to [0, 1]"


@dataclass(frozen=True, eq=False)
class PredictedScores:
    """Held-out score predictions beside the true (measured) scores of the same prompts.

    ``predicted`` / ``true`` / ``baseline`` are (N, M) in [0, 1], read-only; ``baseline`` is
    the per-model mean of the training rows each prediction was fitted on (the reference a
    predictor must beat). ``evaluation`` is :data:`HELD_OUT_FOLDS` or :data:`HELD_OUT_SPLIT`;
    ``method`` describes the predictor and the split; ``fit_time_s`` is the measured wall time
    of all fits and predictions; ``notes`` carry caveats (e.g. train/test text overlap).
    """

    predicted: np.ndarray
    true: np.ndarray
    baseline: np.ndarray
    model_names: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    method: str
    evaluation: str
    fit_time_s: float
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "model_names", tuple(self.model_names))
        object.__setattr__(self, "prompt_ids", tuple(self.prompt_ids))
        object.__setattr__(self, "notes", tuple(self.notes))
        shape = (len(self.prompt_ids), len(self.model_names))
        for name in ("predicted", "true", "baseline"):
            a = np.array(getattr(self, name), dtype=float, copy=True)
            if a.shape != shape or not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                raise ValidationError(f"PredictedScores.{name} must be a finite {shape} array "
                                      f"in [0, 1], got shape {a.shape}")
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.evaluation not in (HELD_OUT_FOLDS, HELD_OUT_SPLIT):
            raise ValidationError(f"evaluation must be {HELD_OUT_FOLDS!r} or {HELD_OUT_SPLIT!r}, "
                                  f"got {self.evaluation!r}")

    def error_table(self) -> pd.DataFrame:
        """Per-model error of the held-out predictions, plus an ``"all models"`` pooled row.

        Columns: ``mae``, ``rmse``, ``pearson_r`` (NaN where a column is constant),
        ``mean_predicted``, ``mean_true``, and ``baseline_mae`` / ``baseline_rmse`` of the
        training-mean reference. ``attrs["evaluation"]`` holds the label.
        """
        P, T, B = self.predicted, self.true, self.baseline
        rows = [_errors(P[:, i], T[:, i], B[:, i]) for i in range(P.shape[1])]
        rows.append(_errors(P.ravel(), T.ravel(), B.ravel()))
        df = pd.DataFrame(rows, index=pd.Index(list(self.model_names) + ["all models"],
                                               name="model"))
        df.attrs["evaluation"] = self.evaluation
        return df

    def routing_table(self) -> pd.DataFrame:
        """Mean true score when each prompt goes to the model a policy picks (no capacity
        limits), on the held-out prompts.

        Policies: ``oracle`` (argmax true: the ceiling), ``argmax predicted`` (this predictor),
        ``single model, chosen on training data`` (argmax of the training means: what a router
        without prompt features would do), and ``best single model in hindsight`` (the model
        with the highest true mean on these prompts). Ties go to the first column. Columns:
        ``model`` (the single model, else ""), ``mean_true_score``, ``fraction_of_oracle``,
        ``mean_predicted_score`` (the predictor's own estimate of the same choices: its gap to
        ``mean_true_score`` is the optimism the optimizer would inherit).
        """
        P, T = self.predicted, self.true
        n = np.arange(T.shape[0])
        hindsight = int(np.argmax(T.mean(axis=0)))
        trained = int(np.argmax(self.baseline.mean(axis=0)))
        picks = {
            "oracle": ("", T.argmax(axis=1)),
            "argmax predicted": ("", P.argmax(axis=1)),
            "single model, chosen on training data": (self.model_names[trained],
                                                      np.full(len(n), trained)),
            "best single model in hindsight": (self.model_names[hindsight],
                                               np.full(len(n), hindsight)),
        }
        oracle = float(T.max(axis=1).mean())
        rows = {}
        for policy, (model, choice) in picks.items():
            realized = float(T[n, choice].mean())
            rows[policy] = {"model": model, "mean_true_score": realized,
                            "fraction_of_oracle": realized / oracle if oracle > 0 else np.nan,
                            "mean_predicted_score": float(P[n, choice].mean())}
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "policy"
        df.attrs["evaluation"] = self.evaluation
        return df

    def subset(self, models=None, prompts=None) -> PredictedScores:
        """The same predictions for ``models`` (names, in that order) and ``prompts`` (prompt
        ids in that order, or a boolean mask over the prompts); None keeps all. The
        evaluation label stays: each prediction is still held out."""
        cols = list(range(len(self.model_names)))
        if models is not None:
            models = [str(m) for m in models]
            unknown = [m for m in models if m not in self.model_names]
            if unknown or not models or len(set(models)) != len(models):
                raise ValidationError(f"subset(models=...) needs distinct known model names; "
                                      f"unknown: {unknown}, asked: {models}; known: "
                                      f"{list(self.model_names)}")
            cols = [self.model_names.index(m) for m in models]
        rows = list(range(len(self.prompt_ids)))
        if prompts is not None:
            mask = np.asarray(prompts)
            if mask.dtype == bool:
                if mask.shape != (len(self.prompt_ids),):
                    raise ValidationError(f"a boolean prompt mask needs length "
                                          f"{len(self.prompt_ids)}, got shape {mask.shape}")
                rows = np.flatnonzero(mask).tolist()
            else:
                ids = [str(p) for p in prompts]
                where = {p: j for j, p in enumerate(self.prompt_ids)}
                unknown = [p for p in ids if p not in where]
                if unknown:
                    raise ValidationError(f"subset(prompts=...): unknown prompt ids "
                                          f"{unknown[:5]} ({len(unknown)} in all)")
                rows = [where[p] for p in ids]
            if not rows or len(set(rows)) != len(rows):
                raise ValidationError("subset(prompts=...) needs at least one prompt, each once")
        r, c = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
        note = (f"subset: {len(rows)} of {len(self.prompt_ids)} prompts, models "
                f"{[self.model_names[i] for i in cols]}")
        return PredictedScores(
            self.predicted[np.ix_(r, c)], self.true[np.ix_(r, c)], self.baseline[np.ix_(r, c)],
            tuple(self.model_names[i] for i in cols), tuple(self.prompt_ids[j] for j in rows),
            self.method, self.evaluation, self.fit_time_s, self.notes + (note,))

    def to_workload(self, arrival_rate_rps: float, label: str = "") -> Workload:
        """The optimizer's input: predicted scores to route on, true scores for reporting."""
        return Workload(self.predicted, arrival_rate_rps, self.model_names,
                        true_scores=self.true, prompt_ids=self.prompt_ids,
                        label=label or self.method)


def _errors(p: np.ndarray, t: np.ndarray, b: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.abs(p - t).mean()), "rmse": float(np.sqrt(((p - t) ** 2).mean())),
            "pearson_r": _pearson(p, t), "mean_predicted": float(p.mean()),
            "mean_true": float(t.mean()), "baseline_mae": float(np.abs(b - t).mean()),
            "baseline_rmse": float(np.sqrt(((b - t) ** 2).mean()))}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # Defined as NaN (not an error or a warning) when either side is constant.
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def _fit_checked(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ValueError as e:
        raise ValidationError(f"the score predictor could not be fitted ({e}); it needs "
                              f"enough prompts to build a vocabulary (terms in >= 2 prompts) "
                              f"and, for kNN, at least n_neighbors training prompts") from e


def cross_val_predict_scores(qm: QualityMatrix, n_folds: int = 5, seed: int = 0, *,
                             method: str = "ridge", **pipeline_kw) -> PredictedScores:
    """Out-of-fold predictions for every prompt of ``qm``: k folds stratified by task
    (``StratifiedKFold(shuffle=True, random_state=seed)``); each prompt is predicted by the
    pipeline fitted on the other folds. Extra keywords go to :func:`build_pipeline`. Repeated
    prompt texts within ``qm`` are counted in ``notes``.
    """
    if not (isinstance(n_folds, int) and 2 <= n_folds <= qm.num_prompts):
        raise ValidationError(f"n_folds must be an integer in [2, {qm.num_prompts}], "
                              f"got {n_folds!r}")
    pipe = build_pipeline(method, **pipeline_kw)
    X = np.array(qm.prompts, dtype=object)
    folds = list(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
                 .split(X, np.array(qm.tasks)))
    t0 = time.perf_counter()
    pred = _fit_checked(cross_val_predict, pipe, X, qm.scores, cv=folds)
    fit_time_s = time.perf_counter() - t0
    base = cross_val_predict(DummyRegressor(strategy="mean"), X, qm.scores, cv=folds)
    strata = "task" if len(set(qm.tasks)) > 1 else "nothing (one task label)"
    repeats = qm.num_prompts - len(set(qm.prompts))
    notes = ((f"{repeats} prompt texts repeat within the matrix; a repeat that falls in "
              f"another fold is recalled rather than predicted",) if repeats else ())
    return PredictedScores(
        predicted=stable_scores(pred), true=qm.scores, baseline=base,
        model_names=qm.model_names, prompt_ids=qm.prompt_ids,
        method=f"{_describe(pipe)}; {n_folds}-fold out-of-fold, stratified by {strata}, "
               f"seed {seed}",
        evaluation=HELD_OUT_FOLDS, fit_time_s=fit_time_s, notes=notes)


def stable_scores(pred: np.ndarray) -> np.ndarray:
    """Predictions clipped to [0, 1] and rounded to 1e-6.

    Ridge's solve differs in the last bits between BLAS builds and thread counts; the router
    groups prompts with identical score rows and breaks LP ties on them, so unrounded noise
    could change a plan from one machine to the next. 1e-6 is far below the predictor's error
    (RMSE about 0.4) and far above float noise.
    """
    return np.round(np.clip(pred, 0.0, 1.0), 6)


def fit_predict_scores(train_qm: QualityMatrix, test_qm: QualityMatrix, *,
                       method: str = "ridge", **pipeline_kw) -> PredictedScores:
    """Fit on ``train_qm``, predict ``test_qm`` (same models in the same order).

    Test prompts whose exact text also occurs in the training prompts are counted in
    ``notes``: their figures measure recall as much as generalization.
    """
    if train_qm.model_names != test_qm.model_names:
        raise ValidationError(f"train and test must have the same models in the same order; "
                              f"train {list(train_qm.model_names)}, test "
                              f"{list(test_qm.model_names)}. Use select_models on both")
    pipe = build_pipeline(method, **pipeline_kw)
    X_train = np.array(train_qm.prompts, dtype=object)
    X_test = np.array(test_qm.prompts, dtype=object)
    t0 = time.perf_counter()
    pred = _fit_checked(pipe.fit, X_train, train_qm.scores).predict(X_test)
    fit_time_s = time.perf_counter() - t0
    base = DummyRegressor(strategy="mean").fit(X_train, train_qm.scores).predict(X_test)
    seen = set(train_qm.prompts)
    overlap = sum(p in seen for p in test_qm.prompts)
    notes = ((f"{overlap} of {test_qm.num_prompts} test prompts also occur verbatim in the "
              f"training prompts",) if overlap else ())
    return PredictedScores(
        predicted=stable_scores(pred), true=test_qm.scores, baseline=base,
        model_names=test_qm.model_names, prompt_ids=test_qm.prompt_ids,
        method=f"{_describe(pipe)}; fitted on {train_qm.num_prompts} prompts "
               f"({'+'.join(train_qm.source)}), predicting {test_qm.num_prompts} "
               f"({'+'.join(test_qm.source)})",
        evaluation=HELD_OUT_SPLIT, fit_time_s=fit_time_s, notes=notes)
