"""Score predictor: held-out error, routing figures and training time. Prints; asserts nothing.

Run (about 3 minutes on 2 cores; ``--skip-comparison`` leaves out the method comparison,
which dominates)::

    ROUTERWISE_DATA_MIRROR=<mirror folder> python benchmarks/bench_predictor.py

Every error and routing figure is measured on prompts the predictor did not see: out-of-fold
predictions (5-fold, stratified by task, seed 0) for RouteProfile, the test file for LLMRouter.
Training times are wall-clock medians over ``--repeats`` runs on this machine; for k-fold they
cover all k fits and predictions.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import pandas as pd

from routerwise.data.score_predictor import (
    PredictedScores,
    build_pipeline,
    cross_val_predict_scores,
    fit_predict_scores,
)
from routerwise.data.scores import load_llmrouter, load_routeprofile

LADDER = ("llama-3.2-3b-instruct", "llama-3.1-8b-instruct",
          "mistral-small-24b-instruct-2501-bf16", "llama-3.3-70b-instruct")
CANDIDATES = {  # label -> build_pipeline keywords
    "ridge, word+char, alpha 10": dict(method="ridge", alpha=10.0),
    "ridge, word only, alpha 3": dict(method="ridge", alpha=3.0, char_ngrams=False),
    "kNN, word+char, k=25, cosine": dict(method="knn", n_neighbors=25),
}


def _median_run(fn, repeats: int) -> tuple[PredictedScores, float]:
    runs = [fn() for _ in range(repeats)]
    return runs[0], statistics.median(r.fit_time_s for r in runs)


def _show(title: str, ps: PredictedScores, time_s: float | None = None) -> None:
    print(f"\n== {title}")
    print(f"   {ps.method}")
    print(f"   [{ps.evaluation}] {ps.true.shape[0]} prompts x {ps.true.shape[1]} models"
          + (f"; training time {time_s:.2f} s (median)" if time_s is not None else ""))
    for n in ps.notes:
        print(f"   note: {n}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(ps.error_table().to_string(float_format=lambda v: f"{v:.3f}"))
        print()
        print(ps.routing_table().to_string(float_format=lambda v: f"{v:.3f}"))


def compare_methods() -> None:
    """Pooled out-of-fold RMSE (and MAE) of each candidate: the predictor's selection table."""
    rp = load_routeprofile()
    lr = load_llmrouter("train")
    print("== method comparison: pooled 5-fold out-of-fold error, seed 0 "
          "[measured-on-held-out-folds]")
    print(f"{'predictor':32s} {'RouteProfile RMSE / MAE':>24s} {'LLMRouter train RMSE / MAE':>27s}"
          f" {'fit s (RP, LR)':>16s}")
    first = True
    for label, kw in CANDIDATES.items():
        cells, times = [], []
        for qm in (rp, lr):
            ps = cross_val_predict_scores(qm, **kw)
            row = ps.error_table().loc["all models"]
            cells.append((row.rmse, row.mae, row.baseline_rmse, row.baseline_mae))
            times.append(ps.fit_time_s)
        if first:
            print(f"{'training-fold column mean':32s} {cells[0][2]:>12.4f} / {cells[0][3]:.4f}"
                  f" {cells[1][2]:>15.4f} / {cells[1][3]:.4f}")
            first = False
        print(f"{label:32s} {cells[0][0]:>12.4f} / {cells[0][1]:.4f} {cells[1][0]:>15.4f} / "
              f"{cells[1][1]:.4f} {times[0]:>8.1f}, {times[1]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (median reported)")
    ap.add_argument("--skip-comparison", action="store_true",
                    help="leave out the method comparison (5-fold on both data sets, 3 methods)")
    args = ap.parse_args()
    print(f"default predictor: {build_pipeline()}")
    if not args.skip_comparison:
        compare_methods()

    rp = load_routeprofile()
    ps, t = _median_run(lambda: cross_val_predict_scores(rp, n_folds=5, seed=0), args.repeats)
    _show("RouteProfile, 8 models (human_eval and mbpp excluded), 5-fold", ps, t)

    ladder = rp.select_models(LADDER)
    ps, t = _median_run(lambda: cross_val_predict_scores(ladder, n_folds=5, seed=0),
                        args.repeats)
    _show("RouteProfile, 4-model ladder, 5-fold", ps, t)

    train, test = load_llmrouter("train"), load_llmrouter("test")
    ps, t = _median_run(lambda: fit_predict_scores(train, test), args.repeats)
    _show("LLMRouter, train -> test", ps, t)

    seen = set(train.prompts)
    fresh = np.array([p not in seen for p in test.prompts])
    sub = fit_predict_scores(train, test.subset(fresh))
    _show(f"LLMRouter, train -> the {int(fresh.sum())} test prompts not in train", sub)


if __name__ == "__main__":
    main()
