"""Regenerate the worked example's inputs (synthetic, seeded): ``python data/examples/make_examples.py``.

Nothing here is measured. The three tables exist to show the kit's input formats end to end:

* ``scores.csv``: what a router predicts for 300 prompts x 3 models (synthetic), with
  per-model prompt and output token counts;
* ``true_scores.csv``: the realized scores of the same pairs (synthetic), for reporting;
* ``curves.csv``: mean and p99 TTFT (and TPOT, E2E) against load for each (model, tp,
  compute share), in the kit's latency-table schema: **simulated** by the kit's serving model
  (``routerwise.serving.curve_grid``) for the architectures named in ``problem.toml``, with
  each model's token counts from ``scores.csv``. They stand in for curves you would measure
  (``python -m profiling sweep``) and have the same columns.

Replace them with your own files of the same layout (see README, "Use your own models...").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
MODELS = {  # name: (mean quality, architecture in routerwise.serving.architectures)
    "chat-8b": (0.55, "llama-3.1-8b-instruct"),
    "chat-24b": (0.65, "mistral-small-24b-instruct-2501-bf16"),
    "chat-70b": (0.75, "llama-3.3-70b-instruct"),
}
TP_DEGREES = (1, 2)
COMPUTE_TENTHS = (5, 10)


def scores(num_prompts: int = 300, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    tasks = rng.choice(["chat", "code", "math"], size=num_prompts)
    affinity = {"chat": (0.05, 0.0, -0.05), "code": (-0.1, 0.05, 0.05), "math": (-0.15, 0.0, 0.1)}
    difficulty = rng.normal(0.0, 0.15, num_prompts)
    prompt_tokens = np.clip(rng.lognormal(np.log(250), 0.7, num_prompts), 8, 4000).astype(int)
    rows_pred, rows_true = [], []
    for i, (name, (q, _)) in enumerate(MODELS.items()):
        true = np.clip(q + difficulty + np.array([affinity[t][i] for t in tasks])
                       + rng.normal(0, 0.1, num_prompts), 0, 1)
        pred = np.clip(true + rng.normal(0, 0.15, num_prompts), 0, 1)
        out = np.clip(rng.lognormal(np.log(180 * (1.1 - 0.1 * i)), 0.6, num_prompts), 1,
                      2000).astype(int)
        for j in range(num_prompts):
            base = {"prompt_id": f"p{j:04d}", "task": tasks[j], "model": name,
                    "prompt_tokens": prompt_tokens[j], "output_tokens": out[j]}
            rows_pred.append({**base, "score": round(float(pred[j]), 4)})
            rows_true.append({**base, "score": round(float(true[j]), 4)})
    return pd.DataFrame(rows_pred), pd.DataFrame(rows_true)


def curves(scores_table: pd.DataFrame, gpu: str = "A100-80GB") -> pd.DataFrame:
    from dataclasses import replace

    from routerwise.serving import architectures
    from routerwise.serving.curve_grid import LengthSample, build_profile_table

    archs = [replace(architectures.get(arch), name=name) for name, (_, arch) in MODELS.items()]
    lengths = {}
    for name in MODELS:
        t = scores_table[scores_table["model"] == name]
        lengths[name] = LengthSample(t["prompt_tokens"].to_numpy(), t["output_tokens"].to_numpy(),
                                     f"token counts of {name} in scores.csv")
    table = build_profile_table(archs, gpu, TP_DEGREES, COMPUTE_TENTHS, lengths, progress=False)
    table["provenance"] = ("data/examples/make_examples.py: " + table["provenance"])
    return table


def main() -> None:
    pred, true = scores()
    pred.to_csv(HERE / "scores.csv", index=False)
    true.to_csv(HERE / "true_scores.csv", index=False)
    curves(pred).to_csv(HERE / "curves.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
