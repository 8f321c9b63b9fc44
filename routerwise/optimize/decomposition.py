r"""Logic-based Benders decomposition of the joint MILP: aggregate master + placement check.

The full MILP (``routerwise.optimize.milp``) places every shard with binaries y_ikg: M K G of
them on identical GPUs, a symmetric formulation that branch and bound handles poorly as G grows.
Here the placement leaves the MILP:

* **master**: :func:`~routerwise.optimize.milp.build_milp` with ``placement="aggregate"``: setup
  choice x, routing w, z and latency t exactly as in the full MILP, but placement only through
  the aggregate rows (A1)-(A4) (total memory; dual-feasible-function rows such as "shards with
  more than half a GPU's compute cannot share one"). It relaxes the full MILP, so its proven
  bound is an upper bound on the optimum of the full problem.
* **subproblem**: the master's chosen setup is placed with
  :func:`~routerwise.optimize.placement.place_ffd` and, if that fails,
  :func:`~routerwise.optimize.placement.place_exact` (memory, compute, anti-affinity), pool by
  pool on a cluster of several GPU types (``place_pools``: shards stay on their type).
* **cut** when it cannot be placed: a set C of models whose setups alone cannot be placed
  (found by deleting models while the rest still cannot be placed; C is minimal) is excluded
  together with every setup that dominates it (same tp, no smaller compute share: same memory,
  more compute, so no easier to place)::

      [nogood[c]]   sum_{i in C} sum_{k : tp_k = tp_i*, r_k >= r_i*} x_ik <= |C| - 1

  The cut removes only unplaceable setups, so the master stays a relaxation and its bound stays
  valid; re-solve. The loop ends at the first placeable master optimum, which is then optimal for
  the full problem (to the master's gap tolerance); there are finitely many setups, so it ends.

The exact placement search gets a budget (:data:`MAX_DEAD_ENDS`; on 32 GPUs an unplaceable
setup can otherwise take tens of GB). A setup it cannot decide is cut alone (no dominance, no
core) and the master bound at that moment stays a floor of the reported bound, which therefore
remains proven; the plan is then reported ``optimal`` only if it still meets that bound.

Every return carries the master's proven bound: on a time limit with an incumbent (a placeable
master solution found earlier, or none) the gap is reported, never hidden. The time limit is
for the whole run: each master gets what is left when HiGHS starts, the clock is checked
between masters, placements and cuts, and the exact placement search stops on it. Building
the master and one PuLP-to-HiGHS copy cannot be interrupted (about a second each at 16 x 32).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..problem import Problem, SystemSetup
from .assignment import central_prices, score_of_fractions
from .bounds import SearchContext, capped_bound
from .diagnosis import infeasible_solution
from .fixed_setup import evaluate_plan, mass_tol_ms
from .highs import Deadline
from .milp import _extract, _pulp, add_violated_mass_rows, build_milp, complete_mass_rows, run_milp
from .placement import PlacementUndecided, ShardDemand, place_pools, stop_when
from .setup_space import candidate_setup_count
from .solution import Infeasibility, Solution

__all__ = ["DIAGNOSE_MAX_SETUPS", "MAX_DEAD_ENDS", "MAX_ENVELOPE_ROUNDS", "UNDECIDED",
           "place_setup", "unplaceable_core", "solve_decomposition"]

DIAGNOSE_MAX_SETUPS = 200_000   # enumerate for a full infeasibility diagnosis up to this many


def _demands(problem: Problem, per_model) -> list[ShardDemand]:
    return [ShardDemand(o.tp, o.compute_tenths, problem.models[i].mem_gb(o.tp))
            for i, o in per_model]


UNDECIDED = "undecided"
MAX_ENVELOPE_ROUNDS = 3    # envelope re-solves in a row before every missing row is added
MAX_DEAD_ENDS = 20_000     # exact placement budget per check (memory stays small on 32 GPUs)


def place_setup(problem: Problem, per_model, max_dead_ends: int | None = MAX_DEAD_ENDS):
    """A placement of ``per_model`` = [(model index, ModelSetup)], None if none exists, or
    :data:`UNDECIDED` when the exact search ran out of its budget.

    First-fit decreasing as a fast certificate, the exact search as the judge.
    """
    sp, cl = problem.space, problem.cluster
    d = _demands(problem, per_model)
    pools = [(n, t.mem_gb) for t, n in cl.pools]
    pool_index = {(t.name if cl.is_mixed else ""): p for p, t in enumerate(cl.gpu_types)}
    pool_of = [pool_index[o.gpu] for _, o in per_model]
    kw = {"check_compute": sp.check_compute, "check_memory": sp.check_memory}
    pl = place_pools(d, pool_of, pools, method="ffd", **kw)
    if pl is not None:
        return pl
    try:
        return place_pools(d, pool_of, pools, method="exact", max_dead_ends=max_dead_ends, **kw)
    except PlacementUndecided:
        return UNDECIDED


def unplaceable_core(problem: Problem, per_model) -> list:
    """A minimal subset of an unplaceable ``per_model`` that still cannot be placed.

    Deletion filter: try dropping each model (smallest compute first: they are the likeliest
    to be innocent); keep the drop if the rest still cannot be placed.
    """
    core = sorted(per_model, key=lambda im: (im[1].compute_units_tenths,
                                             problem.models[im[0]].mem_gb(im[1].tp)))
    j = 0
    while j < len(core):
        rest = core[:j] + core[j + 1:]
        if rest and place_setup(problem, rest) is None:     # proven unplaceable: drop j
            core = rest
        else:
            j += 1
    return core


def solve_decomposition(problem: Problem, *, solver: str = "HiGHS",
                        time_limit_s: float | None = 600.0, gap_rel: float = 1e-6,
                        threads: int | None = None, tol_ms: float | None = None,
                        max_cuts: int = 10_000, first_gap_rel: float | None = 1e-2,
                        lazy_envelopes: bool = True, warm_start: bool = True,
                        final_presolve: bool = False,
                        msg: bool = False, clock=time.perf_counter) -> Solution:
    """Optimal plan by the cut loop above; status ``optimal`` or ``time_limit`` with the bound.

    ``time_limit_s`` is for the whole run (each master gets what is left); ``gap_rel`` is the
    master's relative gap tolerance, hence the reported optimum's. Anytime: the loop first runs
    with the looser ``first_gap_rel`` (when larger than ``gap_rel``; None: skip), so a plan with
    a proven gap of at most that is in hand early, then again to ``gap_rel`` (cuts are kept); a
    time limit in the second pass returns the better plan with the tightest proven bound.
    ``clock``: the time source of the limit.

    ``lazy_envelopes``: the master starts with a few rows of each latency envelope and a master
    solution that violates a missing one gets it added and is re-solved before its placement is
    checked (``build_milp(lazy_envelopes=True)``): every master still relaxes the full one, and
    the plans it accepts meet every envelope row, so the optimum is the same. After
    :data:`MAX_ENVELOPE_ROUNDS` re-solves in a row every missing row is added (on large
    ladders, 12 x 24, the masters otherwise keep moving to options whose rows are still
    missing: 19 re-solves and no placement check in 106 CPU-seconds, measured). ``warm_start``:
    each master gets the best placeable plan found so far as its MIP start (it stays feasible:
    cuts remove only unplaceable setups, envelope rows only what it already meets).
    ``final_presolve``: HiGHS presolve in the last (exact) pass; off by default: there the
    master already has the envelope rows and a MIP start it needs, and presolve's reductions
    and restarts cost more than they save (measured: the last pass of the 4 x 4 and 6 x 8
    ladders took about a third of the CPU time without it). The first pass keeps it.
    """
    pulp = _pulp()
    t0, c0 = time.perf_counter(), time.process_time()
    deadline = Deadline(time_limit_s, clock)
    model = build_milp(problem, tol_ms=tol_ms, placement="aggregate",
                       lazy_envelopes=lazy_envelopes)
    build_s = time.perf_counter() - t0
    name = f"decomposition[{solver}]"
    bound, cuts, masters, solver_s, placement_s = None, 0, 0, 0.0, 0.0
    envelope_rows, start = 0, None     # start: the best placeable plan's values (MIP start)
    rounds = 0                         # envelope re-solves in a row
    core_sizes: list[int] = []
    history = []
    status, found = "time_limit", None     # found: (objective, setup, fractions)
    undecided_floor, n_undecided = -np.inf, 0
    passes = ([first_gap_rel] if first_gap_rel is not None and first_gap_rel > gap_rel else []) \
        + [gap_rel]
    for p_gap in passes:
        done = False
        while True:
            if deadline.expired():
                break
            run = run_milp(model, solver=solver, gap_rel=p_gap, threads=threads, msg=msg,
                           deadline=deadline, start=start if warm_start else None,
                           highs_options=None if final_presolve or p_gap != passes[-1]
                           else {"presolve": "off"})
            masters += 1
            solver_s += run.solve_s
            if run.bound is not None:   # every master relaxes the problem: keep the tightest
                bound = run.bound if bound is None else min(bound, run.bound)
            if run.infeasible:
                status, done = "infeasible", True
                break
            if not run.has_solution:
                break
            added = add_violated_mass_rows(model)
            if added and rounds >= MAX_ENVELOPE_ROUNDS:
                added += complete_mass_rows(model)     # chasing options: stop, add them all
            rounds = rounds + 1 if added else 0
            if added:
                # the solution cuts a corner of some envelope: add those rows, re-solve
                envelope_rows += added
                history.append({"master": masters, "gap_rel": p_gap,
                                "time_s": time.perf_counter() - t0, "solve_s": run.solve_s,
                                "cpu_s": time.process_time() - c0, "objective": run.objective,
                                "bound": run.bound, "envelope_rows": added, "placeable": None})
                continue
            chosen = [(i, opts[max(range(len(opts)),
                                   key=lambda k: pulp.value(model.x[i, k]) or 0)])
                      for i, opts in enumerate(model.options)]
            t1 = time.perf_counter()
            with stop_when(deadline.expired):
                pl = place_setup(problem, chosen)
            placement_s += time.perf_counter() - t1
            if pl is UNDECIDED and deadline.expired():
                break               # stopped by the time limit, not by the search budget
            undecided = pl is UNDECIDED
            history.append({"master": masters, "gap_rel": p_gap,
                            "time_s": time.perf_counter() - t0, "solve_s": run.solve_s,
                            "cpu_s": time.process_time() - c0, "objective": run.objective,
                            "bound": run.bound, "envelope_rows": 0,
                            "placeable": pl is not None and not undecided})
            if undecided:
                # Cut this one setup without a proof that it cannot be placed: what it could
                # score is at most this master's bound, which therefore stays a floor of the
                # reported bound (the bound remains proven).
                floor = run.bound if run.bound is not None else np.inf
                undecided_floor = max(undecided_floor, floor)
                model.lp += (pulp.lpSum(model.x[i, next(k for k, ok in enumerate(
                    model.options[i]) if ok is o)] for i, o in chosen) <= len(chosen) - 1,
                             f"undecided[{n_undecided}]")
                n_undecided += 1
                continue
            if pl is not None:
                if found is None or run.objective > found[0]:
                    setup, w = _extract(problem, model)
                    found = (run.objective, SystemSetup(setup.per_model, pl), w)
                    start = {v: v.varValue for v in model.lp.variables()
                             if v.varValue is not None}
                if p_gap == gap_rel:
                    status, done = ("optimal" if run.optimal else "time_limit"), True
                break
            if cuts >= max_cuts:
                done = True
                break
            if deadline.expired():
                break
            t1 = time.perf_counter()
            with stop_when(deadline.expired):
                # stopped early, the core is still unplaceable: models are dropped from it
                # only when the rest is proven unplaceable
                core = unplaceable_core(problem, chosen)
            placement_s += time.perf_counter() - t1
            core_sizes.append(len(core))
            terms = [model.x[i, k] for i, o in core for k, ok in enumerate(model.options[i])
                     if ok.tp == o.tp and ok.compute_tenths >= o.compute_tenths]
            model.lp += pulp.lpSum(terms) <= len(core) - 1, f"nogood[{cuts}]"
            cuts += 1
        if done:
            break
    if bound is not None:
        bound = max(bound, undecided_floor)
        bound = capped_bound(problem, bound) if np.isfinite(bound) else None
    stats = {"build_s": build_s, "solver_s": solver_s, "placement_s": placement_s,
             "masters": masters, "cuts": cuts, "core_sizes": core_sizes,
             "undecided_cuts": n_undecided, "envelope_rows_added": envelope_rows,
             "variables": len(model.lp.variables()), "constraints": model.lp.numConstraints(),
             "nonconvex_envelopes": len(model.nonconvex)}
    hist = pd.DataFrame(history)
    if len(hist):   # placeable: NA where the master's plan was re-solved, not placed
        hist["placeable"] = hist["placeable"].astype("boolean")
    if status == "infeasible":
        # No setup meets the SLO (cuts == 0) or every one that does is unplaceable. The full
        # diagnosis enumerates the retained setups: affordable only on small setup spaces.
        n = candidate_setup_count(problem)
        if n <= DIAGNOSE_MAX_SETUPS:
            return infeasible_solution(problem, SearchContext.build(problem), t0, name)
        why = ("the master MILP (every setup's routing and latency, placement aggregated) is "
               "infeasible" + (f" after {cuts} placement cut(s)" if cuts else "")
               + f"; {n:,} candidate setups are too many to diagnose one by one: raise the "
               f"SLO, lower the load or add GPUs")
        return Solution(None, None, None, float("nan"), float("nan"), name, "infeasible",
                        solve_time_s=time.perf_counter() - t0, history=hist, stats=stats,
                        infeasibility=Infeasibility("latency", f"no plan meets the SLO: {why}",
                                                    float("nan")))
    if found is None:
        return Solution(None, None, None, float("nan"), float("nan"), name, "time_limit",
                        bound=bound, solve_time_s=time.perf_counter() - t0, history=hist,
                        stats=stats, notes=(f"no placeable setup found within the time limit "
                                            f"after {cuts} placement cuts",))
    _, setup, w = found
    res = score_of_fractions(model.groups, w)
    if bound is not None:
        bound = max(bound, res.score)
    if status == "optimal" and bound is not None and \
            bound - res.score > max(gap_rel, 1e-9) * max(abs(bound), 1e-12):
        status = "feasible"     # an undecided setup's floor keeps the bound above the plan
    sol = Solution(setup, w, central_prices(model.groups, res.z, fallback=res.prices), res.score,
                   evaluate_plan(problem, setup, w), name, status, bound=bound,
                   solve_time_s=time.perf_counter() - t0, history=hist, stats=stats,
                   notes=(f"aggregate master + placement check: {masters} master solve(s), "
                          f"{cuts} placement cut(s)",
                          f"latency envelope tolerance per model: "
                          f"{tol_ms if tol_ms is not None else mass_tol_ms(problem):.3g} ms"))
    return sol.verify(problem)
