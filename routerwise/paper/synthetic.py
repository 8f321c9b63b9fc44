"""A labelled synthetic instance: modelled curves and scores for tests, demos and benchmarks.

Nothing here is measured. Latency follows a queueing-shaped curve
``l(x) = l0 / (1 - x / cap)`` (M/M/1-like) sampled up to 95% of capacity, with capacity and
unloaded latency scaled by tensor parallelism and compute share through modelled exponents;
scores come from a latent prompt difficulty and a per-model skill that grows with size.
Use the real-data instances in ``routerwise.paper.instances`` for anything reported as a finding.
"""

from __future__ import annotations

import numpy as np

from ..problem import (SLO, Cluster, GPUType, LatencyCurve, LatencyProfiles, ModelSpec, Problem,
                      SetupSpace, Workload)

__all__ = ["synthetic_models", "synthetic_profiles", "synthetic_workload", "synthetic_problem"]

# name, params (B), skill, single-GPU capacity at full share (req/s), unloaded latency (ms)
_LADDER = (
    ("small-3b", 3.0, 0.35, 60.0, 40.0),
    ("mid-8b", 8.0, 0.50, 35.0, 70.0),
    ("large-24b", 24.0, 0.62, 14.0, 160.0),
    ("xl-70b", 70.0, 0.72, 4.0, 420.0),
)


def synthetic_models(num_models: int) -> tuple[ModelSpec, ...]:
    ladder = _ladder(num_models)
    return tuple(ModelSpec(n, p, tuple((tp, 2.0 * p / tp + 6.0) for tp in (1, 2, 4, 8)))
                 for n, p, *_ in ladder)


def _ladder(num_models: int):
    """The largest ``num_models`` rungs (3 models: 8B/24B/70B-like, 4 adds a 3B-like)."""
    if not 1 <= num_models <= len(_LADDER):
        raise ValueError(f"synthetic ladder has 1..{len(_LADDER)} models")
    return _LADDER[len(_LADDER) - num_models:]


def synthetic_profiles(num_models: int, tp_degrees=(1, 2, 4), points: int = 16,
                       metric: str = "ttft_mean") -> LatencyProfiles:
    curves = []
    for name, _, _, cap1, l01 in _ladder(num_models):
        for tp in tp_degrees:
            for r in range(1, 11):
                share = r / 10
                cap = cap1 * tp ** 0.85 * share ** 0.8
                l0 = l01 / (tp ** 0.6 * share ** 0.5)
                x = np.linspace(0.0, 0.95 * cap, points)
                y = l0 / (1.0 - x / cap)
                curves.append(LatencyCurve(name, tp, r, tuple(x), tuple(y), metric, "synthetic",
                                           "modelled: l0/(1-x/cap), routerwise.paper.synthetic"))
    return LatencyProfiles(tuple(curves), metric)


def synthetic_workload(num_models: int, num_prompts: int, arrival_rate_rps: float,
                       seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)
    ladder = _ladder(num_models)
    skill = np.array([s for _, _, s, _, _ in ladder])
    difficulty = rng.uniform(0.0, 1.0, num_prompts)
    topic = rng.normal(0.0, 0.08, (num_prompts, len(ladder)))  # per-prompt model affinities
    logits = 8.0 * (skill[None, :] - difficulty[:, None]) + 8.0 * topic
    true = (rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    pred = np.clip(1 / (1 + np.exp(-logits)) + rng.normal(0, 0.03, logits.shape), 0, 1)
    return Workload(pred, arrival_rate_rps, tuple(n for n, *_ in ladder), true_scores=true,
                    label=f"synthetic(seed={seed})")


def synthetic_problem(num_models: int = 3, num_gpus: int = 4, arrival_rate_rps: float = 40.0,
                      slo_ms: float = 400.0, num_prompts: int = 400, seed: int = 0,
                      space: SetupSpace | None = None) -> Problem:
    """A complete synthetic problem (modelled curves and scores, A100-80GB-sized GPUs)."""
    return Problem(synthetic_models(num_models), Cluster(GPUType("A100-80GB", 80.0), num_gpus),
                   synthetic_workload(num_models, num_prompts, arrival_rate_rps, seed),
                   synthetic_profiles(num_models), SLO(slo_ms),
                   space or SetupSpace(), name=f"synthetic-{num_models}m-G{num_gpus}")
