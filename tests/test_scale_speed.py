"""The decomposition's speed-ups keep its answers: lazy latency-envelope rows, MIP starts and
the scaled objective give the same optimum and valid bounds as the full master, the MILP and
the exact search (functional checks only: no timings)."""

import numpy as np
import pulp
import pytest

import routerwise as rw
from routerwise.optimize.decomposition import solve_decomposition
from routerwise.optimize.milp import (
    LAZY_START_PIECES,
    MASS_ROW_TOL_MS,
    add_violated_mass_rows,
    build_milp,
    run_milp,
)
from routerwise.paper.synthetic import ladder_problem, synthetic_problem

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def small():
    return synthetic_problem(3, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=200)


@pytest.fixture(scope="module")
def binding():
    """4 models on 4 GPUs: placement binds, so the master needs cuts."""
    return synthetic_problem(4, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=40)


def _envelope_violation(model) -> float:
    """Largest amount by which the model's solution falls below any piece of any envelope."""
    worst = -np.inf
    for (i, k), sec in model.secants.items():
        xv, wv, tv = (pulp.value(v[i, k]) or 0.0 for v in (model.x, model.w, model.t))
        worst = max(worst, float(np.max(sec.slopes * wv + sec.intercepts * xv - tv)))
    return worst


def test_lazy_build_starts_with_a_few_rows_per_envelope(small):
    full = build_milp(small, placement="aggregate")
    lazy = build_milp(small, placement="aggregate", lazy_envelopes=True)
    assert full.secants.keys() == lazy.secants.keys() and full.secants
    for key, sec in full.secants.items():
        n = sec.w.size - 1
        assert full.mass_rows[key] == set(range(n))
        have = lazy.mass_rows[key]
        assert len(have) == min(n, LAZY_START_PIECES)
        assert {0, n - 1} <= have                      # both ends of the envelope
    assert lazy.lp.numConstraints() < full.lp.numConstraints()
    assert add_violated_mass_rows(full) == 0           # nothing missing: nothing to add


def test_adding_violated_rows_ends_at_the_full_masters_optimum(small):
    full = build_milp(small, placement="aggregate")
    ref = run_milp(full)
    lazy = build_milp(small, placement="aggregate", lazy_envelopes=True)
    first = run_milp(lazy)
    assert first.bound >= ref.objective - 1e-9        # fewer rows: a relaxation
    assert _envelope_violation(lazy) > MASS_ROW_TOL_MS  # ... that cuts envelope corners
    rounds, added = 0, 1
    while added:
        added = add_violated_mass_rows(lazy)
        run = run_milp(lazy)
        rounds += 1
        assert rounds < 50
    assert _envelope_violation(lazy) <= 1e-6
    assert run.objective == pytest.approx(ref.objective, abs=1e-6)
    assert sum(map(len, lazy.mass_rows.values())) < sum(map(len, full.mass_rows.values()))


def test_milp_objective_is_the_mean_score_not_the_total(small):
    from routerwise.optimize.assignment import score_of_fractions
    from routerwise.optimize.milp import _extract
    model = build_milp(small)
    run = run_milp(model)
    assert model.objective_scale == small.workload.scores.shape[0]
    _, w = _extract(small, model)
    assert run.objective == pytest.approx(score_of_fractions(model.groups, w).score, abs=1e-7)
    assert run.objective < 1.0 and run.bound == pytest.approx(run.objective, rel=1e-6)


def test_a_mip_start_changes_nothing_but_the_path(small):
    model = build_milp(small, placement="aggregate")
    ref = run_milp(model)
    start = {v: v.varValue for v in model.lp.variables()}
    again = run_milp(model, start=start)
    assert again.optimal and again.objective == pytest.approx(ref.objective, abs=1e-9)
    # an infeasible start (every x on, every w at 1) is ignored, never trusted
    bad = {v: 1.0 for v in model.lp.variables() if v.name.startswith(("x", "w"))}
    worse = run_milp(model, start=bad)
    assert worse.optimal and worse.objective == pytest.approx(ref.objective, abs=1e-9)


@pytest.mark.parametrize("lazy,warm", [(False, False), (True, False), (False, True),
                                       (True, True)])
def test_every_variant_finds_the_exact_searchs_optimum(binding, lazy, warm):
    ex = rw.solve(binding, "exact")
    dec = solve_decomposition(binding, lazy_envelopes=lazy, warm_start=warm)
    assert dec.status == "optimal"
    assert dec.score == pytest.approx(ex.score, abs=1e-5)
    assert ex.score - 1e-6 <= dec.bound <= dec.score * (1 + 1e-6) + 1e-9
    assert dec.stats["cuts"] >= 1                      # placement did bind
    h = dec.history
    assert len(h) == dec.stats["masters"]
    resolved = int(h["placeable"].isna().sum())        # envelope re-solves: not placed
    assert (resolved > 0) == (dec.stats["envelope_rows_added"] > 0)
    assert resolved == int((h["envelope_rows"] > 0).sum())
    if not lazy:
        assert dec.stats["envelope_rows_added"] == 0
    assert int((~h["placeable"].dropna()).sum()) == dec.stats["cuts"]


def test_lazy_decomposition_matches_the_milp_on_the_ladder():
    p = ladder_problem(3, 4, num_prompts=120, seed=0)
    mi = rw.solve(p, "milp")
    dec = solve_decomposition(p)
    assert mi.status == dec.status == "optimal"
    assert dec.score == pytest.approx(mi.score, abs=1e-5)
    assert dec.bound >= mi.score - 1e-6
    assert dec.stats["envelope_rows_added"] > 0
    assert dec.stats["constraints"] < build_milp(p, placement="aggregate").lp.numConstraints()


def test_the_round_cap_completes_the_envelopes_and_keeps_the_optimum(binding, monkeypatch):
    import routerwise.optimize.decomposition as dec
    from routerwise.optimize.milp import complete_mass_rows
    full_rows = sum(sec.w.size - 1 for sec in build_milp(binding, placement="aggregate")
                    .secants.values())
    model = build_milp(binding, placement="aggregate", lazy_envelopes=True)
    have = sum(map(len, model.mass_rows.values()))
    assert complete_mass_rows(model) == full_rows - have
    assert complete_mass_rows(model) == 0
    ref = solve_decomposition(binding, lazy_envelopes=False)
    monkeypatch.setattr(dec, "MAX_ENVELOPE_ROUNDS", 0)     # complete at the first violation
    capped = dec.solve_decomposition(binding)
    assert capped.status == "optimal" and capped.score == pytest.approx(ref.score, abs=1e-6)
    assert int(capped.history["placeable"].isna().sum()) == 1      # one re-solve, then full
    assert capped.stats["envelope_rows_added"] == full_rows - have
