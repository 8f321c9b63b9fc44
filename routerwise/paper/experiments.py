"""The analyses behind the notebooks: each returns tidy tables the notebooks plot and record.

Every plan here comes from ``routerwise.solve`` (verified, with the problem's assumptions in its
notes), as in the notebooks.

Notebooks stay thin: they set parameters, call one function here per figure or table, plot,
and record key numbers. Every function takes plain parameters and returns DataFrames/dicts.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..optimize.baselines import run_baselines
from ..optimize.bounds import SearchContext
from ..optimize.exact_search import evaluate_all
from ..optimize.fixed_setup import evaluate_plan
from ..optimize.setup_space import enumerate_setups
from ..optimize.solution import Solution
from ..parallel import map_tasks
from ..planning.online_router import OnlineRouter
from ..planning.solve import solve
from ..problem import Problem, SetupSpace
from ..settings import SHARE_PANELS_ENV
from .instances import default_problem, paper_load

__all__ = ["PAPER", "SPACES", "RATE_FACTORS", "setup_counts", "setup_space_counts", "score_variation", "panels",
           "solver_comparison", "realized_scores", "rate_sensitivity", "mix_shift",
           "summarize_shifts", "tail_slo_variant", "notebook_panels", "panel_problem",
           "check_plans", "headroom_frontier", "PANEL_CHECKPOINT_SALT", "SHARE_PANELS_ENV",
           "shared_panel_checkpoint"]

PAPER = {  # the paper's reported figures (arXiv:2604.10907), for side-by-side tables
    "score_min": 0.30, "score_max": 0.56, "variation_pct": 87.0,
    "retained_3m_G4": 700, "retained_4m_G4": (16_000, 17_000),
    "seconds_per_setup": 1.0,
}
# enters every panel's checkpoint key: bump it when score_variation's results change
PANEL_CHECKPOINT_SALT = "score_variation-v1"
SPACES = {
    "paper": SetupSpace(check_compute=False),   # utilization + memory (the paper's checks)
    "ours": SetupSpace(),                       # + compute shares placed exactly
}


# ----------------------------------------------------------------------------- setup space

def setup_counts(problem: Problem) -> dict:
    """Setups surviving each filter for one problem (its models and cluster; any problem)."""
    mem = enumerate_setups(problem.with_space(replace(problem.space, check_compute=False)))
    ours = enumerate_setups(problem.with_space(replace(problem.space, check_compute=True)))
    c = mem.stage_counts
    return {"models": problem.num_models, "gpus": problem.cluster.num_gpus,
            "cartesian": c["cartesian"], "utilization": c["utilization"],
            "shards_fit_one_gpu": c["usable_options"], "memory_ffd_paper": c["memory_ffd"],
            "memory_exact": c["memory_exact"],
            "memory_compute_ours": ours.stage_counts["retained"],
            "kept_by_paper_but_oversubscribed": c["memory_exact"] - len(ours),
            "ffd_false_negatives": c["memory_exact"] - c["memory_ffd"]}


def setup_space_counts(num_models=(3, 4), num_gpus=(4, 6, 8), gpu: str = "A100-80GB", *,
                       problems=None) -> pd.DataFrame:
    """Setups surviving each filter per ladder and cluster size (the paper's Fig. 6).

    ``problems`` (any problems) replaces the default ladders; each is counted at every
    cluster size in ``num_gpus``.
    """
    base = list(problems) if problems is not None else [
        default_problem(M, 4, arrival_rate_rps=1.0, gpu=gpu) for M in num_models]
    return pd.DataFrame([setup_counts(p.with_cluster(G)) for p in base for G in num_gpus])


# ----------------------------------------------------------------------------- score variation

def score_variation(problem: Problem, *, workers: int = 2, executor=None) -> dict:
    """Every retained setup's best score, the optimum, and the paper's baselines, for one panel.

    Returns ``{"setups": DataFrame, "best": Solution, "baselines": {name: Solution},
    "summary": dict}``; the summary's ``variation_pct`` is (max - min) / min over feasible
    setups, the paper's headline statistic. ``workers`` / ``executor``: where the per-setup
    evaluation runs (:func:`routerwise.optimize.exact_search.evaluate_all`).
    """
    ctx = SearchContext.build(problem)
    df = evaluate_all(problem, context=ctx, workers=workers, executor=executor)
    best = solve(problem, "exact", context=ctx)
    base = run_baselines(problem, context=ctx)
    f = df[df["feasible"]]
    smin, smax = (float(f["score"].min()), float(f["score"].max())) if len(f) else (np.nan, np.nan)
    summary = {"instance": problem.name, "rate_rps": problem.arrival_rate_rps,
               "slo_ms": problem.slo.latency_ms, "setups": len(df), "feasible": len(f),
               "score_min": smin, "score_max": smax,
               "variation_pct": 100 * (smax - smin) / smin if len(f) else np.nan,
               "best_score": best.score if best.feasible else np.nan,
               "best_setup": best.setup.label() if best.feasible else "infeasible"}
    for k, sol in base.items():
        summary[f"{k}_score"] = sol.score if sol.feasible else np.nan
    return {"setups": df, "best": best, "baselines": base, "summary": summary}


def _panel(task) -> dict:
    problem, workers = task
    return score_variation(problem, workers=workers)


@functools.cache
def _kit_source_digest() -> str:
    """sha256 of every source file of the installed kit (path and bytes): results cached
    under it are never reused by other code."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def shared_panel_checkpoint() -> tuple[Path, str] | None:
    """(folder, salt) of the panel results shared through the cache, when
    ``ROUTERWISE_SHARE_PANELS`` is on and the cache folder takes files; else None.

    The folder is ``<cache>/panels``; the salt names :data:`PANEL_CHECKPOINT_SALT` and a
    digest of the kit's source, so a panel is reused only by the same code on the same
    problem (its content: models, scores, curves, cluster, load, SLO, space). Files are
    HMAC-checked pickles (:mod:`routerwise.parallel`)."""
    from ..settings import TRUE_WORDS, cache_dir
    if os.environ.get(SHARE_PANELS_ENV, "").strip().lower() not in TRUE_WORDS:
        return None
    folder = cache_dir() / "panels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None    # silently computed: a cache only saves time
    return folder, f"{PANEL_CHECKPOINT_SALT}:{_kit_source_digest()}"


def panels(problem: Problem, num_gpus, loads, slos, space: SetupSpace | None = None, *,
           workers: int = 2, executor=None, checkpoint=None, progress: bool = False):
    """score_variation of ``problem`` at every (G, load, SLO); yields (problem, result).

    Any problem: its models, scores and curves stay, the cluster size, arrival rate and SLO
    take each value in turn (``space`` replaces its setup space when given).

    Panels are independent tasks (:func:`routerwise.parallel.map_tasks`): on ``executor``
    (any :class:`concurrent.futures.Executor`: a Dask client's ``get_executor()``, a
    ``ProcessPoolExecutor``, ...; the caller owns it), else on ``workers`` local
    spawn-started processes, one panel each (a single panel uses them for its setups
    instead). Results come in panel order and are the same whatever runs them.
    ``checkpoint`` (a folder) keeps each finished panel, keyed by its problem's content and
    :data:`PANEL_CHECKPOINT_SALT`: after a failure (:class:`~routerwise.errors.SweepFailed`)
    the same call computes only the missing panels. Without one, with
    ``ROUTERWISE_SHARE_PANELS=1`` (as ``routerwise reproduce`` runs the notebooks), the
    panels are shared through the cache: :func:`shared_panel_checkpoint`.
    """
    salt = PANEL_CHECKPOINT_SALT
    if checkpoint is None:
        shared = shared_panel_checkpoint()
        if shared is not None:
            checkpoint, salt = shared
    base = problem if space is None else problem.with_space(space)
    stem = re.sub(r"-G\d+$", "", base.name)
    probs = [replace(base.with_cluster(G).with_rate(lam).with_slo(tau), name=f"{stem}-G{G}")
             for G in num_gpus for lam in loads for tau in slos]
    across = executor is not None or (workers > 1 and len(probs) > 1)
    results = map_tasks(_panel, [(p, 1 if across else workers) for p in probs],
                        executor=executor, workers=workers if across else 1,
                        start_method="spawn", checkpoint=checkpoint,
                        salt=salt, key_of=lambda t: t[0],
                        progress=progress, desc="panels")
    yield from zip(probs, results)


# ----------------------------------------------------------------------------- exact vs dual

def solver_comparison(problem: Problem, *, milp_time_limit_s: float = 120.0) -> pd.DataFrame:
    """The MILP optimum, the paper's dual-price method and the default solver on one panel,
    each through ``routerwise.solve`` (which verifies the plan; the time includes that)."""
    rows = []
    ctx = SearchContext.build(problem)
    runs = {"milp[HiGHS]": lambda: solve(problem, "milp", time_limit_s=milp_time_limit_s),
            "dual-price (paper)": lambda: solve(problem, "dual-price", context=ctx),
            "routerwise-exact (default)": lambda: solve(problem, "exact", context=ctx)}
    sols = {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        sols[name] = run()  # rw.solve verifies every plan
        sols[name] = replace(sols[name], solve_time_s=time.perf_counter() - t0)
    opt = sols["milp[HiGHS]"]
    for name, s in sols.items():
        rows.append({"instance": problem.name, "rate_rps": problem.arrival_rate_rps,
                     "slo_ms": problem.slo.latency_ms, "solver": name, "status": s.status,
                     "score": s.score if s.feasible else np.nan,
                     "gap_to_milp_pct": 100 * (opt.score - s.score) / opt.score
                     if s.feasible and opt.feasible else np.nan,
                     "proven_gap_pct": None if s.gap is None else 100 * s.gap,
                     "time_s": s.solve_time_s, "setups": ctx.setups.shape[0],
                     "setup": s.setup.label() if s.feasible else ""})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- beyond the paper

def realized_scores(problem: Problem, solutions: dict[str, Solution]) -> pd.DataFrame:
    """Predicted S(w) against the realized (true) score of the same exact assignment."""
    rows = []
    for name, s in solutions.items():
        if not s.feasible:
            continue
        rows.append({"plan": name, "predicted_score": s.score,
                     "realized_score": s.realized_score(problem)})
    return pd.DataFrame(rows)


def rate_sensitivity(problem: Problem, solution: Solution, factors=(0.8, 0.9, 1.0, 1.05, 1.1, 1.2)) -> pd.DataFrame:
    """The same plan (setup and fractions) when the arrival rate is off by a factor."""
    rows = []
    for f in factors:
        q = problem.with_rate(problem.arrival_rate_rps * f)
        L = evaluate_plan(q, solution.setup, solution.fractions)
        rows.append({"rate_factor": f, "rate_rps": q.arrival_rate_rps, "latency_ms": L,
                     "meets_slo": bool(L <= problem.slo.latency_ms * (1 + 1e-9))})
    return pd.DataFrame(rows)


def mix_shift(problem: Problem, solution: Solution, tasks, *, shifts: int = 20, seed: int = 0,
              concentration: float = 1.0) -> pd.DataFrame:
    """Route shifted prompt mixes with the plan's fixed prices (the online router).

    Each shift redraws the task shares from a Dirichlet(concentration) and resamples N prompts
    with those shares; the router, with the plan's prices, decides where each goes. A shifted
    mix moves the fractions, hence the latency: the table says by how much, and whether the SLO
    still holds, without re-planning.
    """
    rng = np.random.default_rng(seed)
    tasks = np.asarray(tasks)
    names, t_idx = np.unique(tasks, return_inverse=True)
    per_task = np.bincount(t_idx)
    S, T = problem.workload.scores, problem.workload.true_scores
    N = S.shape[0]
    rows = []
    for k in range(shifts):
        share = rng.dirichlet(np.full(names.size, concentration))
        weight = share[t_idx] / per_task[t_idx]        # prompt probability: its task's share
        idx = rng.choice(N, size=N, p=weight / weight.sum())
        router = OnlineRouter.from_solution(solution, problem.model_names)
        picks = router.route_batch(S[idx])
        w = router.realized_fractions
        L = evaluate_plan(problem, solution.setup, w)
        rows.append({"shift": k, "max_task_share": float(share.max()),
                     "predicted_score": float(S[idx, picks].mean()),
                     "realized_score": float(T[idx, picks].mean()) if T is not None else np.nan,
                     "latency_ms": L, "meets_slo": bool(L <= problem.slo.latency_ms * (1 + 1e-9)),
                     **{f"w[{n}]": float(v) for n, v in zip(problem.model_names, w)}})
    return pd.DataFrame(rows)


def summarize_shifts(df: pd.DataFrame) -> pd.DataFrame:
    """One row of a mix-shift table: scores, share of shifts meeting the SLO, and latency
    percentiles (a shift that pushes a model past its profiled load has infinite latency)."""
    lat = df["latency_ms"].to_numpy(dtype=float)
    finite = lat[np.isfinite(lat)]
    return pd.DataFrame([{
        "shifts": len(df), "meeting_slo": float(df["meets_slo"].mean()),
        "predicted_score_mean": float(df["predicted_score"].mean()),
        "realized_score_mean": float(df["realized_score"].mean()),
        "beyond_profiled_load": int((~np.isfinite(lat)).sum()),
        "latency_ms_median_finite": float(np.median(finite)) if finite.size else np.nan,
        "latency_ms_max_finite": float(finite.max()) if finite.size else np.nan}])


def tail_slo_variant(num_models: int, num_gpus: int, rate_rps: float, slo_ms: float,
                     gpu: str = "A100-80GB") -> pd.DataFrame:
    """Optimum under the paper's mean-TTFT SLO vs a p99-TTFT SLO on every routed model."""
    rows = []
    for metric, agg in (("ttft_mean", "mean"), ("ttft_p99", "max")):
        p = default_problem(num_models, num_gpus, rate_rps, slo_ms, metric=metric,
                            aggregate=agg, gpu=gpu)
        s = solve(p)
        rows.append({"slo": f"{metric} ({agg}) <= {slo_ms:g} ms", "status": s.status,
                     "score": s.score if s.feasible else np.nan,
                     "latency_ms": s.latency_ms if s.feasible else np.nan,
                     "setup": s.setup.label() if s.feasible else s.infeasibility.message})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- plans that hold

def notebook_panels() -> list[dict]:
    """The default panels the notebooks solve (03: 3 models x G {4, 8} x loads {50, 80}% x
    SLOs {400, 800} ms, and the 4-model ladder at G = 4; 04/05: 3 and 4 models x G {4, 8} at
    60% and 600 ms), in the paper's setup space (utilization + memory)."""
    out = []
    for G in (4, 8):
        for pct in (50, 80):
            for tau in (400.0, 800.0):
                out.append({"models": 3, "gpus": G, "load_percent": pct, "slo_ms": tau})
    for pct in (50, 80):
        for tau in (400.0, 800.0):
            out.append({"models": 4, "gpus": 4, "load_percent": pct, "slo_ms": tau})
    for M in (3, 4):
        for G in (4, 8):
            out.append({"models": M, "gpus": G, "load_percent": 60, "slo_ms": 600.0})
    return out


def panel_problem(models: int, gpus: int, load_percent: int, slo_ms: float,
                  space: str = "paper", gpu: str = "A100-80GB") -> Problem:
    lam = paper_load(models, load_percent, gpu=gpu)
    return default_problem(models, gpus, lam, slo_ms, space=SPACES[space], gpu=gpu)


def check_plans(problem: Problem, *, headroom: float | None = None,
                replay_requests: int = 4000, workers: int = 2) -> dict:
    """Today's exact plan (whole-mix curves, no headroom) and the consistent plan
    (``routerwise.planning.consistency``), each replayed with the prompts it routes: one flat row."""
    from ..planning.consistency import DEFAULT_HEADROOM_LADDER, plan_consistently, replay_record
    from .instances import default_p99_profiles, predicted_scores
    headroom = DEFAULT_HEADROOM_LADDER if headroom is None else headroom
    qm, _ = predicted_scores(problem.model_names)
    p99 = default_p99_profiles(problem)
    row = {"instance": problem.name, "rate_rps": problem.arrival_rate_rps,
           "slo_ms": problem.slo.latency_ms}
    t0 = time.perf_counter()
    today = solve(problem)
    row["today_solve_s"] = time.perf_counter() - t0
    if today.feasible:
        r = replay_record(problem, today, qm, p99_profiles=p99, num_requests=replay_requests)
        row.update({"today_score": today.score, "today_predicted_ms": r["predicted_ms"],
                    "today_replayed_mean_ms": r["replayed_mean_ms"],
                    "today_replayed_p99_ms": r["replayed_p99_ms"],
                    "today_rel_gap_pct": r["rel_gap_pct"], "today_slo_met": r["slo_met"]})
    cp = plan_consistently(problem, qm, headroom=headroom, p99_profiles=p99,
                           replay_requests=replay_requests, workers=workers)
    s, r = cp.solution, cp.replay
    row.update({"score": s.score if s.feasible else np.nan,
                "setup": s.setup.label() if s.feasible else "infeasible",
                "predicted_ms": r["predicted_ms"] if r else np.nan,
                "replayed_mean_ms": r["replayed_mean_ms"] if r else np.nan,
                "replayed_p99_ms": r["replayed_p99_ms"] if r else np.nan,
                "predicted_p99_bound_ms": r["predicted_p99_ms"] if r else np.nan,
                "rel_gap_pct": r["rel_gap_pct"] if r else np.nan,
                "slo_met": bool(r["slo_met"]) if r else False, "verified": cp.verified,
                "rounds": len(cp.rounds), "stop": cp.stop_reason,
                "headroom": float(cp.rounds["headroom"].iloc[-1]) if len(cp.rounds) else np.nan,
                "solve_time_s": cp.solve_time_s, "final_solve_s": s.solve_time_s})
    if today.feasible and s.feasible:
        row["score_cost_pct"] = 100 * (today.score - s.score) / today.score
    return row


# arrival-rate factors 1.00, 1.02, ..., 1.60 the robustness checks step through
RATE_FACTORS = tuple(round(1.0 + 0.02 * k, 2) for k in range(31))


def headroom_frontier(problem: Problem, tasks, *,
                      fractions=(1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7),
                      rate_factors=RATE_FACTORS,
                      shifts: int = 20, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Score given up vs robustness, one row per headroom setting (``routerwise.optimize.headroom``).

    Each plan is solved exactly on curves cut at the headroom fraction, then judged on the
    problem's UNCUT curves (modelled latency): the largest arrival-rate factor it survives
    (``rate_sensitivity``) and the share of random task-mix shifts (``mix_shift``, routed
    online with the plan's prices) that still meet the SLO. ``progress``: a tqdm bar over the
    headroom settings.
    """
    from ..optimize.headroom import with_headroom
    from .progress import tqdm
    rows = []
    base = None
    for f in tqdm(fractions, desc="headroom settings", disable=not progress):
        sol = solve(with_headroom(problem, f))
        if not sol.feasible:
            rows.append({"headroom": f, "feasible": False})
            continue
        base = sol.score if base is None else base
        rates = rate_sensitivity(problem, sol, rate_factors)
        ok = rates["meets_slo"].to_numpy()
        survived = float(rates["rate_factor"][ok].max()) if ok[0] else float("nan")
        mix = mix_shift(problem, sol, tasks, shifts=shifts, seed=seed)
        rows.append({"headroom": f, "feasible": True, "score": sol.score,
                     "score_given_up_pct": 100 * (base - sol.score) / base,
                     "load_increase_survived_pct": 100 * (survived - 1),
                     "mix_shifts_survived_pct": 100 * float(mix["meets_slo"].mean()),
                     "latency_ms": sol.latency_ms, "setup": sol.setup.label()})
    return pd.DataFrame(rows)
