"""Plans consistent with the traffic they route, checked by replay.

Why
---
The planner reads model i's latency off a curve l_i(load) profiled with the WHOLE prompt mix,
but a plan routes model i the prompts it scores best on, whose prompt and output lengths differ
(on the default 3-model plan the 24B model receives longer prompts than the profiled mix and
saturates: notebook 05 and ``benchmarks/bench_plans.py`` show predicted vs replayed latency).
The latency a plan causes depends on WHAT it routes, not only how much.

Choice: iterate to consistency (and why not the alternatives)
-------------------------------------------------------------
* A load axis in work (tokens/s) would make l_i a function of sum_j z_ji c_ji, a second
  assignment-dependent quantity inside the latency mass w_i l_i(.): the fixed-setup problem
  stops being an LP in (w, z) and the exact solvers (search, MILP) would need a new, bilinear
  formulation. TTFT also depends on a request's own prompt length, which a work rate misses.
* Per-length-class curves multiply the profile grid by the number of classes and still need
  the routed mix inside the latency model.
* Iterate to consistency keeps every solver exact for the model it solves: round k solves the
  unchanged joint problem on curves re-profiled (by the same simulator and grid as
  ``routerwise.serving.curve_grid``) with the length mix each model received in round k - 1's plan,
  then replays round k's plan with the prompts it routes. The simulator is the arbiter, and the
  loop needs nothing from it but "profile this model with these lengths".

Round k (k >= 1) re-profiles, for every model that plan k - 1 routes traffic to, the
(tp, compute share) option that plan gives it, with exactly the (prompt, output) token pairs that
plan sends it (``routerwise.planning.replay.routed_pool``: every routed prompt, no sampling, so the mix
changes only when the assignment does); every other option keeps its latest curve. Options
are re-profiled lazily, as plans use them (like constraint generation): a round costs a few
curves, not the whole grid. Meanwhile the model's other options get a *modelled* curve
(:func:`transfer_curve`): their whole-mix curve scaled by the capacity and latency ratios the
routed mix showed on the re-profiled option, so the next solve does not jump to an option
whose whole-mix curve is optimistic for the traffic it would get. Curves are cached on disk
by the digest of the lengths, so a repeated mix costs nothing.

Stopping rule and termination
-----------------------------
A plan is *verified* when its replays meet the SLO and its predicted latency is within
``gap_rtol`` (default 10%) of the mean replayed one. One replay is one noisy draw (a plan
whose replay at one seed meets a 120 ms SLO can miss it at other seeds), so "meets the SLO" is
a statistical statement: ``replays`` (default 8) independent replays, seeds derived from the
base seed, and a one-sided normal tolerance bound on the replays' values (with ``confidence``,
default 95%, at least a ``confidence`` fraction of fresh replays fall below it) must be within
the SLO (:func:`replay_record`). It bounds fresh replays, not only the mean, because a fresh
replay missing the SLO is what "verified" must make rare: at most 1 - ``confidence`` of them
(``benchmarks/bench_plans.py --fresh-seeds`` measures it). The first replay screens a
round's plan: the other replays run only when it passes. The loop stops at the first of

1. a verified plan (consistent with its own traffic; a round whose plan spends the whole
   budget but replays above the SLO, or its upper bound does, plans the next round to a
   tighter target, recorded as ``planning_slo_ms`` beside the user's SLO);
2. a fixed point: every routed model's option was already profiled with exactly the mix the
   plan routes it (re-profiling would reproduce the same curves and the same plan);
3. ``max_rounds`` re-profiling rounds (default 30; a round re-profiles at most M curves,
   cached, and costs about a second on the default panels; the slowest default panel to
   verify needed 25 rounds).

So it performs at most ``max_rounds + len(headroom ladder)`` solves and at most
``max_rounds + 1`` replay checks (each at most ``replays`` replays): it terminates by construction
(the number of rounds is bounded; monotone convergence is NOT claimed: a new mix can move the
optimum to another setup). The result is the best-scoring verified plan seen in any round,
or, if none verified, the plan whose replayed SLO value (its upper bound when replayed more
than once) exceeds the SLO by the least, with
``verified = False`` (never an unverified plan labelled as verified).

Headroom (``routerwise.optimize.headroom``, default 0.8 of each curve's saturation-free range) is
applied in every round; ``headroom`` may be a ladder (default 0.8, 0.85, 0.9, 0.95): when no
plan fits the current level (the routed mixes left too little capacity), the next level is
used, each step adding one round to the cap. Why headroom at all: plans at the knee of a
curve cannot be predicted to 10% (the knee is steep and the replay's arrivals differ from the
profile's) and break on small load shifts.

The replay record (:func:`replay_record`, also ``Solution.replay``) is one dict: per routed
model and overall, predicted vs simulated mean and p99, and whether the replayed plan meets
its SLO. All latencies here are **simulated** (discrete-event simulator on fitted step costs).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..optimize.headroom import DEFAULT_LOAD_FRACTION, with_headroom
from ..optimize.solution import Solution
from ..problem import LatencyCurve, LatencyProfiles, Problem
from ..serving.architectures import Architecture

__all__ = ["DEFAULT_HEADROOM_LADDER", "p99_metric", "ConsistentPlan", "replay_record", "plan_consistently",
           "reprofile_model",
           "profile_set", "transfer_curve", "DEFAULT_GAP_RTOL", "DEFAULT_MAX_ROUNDS",
           "DEFAULT_REPLAYS", "DEFAULT_CONFIDENCE", "slo_check_text"]

DEFAULT_GAP_RTOL = 0.10
DEFAULT_MAX_ROUNDS = 30
# A plan is verified by this many independent replays at this confidence (module docstring).
DEFAULT_REPLAYS = 8
DEFAULT_CONFIDENCE = 0.95
# Headroom levels, most headroom first: the next is used only when no plan fits the current one.
DEFAULT_HEADROOM_LADDER = (DEFAULT_LOAD_FRACTION, 0.85, 0.9, 0.95)


# ----------------------------------------------------------------------------- replay record

def p99_metric(metric: str) -> str:
    return metric.split("_")[0] + "_p99"


def replay_record(problem: Problem, solution: Solution, qm, *,
                  p99_profiles: LatencyProfiles | None = None, num_requests: int = 4000,
                  seed: int = 12345, archs: Mapping[str, Architecture] | None = None,
                  replays: int = 1, confidence: float = DEFAULT_CONFIDENCE,
                  screen: Callable[[dict], bool] | None = None) -> dict:
    """Replay ``solution`` in the simulator with the prompts it routes; one record.

    ``qm``: the QualityMatrix the workload's prompts come from (token counts). ``p99_profiles``:
    p99 curves matching the plan's curves (same options), for the predicted p99 per model; the
    overall predicted p99 is the largest per-model one, an upper bound on the mixture's p99
    (its tail mass is the w-weighted mean of the models' tail masses).

    ``replays`` independent replays (seeds ``routerwise.planning.replay.replay_seeds(seed, replays)``)
    make the SLO check a statistical statement: with two or more, ``slo_met`` means that no
    replay saturated and ``replayed_upper_ms``, the one-sided normal tolerance bound
    mean + k * sd of the replays' SLO values (k from the noncentral Student-t, the bound
    that with ``confidence`` covers a ``confidence`` fraction of fresh replays), is within
    the SLO: with 95% confidence, at most 5% of fresh replays of the plan miss the SLO (the
    default). A bound on the mean alone would let a plan whose mean sits just below the SLO
    pass while nearly half of fresh replays miss it. With one replay ``slo_met`` is that one
    draw's check.
    ``screen(record of the first replay) -> bool``: run the other replays only when it is
    True (a plan whose first replay already fails costs one replay).

    Keys: ``slo_ms``, ``metric``, ``aggregate``, ``predicted_ms`` (the plan's L),
    ``replayed_ms`` (the replayed value of the SLO's metric and aggregate, mean over replays),
    ``replayed_mean_ms`` / ``replayed_p99_ms`` (pooled requests, mean over replays),
    ``predicted_p99_ms``, ``rel_gap_pct`` = 100 (predicted - replayed) / replayed, ``slo_met``,
    ``replays``, ``replay_seeds``, ``replayed_ms_per_replay``, ``replayed_sd_ms``,
    ``confidence``, ``replayed_upper_ms`` (the last two None with one replay), ``per_model``
    (per-model values averaged over replays; ``saturated`` if any replay saturated).
    ``archs`` maps model names to architectures (default: the registered ones).
    """
    from .replay import replay_plan, replay_seeds, routed_pool
    if not solution.feasible:
        raise ValidationError("cannot replay an infeasible plan: it routes nothing")
    if int(replays) < 1:
        raise ValidationError(f"replays must be >= 1, got {replays}")
    if not 0.5 <= confidence < 1:
        raise ValidationError(f"confidence must be in [0.5, 1) (0.95 = 95%), got {confidence}")
    lengths = routed_pool(problem, solution, qm)
    seeds = replay_seeds(seed, replays)

    def draw(s):
        return replay_plan(problem, solution, qm, num_requests=num_requests, seed=s,
                           lengths=lengths, archs=archs)

    draws = [draw(seeds[0])]
    if len(seeds) > 1:
        if screen is None or screen(_record(problem, solution, draws, seeds[:1], p99_profiles,
                                            num_requests, confidence)):
            draws += [draw(s) for s in seeds[1:]]
    return _record(problem, solution, draws, seeds[:len(draws)], p99_profiles, num_requests,
                   confidence)


def _record(problem: Problem, solution: Solution, draws, seeds, p99_profiles, num_requests,
            confidence) -> dict:
    """The replay record of one or more replays (``draws``) of a plan."""
    from scipy import stats
    p99m = p99_metric(problem.slo.metric)
    tau = problem.slo.latency_ms
    frames = [d.per_model for d in draws]
    rows = []
    for j, r in enumerate(frames[0].to_dict("records")):
        i = problem.model_names.index(r["model"])
        s = solution.setup.per_model[i]
        c99 = p99_profiles.get(r["model"], s.tp, s.compute_tenths, s.gpu) if p99_profiles else None
        rows.append({"model": r["model"], "setup": r["setup"], "fraction": r["fraction"],
                     "load_rps": r["load_rps"], "predicted_ms": r["predicted_ms"],
                     "replayed_ms": float(np.mean([f["simulated_ms"].iloc[j] for f in frames])),
                     "predicted_p99_ms": float(c99.latency_at(r["load_rps"])) if c99 else None,
                     "replayed_p99_ms": float(np.mean([f["simulated_p99_ms"].iloc[j]
                                                       for f in frames])),
                     "saturated": any(bool(f["saturated"].iloc[j]) for f in frames),
                     "mean_prompt_tokens": r["mean_prompt_tokens"],
                     "mean_output_tokens": r["mean_output_tokens"]})
    if problem.slo.aggregate == "mean":
        values = [d.simulated_mean_ms for d in draws]
    else:
        values = [float(f["simulated_ms"].max()) for f in frames]
    n = len(values)
    replayed = float(np.mean(values))
    saturated = any(r["saturated"] for r in rows)
    if n > 1:
        sd = float(np.std(values, ddof=1))
        # one-sided (confidence, confidence) normal tolerance factor (exact, noncentral t)
        k = float(stats.nct.ppf(confidence, n - 1, stats.norm.ppf(confidence) * math.sqrt(n)))
        upper = replayed + k / math.sqrt(n) * sd
        slo_met = bool(upper <= tau and not saturated)
    else:
        sd = upper = None
        slo_met = bool(replayed <= tau and not saturated)
    p99s = [r["predicted_p99_ms"] for r in rows if r["predicted_p99_ms"] is not None]
    pred = float(solution.latency_ms)
    return {"slo_ms": tau, "metric": problem.slo.metric, "aggregate": problem.slo.aggregate,
            "predicted_ms": pred, "replayed_ms": replayed,
            "replayed_mean_ms": float(np.mean([d.simulated_mean_ms for d in draws])),
            "replayed_p99_ms": float(np.mean([d.simulated_p99_ms for d in draws])),
            "predicted_p99_ms": float(max(p99s)) if len(p99s) == len(rows) else None,
            "p99_metric": p99m,
            "rel_gap_pct": 100.0 * (pred - replayed) / replayed if replayed > 0 else float("nan"),
            "slo_met": slo_met, "replays": n, "replay_seeds": list(seeds),
            "replayed_ms_per_replay": [float(v) for v in values], "replayed_sd_ms": sd,
            "confidence": confidence if n > 1 else None, "replayed_upper_ms": upper,
            "simulated_requests_per_model": num_requests, "seed": seeds[0],
            "per_model": rows, "kind": "simulated (replay) vs modelled (plan's curves)"}


def slo_check_text(rec: dict) -> str:
    """One line saying what a replay record's SLO check rests on."""
    n = rec.get("replays", 1)
    if n > 1 and rec.get("replayed_upper_ms") is not None:
        c = 100 * rec["confidence"]
        return (f"{n} replays: mean {rec['replayed_ms']:.1f} ms, upper bound "
                f"{rec['replayed_upper_ms']:.1f} ms vs SLO {rec['slo_ms']:g} ms (with {c:g}% "
                f"confidence at most {100 - c:.3g}% of fresh replays exceed the bound; normal "
                f"tolerance bound)")
    return (f"1 replay: {rec['replayed_ms']:.1f} ms vs SLO {rec['slo_ms']:g} ms (one draw, no "
            f"confidence statement)")


# ----------------------------------------------------------------------------- re-profiling

def profile_set(table: pd.DataFrame, metric: str, gpu: str) -> LatencyProfiles:
    from ..data.latency_table import to_profiles
    return to_profiles(table, metric, gpu=gpu, monotone="envelope")


def reprofile_model(model: str | Architecture, prompt_tokens, output_tokens, problem: Problem,
                    tp_degrees=None, compute_tenths=None, *, workers: int = 2) -> pd.DataFrame:
    """The profile table of ``model`` (by default over the problem's whole setup space),
    simulated with exactly these (prompt, output) token pairs: the grid, options and step costs
    of ``routerwise.serving.curve_grid``, cached on disk by the lengths' digest."""
    from ..serving.curve_grid import LengthSample, build_profile_table
    arch = model
    model = getattr(model, "name", model)
    digest = _mix_digest(prompt_tokens, output_tokens)[:12]
    ls = LengthSample(prompt_tokens, output_tokens, f"lengths routed to {model} by a plan "
                      f"({len(prompt_tokens)} requests, digest {digest})")
    return build_profile_table((arch,), problem.cluster.gpu.name,
                               tp_degrees or problem.space.tp_degrees,
                               compute_tenths or problem.space.compute_tenths, {model: ls},
                               workers=workers, progress=False)


def _replace_curves(prof: LatencyProfiles, new: LatencyProfiles) -> LatencyProfiles:
    keys = {c.key for c in new.curves}
    kept = tuple(c for c in prof.curves if c.key not in keys)
    return LatencyProfiles(kept + tuple(new.curves), prof.metric)


def transfer_curve(whole: LatencyCurve, whole_ref: LatencyCurve, routed_ref: LatencyCurve
                   ) -> LatencyCurve:
    """Model one option's curve under a routed mix from another option measured under it.

    ``routed_ref`` is option o profiled with the routed mix, ``whole_ref`` the same option with
    the whole mix, ``whole`` another option o' of the same model with the whole mix. Capacity
    scales by kappa = (end load of routed_ref) / (end load of whole_ref), and latency by eta,
    the mean ratio routed_ref(u) / whole_ref(u) at the same fractions u of the range: the mix's
    effect measured on o, carried over to o' (modelled; replaced by a re-profile as soon as a
    plan uses o'). eta is the mean of routed_ref(u) / whole_ref(u) over u in [0, 1]."""
    kappa = routed_ref.max_load_rps / whole_ref.max_load_rps
    # One latency factor (the mean ratio over the range), not a ratio per load: scaling both
    # axes by constants keeps a convex curve convex, so the LP needs no binaries for it.
    u = np.linspace(0.0, 1.0, 21)
    eta = float(np.mean(np.interp(u, routed_ref.x / routed_ref.max_load_rps, routed_ref.y) /
                        np.interp(u, whole_ref.x / whole_ref.max_load_rps, whole_ref.y)))
    y = whole.y * eta
    prov = (f"modelled: {whole.key} whole-mix curve scaled by the routed mix's effect measured on "
            f"{routed_ref.key} (capacity x {kappa:.3f})")
    return replace(whole, load_rps=tuple(whole.x * kappa), latency_ms=tuple(y), provenance=prov)


def _mix_digest(pt, ot) -> str:
    return hashlib.sha256(np.asarray(pt, np.int64).tobytes()
                          + np.asarray(ot, np.int64).tobytes()).hexdigest()


# ----------------------------------------------------------------------------- the loop

@dataclass(frozen=True)
class ConsistentPlan:
    """The chosen plan, the problem (curves) it is exact for, its replay, and every round.

    ``slo_ms`` is the user's SLO (what the replay is judged against); ``planning_slo_ms`` the
    target the last solve planned to (``problem.slo``: below the SLO when a replay exceeded
    it)."""

    solution: Solution
    problem: Problem
    replay: dict | None
    verified: bool
    rounds: pd.DataFrame
    solve_time_s: float
    stop_reason: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    slo_ms: float = float("nan")

    @property
    def planning_slo_ms(self) -> float:
        return float(self.problem.slo.latency_ms)

    def __repr__(self) -> str:
        # one line, not the problem's curves and every round's table (see Solution.__repr__)
        replayed = "" if self.replay is None else \
            f", replayed_ms={self.replay['replayed_ms']:.1f}"
        return (f"ConsistentPlan(verified={self.verified}, stop={self.stop_reason!r}, "
                f"rounds={len(self.rounds)}{replayed}, solution={self.solution!r})")


def _verified(rec: dict, gap_rtol: float) -> bool:
    return bool(rec["slo_met"] and abs(rec["rel_gap_pct"]) <= 100 * gap_rtol)


def plan_consistently(problem: Problem, qm, *, headroom=DEFAULT_HEADROOM_LADDER,
                      gap_rtol: float = DEFAULT_GAP_RTOL, max_rounds: int = DEFAULT_MAX_ROUNDS,
                      method: str = "exact", replay_requests: int = 4000, workers: int = 2,
                      replays: int = DEFAULT_REPLAYS, confidence: float = DEFAULT_CONFIDENCE,
                      p99_profiles: LatencyProfiles | None = None,
                      reprofile: Callable | None = None, replay: Callable | None = None,
                      archs: Mapping[str, Architecture] | None = None,
                      **solve_options) -> ConsistentPlan:
    """Iterate solve -> replay -> re-profile with the routed mixes (module docstring).

    ``problem`` holds the whole-mix curves (round 0). ``p99_profiles``: whole-mix p99 curves
    for the replay records (re-profiled options get their own). ``reprofile(model, setup, pt,
    ot, problem) -> (curves of problem's metric, p99 curves)`` for that one option and
    ``replay(problem, solution, p99_profiles) -> record`` replace the simulator (tests inject
    small stand-ins). ``solve_options`` go to ``routerwise.solve`` (exact: price routing).
    ``archs`` maps model names to architectures (default: the registered ones). ``replays``
    and ``confidence``: the statistical replay check of the default replay
    (:func:`replay_record`; a plan's first replay screens it, the others run only when it
    passes).
    """
    from .solve import solve
    if problem.cluster.is_mixed:
        raise ValidationError(f"plan_consistently is not supported on mixed clusters yet "
                              f"({problem.cluster.describe()}): its re-profiled curves are per "
                              f"GPU type; plan with rw.solve and check with replay_record")
    if max_rounds < 0:
        raise ValidationError(f"max_rounds must be >= 0, got {max_rounds}")
    if not 0 < gap_rtol:
        raise ValidationError(f"gap_rtol must be positive (0.10 = 10%), got {gap_rtol}")
    if int(replays) < 1:
        raise ValidationError(f"replays must be >= 1, got {replays}")
    if not 0.5 <= confidence < 1:
        raise ValidationError(f"confidence must be in [0.5, 1) (0.95 = 95%), got {confidence}")
    metric = problem.slo.metric
    gpu = problem.cluster.gpu.name

    def _reprofile(model, setup, pt, ot, prob):
        t = reprofile_model(archs[model] if archs and model in archs else model, pt, ot, prob,
                            (setup.tp,), (setup.compute_tenths,),
                            workers=workers)
        return profile_set(t, metric, gpu), profile_set(t, p99_metric(metric), gpu)

    def _replay(prob, sol, p99):
        return replay_record(prob, sol, qm, p99_profiles=p99, num_requests=replay_requests,
                             archs=archs, replays=replays, confidence=confidence,
                             screen=lambda first: _verified(first, gap_rtol))

    if method in ("exact", "auto"):
        # price-space routing: re-profiled curves are often non-convex, where the HiGHS LP
        # needs binaries per setup; the price solver splits them into convex runs (exact)
        solve_options.setdefault("routing", "price")
    reprofile = reprofile or _reprofile
    replay = replay or _replay
    t0 = time.perf_counter()
    base = problem
    p99 = p99_profiles
    profiled_mix: dict[tuple, str] = {}      # option key -> digest of its curve's mix
    rounds, best, fallback = [], None, None
    stop = "max_rounds"
    levels = [float(h) for h in np.atleast_1d(headroom)]
    level = 0
    tau = problem.slo.latency_ms
    tau_plan = tau          # the latency target the solver plans to (tightened below)
    for k in range(max_rounds + len(levels)):
        prob = with_headroom(base, levels[level])
        if tau_plan < tau:
            prob = replace(prob.with_slo(tau_plan), assumptions=prob.assumptions + (
                f"consistency: planned to {tau_plan:.4g} ms so that the replay meets the SLO "
                f"of {tau:g} ms (the replay of the previous round exceeded it)",))
        sol = solve(prob, method, **solve_options)
        if not sol.feasible:
            rounds.append({"round": k, "headroom": levels[level], "status": "infeasible",
                           "score": np.nan})
            if level + 1 < len(levels):
                level += 1          # no plan fits this headroom: relax it one step
                continue
            stop = "infeasible"
            break
        rec = replay(prob.with_slo(tau), sol, p99)     # judged against the user's SLO
        ok = _verified(rec, gap_rtol)
        rounds.append({"round": k, "headroom": levels[level], "planning_slo_ms": tau_plan,
                       "status": sol.status,
                       "setup": sol.setup.label(),
                       "score": sol.score, "predicted_ms": rec["predicted_ms"],
                       "replayed_ms": rec["replayed_ms"], "replayed_p99_ms": rec["replayed_p99_ms"],
                       "rel_gap_pct": rec["rel_gap_pct"], "slo_met": rec["slo_met"],
                       "replays": rec.get("replays", 1),
                       "replayed_upper_ms": rec.get("replayed_upper_ms"),
                       "verified": ok, "options_reprofiled": len(profiled_mix)})
        cand = (sol, prob, rec, p99)
        if ok and (best is None or sol.score > best[0].score):
            best = cand
        # judged by the upper bound when the record has one: a mean just below the SLO with a
        # wide spread is as much a miss as a mean above it
        worst = rec.get("replayed_upper_ms") or rec["replayed_ms"]
        excess = worst / tau
        if fallback is None or excess < fallback[0]:
            fallback = (excess, cand)
        if ok:
            stop = "verified"
            break
        # The mixes this plan routes; re-profile each routed model's option whose mix is new.
        from .replay import routed_pool
        lengths = routed_pool(prob, sol, qm) if qm is not None else {}
        todo = {}
        for i, v in lengths.items():
            key = (prob.model_names[i],) + (sol.setup.per_model[i].tp,
                                            sol.setup.per_model[i].compute_tenths)
            if profiled_mix.get(key) != _mix_digest(*v):
                todo[i] = (key, v)
        # A plan that spends the whole budget replays above it by the model's remaining error:
        # plan the next round to tau * tau / replayed (1% below), never loosening the target.
        tightened = False
        if not rec["slo_met"] and worst > tau and sol.latency_ms >= 0.99 * tau_plan:
            tau_plan, tightened = min(tau_plan, 0.99 * tau_plan * tau / worst), True
        if not todo and not tightened:
            stop = "fixed_point"
            break
        if k >= max_rounds + level:
            break
        prof, p99_new = base.profiles, p99
        for i, (key, (pt, ot)) in todo.items():
            cur, c99 = reprofile(key[0], sol.setup.per_model[i], pt, ot, base)
            if cur.get(*key) is None:       # the replica saturates at every profiled load
                cur = LatencyProfiles(tuple(c for c in prof.curves if c.key != key), prof.metric)
                prof = cur
            else:
                prof = _replace_curves(prof, cur)
                # carry the mix's measured effect to the model's options not profiled with it
                whole_ref, routed_ref = problem.profiles.get(*key), cur.get(*key)
                if whole_ref is not None:
                    moved = tuple(transfer_curve(c, whole_ref, routed_ref)
                                  for c in problem.profiles.curves
                                  if c.model == key[0] and c.key != key
                                  and c.key not in profiled_mix)
                    if moved:
                        prof = _replace_curves(prof, LatencyProfiles(moved, prof.metric))
            if p99_new is not None and c99 is not None:
                p99_new = _replace_curves(p99_new, c99)
            profiled_mix[key] = _mix_digest(pt, ot)
        base = replace(base, profiles=prof)
        p99 = p99_new
    verified = best is not None
    if not verified and fallback is None:     # round 0 infeasible: nothing to replay
        return ConsistentPlan(sol, prob, None, False, pd.DataFrame(rounds),
                              time.perf_counter() - t0, stop, (), tau)
    sol, prob, rec, _ = best if verified else fallback[1]
    check = f"; {slo_check_text(rec)}" if "replayed_ms" in rec and "slo_ms" in rec else ""
    note = (f"consistency: {len(rounds)} round(s), stop: {stop}; plan "
            f"{'verified' if verified else 'NOT verified'} by replay (|gap| <= "
            f"{100 * gap_rtol:g}% and SLO met{check}); planned to {prob.slo.latency_ms:.4g} ms "
            f"for the SLO of {tau:g} ms; curves of routed models re-profiled with the lengths "
            f"routed to them (simulated)")
    sol = replace(sol, notes=sol.notes + (note,))
    return ConsistentPlan(sol, prob, rec, verified, pd.DataFrame(rounds),
                          time.perf_counter() - t0, stop, (note,), tau)
