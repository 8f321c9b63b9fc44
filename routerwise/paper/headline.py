"""The headline explained: how much score variation across setups the data can allow at all.

The statistic (the kit's, :func:`routerwise.paper.experiments.score_variation`, and the
paper's 87%): for one panel (cluster, load, SLO) let ``F`` be the feasible retained setups and
``S*_T = max_{w feasible under T} S(w)`` the best score setup ``T`` reaches (exact routing,
on the scores the optimizer routes on). Then

    variation = (max_{T in F} S*_T - min_{T in F} S*_T) / min_{T in F} S*_T.

Bounds from the score matrix alone
----------------------------------
Let ``s_ji`` in [0, 1] be the N x M matrix the optimizer routes on, ``m_i = (1/N) sum_j s_ji``
model i's mean and ``O = (1/N) sum_j max_i s_ji`` the oracle (every prompt to its best model).
``S(w)`` is the transportation LP of ``routerwise.optimize.assignment`` (``sum_i z_ji = 1``,
``sum_j z_ji = N w_i``, ``z >= 0``).

(U) ``S(w) <= O`` for every w: ``sum_i s_ji z_ji <= max_i s_ji`` because ``z_j.`` is a
    distribution over models. So ``S*_T <= O`` for every setup.
(L) ``S*_T >= min_i m_i`` for every FEASIBLE setup: T is feasible, so some fractions ``w``
    meet the SLO under T; ``z_ji = w_i`` (every prompt split in the proportions w) satisfies
    both constraint families, so ``S(w) >= (1/N) sum_j sum_i s_ji w_i = sum_i w_i m_i
    >= min_i m_i`` (a convex combination is at least its smallest term), and
    ``S*_T >= S(w)``. The argument needs only that a feasible setup admits SOME feasible
    fractions; it holds for both SLO aggregates, with or without headroom, because the
    latency side restricts w, never z given w.

Hence ``min <= max`` both lie in ``[L, U] = [min_i m_i, O]`` and

    variation <= (U - L) / L   ("max variation allowed"; infinite when some m_i = 0).

Both ends are attainable from scores alone: a setup whose SLO admits the oracle's fractions
reaches U, and a setup under which only the weakest model can carry the load sits at L
(``tests/test_headline.py`` builds one). Latency decides where between them the setups fall;
the gap between the measured variation and the bound is what the latency side takes away.

Spread sensitivity
------------------
:func:`spread_scores` moves the model means apart by a factor ``k`` while keeping each model's
per-prompt pattern: ``s'_ji = clip(s_ji + (k - 1)(m_i - mbar), 0, 1)`` with ``mbar`` the mean
of the ``m_i``. ``k = 1`` is the data, ``k = 0`` equalizes the means (up to clipping), ``k > 1``
widens them. Because clipping is monotone and the shift of a model below ``mbar`` falls as k
grows (one above ``mbar`` rises), for ``k >= 0``: every below-mean column's mean is
non-increasing in k, every above-mean column's is non-decreasing, below-mean columns stay below
``mbar`` and above-mean ones above it. So the weakest mean (L) is non-increasing, the best
single mean non-decreasing, and their gap non-decreasing in k; the oracle need not be monotone.

The second ladder
-----------------
LLMRouter's dcrouter scores (measured; 9 open models, 7B-70B) carry no token counts and name
models the architecture registry partly lacks. :func:`llmrouter_substitutions` says which
registered architecture stands in for each model and why; :func:`llmrouter_lengths` models the
token counts (RouteProfile's measured pairs, pooled: a named substitution); scores are routed on
predictions fitted on LLMRouter's train file for its test file (:func:`llmrouter_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..problem import SLO, Cluster, GPUType, ModelSpec, Problem, SetupSpace
from ..serving import architectures, memory

__all__ = ["PAPER_VARIATION_PCT", "VariationBounds", "variation_bounds", "check_inside",
           "headline_row", "LLMROUTER_MODELS", "LLMROUTER_LADDER_3", "LLMROUTER_LADDER_4",
           "llmrouter_substitutions", "llmrouter_architecture", "llmrouter_ladder",
           "llmrouter_lengths", "llmrouter_scores", "llmrouter_profile_table",
           "llmrouter_problem", "llmrouter_loads", "spread_scores", "with_scores",
           "spread_sensitivity", "spread_for_variation", "headline_sentence",
           "sensitivity_sentence"]

PAPER_VARIATION_PCT = 87.0  # the paper's headline (arXiv:2604.10907), same definition as ours


# ----------------------------------------------------------------------------- bounds

def _check_matrix(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValidationError(f"scores must be an N x M matrix (prompts x models) with N, M >= 1, "
                              f"got shape {s.shape}")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValidationError("scores must be finite and in [0, 1]; clip or rescale them first")
    return s


@dataclass(frozen=True)
class VariationBounds:
    """Bounds on every feasible setup's optimum from one score matrix (see the module docstring).

    ``upper`` is the oracle O, ``lower`` the weakest model's mean; ``max_variation_pct`` is
    100 (U - L) / L, the largest variation any latency side could produce.
    """

    upper: float
    lower: float
    weakest_model: str
    best_model: str
    best_single: float
    model_means: dict

    @property
    def max_variation_pct(self) -> float:
        return math.inf if self.lower <= 0 else 100.0 * (self.upper - self.lower) / self.lower

    @property
    def mean_gap(self) -> float:
        """Best minus weakest model mean: the spread across models."""
        return self.best_single - self.lower

    def as_dict(self) -> dict:
        return {"upper_bound": self.upper, "lower_bound": self.lower,
                "weakest_model": self.weakest_model, "best_model": self.best_model,
                "best_single_mean": self.best_single, "mean_gap": self.mean_gap,
                "max_variation_allowed_pct": self.max_variation_pct}


def variation_bounds(scores, model_names=None) -> VariationBounds:
    """[L, U] for the optimum of every feasible setup routed on ``scores`` (N x M in [0, 1])."""
    s = _check_matrix(scores)
    names = tuple(model_names) if model_names is not None else tuple(
        f"model{i}" for i in range(s.shape[1]))
    if len(names) != s.shape[1]:
        raise ValidationError(f"{len(names)} model names for {s.shape[1]} score columns")
    means = s.mean(axis=0)
    lo, hi = int(np.argmin(means)), int(np.argmax(means))
    return VariationBounds(upper=float(s.max(axis=1).mean()), lower=float(means[lo]),
                           weakest_model=names[lo], best_model=names[hi],
                           best_single=float(means[hi]),
                           model_means={n: float(m) for n, m in zip(names, means)})


def check_inside(bounds: VariationBounds, setup_scores, *, tol: float = 1e-7) -> None:
    """Raise ValidationError if a feasible setup's optimum lies outside ``[lower, upper]``
    (it cannot, by the module docstring's argument: a violation means the scores differ from
    the ones the bounds were computed on)."""
    v = np.asarray(setup_scores, dtype=float)
    v = v[np.isfinite(v)]
    if v.size and (v.min() < bounds.lower - tol or v.max() > bounds.upper + tol):
        raise ValidationError(f"setup optima span [{v.min():.6f}, {v.max():.6f}], outside the "
                              f"bounds [{bounds.lower:.6f}, {bounds.upper:.6f}]: were the bounds "
                              f"computed on the matrix the optimizer routed on?")


def headline_row(ladder: str, summaries: pd.DataFrame, bounds: VariationBounds,
                 true_bounds: VariationBounds | None = None) -> dict:
    """One row of the headline table: the measured variation over ``summaries`` (rows of
    ``score_variation(...)["summary"]``) beside the bounds of the routed matrix."""
    if not len(summaries):
        raise ValidationError("headline_row needs at least one panel summary")
    var = summaries["variation_pct"].astype(float)
    check_inside(bounds, np.r_[summaries["score_min"].to_numpy(float),
                               summaries["score_max"].to_numpy(float)])
    allowed = bounds.max_variation_pct
    row = {"ladder": ladder, "panels": int(len(summaries)),
           "measured_max_pct": float(var.max()), "measured_median_pct": float(var.median()),
           "score_min": float(summaries["score_min"].min()),
           "score_max": float(summaries["score_max"].max()),
           "lower_bound": bounds.lower, "upper_bound": bounds.upper,
           "max_variation_allowed_pct": allowed,
           "share_of_allowed_pct": 100 * float(var.max()) / allowed if math.isfinite(allowed)
           else 0.0,
           "weakest_model": bounds.weakest_model, "best_model": bounds.best_model}
    if true_bounds is not None:
        row["max_variation_allowed_true_pct"] = true_bounds.max_variation_pct
    return row


# ----------------------------------------------------------------------------- LLMRouter ladder

# model -> (nominal size in billions, from the model name; registered architecture used; why).
# A model with a registry entry of its own uses it; otherwise the architecture of the model it
# was derived from when the registry has that model's shapes, else the nearest registered
# architecture of the same family by size, the larger one on a tie (latency and memory then
# err high, never optimistic).
_LLMROUTER = {
    "codegemma-7b": (7.0, "gemma-2-9b-it",
                     "no CodeGemma/Gemma-1 entry; nearest registered Gemma-family architecture "
                     "(9.2B: latency and memory err high)"),
    "gemma-2-9b-it": (9.0, "gemma-2-9b-it", "registered"),
    "llama-3.1-8b-instruct": (8.0, "llama-3.1-8b-instruct", "registered"),
    "llama-3.1-nemotron-51b-instruct": (
        51.0, "llama-3.3-70b-instruct",
        "pruned from Llama-3.1-70B-Instruct (no entry for its pruned shapes); Llama-3.3-70B has "
        "the 70B shapes: latency and memory err high"),
    "llama-3.3-nemotron-super-49b-v1": (
        49.0, "llama-3.3-70b-instruct",
        "pruned from Llama-3.3-70B-Instruct (no entry for its pruned shapes); the parent's "
        "shapes: latency and memory err high"),
    "llama3-chatqa-1.5-70b": (70.0, "Meta-Llama-3-70B",
                              "fine-tune of Llama-3-70B: the base model's shapes"),
    "llama3-chatqa-1.5-8b": (8.0, "Meta-Llama-3-8B",
                             "fine-tune of Llama-3-8B: the base model's shapes"),
    "mistral-7b-instruct-v0.3": (7.0, "Mistral-7B-v0.1",
                                 "Mistral-7B v0.1 layer shapes; v0.3 extends the vocabulary "
                                 "(embeddings differ by under 0.1% of the parameters)"),
    "qwen2.5-7b-instruct": (7.0, "qwen2.5-7b-instruct", "registered"),
}
LLMROUTER_MODELS = tuple(sorted(_LLMROUTER))
# Ladders chosen by size and registry, never by score: the largest model (70B) and the small
# models with a registry entry of their own, smallest first (qwen2.5-7b, then
# llama-3.1-8b-instruct, the one model both ladders share; the 4-model ladder adds
# gemma-2-9b-it). One large model only: the ~50B models are modelled with 70B shapes, and two
# 70B-shaped models do not fit 4 A100-80GB beside each other (each needs tp 4).
LLMROUTER_LADDER_3 = ("qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "llama3-chatqa-1.5-70b")
LLMROUTER_LADDER_4 = LLMROUTER_LADDER_3[:2] + ("gemma-2-9b-it",) + LLMROUTER_LADDER_3[2:]


def llmrouter_substitutions() -> pd.DataFrame:
    """One row per LLMRouter model: the architecture its latency and memory are modelled with,
    whether that is its own entry ("registered") or a stand-in ("substituted"), and why."""
    rows = []
    for m in LLMROUTER_MODELS:
        size, arch, why = _LLMROUTER[m]
        a = architectures.get(arch)
        rows.append({"model": m, "nominal_params_b": size, "architecture": arch,
                     "architecture_params_b": a.params_b,
                     "kind": "registered" if arch == m else "substituted", "why": why})
    return pd.DataFrame(rows)


def llmrouter_architecture(model: str) -> architectures.Architecture:
    """The architecture that models ``model``'s latency and memory, named ``model`` (so its
    curves carry the score table's name); a substitute says so in ``notes``."""
    if model not in _LLMROUTER:
        raise ValidationError(f"{model!r} is not an LLMRouter model; known {LLMROUTER_MODELS}")
    _, arch, why = _LLMROUTER[model]
    a = architectures.get(arch)
    if arch == model:
        return a
    return replace(a, name=model, notes=f"substituted: shapes of {arch} ({why})"
                   + (f"; {a.notes}" if a.notes else ""))


def llmrouter_ladder(num_models: int) -> tuple[str, ...]:
    if num_models not in (3, 4):
        raise ValidationError(f"the LLMRouter ladders have 3 or 4 models, got {num_models!r}")
    return LLMROUTER_LADDER_3 if num_models == 3 else LLMROUTER_LADDER_4


@lru_cache(maxsize=1)
def llmrouter_lengths():
    """MODELLED token counts for LLMRouter prompts (the source has none): RouteProfile's
    measured (prompt, completion) pairs pooled over its models and prompts, one sample for
    every LLMRouter model. The sample's label says "modelled" and names the substitution."""
    from ..data.scores import load_routeprofile
    from ..serving.curve_grid import LengthSample

    qm = load_routeprofile()
    if qm.prompt_tokens is None or qm.completion_tokens is None:
        raise ValidationError("the RouteProfile matrix carries no token counts to model from")
    return LengthSample(qm.prompt_tokens.ravel(), qm.completion_tokens.ravel(),
                        f"modelled: LLMRouter has no token counts; RouteProfile's measured "
                        f"(prompt, completion) pairs pooled over its {qm.num_models} models and "
                        f"{qm.num_prompts} prompts stand in")


@lru_cache(maxsize=4)
def llmrouter_scores(models: tuple[str, ...]):
    """Predicted scores of LLMRouter's 500 test prompts for ``models``: the kit's TF-IDF ridge
    fitted on the 5,608 train prompts (fitted; true = measured test scores)."""
    from ..data.score_predictor import fit_predict_scores
    from ..data.scores import load_llmrouter

    unknown = [m for m in models if m not in _LLMROUTER]
    if unknown:
        raise ValidationError(f"unknown LLMRouter models {unknown}; known {LLMROUTER_MODELS}")
    train = load_llmrouter("train").select_models(models)
    test = load_llmrouter("test").select_models(models)
    return test, fit_predict_scores(train, test)


@lru_cache(maxsize=2)
def llmrouter_profile_table(gpu: str = "A100-80GB", workers: int = 2):
    """Simulated curves of the 4-model LLMRouter ladder (substituted architectures, modelled
    lengths; the 3-model ladder uses its subset), cached under ``ROUTERWISE_CACHE_DIR`` like
    the default grid (about 1 s per curve to build, once)."""
    from ..serving.curve_grid import load_or_build

    archs = [llmrouter_architecture(m) for m in LLMROUTER_LADDER_4]
    return load_or_build(archs, gpu, lengths=llmrouter_lengths(), workers=workers,
                         progress=False)


def llmrouter_problem(num_models: int = 3, num_gpus: int = 4,
                      arrival_rate_rps: float | None = None, slo_ms: float = 600.0, *,
                      gpu: str = "A100-80GB", metric: str = "ttft_mean",
                      aggregate: str = "mean", space: SetupSpace | None = None) -> Problem:
    """The default study on LLMRouter's ladder (:data:`LLMROUTER_LADDER_3` / ``_4``).

    Like :func:`routerwise.paper.instances.default_problem` but: scores are LLMRouter's
    (measured test scores, routed on predictions fitted on its train file), architectures are
    substituted where the registry lacks them (:func:`llmrouter_substitutions`), token counts
    are modelled (:func:`llmrouter_lengths`). ``arrival_rate_rps=None`` takes 50% of the largest
    load a G = 4 cluster carries (:func:`llmrouter_loads`).
    """
    from ..data import latency_table as profiles
    from ..serving.hardware import gpu_spec
    from .instances import _check_args

    _check_args(num_models, num_gpus, arrival_rate_rps, slo_ms, metric, aggregate)
    models = llmrouter_ladder(num_models)
    test, pred = llmrouter_scores(models)
    prof = profiles.to_profiles(llmrouter_profile_table(gpu), metric, gpu=gpu,
                                monotone="envelope")
    prof = type(prof)(tuple(c for c in prof.curves if c.model in models), prof.metric)
    spec = gpu_spec(gpu)
    rate = arrival_rate_rps if arrival_rate_rps is not None else llmrouter_loads(
        num_models, (50,), gpu=gpu)[0]
    specs = []
    for m in models:
        a = llmrouter_architecture(m)
        size = a.params_b if _LLMROUTER[m][1] == m else _LLMROUTER[m][0]
        specs.append(ModelSpec(m, float(size), tuple(memory.shard_memory_table(
            a, (1, 2, 4, 8)).items())))
    subs = llmrouter_substitutions().set_index("model")
    assumptions = (
        f"scores: LLMRouter dcrouter test split, {test.num_prompts} prompts (measured), routed "
        f"on predictions of {pred.method} (fitted); " + "; ".join(pred.notes),
        "architectures: " + "; ".join(
            f"{m} -> {subs.loc[m, 'architecture']} ({subs.loc[m, 'kind']})" for m in models),
        f"token counts: {llmrouter_lengths().label}",
        f"latency: {metric} curves simulated from fitted step costs for {gpu}; interference "
        f"between co-located models not modelled",
        "compute share: MPS share law modelled; not measured",
        f"memory: per-shard need modelled ({memory.DEFAULT.label()}) on the architectures above",
    )
    return Problem(tuple(specs), Cluster(GPUType(gpu, spec.memory_gb), num_gpus),
                   pred.to_workload(rate, label=f"LLMRouter {test.num_prompts} test prompts, "
                                                f"predicted ({pred.method})"),
                   prof, SLO(slo_ms, metric, aggregate), space or SetupSpace(),
                   name=f"llmrouter-{num_models}m-G{num_gpus}", assumptions=assumptions)


def llmrouter_loads(num_models: int, percents=(50, 60, 70, 80), *,
                    gpu: str = "A100-80GB") -> tuple[float, ...]:
    """The paper's loads as percents of the largest load a G = 4 cluster carries for the
    LLMRouter ladder (as :func:`routerwise.paper.instances.paper_loads` for the default)."""
    from .instances import loads_at_capacity
    return loads_at_capacity(llmrouter_problem(num_models, 4, 1.0, gpu=gpu), percents)


# ----------------------------------------------------------------------------- sensitivity

def spread_scores(scores, factor: float) -> np.ndarray:
    """``clip(s_ji + (factor - 1)(m_i - mbar), 0, 1)``: model means moved apart by ``factor``
    (module docstring); ``factor >= 0``."""
    s = _check_matrix(scores)
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 0):
        raise ValidationError(f"the spread factor must be a finite number >= 0, got {factor!r}")
    m = s.mean(axis=0)
    return np.clip(s + (factor - 1.0) * (m - m.mean())[None, :], 0.0, 1.0)


def with_scores(problem: Problem, scores) -> Problem:
    """``problem`` routed on another score matrix (same prompts and models)."""
    s = _check_matrix(scores)
    if s.shape != problem.workload.scores.shape:
        raise ValidationError(f"scores of shape {s.shape} for a workload of shape "
                              f"{problem.workload.scores.shape}")
    return replace(problem, workload=replace(problem.workload, scores=s))


def spread_sensitivity(problem: Problem, factors=(0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0), *,
                       workers: int = 1) -> pd.DataFrame:
    """Measured variation (every retained setup solved exactly) and the bounds of the routed
    matrix after :func:`spread_scores` with each factor; one row per factor."""
    from ..optimize.exact_search import evaluate_all

    rows = []
    for k in factors:
        s = spread_scores(problem.workload.scores, float(k))
        b = variation_bounds(s, problem.model_names)
        df = evaluate_all(with_scores(problem, s), workers=workers)
        feas = df[df["feasible"]]
        f = feas["score"].to_numpy(float)
        check_inside(b, f)
        lo, hi = (float(f.min()), float(f.max())) if f.size else (np.nan, np.nan)
        # how much of the load the worst feasible setup must give the weakest model
        share = (float(feas.loc[feas["score"].idxmin(), f"w[{b.weakest_model}]"]) if f.size
                 else np.nan)
        rows.append({"factor": float(k), **b.as_dict(), "feasible": int(f.size),
                     "score_min": lo, "score_max": hi,
                     "measured_variation_pct": 100 * (hi - lo) / lo if f.size else np.nan,
                     "weakest_share_at_min": share})
    return pd.DataFrame(rows)


def _crossing(x: np.ndarray, y: np.ndarray, target: float):
    """First x where the piecewise-linear y(x) reaches target (None if it never does)."""
    for a in range(len(x) - 1):
        if y[a] >= target:
            return float(x[a])
        if y[a] < target <= y[a + 1]:
            return float(x[a] + (target - y[a]) * (x[a + 1] - x[a]) / (y[a + 1] - y[a]))
    return float(x[-1]) if len(x) and y[-1] >= target else None


def spread_for_variation(table: pd.DataFrame, target_pct: float = PAPER_VARIATION_PCT) -> dict:
    """Where the sensitivity table reaches ``target_pct``: the factor and mean gap at which the
    measured variation, and the bound, first reach it (linear interpolation between factors;
    None when no factor tried reaches it)."""
    t = table.sort_values("factor")
    x, gap = t["factor"].to_numpy(float), t["mean_gap"].to_numpy(float)
    if not np.isclose(x, 1.0).any():
        raise ValidationError(f"the sensitivity table needs factor 1 (the data itself) to say "
                              f"how far the data is from {target_pct:g}%; factors {list(x)}")
    out = {"target_pct": float(target_pct)}
    for what, col in (("measured", "measured_variation_pct"), ("bound", "max_variation_allowed_pct")):
        k = _crossing(x, t[col].to_numpy(float), target_pct)
        out[f"{what}_factor"] = k
        out[f"{what}_mean_gap"] = None if k is None else float(np.interp(k, x, gap))
    for what in ("measured", "bound"):
        k = out[f"{what}_factor"]
        for col, key in (("lower_bound", "weakest_mean"), ("best_single_mean", "best_mean")):
            out[f"{what}_{key}"] = None if k is None else float(
                np.interp(k, x, t[col].to_numpy(float)))
    data = t.loc[np.isclose(x, 1.0)]
    for col, key in (("mean_gap", "data_mean_gap"), ("lower_bound", "data_lower"),
                     ("upper_bound", "data_upper")):
        out[key] = float(data[col].iloc[0])
    last = t.iloc[-1]
    out.update(factor_max=float(last["factor"]),
               last_measured_pct=float(last["measured_variation_pct"]),
               last_weakest_mean=float(last["lower_bound"]),
               last_weakest_share=float(last.get("weakest_share_at_min", np.nan)),
               weakest_model=str(last["weakest_model"]))
    return out


def headline_sentence(row: dict) -> str:
    """The headline's conclusion for one ladder, generated from its numbers."""
    allowed = row["max_variation_allowed_pct"]
    reach = ("the scores alone would allow the paper's 87% (the latency side decides)"
             if allowed >= PAPER_VARIATION_PCT else
             "this data cannot reach the paper's 87% whatever the latency side does")
    return (f"{row['ladder']}: the largest measured variation is {row['measured_max_pct']:.1f}% "
            f"(median {row['measured_median_pct']:.1f}%) over {row['panels']} panels; the "
            f"scores routed on allow at most {allowed:.1f}% (every setup's optimum lies in "
            f"[{row['lower_bound']:.3f}, {row['upper_bound']:.3f}]), so {reach}; "
            f"the setups use {row['share_of_allowed_pct']:.0f}% of what the scores allow.")


def sensitivity_sentence(ladder: str, found: dict) -> str:
    """What spread across models the target variation needs, generated from
    :func:`spread_for_variation`'s numbers (the table must include factor 1, the data)."""
    target = found["target_pct"]
    share = 1 / (1 + target / 100)
    L, U = found["data_lower"], found["data_upper"]
    head = (f"{ladder}: {target:.0f}% is possible only if the weakest model's mean is at most "
            f"{share:.3f} x the oracle ({share * U:.3f} here; the data's is {L:.3f}, "
            f"{'low enough' if L <= share * U else 'too high'}). ")
    if found["measured_factor"] is None:
        meas = (f"Spreading the model means apart never gives a measured {target:.0f}% up to "
                f"factor {found['factor_max']:g}: there the weakest model "
                f"({found['weakest_model']}) averages {found['last_weakest_mean']:.3f} and the "
                f"setups still vary by only {found['last_measured_pct']:.1f}%: the worst feasible "
                f"setup sends it {100 * found['last_weakest_share']:.0f}% of the prompts")
        if found["bound_factor"] is not None:
            meas += (f" (the bound allows {target:.0f}% from factor "
                     f"{found['bound_factor']:.2f})")
        return head + meas + "."
    k, gap = found["measured_factor"], found["measured_mean_gap"]
    return head + (f"The measured variation reaches {target:.0f}% at spread factor {k:.2f}: "
                   f"model means from {found['measured_weakest_mean']:.3f} to "
                   f"{found['measured_best_mean']:.3f}, a gap of {gap:.3f} "
                   f"({gap / found['data_mean_gap']:.1f}x the data's {found['data_mean_gap']:.3f}), "
                   f"with scores kept in [0, 1].")
