"""Plans that hold: curve ends, price-space routing, consistency, replay records, headroom."""

import numpy as np
import pytest
from tiny import two_model_problem

import routerwise as rw
from routerwise.optimize.exact_search import evaluate_all, solve_exact
from routerwise.optimize.latency import CurveBank, project_fractions
from routerwise.problem import LOAD_RTOL, LatencyCurve

FLAT = (0.0, 100.0)


# ----------------------------------------------------------------------------- curve ends

def test_load_a_hair_past_the_curve_end_reads_the_end_point():
    c = LatencyCurve("a", 1, 5, (0.0, 1.5, 3.0), (100.0, 150.0, 400.0), source="synthetic")
    # 1e-11 relative past the end: solver noise (the crash of issue 10 was 1.2e-11 req/s).
    assert c.latency_at(3.0 * (1 + 1e-11)) == pytest.approx(400.0)
    assert c.latency_at(3.0 + 1.2e-11) == pytest.approx(400.0)
    assert np.isinf(c.latency_at(3.0 * (1 + 10 * LOAD_RTOL)))
    bank = CurveBank.from_curves([c])
    assert bank.latency(np.array([0, 0]), np.array([3.0 + 1.2e-11, 3.1]))[0] == pytest.approx(400.0)
    assert np.isinf(bank.latency(np.array([0]), np.array([3.1]))[0])


def test_projected_fractions_stay_within_the_curve_range():
    # An LP leaves w_b 1e-8 past w_top = 0.3 and sum(w) != 1: renormalising alone overshoots.
    w = project_fractions([0.7 - 3e-8, 0.3 + 1e-8], [1.0, 0.3])
    assert w[1] <= 0.3
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    w = project_fractions([0.5, 0.5], [0.6, 0.45])
    np.testing.assert_allclose(w, [0.55, 0.45])


def capacity_bound_problem(rate=10.0):
    # b is better on every prompt but its curve ends at 3 req/s: the optimum sends w_b = 0.3,
    # exactly the end of b's curve, where a solver's noise used to read latency as inf.
    rng = np.random.default_rng(1)
    s = np.clip(np.c_[rng.uniform(0.2, 0.5, 40), rng.uniform(0.6, 0.9, 40)], 0, 1)
    return two_model_problem(s, {"a": ((0.0, 20.0), (100.0, 120.0)),
                                 "b": ((0.0, 1.0, 3.0), (150.0, 160.0, 200.0))},
                             rate=rate, tau=1000.0, tenths=(3, 5, 7))


def test_plan_at_the_curve_end_verifies_and_evaluate_all_has_no_infinite_feasible_rows():
    p = capacity_bound_problem()
    sol = rw.solve(p)                       # verify() runs inside
    assert sol.fractions[1] == pytest.approx(0.3, abs=1e-9)
    assert np.isfinite(sol.latency_ms)
    df = evaluate_all(p)
    f = df[df["feasible"]]
    assert len(f) > 0
    assert np.all(np.isfinite(f["latency_ms"])) and np.all(f["latency_ms"] <= 1000.0 + 1e-6)


# ----------------------------------------------------------------------------- price routing

from routerwise.optimize.assignment import _transport_lp, group_scores  # noqa: E402
from routerwise.optimize.exact_search import SearchContext  # noqa: E402
from routerwise.optimize.fixed_setup import FixedSetupLP  # noqa: E402
from routerwise.optimize.price_routing import PriceRouting, convex_runs  # noqa: E402
from routerwise.optimize.price_space import score_at_fractions  # noqa: E402
from routerwise.paper.synthetic import synthetic_problem  # noqa: E402


def _lp_transport_score(groups, w):
    from scipy.optimize import linprog
    N = groups.num_prompts
    r = linprog(-groups.scores.ravel(), A_eq=_transport_lp(groups),
                b_eq=np.r_[groups.counts, N * np.asarray(w)], bounds=(0, None), method="highs")
    return -r.fun / N


@pytest.mark.parametrize("aggregate", ("mean", "max"))
def test_price_routing_matches_the_routing_lp_on_every_setup(aggregate):
    p = synthetic_problem(3, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=300)
    if aggregate == "max":
        from routerwise.problem import SLO
        p = p.with_slo(SLO(400.0, p.slo.metric, "max"))
    ctx = SearchContext.build(p)
    lp = FixedSetupLP(ctx.groups, aggregate == "mean", p.slo.latency_ms)
    pr = PriceRouting(ctx.groups, aggregate == "mean", p.slo.latency_ms)
    compared = 0
    for s in range(0, ctx.setups.shape[0], max(1, ctx.setups.shape[0] // 40)):
        a, b = lp.solve(*ctx.setup_limits(s)), pr.solve(*ctx.setup_limits(s))
        assert (a is None) == (b is None)
        if a is not None:
            compared += 1
            assert b.score == pytest.approx(a.score, abs=1e-7)
            # the fractions are feasible and reach the score: S(w) recomputed by the LP
            assert _lp_transport_score(ctx.groups, b.fractions) == pytest.approx(b.score, abs=1e-7)
    assert compared >= 5
    assert pr.stats["fallbacks"] == 0


def test_price_routing_on_a_nonconvex_curve_matches_the_mip():
    # b's curve has a concave kink (steep then flat), so its latency mass envelope is not convex
    rng = np.random.default_rng(3)
    s = np.c_[rng.uniform(0.3, 0.6, 60), rng.uniform(0.4, 0.9, 60)]
    p = two_model_problem(s, {"a": ((0.0, 20.0), (100.0, 140.0)),
                              "b": ((0.0, 2.0, 4.0, 8.0), (100.0, 400.0, 420.0, 900.0))},
                          rate=10.0, tau=250.0)
    ctx = SearchContext.build(p)
    w_top, sec = ctx.setup_limits(0)
    assert not all(x.convex for x in sec) and max(len(convex_runs(x)) for x in sec) >= 2
    a = FixedSetupLP(ctx.groups, True, 250.0).solve(w_top, sec)
    b = PriceRouting(ctx.groups, True, 250.0).solve(w_top, sec)
    assert b.score == pytest.approx(a.score, abs=1e-6)


def test_exact_search_with_price_routing_equals_the_milp():
    p = synthetic_problem(3, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=200)
    milp = rw.solve(p, "milp")
    price = solve_exact(p, routing="price").verify(p)
    assert price.score == pytest.approx(milp.score, abs=1e-5)
    assert price.stats["price_routing"]["fallbacks"] == 0


def test_score_at_fractions_matches_the_transport_lp_on_continuous_scores():
    rng = np.random.default_rng(7)
    g = group_scores(rng.uniform(0, 1, (1500, 4)))
    w = np.array([0.1, 0.2, 0.3, 0.4])
    score, prices, z = score_at_fractions(g, w)
    assert score == pytest.approx(_lp_transport_score(g, w), abs=1e-8)
    np.testing.assert_allclose(z.sum(axis=0) / g.num_prompts, w, atol=1e-7)
    np.testing.assert_allclose(z.sum(axis=1), g.counts, atol=1e-9)
    assert float(np.sum(z * g.scores)) / g.num_prompts == pytest.approx(score, abs=1e-8)


# ----------------------------------------------------------------------------- consistency

from types import SimpleNamespace  # noqa: E402

from routerwise.optimize.headroom import cut_curve, with_headroom  # noqa: E402
from routerwise.planning.consistency import plan_consistently, transfer_curve  # noqa: E402
from routerwise.planning.replay import routed_pool  # noqa: E402
from routerwise.problem import LatencyProfiles  # noqa: E402

BASE_X = (0.0, 4.0, 8.0, 10.0)
BASE_Y = (100.0, 140.0, 260.0, 600.0)


def mix_world(n=60, seed=5):
    """Two models; b's prompts it wins are long, so its capacity under its routed mix is lower
    than under the whole mix (the effect the whole-mix curves miss)."""
    rng = np.random.default_rng(seed)
    s = np.c_[rng.uniform(0.3, 0.6, n), rng.uniform(0.2, 0.9, n)]
    # prompts where b is clearly better are 3x longer
    tokens = np.where(s[:, 1] > s[:, 0] + 0.1, 300, 100)
    qm = SimpleNamespace(prompt_tokens=np.c_[tokens, tokens],
                         completion_tokens=np.c_[tokens, tokens])
    p = two_model_problem(s, {"a": (BASE_X, BASE_Y), "b": (BASE_X, BASE_Y)}, rate=10.0, tau=250.0,
                          tenths=(5,))
    whole = float(tokens.mean())

    def curve_for(model, tp, tenths, pt):
        k = whole / float(np.mean(pt))          # capacity inversely proportional to length
        return LatencyCurve(model, tp, tenths, tuple(np.array(BASE_X) * k), BASE_Y,
                            source="synthetic")

    def reprofile(model, setup, pt, ot, prob):
        c = curve_for(model, setup.tp, setup.compute_tenths, pt)
        return LatencyProfiles((c,)), None

    def replay(prob, sol, p99):
        pool = routed_pool(prob, sol, qm)
        lam = prob.arrival_rate_rps
        true = sum(sol.fractions[i] * curve_for(prob.model_names[i], s.tp, s.compute_tenths,
                                                pool[i][0]).latency_at(lam * sol.fractions[i])
                   for i, s in enumerate(sol.setup.per_model) if i in pool)
        return {"predicted_ms": sol.latency_ms, "replayed_ms": true, "replayed_mean_ms": true,
                "replayed_p99_ms": true, "rel_gap_pct": 100 * (sol.latency_ms - true) / true,
                "slo_met": bool(true <= prob.slo.latency_ms)}

    return p, qm, reprofile, replay


def test_iterating_to_consistency_reaches_a_plan_its_replay_confirms():
    p, qm, reprofile, replay = mix_world()
    cp = plan_consistently(p, qm, headroom=1.0, reprofile=reprofile, replay=replay)
    r0 = cp.rounds.iloc[0]
    assert not r0["verified"]                       # the whole-mix plan misses (the premise)
    assert cp.verified and cp.stop_reason == "verified"
    assert abs(cp.replay["rel_gap_pct"]) <= 10 and cp.replay["replayed_ms"] <= 250.0
    assert cp.solution.score <= r0["score"] + 1e-9  # consistency costs score, never adds it
    assert len(cp.rounds) <= 4          # the stand-in world settles within a few rounds


def test_the_loop_stops_at_the_round_cap_and_never_labels_a_missed_plan_verified():
    p, qm, reprofile, _ = mix_world()

    def never(prob, sol, p99):   # a replay that always disagrees by 50%
        L = sol.latency_ms
        return {"predicted_ms": L, "replayed_ms": 2 * L, "replayed_mean_ms": 2 * L,
                "replayed_p99_ms": 2 * L, "rel_gap_pct": -50.0, "slo_met": True}

    cp = plan_consistently(p, qm, headroom=1.0, max_rounds=2, reprofile=reprofile, replay=never)
    assert not cp.verified
    assert len(cp.rounds) <= 3 and cp.stop_reason in ("max_rounds", "fixed_point")
    assert "NOT verified" in cp.solution.notes[-1]


def test_a_plan_that_replays_above_its_budget_is_replanned_to_a_tighter_target():
    """A model 7% optimistic everywhere: the whole-budget plan replays above the SLO; the loop
    plans the next round to tau * tau / replayed and that plan's replay meets the SLO."""
    p, qm, reprofile, _ = mix_world()
    p = p.with_slo(200.0)           # binding: the optimum spends the whole budget
    tau = p.slo.latency_ms

    def optimistic(prob, sol, p99):
        true = 1.07 * sol.latency_ms
        return {"predicted_ms": sol.latency_ms, "replayed_ms": true, "replayed_mean_ms": true,
                "replayed_p99_ms": true, "rel_gap_pct": 100 * (sol.latency_ms - true) / true,
                "slo_met": bool(true <= prob.slo.latency_ms)}

    cp = plan_consistently(p, qm, headroom=1.0, reprofile=reprofile, replay=optimistic)
    r = cp.rounds
    assert not r.iloc[0]["slo_met"] and r.iloc[0]["planning_slo_ms"] == tau
    assert cp.verified and cp.replay["replayed_ms"] <= tau
    assert cp.rounds.iloc[-1]["planning_slo_ms"] < tau
    assert any("planned to" in a for a in cp.problem.assumptions)


def test_headroom_cuts_every_curve_and_is_recorded():
    p, *_ = mix_world()
    q = with_headroom(p, 0.8)
    for c0, c1 in zip(p.profiles.curves, q.profiles.curves):
        assert c1.max_load_rps == pytest.approx(0.8 * c0.max_load_rps)
        assert c1.latency_at(c1.max_load_rps) == pytest.approx(c0.latency_at(0.8 * c0.max_load_rps))
    assert any("headroom" in a for a in q.assumptions)
    assert rw.solve(q).score <= rw.solve(p).score + 1e-9
    c = cut_curve(p.profiles.curves[0], 0.5)
    assert c.x[-1] == pytest.approx(5.0) and c.y[-1] == pytest.approx(170.0)   # 140 + 30


def test_transfer_curve_reproduces_the_reference_and_scales_capacity():
    w = LatencyCurve("a", 1, 5, BASE_X, BASE_Y, source="synthetic")
    r = LatencyCurve("a", 1, 5, tuple(np.array(BASE_X) * 0.5), tuple(np.array(BASE_Y) * 1.2),
                     source="synthetic")
    other = LatencyCurve("a", 2, 5, tuple(np.array(BASE_X) * 2), BASE_Y, source="synthetic")
    t = transfer_curve(w, w, r)
    np.testing.assert_allclose(t.x, r.x)
    np.testing.assert_allclose(t.y, r.y)
    t2 = transfer_curve(other, w, r)
    assert t2.max_load_rps == pytest.approx(10.0) and t2.y[-1] == pytest.approx(720.0)
    assert t2.is_convex() == other.is_convex()


def test_headroom_ladder_relaxes_only_when_no_plan_fits():
    p, qm, reprofile, replay = mix_world()
    # capacity 2 x 10 req/s: a 0.4 cap leaves 8 < 10 req/s (infeasible), 1.0 fits
    cp = plan_consistently(p, qm, headroom=(0.4, 1.0), reprofile=reprofile, replay=replay)
    assert cp.rounds["headroom"].iloc[0] == 0.4 and cp.rounds["status"].iloc[0] == "infeasible"
    assert cp.rounds["headroom"].iloc[-1] == 1.0 and cp.verified
    only = plan_consistently(p, qm, headroom=0.4, reprofile=reprofile, replay=replay)
    assert only.stop_reason == "infeasible" and not only.verified and only.replay is None
