"""Why an SLO is unreachable: which limit binds, and the lowest latency any retained setup reaches."""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linprog

from ..problem import Problem
from .bounds import SearchContext, greedy_fill
from .latency import fraction_where_latency_reaches, mass_secants, max_fraction
from .solution import Infeasibility, Solution

__all__ = ["min_latency", "empty_space_reason", "diagnose_infeasible", "infeasible_solution"]


def min_latency(ctx: SearchContext, s: int) -> tuple[float, np.ndarray]:
    """Lowest L over fractions for setup s (ignoring tau), with the fractions reaching it."""
    prob = ctx.problem
    ids = ctx.setups[s]
    lam = prob.arrival_rate_rps
    curves = [ctx.curves[o] for o in ids]
    caps = np.array([max_fraction(c, lam) for c in curves])
    if caps.sum() < 1 - 1e-12:
        return np.inf, caps
    M = len(curves)
    if prob.slo.aggregate == "max":
        lo, hi = 0.0, max(float(c.y[-1]) for c in curves)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            cap = [min(caps[i], fraction_where_latency_reaches(c, mid, lam)) for i, c in enumerate(curves)]
            lo, hi = (lo, mid) if sum(cap) >= 1 else (mid, hi)
        cap = np.array([min(caps[i], fraction_where_latency_reaches(c, hi, lam)) for i, c in enumerate(curves)])
        w = cap / cap.sum()
        return hi, w
    # min sum_i t_i  s.t. t_i >= secant lines of phi_i (tau = inf), sum w = 1, w <= caps.
    A, b = [], []
    for i, c in enumerate(curves):
        sec = mass_secants(c, lam, np.inf, 1e-6 * max(1.0, float(c.y[0])))
        for sl, ic in zip(sec.slopes, sec.intercepts):
            row = np.zeros(2 * M)
            row[i], row[M + i] = sl, -1.0
            A.append(row)
            b.append(-ic)
    res = linprog(np.r_[np.zeros(M), np.ones(M)], A_ub=np.array(A), b_ub=np.array(b),
                  A_eq=np.r_[np.ones(M), np.zeros(M)][None, :], b_eq=[1.0],
                  bounds=[(0, caps[i]) for i in range(M)] + [(None, None)] * M, method="highs")
    w = np.clip(res.x[:M], 0, None)
    w = w / w.sum()
    return float(sum(c.latency_at(lam * wi) * wi for c, wi in zip(curves, w) if wi > 0)), w


def empty_space_reason(problem: Problem, counts: dict) -> tuple[str, str]:
    """The first filter (in :mod:`routerwise.optimize.setup_space` order) that left no setup, and advice.

    Returns ``(stage, message)`` with stage one of ``"utilization"``, ``"options"`` (per-model
    shard memory and latency curves within the utilization budget), ``"memory"`` (no placement
    within GPU memory) or ``"placement"`` (memory fits, compute does not).
    """
    G, sp = problem.cluster.num_gpus, problem.space
    if counts.get("utilization", 1) == 0:
        return "utilization", (
            f"the utilization filter (G*rho_min <= sum_i tp_i*rho_i <= G with G={G}, "
            f"rho_min={sp.rho_min:g}) removed all {counts.get('cartesian', 0)} combinations of "
            f"tp {sp.tp_degrees} and compute tenths {sp.compute_tenths}; lower rho_min or "
            f"allow other tp / compute shares")
    if counts.get("usable_options", 1) == 0:
        return "options", (
            f"{counts.get('utilization', 0)} setups pass the utilization filter, but none of "
            f"them uses only (model, tp, rho) options whose shard fits a GPU and which have a "
            f"latency curve; add GPUs, profile more setups or allow other tp")
    if sp.check_memory and counts.get("memory_exact", 1) == 0:
        return "memory", (
            f"{counts['usable_options']} setups pass the utilization and per-model filters, "
            f"but no placement of their shards fits GPU memory ("
            + (problem.cluster.describe() if problem.cluster.is_mixed
               else f"{G} x {problem.cluster.gpu.mem_gb:g} GB")
            + "); add GPUs or use GPUs with more memory")
    return "placement", (
        f"{counts.get('usable_options', 0)} setups pass the utilization and per-model filters"
        + (f" ({counts['memory_exact']} fit GPU memory)" if "memory_exact" in counts else "")
        + f", but no placement of their shards keeps every GPU within 100% "
          f"{'memory and compute' if sp.check_memory else 'compute'} on {G} GPUs; add GPUs or "
          f"drop the compute check (SetupSpace(check_compute=False), CLI --memory-only)")


def diagnose_infeasible(problem: Problem, ctx: SearchContext) -> Infeasibility:
    """Which limit makes the SLO unreachable, and the lowest latency any setup reaches."""
    tau = problem.slo.latency_ms
    S = ctx.setups.shape[0]
    if S == 0:
        stage, why = empty_space_reason(problem, ctx.retained.stage_counts)
        return Infeasibility("setup_space", f"no setup survives the filters: {why}", np.inf,
                             stage=stage)
    lam = problem.arrival_rate_rps
    cap = np.minimum(1.0, ctx.bank.max_load_rps[ctx.setups] / lam)
    if np.all(cap.sum(axis=1) < 1 - 1e-12):
        best = int(np.argmax(cap.sum(axis=1)))
        return Infeasibility(
            "capacity", f"no setup can carry {lam:g} req/s within its profiled loads: the "
            f"largest total profiled capacity is {cap[best].sum() * lam:.2f} req/s "
            f"({ctx.retained.setup(best).label()}). Lower the arrival rate, add GPUs, or profile "
            f"higher loads", np.inf, ctx.retained.setup(best))
    # Lower bound on each setup's min latency by l0-weighted fill; refine best-first exactly.
    l0 = ctx.l0[ctx.setups]
    _, wf = greedy_fill(-l0, np.where(cap.sum(axis=1, keepdims=True) >= 1 - 1e-12, cap, 0.0))
    lb = np.where(cap.sum(axis=1) >= 1 - 1e-12,
                  np.max(l0 * (wf > 0), axis=1) if problem.slo.aggregate == "max"
                  else np.sum(l0 * wf, axis=1), np.inf)
    best_L, best_s, best_w = np.inf, -1, None
    for s in np.argsort(lb):
        if lb[s] >= best_L or not np.isfinite(lb[s]):
            break
        L, w = min_latency(ctx, int(s))
        if L < best_L:
            best_L, best_s, best_w = L, int(s), w
    setup = ctx.retained.setup(best_s)
    what = "mean" if problem.slo.aggregate == "mean" else "worst-model"
    return Infeasibility(
        "latency", f"the SLO of {tau:g} ms ({problem.slo.metric}, {what}) is below the lowest "
        f"latency any retained setup reaches at {lam:g} req/s: {best_L:.1f} ms with "
        f"{setup.label()}. Raise the SLO to at least that, lower the load, or add GPUs",
        best_L, setup, best_w)


def infeasible_solution(problem: Problem, ctx: SearchContext, t0: float, solver: str) -> Solution:
    """The ``status="infeasible"`` result of ``solver``, with its diagnosis."""
    diag = diagnose_infeasible(problem, ctx)
    return Solution(None, None, None, float("nan"), float("nan"), solver, "infeasible",
                    solve_time_s=time.perf_counter() - t0, infeasibility=diag)
