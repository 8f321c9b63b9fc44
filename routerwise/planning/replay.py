"""Replay a plan in the serving simulator: does the latency the optimizer predicted hold?

The optimizer predicts each model's latency from a standalone profile taken with that model's
whole length mix. A plan routes a *subset* of prompts to each model (the prompts it is best at),
whose prompt and output lengths differ from the profiled mix. :func:`replay_plan` simulates every
routed model's replica at its planned load with the lengths of the prompts the plan actually
sends it (drawn from the plan's assignment), with an independent seed, and compares:

* predicted mean L (sum_i w_i l_i) with the simulated mean over all requests;
* the simulated p99 of the mixture (requests pooled across models in proportion to w).

Both sides use the same engine profile and knobs
(:class:`routerwise.serving.curve_grid.GridOptions`); the prediction carries the calibrated
planning margin, the replay does not (it is the modelled truth the margin guards against).
Co-location interference between models sharing a GPU is modelled by neither side (as in the
paper); the replay tests the other half of the premise: that a profile predicts latency once
routing changes the traffic a model sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..optimize.assignment import group_scores, prompt_shares
from ..optimize.solution import Solution
from ..problem import Problem
from ..serving import architectures
from ..serving.architectures import Architecture
from ..serving.engine import profile_step_params, simulate_engine
from ..serving.simulator import poisson_requests
from ..serving.stepcost import fit, replica_step_times

__all__ = ["Replay", "routed_lengths", "routed_pool", "replay_plan", "replay_seeds",
           "SEED_STRIDE"]

# Replay r of a plan uses base seed + SEED_STRIDE * r, and model i within it + i more: the
# streams of two replays never share a seed while a plan routes fewer models than the stride.
SEED_STRIDE = 1000


@dataclass(frozen=True)
class Replay:
    per_model: pd.DataFrame       # one row per routed model
    predicted_ms: float           # the plan's L (profile-based)
    simulated_mean_ms: float      # w-weighted mean of simulated per-model means
    simulated_p99_ms: float       # p99 of the pooled, w-weighted request latencies
    metric: str


def routed_lengths(problem: Problem, solution: Solution, qm) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Token counts (prompt, output) of the prompts the plan sends to each model.

    ``qm`` is the QualityMatrix the workload came from (same prompt order). A prompt group split
    between models contributes to each in proportion to its routed share.
    """
    share = prompt_shares(group_scores(problem.workload.scores), solution.fractions)   # N x M
    out = {}
    rng = np.random.default_rng(0)
    for i in range(problem.num_models):
        p = share[:, i]
        if p.sum() <= 1e-9:
            continue
        # Sample prompts in proportion to their routed share (a prompt wholly routed: weight 1).
        idx = rng.choice(p.size, size=max(200, int(round(p.sum()))), p=p / p.sum())
        out[i] = (qm.prompt_tokens[idx, i], qm.completion_tokens[idx, i])
    return out


def routed_pool(problem: Problem, solution: Solution, qm, copies: int = 4
                ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Like :func:`routed_lengths` but without sampling: every prompt routed to model i enters
    its pool round(copies * share) times (a wholly routed prompt ``copies`` times, a split one
    in proportion), so the pool is a deterministic function of the plan's assignment."""
    share = prompt_shares(group_scores(problem.workload.scores), solution.fractions)
    out = {}
    for i in range(problem.num_models):
        reps = np.rint(copies * share[:, i]).astype(int)
        if reps.sum() == 0:
            continue
        idx = np.repeat(np.arange(reps.size), reps)
        out[i] = (qm.prompt_tokens[idx, i], qm.completion_tokens[idx, i])
    return out


def replay_seeds(seed: int, replays: int) -> list[int]:
    """The base seeds of ``replays`` independent replays, derived from ``seed`` (the first is
    ``seed`` itself, so one replay is the replay :func:`replay_plan` makes with ``seed``)."""
    return [int(seed) + SEED_STRIDE * r for r in range(int(replays))]


def replay_plan(problem: Problem, solution: Solution, qm, *, num_requests: int = 4000,
                seed: int = 12345, gpu: str | None = None, lengths: dict | None = None,
                archs: Mapping[str, Architecture] | None = None) -> Replay:
    """Simulate each routed model at its planned load with its routed prompts' lengths
    (``lengths``: {model index: (prompt tokens, output tokens)}; default routed_lengths).
    ``archs`` maps model names to architectures (default: the registered ones). ``gpu``: the
    GPU type to simulate on (default: the cluster's; on a mixed cluster each model's own)."""
    metric = problem.slo.metric
    mixed = gpu is None and problem.cluster.is_mixed
    gpu = gpu or problem.cluster.gpu.name
    lam = problem.arrival_rate_rps
    lengths = routed_lengths(problem, solution, qm) if lengths is None else lengths
    from ..serving.curve_grid import GridOptions, grid_setup

    opts = GridOptions()  # the engine profile and knobs the profile grid simulates
    params = profile_step_params(fit(), opts.engine_profile)
    rows, pooled, weights = [], [], []
    for i, (pt, ot) in lengths.items():
        w = float(solution.fractions[i])
        setup = solution.setup.per_model[i]
        model = problem.models[i].name
        arch = archs[model] if archs and model in archs else architectures.get(model)
        on = setup.gpu if mixed else gpu
        step = replica_step_times(arch, on, setup.tp, setup.compute_share,
                                  params=params, max_batched_tokens=max(8192, int(pt.max())))
        req = poisson_requests(lam * w, num_requests, pt, ot, seed + i)
        cfg = grid_setup(step, arch, on, setup.tp, setup.compute_share, opts)
        res = simulate_engine(step, req, cfg, load_rps=lam * w)
        predicted = float(problem.curve(i, setup).latency_at(lam * w))
        kind = metric.split("_")[0]
        samples = {"ttft": res.ttft_ms, "tpot": res.tpot_ms, "e2e": res.e2e_ms}[kind]
        rows.append({"model": model, "setup": setup.label(), "fraction": w,
                     "load_rps": lam * w, "predicted_ms": predicted,
                     "simulated_ms": res.stats_ms[metric], "simulated_p99_ms":
                     res.stats_ms[f"{kind}_p99"], "saturated": res.saturated,
                     "mean_prompt_tokens": float(pt.mean()), "mean_output_tokens": float(ot.mean())})
        pooled.append(samples)
        weights.append(np.full(samples.size, w / samples.size))
    df = pd.DataFrame(rows)
    allv, allw = np.concatenate(pooled), np.concatenate(weights)
    order = np.argsort(allv)
    cdf = np.cumsum(allw[order]) / allw.sum()
    p99 = float(allv[order][np.searchsorted(cdf, 0.99)])
    sim_mean = float((df["fraction"] * df["simulated_ms"]).sum())
    return Replay(df, float(solution.latency_ms), sim_mean, p99, metric)
