"""The default instances, built from public data through the kit's pieces.

``default_problem(num_models=3 | 4, num_gpus=4 | 8, ...)`` assembles:

* **models**: a small/mid/large ladder mirroring the paper's (7B/13B/34B):
  llama-3.1-8b, mistral-small-24b, llama-3.3-70b; the 4-model ladder adds llama-3.2-3b.
  Parameter counts from RouteProfile's model card; per-shard memory from the memory model
  (``routerwise.serving.memory``, modelled) on public architecture configs;
* **scores**: RouteProfile (measured; human_eval/mbpp excluded), routed on scores PREDICTED
  out-of-fold by the TF-IDF ridge predictor (``routerwise.data.score_predictor``, fitted) standing in for
  the paper's DeBERTa router; the true scores ride along for realized-quality reports;
* **latency curves**: simulated by the serving simulator on fitted step costs
  (``routerwise.serving.curve_grid``; step costs fitted to LLM-Inference-Bench, Splitwise and vidur
  measurements; compute-share law modelled), mean TTFT against load by default;
* **cluster**: A100-80GB GPUs (datasheet memory), as in the paper.

Each problem lists these in ``problem.assumptions`` so every result can name what it rests on.
The paper's loads (50-80 req/s for 7B/13B/34B models) exceed what our larger ladder can carry
on 4 GPUs; :func:`paper_loads` scales them to the same fractions of our cluster's capacity.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

from ..data import latency_table as profiles
from ..errors import ValidationError
from ..optimize.bounds import SearchContext
from ..problem import SLO, Cluster, GPUType, ModelSpec, Problem, SetupSpace
from ..serving import architectures, memory

__all__ = ["LADDER_3", "LADDER_4", "PAPER_LOADS_RPS", "PAPER_SLOS_MS", "ladder",
           "predicted_scores", "profile_table", "model_specs", "default_problem",
           "max_capacity_rps", "loads_at_capacity", "paper_loads", "paper_load",
           "replay_default", "default_p99_profiles", "mixed_problem"]
from ..serving.hardware import gpu_spec

LADDER_3 = ("llama-3.1-8b-instruct", "mistral-small-24b-instruct-2501-bf16",
            "llama-3.3-70b-instruct")
LADDER_4 = ("llama-3.2-3b-instruct",) + LADDER_3
PAPER_LOADS_RPS = (50.0, 60.0, 70.0, 80.0)
PAPER_SLOS_MS = (400.0, 500.0, 600.0, 700.0, 800.0)


def ladder(num_models: int) -> tuple[str, ...]:
    if num_models not in (3, 4):
        raise ValidationError(f"the default ladders have 3 or 4 models, got {num_models}")
    return LADDER_3 if num_models == 3 else LADDER_4


@lru_cache(maxsize=8)
def predicted_scores(models: tuple[str, ...], seed: int = 0):
    """Out-of-fold predicted RouteProfile scores for ``models`` (cached per process)."""
    from ..data.score_predictor import cross_val_predict_scores
    from ..data.scores import load_routeprofile
    qm = load_routeprofile().select_models(models)
    return qm, cross_val_predict_scores(qm, n_folds=5, seed=seed)


@lru_cache(maxsize=8)
def profile_table(gpu: str = "A100-80GB", progress: bool = False):
    """Simulated profile table of the 4-model ladder on ``gpu`` (cached on disk and here)."""
    from ..serving.curve_grid import load_or_build
    return load_or_build(LADDER_4, gpu, progress=progress)


def model_specs(models, gpu: str = "A100-80GB", params_b: dict | None = None,
                tp_degrees=(1, 2, 4, 8)) -> tuple[ModelSpec, ...]:
    specs = []
    for m in models:
        arch = architectures.get(m)
        p = (params_b or {}).get(m, arch.param_count() / 1e9)
        specs.append(ModelSpec(m, float(p), tuple(memory.shard_memory_table(arch, tp_degrees).items())))
    return tuple(specs)


def _check_args(num_models, num_gpus, arrival_rate_rps, slo_ms, metric, aggregate) -> None:
    from ..problem import LATENCY_METRICS, _as_int, _is_real

    if _as_int(num_models, "num_models") not in (3, 4):
        raise ValidationError(f"num_models must be 3 or 4 (the RouteProfile ladders), got "
                              f"{num_models!r}")
    if _as_int(num_gpus, "num_gpus") < 1:
        raise ValidationError(f"num_gpus must be >= 1, got {num_gpus!r}")
    if arrival_rate_rps is not None and not (_is_real(arrival_rate_rps) and
                                             math.isfinite(arrival_rate_rps) and
                                             arrival_rate_rps > 0):
        raise ValidationError(f"the arrival rate must be a positive number of req/s, got "
                              f"{arrival_rate_rps!r}")
    if not (_is_real(slo_ms) and math.isfinite(slo_ms) and slo_ms > 0):
        raise ValidationError(f"the SLO must be a positive number of ms, got {slo_ms!r}")
    if metric not in LATENCY_METRICS:
        raise ValidationError(f"unknown latency metric {metric!r}; use one of {LATENCY_METRICS}")
    if aggregate not in ("mean", "max"):
        raise ValidationError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")


def default_problem(num_models: int = 3, num_gpus: int = 4, arrival_rate_rps: float | None = None,
                    slo_ms: float = 600.0, *, gpu: str = "A100-80GB", metric: str = "ttft_mean",
                    aggregate: str = "mean", space: SetupSpace | None = None,
                    score_seed: int = 0) -> Problem:
    """A default instance from real data (see the module docstring for every ingredient).

    The scalar arguments are checked first (ValidationError), before any data is read or the
    profile grid is built.
    """
    _check_args(num_models, num_gpus, arrival_rate_rps, slo_ms, metric, aggregate)
    models = ladder(num_models)
    qm, pred = predicted_scores(models, score_seed)
    table = profile_table(gpu)
    prof = profiles.to_profiles(table, metric, gpu=gpu, monotone="envelope")
    spec = gpu_spec(gpu)
    cluster = Cluster(GPUType(gpu, spec.memory_gb), num_gpus)
    rate = arrival_rate_rps if arrival_rate_rps is not None else \
        paper_loads(num_models, num_gpus, gpu=gpu)[0]
    workload = pred.to_workload(rate, label=f"RouteProfile {len(qm.prompt_ids)} prompts, "
                                             f"predicted out-of-fold ({pred.method})")
    kept = tuple(c for c in prof.curves if c.model in models)
    prof = type(prof)(kept, prof.metric)
    assumptions = (
        f"scores: RouteProfile {qm.scores.shape[0]} prompts (measured), routed on "
        f"out-of-fold predictions of {pred.method} (fitted); human_eval/mbpp excluded",
        f"latency: {metric} curves simulated from fitted step costs "
        f"(LLM-Inference-Bench, Splitwise, vidur) for {gpu}; interference between co-located "
        f"models not modelled",
        "compute share: MPS share law modelled (compute-bound 1/rho, memory-bound "
        "max(1, 0.4/rho)); not measured",
        f"memory: per-shard need modelled ({memory.DEFAULT.label()})",
        f"GPU: {gpu} datasheet figures ({spec.memory_gb:.1f} GB)",
        f"serving engine: {_engine_assumption()}",
        _margin_assumption(),
    )
    return Problem(model_specs(models, gpu, qm.params_b), cluster, workload, prof,
                   SLO(slo_ms, metric, aggregate), space or SetupSpace(),
                   name=f"routeprofile-{num_models}m-G{num_gpus}", assumptions=assumptions)


def mixed_problem(num_models: int = 3, gpus=None, arrival_rate_rps: float | None = None,
                  slo_ms: float = 600.0, *, metric: str = "ttft_mean", aggregate: str = "mean",
                  space: SetupSpace | None = None, score_seed: int = 0) -> Problem:
    """A default instance on a cluster of several GPU types, e.g.
    ``mixed_problem(3, {"A100-80GB": 4, "H100-80GB": 4}, 20.0, 600.0)``.

    Same models, scores and assumptions as :func:`default_problem`; the cluster has one pool
    per entry of ``gpus`` (name -> count, datasheet memory, in the given order) and each type's
    latency curves are simulated on that type (``routerwise.serving.curve_grid``; a type
    without step-cost data is a ValidationError naming what to add). The first build of a
    type's grid takes a while; it is cached. ``arrival_rate_rps`` defaults to 50% of the
    largest load the mixed cluster can carry (the paper's lowest load, as in
    :func:`paper_loads`).
    """
    from ..data.latency_table import to_profiles_by_gpu
    from ..serving.curve_grid import check_gpu_data

    gpus = dict(gpus or {"A100-80GB": 2, "H100-80GB": 2})
    if not gpus:
        raise ValidationError("mixed_problem needs at least one GPU type: {name: count}")
    names = list(gpus)
    _check_args(num_models, 8, arrival_rate_rps, slo_ms, metric, aggregate)
    for g in names:
        check_gpu_data(g)
    cluster = Cluster.mixed([(GPUType(g, gpu_spec(g).memory_gb), n) for g, n in gpus.items()])
    # models, scores and assumptions of the default instance (8 GPUs: every ladder model fits)
    base = default_problem(num_models, 8, 1.0 if arrival_rate_rps is None else arrival_rate_rps,
                           slo_ms, gpu=names[0], metric=metric, aggregate=aggregate,
                           space=space, score_seed=score_seed)
    import pandas as pd
    table = pd.concat([profile_table(g) for g in names], ignore_index=True)
    prof = to_profiles_by_gpu(table, metric, gpus=names, monotone="envelope")
    prof = type(prof)(tuple(c for c in prof.curves if c.model in base.model_names), prof.metric)
    label = "+".join(f"{n}x{g}" for g, n in gpus.items())
    assumptions = tuple(
        a.replace(f"for {names[0]};", f"for each GPU type ({', '.join(names)});")
        .replace(f"GPU: {names[0]} datasheet figures ({gpu_spec(names[0]).memory_gb:.1f} GB)",
                 "GPUs: " + ", ".join(f"{g} datasheet figures ({gpu_spec(g).memory_gb:.1f} GB)"
                                      for g in names))
        for a in base.assumptions)
    p = replace(base, cluster=cluster, profiles=prof,
                name=f"routeprofile-{num_models}m-{label}", assumptions=assumptions)
    if arrival_rate_rps is None:
        p = p.with_rate(loads_at_capacity(p, (PAPER_LOADS_RPS[0],))[0])
    return p


def _engine_assumption() -> str:
    from ..serving.curve_grid import GridOptions
    from ..serving.engine import get_profile

    return get_profile(GridOptions().engine_profile).label()


def _margin_assumption() -> str:
    from ..serving.curve_grid import GridOptions
    from ..serving.latency_validation import margin_label

    opts = GridOptions()
    if not opts.planning_margin:
        return "planning margin: off (latency curves as simulated)"
    return (margin_label(opts.engine_profile) + "; applied to every simulated latency curve so "
            "the held-out signed error is not negative on average")


def max_capacity_rps(problem: Problem) -> float:
    """Largest arrival rate some retained setup can carry within its profiled loads."""
    ctx = SearchContext.build(problem)
    return float(ctx.bank.max_load_rps[ctx.setups].sum(axis=1).max()) if len(ctx.setups) else 0.0


def loads_at_capacity(problem: Problem, percents=PAPER_LOADS_RPS) -> tuple[float, ...]:
    """Arrival rates at ``percents`` % of the largest load ``problem``'s cluster can carry
    (any problem: this is how the paper's 50-80 req/s map onto another ladder or cluster)."""
    pct = tuple(float(x) for x in percents)
    if not pct or any(not 0 < x <= 100 for x in pct):
        raise ValidationError(f"percents of capacity must lie in (0, 100], got {percents}")
    cap = max_capacity_rps(problem)
    if cap <= 0:
        raise ValidationError(f"{problem.name or 'the problem'}: no retained setup carries any "
                              f"load, so there is no capacity to take a fraction of")
    return tuple(round(cap * x / 100.0, 2) for x in pct)


def paper_loads(num_models: int, num_gpus: int = 4, *, gpu: str = "A100-80GB") -> tuple[float, ...]:
    """The paper's loads (50..80 req/s) mapped to the same fractions (50..80%) of the largest
    load our G = 4 cluster can carry for this ladder, shared by G = 4 and G = 8 as in the paper.
    """
    return _capacity_loads(num_models, gpu, PAPER_LOADS_RPS)


def paper_load(num_models: int, percent: float, *, gpu: str = "A100-80GB") -> float:
    """The arrival rate at ``percent`` % (any value in (0, 100]) of the largest load the
    ladder's G = 4 cluster can carry: the paper's 50, 60, 70, 80 req/s are ``percent`` 50..80
    here (rounded to 0.01 req/s like :func:`paper_loads`)."""
    from ..problem import _is_real
    if not (_is_real(percent) and math.isfinite(percent) and 0 < percent <= 100):
        raise ValidationError(f"load percent must be a number in (0, 100] (% of the largest "
                              f"load the G = 4 cluster carries; the paper's loads are "
                              f"{[int(x) for x in PAPER_LOADS_RPS]}); got {percent!r}")
    return _capacity_loads(num_models, gpu, (float(percent),))[0]


@lru_cache(maxsize=64)
def _capacity_loads(num_models: int, gpu: str, percents: tuple[float, ...]) -> tuple[float, ...]:
    return loads_at_capacity(default_problem(num_models, 4, arrival_rate_rps=1.0, gpu=gpu),
                             percents)


def replay_default(problem: Problem, plan, **options) -> dict:
    """The replay record (``routerwise.planning.consistency.replay_record``) of a plan for a default
    instance: its prompts are RouteProfile's (token counts measured), and the predicted p99
    comes from the default grid's p99 curves."""
    from ..planning.consistency import replay_record
    qm, _ = predicted_scores(problem.model_names)
    if len(qm.prompt_ids) != problem.workload.num_prompts:
        raise ValidationError(
            f"the workload has {problem.workload.num_prompts} prompts but the default "
            f"RouteProfile matrix {len(qm.prompt_ids)}: use routerwise.planning.consistency."
            f"replay_record with the QualityMatrix of your prompts")
    if "p99_profiles" not in options:
        options["p99_profiles"] = default_p99_profiles(problem)
    return replay_record(problem, plan, qm, **options)


def default_p99_profiles(problem: Problem):
    """The default grid's p99 curves of the problem's metric on its GPU (the predicted p99 of
    replay records); on a mixed cluster, per GPU type (curves naming their type)."""
    from ..planning.consistency import p99_metric, profile_set
    if problem.cluster.is_mixed:
        import pandas as pd

        from ..data.latency_table import to_profiles_by_gpu
        names = [t.name for t in problem.cluster.gpu_types]
        table = pd.concat([profile_table(g) for g in names], ignore_index=True)
        return to_profiles_by_gpu(table, p99_metric(problem.slo.metric), gpus=names,
                                  monotone="envelope")
    gpu = problem.cluster.gpu.name
    return profile_set(profile_table(gpu), p99_metric(problem.slo.metric), gpu)
