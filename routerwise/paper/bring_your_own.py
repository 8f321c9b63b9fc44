"""The steps of notebook 00 (bring your own models, scores and curves), for any problem file.

Each step prints one line and returns the table the notebook shows, and says plainly what it
cannot do instead of failing: a problem whose SLO no plan meets (:func:`show_plan` prints the
solver's diagnosis: which limit binds, the lowest latency reachable; the router, replay and
consistent-plan steps then have nothing to work on and say so), and a problem file without
``true_table`` (no realized score: the realized score needs the prompts' true scores).
:func:`numbers` and :func:`conclusion` give the notebook's record and closing sentences.
"""

from __future__ import annotations

import re

import pandas as pd

from . import conclusions, record

__all__ = ["KINDS", "kinds", "realized_text", "show_plan", "route", "replay", "consistent",
           "numbers", "conclusion"]

# The kinds that do not depend on the inputs; :func:`kinds` adds those that do.
KINDS = {"plan_replay_slo_met": "simulated",
         "router_max_share_error": "derived from the router's split",
         "consistent_verified": "simulated replay check",
         "slo_ms": "parameter of the problem file"}


def kinds(problem) -> dict:
    """The kind of each of :func:`numbers` (the rest are simulated), from what the problem
    file declares: ``[scores] kind`` (measured or predicted) and its table, whether it gives a
    ``true_table``, and the ``source`` of its curves (measured, simulated, synthetic; simulated
    with ``simulate = true``). A user's measured scores are never labelled predicted."""
    label = problem.workload.label or "the problem's scores"
    m = re.fullmatch(r"(measured|predicted) scores from (.+)", label)
    if m and m.group(1) == "predicted":
        score = f"predicted (predicted scores in {m.group(2)})"
    elif m:
        score = f"derived from the measured scores in {m.group(2)}"
    else:
        score = f"derived from {label}"
    sources = sorted({c.source for c in problem.profiles.curves})
    return {**KINDS, "plan_score": score, "consistent_score": score,
            "plan_realized_score": "derived from the true_table's scores"
            if problem.workload.true_scores is not None
            else "derived (no true_table: not available)",
            "plan_latency_ms": f"modelled on the {' and '.join(sources)} curves"}

NO_PLAN = "no plan meets the SLO (see the solve step)"


def realized_text(problem, plan) -> str:
    """``realized 0.6986``, or why there is no realized score."""
    realized = plan.realized_score(problem)
    if realized is not None:
        return f"realized {realized:.4f}"
    if problem.workload.true_scores is None:
        return ("realized score not available: the problem has no true scores (add "
                "true_table under [scores] in the problem file)")
    return "realized score not available: no plan"


def show_plan(problem, plan) -> pd.DataFrame | None:
    """Print the plan's status, scores and latency, save ``byo_plan`` and return the plan
    (one row per model); for an infeasible SLO print the diagnosis and return None."""
    slo = problem.slo
    if not plan.feasible:
        print(f"{plan.status} (the {plan.infeasibility.binding} limit binds): "
              f"{_sentence(plan.infeasibility.message)}")
        return None
    table = pd.DataFrame([{"model": n, "setup": s.label(), "gpus": g, "fraction": w,
                           "load_rps": w * problem.arrival_rate_rps, "latency_ms": lat}
                          for n, s, g, w, lat in zip(problem.model_names, plan.setup.per_model,
                                                     plan.setup.placement, plan.fractions,
                                                     plan.per_model_latency_ms(problem))])
    record.save_table(table, "byo_plan")
    print(f"{plan.status}: predicted score {plan.score:.4f} ({realized_text(problem, plan)}), "
          f"{slo.metric} {plan.latency_ms:.1f} ms")
    return table


def route(problem, plan) -> pd.DataFrame | None:
    """The planned and routed share of each model over the problem's prompts (the online
    router with the plan's prices), or None without a plan."""
    if not plan.feasible:
        print(f"nothing to route: {NO_PLAN}")
        return None
    from ..planning.online_router import OnlineRouter
    router = OnlineRouter.from_solution(plan, problem.model_names)
    routed = router.route_batch(problem.workload.scores)
    return pd.DataFrame({"model": problem.model_names, "planned": plan.fractions,
                         "routed": [float((routed == i).mean()) for i in range(problem.num_models)]})


def replay(problem, plan, inputs, num_requests: int) -> tuple[dict | None, pd.DataFrame | None]:
    """Replay the plan with the prompts it routes (:func:`routerwise.planning.consistency.replay_record`),
    save ``byo_replay``, print predicted vs replayed; returns (record, per-model table), or
    (None, None) without a plan."""
    if not plan.feasible:
        print(f"nothing to replay: {NO_PLAN}")
        return None, None
    from ..planning.consistency import replay_record
    rep = replay_record(problem, plan, inputs.scores, archs=inputs.architectures,
                        num_requests=num_requests)
    record.save_table(pd.DataFrame(rep["per_model"]), "byo_replay")
    print(f"predicted {rep['predicted_ms']:.1f} ms, replayed {rep['replayed_ms']:.1f} ms "
          f"({rep['rel_gap_pct']:+.1f}%), SLO met: {rep['slo_met']}")
    return rep, pd.DataFrame(rep["per_model"])[["model", "setup", "load_rps", "predicted_ms",
                                                "replayed_ms", "replayed_p99_ms"]]


def consistent(problem, plan, inputs, replay_requests: int):
    """Plan consistently (:func:`routerwise.planning.consistency.plan_consistently`), save
    ``byo_consistency_rounds``, print how it stopped; returns (ConsistentPlan, rounds table).
    Without a plan for the problem itself (headroom only tightens it) returns (None, None); when
    no headroom level leaves a plan, prints why and returns the rounds."""
    if not plan.feasible:
        print(f"no consistent plan: {NO_PLAN}")
        return None, None
    from ..planning.consistency import plan_consistently
    cp = plan_consistently(problem, inputs.scores, archs=inputs.architectures,
                           replay_requests=replay_requests)
    record.save_table(cp.rounds, "byo_consistency_rounds")
    if cp.replay is None:
        why = cp.solution.infeasibility.message if cp.solution.infeasibility else cp.stop_reason
        print(f"stop: {cp.stop_reason}; no plan below the knee of every curve at any headroom "
              f"tried ({', '.join(f'{h:g}' for h in cp.rounds['headroom'])}): {why}")
        return cp, cp.rounds
    print(f"stop: {cp.stop_reason}; verified: {cp.verified}; score {cp.solution.score:.4f}; "
          f"replayed {cp.replay['replayed_ms']:.1f} ms vs SLO {problem.slo.latency_ms:g} ms")
    return cp, cp.rounds[["round", "planning_slo_ms", "setup", "score", "predicted_ms",
                          "replayed_ms", "rel_gap_pct", "slo_met", "verified"]]


def numbers(problem, plan, split, rep, cp) -> dict:
    """The notebook's key numbers (their kinds: :func:`kinds`); None where a step had nothing
    to work on."""
    cp_ok = cp is not None and cp.replay is not None
    return {"plan_score": plan.score if plan.feasible else None,
            "plan_realized_score": plan.realized_score(problem),
            "plan_latency_ms": plan.latency_ms if plan.feasible else None,
            "plan_replayed_ms": rep["replayed_ms"] if rep else None,
            "plan_replay_slo_met": bool(rep["slo_met"]) if rep else None,
            "router_max_share_error": None if split is None else
            float((split["routed"] - split["planned"]).abs().max()),
            "consistent_verified": bool(cp.verified) if cp is not None else None,
            "consistent_score": cp.solution.score if cp_ok else None,
            "consistent_replayed_ms": cp.replay["replayed_ms"] if cp_ok else None,
            "slo_ms": problem.slo.latency_ms}


def conclusion(n: dict, plan) -> str:
    """The closing sentences (Markdown) from :func:`numbers`; for an infeasible SLO, why."""
    if plan.feasible:
        return conclusions.text_for("bring_your_own", n)
    return (f"**What the numbers say.** No plan meets the {n['slo_ms']:g} ms SLO, so nothing "
            f"was routed, replayed or re-planned. {_sentence(plan.infeasibility.message)}")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
