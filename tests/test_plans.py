"""Plans that hold: curve ends, price-space routing, consistency, replay records, headroom."""

import numpy as np
import pytest

import routerwise as rw
from routerwise.latency import CurveBank, project_fractions
from routerwise.problem import LOAD_RTOL, LatencyCurve
from routerwise.search import evaluate_all, solve_exact
from tiny import two_model_problem

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
