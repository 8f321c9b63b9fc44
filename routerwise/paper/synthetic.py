"""A labelled synthetic instance: modelled curves and scores for tests, demos and benchmarks.

Nothing here is measured. Latency follows a queueing-shaped curve
``l(x) = l0 / (1 - x / cap)`` (M/M/1-like) sampled up to 95% of capacity, with capacity and
unloaded latency scaled by tensor parallelism and compute share through modelled exponents;
scores come from a latent prompt difficulty and a per-model skill that grows with size.
Use the real-data instances in ``routerwise.paper.instances`` for anything reported as a finding.

Two ladders share these formulas. The fixed 4-rung ladder (``synthetic_problem``, 1..4 models;
tests and notebooks depend on its numbers) and a seeded ladder of any size
(:func:`ladder_rungs`, :func:`ladder_problem`) for scale studies: sizes log-spaced from about
1B to about 70B parameters, skill, capacity and unloaded latency following trend lines fitted
by eye to the fixed ladder (modelled), each jittered by a seeded factor so no two rungs tie.
:func:`ladder_problem` picks the arrival rate and the SLO by the documented rule in its
docstring, so instances of every size are neither trivial nor infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..problem import SLO, Cluster, GPUType, LatencyCurve, LatencyProfiles, ModelSpec, Problem, SetupSpace, Workload

__all__ = ["synthetic_models", "synthetic_profiles", "synthetic_workload", "synthetic_problem",
           "LadderRung", "ladder_rungs", "ladder_load_rps", "ladder_slo_ms", "ladder_problem"]

# name, params (B), skill, single-GPU capacity at full share (req/s), unloaded latency (ms)
_LADDER = (
    ("small-3b", 3.0, 0.35, 60.0, 40.0),
    ("mid-8b", 8.0, 0.50, 35.0, 70.0),
    ("large-24b", 24.0, 0.62, 14.0, 160.0),
    ("xl-70b", 70.0, 0.72, 4.0, 420.0),
)


def synthetic_models(num_models: int) -> tuple[ModelSpec, ...]:
    return _models_of(_ladder(num_models))


def _models_of(ladder) -> tuple[ModelSpec, ...]:
    # modelled shard memory: 2 GB per B params (fp16 weights) split over tp, plus 6 GB
    return tuple(ModelSpec(n, p, tuple((tp, 2.0 * p / tp + 6.0) for tp in (1, 2, 4, 8)))
                 for n, p, *_ in ladder)


def _ladder(num_models: int):
    """The largest ``num_models`` rungs (3 models: 8B/24B/70B-like, 4 adds a 3B-like)."""
    if not 1 <= num_models <= len(_LADDER):
        raise ValueError(f"synthetic ladder has 1..{len(_LADDER)} models")
    return _LADDER[len(_LADDER) - num_models:]


def synthetic_profiles(num_models: int, tp_degrees=(1, 2, 4), points: int = 16,
                       metric: str = "ttft_mean") -> LatencyProfiles:
    return _profiles_of(_ladder(num_models), tp_degrees, points, metric)


def _profiles_of(ladder, tp_degrees=(1, 2, 4), points: int = 16,
                 metric: str = "ttft_mean") -> LatencyProfiles:
    curves = []
    for name, _, _, cap1, l01 in ladder:
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
    return _workload_of(_ladder(num_models), num_prompts, arrival_rate_rps, seed)


def _workload_of(ladder, num_prompts: int, arrival_rate_rps: float, seed: int = 0,
                 label: str = "synthetic") -> Workload:
    rng = np.random.default_rng(seed)
    skill = np.array([s for _, _, s, _, _ in ladder])
    difficulty = rng.uniform(0.0, 1.0, num_prompts)
    topic = rng.normal(0.0, 0.08, (num_prompts, len(ladder)))  # per-prompt model affinities
    logits = 8.0 * (skill[None, :] - difficulty[:, None]) + 8.0 * topic
    true = (rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    pred = np.clip(1 / (1 + np.exp(-logits)) + rng.normal(0, 0.03, logits.shape), 0, 1)
    return Workload(pred, arrival_rate_rps, tuple(n for n, *_ in ladder), true_scores=true,
                    label=f"{label}(seed={seed})")


def synthetic_problem(num_models: int = 3, num_gpus: int = 4, arrival_rate_rps: float = 40.0,
                      slo_ms: float = 400.0, num_prompts: int = 400, seed: int = 0,
                      space: SetupSpace | None = None) -> Problem:
    """A complete synthetic problem (modelled curves and scores, A100-80GB-sized GPUs)."""
    return Problem(synthetic_models(num_models), Cluster(GPUType("A100-80GB", 80.0), num_gpus),
                   synthetic_workload(num_models, num_prompts, arrival_rate_rps, seed),
                   synthetic_profiles(num_models), SLO(slo_ms),
                   space or SetupSpace(), name=f"synthetic-{num_models}m-G{num_gpus}")


# ----------------------------------------------------------------------------- seeded ladder

@dataclass(frozen=True)
class LadderRung:
    """One modelled model of the seeded ladder (every field modelled, nothing measured)."""

    name: str
    params_b: float            # parameters, billions
    skill: float               # latent quality: P(correct) = sigmoid(8 (skill - difficulty))
    cap1_rps: float            # capacity on one GPU at full compute share, req/s
    l0_ms: float               # unloaded latency on one GPU at full share, ms


# Trend lines through the fixed ladder (3B: 0.35 / 60 req/s / 40 ms ... 70B: 0.72 / 4 / 420):
# skill grows with log size, capacity falls and unloaded latency grows as powers of size.
_SMALLEST_B, _LARGEST_B = 1.0, 70.0


def ladder_rungs(num_models: int, seed: int = 0) -> tuple[LadderRung, ...]:
    """``num_models`` modelled rungs, sizes log-spaced over [1B, 70B], smallest first.

    Trend (modelled, by eye through the fixed 4-rung ladder), with p in billions:
    ``skill = 0.35 + 0.118 ln(p / 3)``, ``cap1 = 60 (p / 3)^-0.86`` req/s,
    ``l0 = 40 (p / 3)^0.75`` ms; each rung's skill is shifted by N(0, 0.01) and its capacity and
    latency scaled by exp(N(0, 0.05)), seeded, so rungs do not tie. One model gives the 70B rung.
    """
    if isinstance(num_models, bool) or not isinstance(num_models, (int, np.integer)) \
            or num_models < 1:
        raise ValidationError(f"ladder_rungs: num_models must be a positive integer, "
                              f"got {num_models!r}")
    rng = np.random.default_rng([seed, 12])
    sizes = (np.array([_LARGEST_B]) if num_models == 1 else
             np.geomspace(_SMALLEST_B, _LARGEST_B, num_models))
    out = []
    for k, p in enumerate(sizes):
        ds, dc, dl = rng.normal(0.0, 0.01), rng.normal(0.0, 0.05), rng.normal(0.0, 0.05)
        p = float(round(p, 1))
        out.append(LadderRung(f"lad{k:02d}-{p:g}b", p, float(0.35 + 0.118 * np.log(p / 3) + ds),
                              float(60.0 * (p / 3) ** -0.86 * np.exp(dc)),
                              float(40.0 * (p / 3) ** 0.75 * np.exp(dl))))
    return tuple(out)


def _as_tuples(rungs) -> tuple:
    return tuple((r.name, r.params_b, r.skill, r.cap1_rps, r.l0_ms) for r in rungs)


def ladder_load_rps(rungs, num_gpus: int, load_fraction: float = 0.5) -> float:
    """Arrival rate of the scale rule: ``load_fraction`` of the equal-split capacity.

    Equal split: every model gets G / M GPUs' worth of compute; model i's capacity there is
    ``cap1_i (G / M)^0.85`` when G / M >= 1 and ``cap1_i (G / M)^0.8`` below (the curves' tp and
    share exponents). lambda = load_fraction * sum_i capacity_i (modelled).
    """
    u = num_gpus / len(rungs)
    e = 0.85 if u >= 1 else 0.8
    return float(load_fraction * sum(r.cap1_rps * u ** e for r in rungs))


def ladder_slo_ms(rungs, slo_factor: float = 1.0) -> float:
    """SLO of the scale rule: ``slo_factor`` x the geometric mean of the smallest and the largest
    rung's unloaded one-GPU latency (modelled). Sending everything to the smallest model meets
    it with room; sending everything to the largest does not, so the SLO binds the mix."""
    l0 = [r.l0_ms for r in rungs]
    return float(slo_factor * np.sqrt(min(l0) * max(l0)))


def ladder_problem(num_models: int, num_gpus: int, *, seed: int = 0, num_prompts: int = 300,
                   load_fraction: float = 0.5, slo_factor: float = 1.0,
                   space: SetupSpace | None = None) -> Problem:
    """A labelled synthetic problem of any size on the seeded ladder (modelled throughout).

    Rule for the load and the SLO (so every (M, G) is neither trivial nor infeasible):
    lambda = :func:`ladder_load_rps` (half the equal-split capacity by default) and
    tau = :func:`ladder_slo_ms` (geometric mean of the extremes' unloaded latencies). Curves,
    memory and scores use the same formulas as the fixed ladder; GPUs are A100-80GB-sized.
    """
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, np.integer)) or num_gpus < 1:
        raise ValidationError(f"ladder_problem: num_gpus must be a positive integer, "
                              f"got {num_gpus!r}")
    if not 0 < load_fraction <= 1:
        raise ValidationError(f"ladder_problem: load_fraction must be in (0, 1], got "
                              f"{load_fraction!r}")
    if not slo_factor > 0:
        raise ValidationError(f"ladder_problem: slo_factor must be > 0, got {slo_factor!r}")
    rungs = ladder_rungs(num_models, seed)
    ladder = _as_tuples(rungs)
    lam = ladder_load_rps(rungs, num_gpus, load_fraction)
    tau = ladder_slo_ms(rungs, slo_factor)
    return Problem(_models_of(ladder), Cluster(GPUType("A100-80GB", 80.0), num_gpus),
                   _workload_of(ladder, num_prompts, lam, seed, label="synthetic-ladder"),
                   _profiles_of(ladder), SLO(tau), space or SetupSpace(),
                   name=f"ladder-{num_models}m-G{num_gpus}",
                   assumptions=("modelled: synthetic ladder (routerwise.paper.synthetic); "
                                f"lambda = {load_fraction:g} x equal-split capacity = "
                                f"{lam:.1f} req/s, tau = {tau:.1f} ms",))
