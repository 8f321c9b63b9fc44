"""Regenerate the worked example's inputs (synthetic, seeded): ``python data/examples/make_examples.py``.

Nothing here is measured. The three tables exist to show the kit's input formats end to end:

* ``scores.csv``: what a router predicts for 300 prompts x 3 models (synthetic), with
  per-model prompt and output token counts;
* ``true_scores.csv``: the realized scores of the same pairs (synthetic), for reporting;
* ``curves.csv``: mean and p99 TTFT against load for each (model, tp, compute share), in the
  kit's latency-table schema, ``source = synthetic``: an M/M/1-shaped curve
  ``l(x) = l0 (1 + 0.5 rho / (1 - rho))``, ``rho = x / mu``, with made-up ``l0`` and ``mu``.

Replace them with your own files of the same layout (see README, "Use your own models...").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
MODELS = {  # name: (mean quality, base TTFT ms at tp1 full share, saturation req/s at tp1 full)
    "chat-8b": (0.55, 40.0, 30.0),
    "chat-24b": (0.65, 90.0, 12.0),
    "chat-70b": (0.75, 180.0, 6.0),
}
TP_DEGREES = (1, 2)
COMPUTE_SHARES = (0.5, 1.0)
LOAD_FRACTIONS = (0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)


def scores(num_prompts: int = 300, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    tasks = rng.choice(["chat", "code", "math"], size=num_prompts)
    affinity = {"chat": (0.05, 0.0, -0.05), "code": (-0.1, 0.05, 0.05), "math": (-0.15, 0.0, 0.1)}
    difficulty = rng.normal(0.0, 0.15, num_prompts)
    prompt_tokens = np.clip(rng.lognormal(np.log(250), 0.7, num_prompts), 8, 4000).astype(int)
    rows_pred, rows_true = [], []
    for i, (name, (q, _, _)) in enumerate(MODELS.items()):
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


def curves(gpu: str = "A100-80GB") -> pd.DataFrame:
    rows = []
    for name, (_, l0_ms, mu_rps) in MODELS.items():
        for tp in TP_DEGREES:
            for share in COMPUTE_SHARES:
                mu = mu_rps * tp ** 0.8 * share ** 0.9
                l0 = l0_ms / tp ** 0.6 / share ** 0.4
                for f in LOAD_FRACTIONS:
                    ttft = l0 * (1 + 0.5 * f / (1 - f))
                    rows.append({"model": name, "gpu": gpu, "tp": tp, "compute_share": share,
                                 "load_rps": round(mu * f, 4), "num_requests": 1000,
                                 "duration_s": round(1000 / (mu * f), 2),
                                 "ttft_mean_ms": round(ttft, 3),
                                 "ttft_p99_ms": round(3.0 * ttft, 3), "saturated": False,
                                 "source": "synthetic",
                                 "provenance": "data/examples/make_examples.py (synthetic "
                                               "M/M/1-shaped curve, not measured)"})
    return pd.DataFrame(rows)


def main() -> None:
    pred, true = scores()
    pred.to_csv(HERE / "scores.csv", index=False)
    true.to_csv(HERE / "true_scores.csv", index=False)
    curves().to_csv(HERE / "curves.csv", index=False)


if __name__ == "__main__":
    main()
