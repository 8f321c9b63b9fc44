"""The conclusions shown in the notebooks, written from the numbers the notebook recorded.

A notebook's closing cell shows ``Markdown(conclusions.text_for(name, numbers))`` with the
numbers it has just passed to ``record``: when papermill overrides a parameter, the sentences
follow the new numbers instead of contradicting them. Each topic's function states the numbers
with their kind and compares them with the paper's figures (``experiments.PAPER``) by rule
(e.g. "far smaller than" when ours is below half the paper's), never by hand.

Topics (``TOPICS``): ``setup_space`` (01), ``latency_profiles`` (02), ``score_variation`` (03),
``exact_vs_dual`` (04), ``beyond_the_paper`` (05), ``bring_your_own`` (00),
``latency_validation`` (08), ``scale`` (10), ``cost_frontier`` (11). A notebook name
(``"03_score_variation"``) is accepted too.
"""

from __future__ import annotations

import re

from ..errors import ValidationError

__all__ = ["TOPICS", "text_for", "compare"]

PAPER_UTILIZATION = {(3, 4): 669, (4, 4): 16_660, (3, 8): 141, (4, 8): 7_764}   # paper, Fig. 6


def compare(ours: float, paper: float) -> str:
    """'far smaller than' (below half), 'smaller than', 'about the same as' (within 10%),
    'larger than', 'far larger than' (over twice)."""
    if paper == 0:
        raise ValidationError("compare: the paper's figure is 0; no ratio to describe")
    r = ours / paper
    if r < 0.5:
        return "far smaller than"
    if r < 0.9:
        return "smaller than"
    if r <= 1.1:
        return "about the same as"
    return "larger than" if r <= 2 else "far larger than"


def _need(numbers: dict, *keys):
    missing = [k for k in keys if numbers.get(k) is None]
    if missing:
        raise ValidationError(f"conclusions need the recorded numbers {missing}; got keys "
                              f"{sorted(numbers)}")
    return [numbers[k] for k in keys]


def _setup_space(n: dict) -> str:
    cells = sorted({(int(m), int(g)) for m, g in
                    (re.fullmatch(r"utilization_(\d+)m_G(\d+)", k).groups()
                     for k in n if re.fullmatch(r"utilization_(\d+)m_G(\d+)", k))})
    if not cells:
        raise ValidationError("conclusions need utilization_<M>m_G<G> numbers")
    out = []
    known = [(m, g) for m, g in cells if (m, g) in PAPER_UTILIZATION]
    if known:
        same = all(n[f"utilization_{m}m_G{g}"] == PAPER_UTILIZATION[(m, g)] for m, g in known)
        listing = "; ".join(f"{m} models at G = {g}: {n[f'utilization_{m}m_G{g}']:,} "
                            f"(paper {PAPER_UTILIZATION[(m, g)]:,})" for m, g in known)
        out.append(f"The utilization filter alone (counted exactly) "
                   f"{'reproduces' if same else 'does not reproduce'} the paper's counts: "
                   f"{listing}.")
    kept = []
    for m, g in cells:
        paper, ours = n.get(f"paper_retained_{m}m_G{g}"), n.get(f"ours_retained_{m}m_G{g}")
        if paper:
            kept.append(f"{m} models at G = {g}: {ours:,} of {paper:,} "
                        f"({100 * ours / paper:.0f}%)")
    if kept:
        out.append("Placing compute shares exactly as well (no GPU asked for more than 100% of "
                   "its compute; memory needs modelled) keeps, of the setups the paper's memory "
                   "check retains: " + "; ".join(kept) + ".")
    return " ".join(out)


def _latency_profiles(n: dict) -> str:
    (curves,) = _need(n, "curves")
    caps = {}
    for k, v in n.items():
        m = re.fullmatch(r"capacity_rps\[(.+),tp(\d+)\]", k)
        if m and v is not None:
            caps.setdefault(m.group(1), {})[int(m.group(2))] = v
    out = [f"{curves} latency curves, all simulated (fitted step costs, modelled compute-share "
           f"law)."]
    for model, by_tp in sorted(caps.items()):
        tps = sorted(by_tp)
        listing = ", ".join(f"tp {tp}: {by_tp[tp]:.1f} req/s" for tp in tps)
        grows = all(by_tp[a] < by_tp[b] for a, b in zip(tps, tps[1:]))
        out.append(f"{model} with whole GPUs carries at most {listing} before saturating"
                   + ("" if len(tps) < 2 else
                      ("; more GPUs carry more load." if grows else
                       "; more GPUs do NOT always carry more load here.")))
    return " ".join(out)


def _score_variation(n: dict) -> str:
    from .experiments import PAPER
    panels, smin, smax, vmax, vmed = _need(n, "panels", "score_min", "score_max",
                                           "variation_pct_max", "variation_pct_median")
    word = compare(vmax, PAPER["variation_pct"])
    out = [f"Across {panels} panel{'s' if panels != 1 else ''}, the best predicted score a "
           f"retained setup reaches ranges from {smin:.3f} to {smax:.3f} (predicted scores, "
           f"simulated latency; the paper: {PAPER['score_min']:.2f}-{PAPER['score_max']:.2f}). "
           f"The largest variation (max - min) / min is {vmax:.1f}% (median {vmed:.1f}%), "
           f"{word} the paper's {PAPER['variation_pct']:.0f}%."]
    gaps = {b: n.get(f"{b}_gap_pct_max") for b in ("equal-split", "size-proportional", "isolated")}
    gaps = {b: g for b, g in gaps.items() if g is not None}
    if gaps:
        out.append("The baselines stay below the optimum by at most "
                   + ", ".join(f"{g:.1f}% ({b})" for b, g in gaps.items()) + ".")
    if word in ("far smaller than", "smaller than"):
        out.append("The spread is bounded by how different the models' scores are: in "
                   "RouteProfile the mean true score of the 3B-70B models spans only about "
                   "0.57-0.73, whereas the paper's ladder reached 0.30 at the bottom; resource "
                   "allocation still moves the optimum, but on this data it is not the lever "
                   "the paper reports.")
    return " ".join(out)


def _exact_vs_dual(n: dict) -> str:
    dmax, dmed, defmax, tmax, allopt = _need(n, "dual_gap_pct_max", "dual_gap_pct_median",
                                             "default_gap_pct_max", "milp_time_s_max",
                                             "milp_all_optimal")
    out = [f"The MILP {'proved every panel optimal' if allopt else 'did NOT prove every panel optimal'}"
           f" (slowest {tmax:.1f} s, measured on this machine)."]
    out.append(f"The paper's dual-price method lands {dmed:.2f}% below the optimum at the median "
               f"and {dmax:.2f}% at worst; it has no optimality guarantee.")
    within = "within 0.001% of" if abs(defmax) < 1e-3 else f"{defmax:.3f}% from"
    out.append(f"The kit's default exact search is {within} the MILP optimum on every panel.")
    return " ".join(out)


def _beyond_the_paper(n: dict) -> str:
    pred, real, pms, sms = _need(n, "predicted_score_opt", "realized_score_opt",
                                 "replay_predicted_ms", "replay_simulated_mean_ms")
    out = [f"The optimum's predicted score is {pred:.3f}; on the measured (true) scores the same "
           f"routing scores {real:.3f} ({100 * (real - pred) / pred:+.1f}%)."]
    out.append(f"Replayed with the prompts it routes, its mean latency is {sms:.0f} ms against "
               f"the {pms:.0f} ms predicted (simulated, {100 * (sms - pms) / pms:+.0f}%).")
    slo = n.get("slo_ms")
    if slo is not None:
        out.append(f"That {'meets' if sms <= slo else 'misses'} the {slo:g} ms SLO.")
    shifts, bad = n.get("mix_shifts"), n.get("mix_shift_slo_violations")
    if shifts:
        out.append(f"{bad} of {shifts} random task-mix shifts break the SLO without re-planning"
                   + (f", {n['mix_shifts_beyond_profiled_load']} of them by pushing a model "
                      f"beyond its profiled load" if n.get("mix_shifts_beyond_profiled_load")
                      else "") + ".")
    rate = n.get("max_rate_factor_meeting_slo")
    if rate is not None:
        out.append(f"The plan meets the SLO up to {rate:g}x its planned arrival rate.")
    if n.get("consistent_score") is not None:
        out.append(f"The consistent plan scores {n['consistent_score']:.3f} and its replay "
                   f"{'confirms' if n.get('consistent_verified') else 'does NOT confirm'} it.")
    return " ".join(out)


def _bring_your_own(n: dict) -> str:
    score, lat, rep, met, slo = _need(n, "plan_score", "plan_latency_ms", "plan_replayed_ms",
                                      "plan_replay_slo_met", "slo_ms")
    out = [f"The exact plan predicts a score of {score:.3f} at {lat:.0f} ms; replayed with the "
           f"prompts it routes it runs at {rep:.0f} ms (simulated) and "
           f"{'meets' if met else 'misses'} the {slo:g} ms SLO."]
    if n.get("consistent_score") is not None:
        out.append(f"The consistent plan scores {n['consistent_score']:.3f} "
                   f"({100 * (n['consistent_score'] - score) / score:+.1f}%), replayed at "
                   f"{n['consistent_replayed_ms']:.0f} ms: "
                   f"{'verified' if n.get('consistent_verified') else 'NOT verified'}.")
    return " ".join(out)


def _latency_validation(n: dict) -> str:
    keys = [k for k in ("median_abs_err_pct_ttft_mean", "median_abs_err_pct_tpot_mean",
                        "median_abs_err_pct_ttft_p99") if n.get(k) is not None]
    if not keys:
        raise ValidationError("conclusions need median_abs_err_pct_* numbers")
    names = {"median_abs_err_pct_ttft_mean": "mean TTFT", "median_abs_err_pct_tpot_mean": "mean TPOT",
             "median_abs_err_pct_ttft_p99": "p99 TTFT"}
    out = [f"On {n.get('runs', '?')} measured runs, held out of the overhead fit, the simulator's "
           f"median absolute error is " + ", ".join(f"{n[k]:.1f}% ({names[k]})" for k in keys) + "."]
    if n.get("margin_ttft") is not None:
        out.append(f"The fitted planning margin multiplies simulated TTFT by {n['margin_ttft']:.2f} "
                   f"and TPOT by {n['margin_tpot']:.2f}.")
    return " ".join(out)


def _cost_frontier(n: dict) -> str:
    from ..optimize.baselines import BASELINES

    best, fewest_best, unl = _need(n, "best_score", "fewest_gpus_best_score",
                                   "unlimited_capacity_score")
    out = [f"The optimum (predicted scores, simulated latency) peaks at {best:.4f} from "
           f"{fewest_best} GPUs on; the unlimited-capacity ceiling is {unl:.4f}, so capacity "
           f"costs {100 * (unl - best):.2f} points at the best size."]
    gains = {b: n.get(f"gain_vs_{b}_max_pts") for b in BASELINES}
    gains = {b: g for b, g in gains.items() if g is not None}
    if gains:
        lead = ", ".join(f"{b} {g:.2f}" for b, g in gains.items())
        out.append(f"At matched GPU count the optimum leads the baselines by at most: {lead} "
                   f"points.")
    floor = n.get("quality_floor")
    if floor is not None:
        opt = n.get("gpus_to_floor_optimum")
        if opt is None:
            out.append(f"No size in range reaches the quality floor {floor:g}.")
        else:
            others = [f"{b} {n[f'gpus_to_floor_{b}']}" if n.get(f"gpus_to_floor_{b}") is not None
                      else f"{b} never" for b in BASELINES if f"gpus_to_floor_{b}" in n]
            out.append(f"Reaching a score of {floor:g} takes {opt} GPUs with the joint optimum"
                       + (f" (baselines: {', '.join(others)})." if others else "."))
    return " ".join(out)


def _scale(n: dict) -> str:
    m, g, gap, t, method = _need(n, "largest_models", "largest_gpus", "largest_gap_pct",
                                 "largest_time_s", "largest_method")
    out = [f"The largest synthetic (modelled) instance here, {m} models on {g} GPUs, was solved "
           f"by the {method} method in {t:.1f} s (measured on this machine) with a proven gap of "
           f"{gap:.3f}%."]
    if n.get("all_optimal"):
        out.append("Every size ended proven optimal.")
    else:
        out.append(f"Not every size ended proven optimal; the largest proven gap is "
                   f"{n.get('gap_pct_max', float('nan')):.3f}%.")
    if n.get("methods"):
        out.append(f"Methods chosen by size: {n['methods']}.")
    return " ".join(out)


TOPICS = {"setup_space": _setup_space, "latency_profiles": _latency_profiles,
          "score_variation": _score_variation, "exact_vs_dual": _exact_vs_dual,
          "beyond_the_paper": _beyond_the_paper, "bring_your_own": _bring_your_own,
          "latency_validation": _latency_validation, "cost_frontier": _cost_frontier,
          "scale": _scale}


def text_for(topic: str, numbers: dict) -> str:
    """The conclusion sentences (Markdown) of ``topic`` from the recorded ``numbers``."""
    key = re.sub(r"^\d+_", "", topic)
    if key not in TOPICS:
        raise ValidationError(f"no conclusions for {topic!r}; topics: {sorted(TOPICS)}")
    return "**What the numbers say.** " + TOPICS[key](numbers)
