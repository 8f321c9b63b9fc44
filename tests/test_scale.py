"""Scale: the seeded synthetic ladder, the decomposition, method="auto" and proven bounds."""

import itertools

import numpy as np
import pytest
from conftest import needs_mirror

import routerwise as rw
from routerwise.errors import ValidationError
from routerwise.optimize.auto import EXACT_MAX_SETUPS, candidate_setup_count, choose_method
from routerwise.optimize.decomposition import place_setup, unplaceable_core
from routerwise.optimize.milp import aggregate_rows, build_milp, run_milp
from routerwise.optimize.setup_space import enumerate_setups, model_options
from routerwise.paper.synthetic import ladder_load_rps, ladder_problem, ladder_rungs, ladder_slo_ms, synthetic_problem
from routerwise.problem import SetupSpace

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def small():
    """3 models on 4 GPUs: placement binds (memory of the 70B-like model, compute shares)."""
    return synthetic_problem(3, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=200)


@pytest.fixture(scope="module")
def small_exact(small):
    return rw.solve(small, "exact")


# ----------------------------------------------------------------------------- the ladder

def test_ladder_is_seeded_log_spaced_and_monotone():
    a, b = ladder_rungs(16, seed=0), ladder_rungs(16, seed=0)
    assert a == b
    assert a != ladder_rungs(16, seed=1)
    sizes = [r.params_b for r in a]
    assert sizes[0] == pytest.approx(1.0) and sizes[-1] == pytest.approx(70.0)
    # log-spaced: 70^(k/15) billions, rounded to 0.1B
    assert np.allclose(sizes, [70.0 ** (k / 15) for k in range(16)], atol=0.05 + 1e-12)
    # Bigger models: better, slower, lower capacity (jitter is small against the trend).
    assert all(np.diff([r.skill for r in a]) > 0)
    assert all(np.diff([r.l0_ms for r in a]) > 0)
    assert all(np.diff([r.cap1_rps for r in a]) < 0)
    assert len({r.name for r in a}) == 16
    with pytest.raises(ValidationError, match="num_models"):
        ladder_rungs(0)
    with pytest.raises(ValidationError, match="load_fraction"):
        ladder_problem(4, 4, load_fraction=1.5)


def test_ladder_rule_for_load_and_slo():
    rungs = ladder_rungs(4)
    # Independent arithmetic of the documented rule: G / M = 2 GPUs each, exponent 0.85.
    want = 0.5 * sum(r.cap1_rps * 2 ** 0.85 for r in rungs)
    assert ladder_load_rps(rungs, 8) == pytest.approx(want)
    assert ladder_slo_ms(rungs) == pytest.approx(np.sqrt(rungs[0].l0_ms * rungs[-1].l0_ms))
    p = ladder_problem(4, 8)
    assert p.arrival_rate_rps == pytest.approx(want)
    assert "modelled" in " ".join(p.assumptions)
    assert p.profiles.sources == {"synthetic"}


def test_ladder_instance_is_neither_trivial_nor_infeasible():
    p = ladder_problem(3, 4)
    sol = rw.solve(p, "exact")
    assert sol.status == "optimal"
    # The SLO binds: the optimal plan sits on it ...
    assert sol.latency_ms == pytest.approx(p.slo.latency_ms, rel=1e-3)
    # ... and the score lies strictly between all-to-the-worst and all-to-the-best model.
    means = p.workload.scores.mean(axis=0)
    assert means.min() + 0.01 < sol.score < means.max() - 0.01
    assert np.count_nonzero(sol.fractions > 1e-3) >= 2


# ----------------------------------------------------------------------------- setup counts

@pytest.mark.parametrize("M,G,space", [(3, 4, SetupSpace()), (4, 8, SetupSpace()),
                                       (3, 6, SetupSpace(rho_min=0.7)),
                                       (3, 4, SetupSpace(check_memory=False,
                                                         check_compute=False))])
def test_candidate_count_matches_enumeration(M, G, space):
    p = synthetic_problem(M, G, space=space, num_prompts=20)
    assert candidate_setup_count(p) == enumerate_setups(p).stage_counts["usable_options"]


def test_candidate_count_without_memory_check_is_the_papers():
    # The paper's utilization-only counts (PAPER.md): 669 (3 models, G = 4), 16,660 (4, G = 4).
    sp = SetupSpace(check_memory=False, check_compute=False)
    assert candidate_setup_count(synthetic_problem(3, 4, space=sp, num_prompts=20)) == 669
    assert candidate_setup_count(synthetic_problem(4, 4, space=sp, num_prompts=20)) == 16_660


# ----------------------------------------------------------------------------- aggregate rows

@pytest.mark.parametrize("M,G", [(3, 4), (4, 4)])
def test_aggregate_rows_hold_at_every_placeable_setup(M, G):
    """The master relaxes the placement: every placeable setup satisfies (A1)-(A4)."""
    p = synthetic_problem(M, G, num_prompts=20)
    ret = enumerate_setups(p)
    options = [model_options(p, i)[0] for i in range(M)]
    assert [tuple(o) for o in options] == [tuple(o) for o in ret.options]
    x = {(i, k): 0 for i, opts in enumerate(options) for k in range(len(opts))}
    rows = aggregate_rows(p, options, x)
    names = {n for _, n in rows}
    assert {"agg_mem", "agg_compute_lonely", "agg_compute_dff[0.5]"} <= names
    for s in range(len(ret)):
        for i, k in enumerate(ret.index[s]):
            for kk in range(len(options[i])):
                x[i, kk] = int(kk == k)
        for row, name in aggregate_rows(p, options, x):
            assert row.valid(1e-9), (name, ret.setup(s).label())


def test_aggregate_rows_cut_off_an_unplaceable_pair():
    # Two options that each want more than half of every GPU's compute cannot share 4 GPUs
    # when their shards total more than 4: the e = 1/2 row says so, the plain budget does not.
    p = synthetic_problem(2, 4, num_prompts=20)
    options = [model_options(p, i)[0] for i in range(2)]
    k0 = [k for k, o in enumerate(options[0]) if (o.tp, o.compute_tenths) == (2, 6)][0]
    # 2 x 6 + 4 x 6 = 36 <= 40 tenths, yet 6 shards of 0.6 need 6 distinct GPUs.
    k1 = [k for k, o in enumerate(options[1]) if (o.tp, o.compute_tenths) == (4, 6)][0]
    assert place_setup(p, [(0, options[0][k0]), (1, options[1][k1])]) is None
    x = {(i, k): int((i, k) in ((0, k0), (1, k1)))
         for i, opts in enumerate(options) for k in range(len(opts))}
    broken = [n for row, n in aggregate_rows(p, options, x) if not row.valid(1e-9)]
    assert "agg_compute_dff[0.5]" in broken


def test_unplaceable_core_is_minimal():
    p = synthetic_problem(4, 4, num_prompts=20)
    opts = [model_options(p, i)[0] for i in range(4)]
    found = 0
    for ks in itertools.product(*(range(0, len(o), 7) for o in opts)):
        chosen = [(i, opts[i][k]) for i, k in enumerate(ks)]
        units = sum(o.compute_units_tenths for _, o in chosen)
        if units > 40 or place_setup(p, chosen) is not None:
            continue
        core = unplaceable_core(p, chosen)
        assert place_setup(p, core) is None
        for j in range(len(core)):
            rest = core[:j] + core[j + 1:]
            assert not rest or place_setup(p, rest) is not None
        found += 1
    assert found > 0


# ----------------------------------------------------------------------------- decomposition

def test_decomposition_matches_exact_and_milp(small, small_exact):
    dec = rw.solve(small, "decomposition")
    mi = rw.solve(small, "milp")
    assert dec.status == "optimal"
    assert dec.score == pytest.approx(small_exact.score, abs=1e-5)
    assert dec.score == pytest.approx(mi.score, abs=1e-5)
    assert dec.bound == pytest.approx(dec.score, abs=1e-5)
    assert dec.setup.placement is not None
    h = dec.history                                   # one row per master solve
    assert len(h) == dec.stats["masters"] and bool(h["placeable"].iloc[-1])
    assert int((~h["placeable"]).sum()) == dec.stats["cuts"]    # a cut per unplaceable master
    assert list(h["gap_rel"].iloc[[0, -1]]) == [1e-2, 1e-6]     # anytime pass, then exact


def test_decomposition_matches_exact_when_placement_binds():
    # 4 models on 4 GPUs: the aggregate master's first choices cannot be placed, so cuts are
    # needed; the optimum is still the exact search's.
    p = synthetic_problem(4, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=40)
    ex = rw.solve(p, "exact")
    dec = rw.solve(p, "decomposition")
    assert dec.status == "optimal"
    assert dec.score == pytest.approx(ex.score, abs=1e-5)


def test_milp_bound_is_on_the_maximization_scale(small):
    run = run_milp(build_milp(small))
    assert run.optimal
    assert run.objective > 0
    assert run.bound == pytest.approx(run.objective, abs=1e-7)
    agg = run_milp(build_milp(small, placement="aggregate"))
    assert agg.bound >= run.objective - 1e-7          # the aggregate form relaxes the MILP
    with pytest.raises(ValidationError, match="placement form"):
        build_milp(small, placement="none")


# ----------------------------------------------------------------------------- auto

def test_auto_picks_exact_on_a_small_instance(small, small_exact):
    sol = rw.solve(small)                              # the default method
    assert sol.solver == "routerwise-exact"
    assert sol.stats["auto"]["method"] == "exact"
    assert sol.notes[0].startswith("auto: ") and "exact search" in sol.notes[0]
    assert sol.score == pytest.approx(small_exact.score, abs=1e-9)
    np.testing.assert_allclose(sol.fractions, small_exact.fractions)


def test_auto_picks_the_decomposition_on_a_big_instance(small, small_exact):
    method, n, reason = choose_method(ladder_problem(8, 16))
    assert method == "decomposition" and n > EXACT_MAX_SETUPS
    assert "decomposition" in reason
    # Forced by a low threshold on a small instance: same optimum as the exact search.
    sol = rw.solve(small, "auto", max_exact_setups=10)
    assert sol.stats["auto"]["method"] == "decomposition"
    assert sol.solver.startswith("decomposition")
    assert sol.score == pytest.approx(small_exact.score, abs=1e-5)
    with pytest.raises(ValidationError, match="max_exact_setups"):
        rw.solve(small, "auto", max_exact_setups=-1)


@pytest.mark.parametrize("M,G", [(3, 4), (3, 8), (4, 4), (4, 6), (4, 8)])
def test_auto_keeps_the_exact_search_on_paper_sized_instances(M, G):
    for sp in (SetupSpace(), SetupSpace(check_compute=False),
               SetupSpace(check_memory=False, check_compute=False)):
        assert choose_method(synthetic_problem(M, G, space=sp, num_prompts=20))[0] == "exact"


# ----------------------------------------------------------------------------- bounds

def test_every_method_reports_a_valid_bound(small, small_exact):
    from routerwise.optimize.baselines import nearest_setup_baseline
    opt = small_exact.score
    for method in ("exact", "dual-price", "milp", "decomposition", "auto"):
        sol = rw.solve(small, method)
        assert sol.bound is not None, method
        assert sol.bound >= opt - 1e-6, method        # an upper bound on the optimum
        assert sol.gap is not None and sol.gap >= 0
    for kind in ("equal-split", "size-proportional"):
        b = nearest_setup_baseline(small, kind)
        assert b.bound >= opt - 1e-6


def test_decomposition_reports_an_unreachable_slo(small):
    tight = small.with_slo(5.0)                        # below every model's unloaded latency
    ex, dec = rw.solve(tight, "exact"), rw.solve(tight, "decomposition")
    assert ex.status == dec.status == "infeasible"
    assert dec.infeasibility.min_latency_ms == pytest.approx(ex.infeasibility.min_latency_ms)
    big = rw.solve(ladder_problem(8, 16, slo_factor=0.05), time_limit_s=120)
    assert big.stats["auto"]["method"] == "decomposition"
    assert big.status == "infeasible" and "too many to diagnose" in big.infeasibility.message


@needs_mirror
@pytest.mark.parametrize("G", [4, 6, 8])
def test_auto_keeps_the_exact_search_on_the_real_data_instances(G):
    # The committed notebooks' default plans stay the exact search's (largest: 4 models).
    from routerwise.paper.instances import default_problem, paper_loads
    p = default_problem(4, G, paper_loads(4)[1], 600.0, space=SetupSpace(check_compute=False))
    method, n, _ = choose_method(p)
    assert method == "exact" and n == enumerate_setups(p).stage_counts["usable_options"]


def test_a_time_limit_before_any_plan_is_reported_not_hidden():
    sol = rw.solve(ladder_problem(8, 16), "decomposition", time_limit_s=0.2)
    assert sol.status == "time_limit" and sol.setup is None
    assert sol.gap is None                             # never a gap of 0 without a plan
    assert "no placeable setup" in sol.notes[0]


def test_undecided_placements_keep_the_bound_proven(monkeypatch):
    """With no exact-placement budget every FFD failure is undecided: such setups are cut one
    by one and their master bound stays a floor, so the bound still covers the optimum."""
    import routerwise.optimize.decomposition as dec
    from routerwise.optimize.placement import PlacementUndecided, ShardDemand, place_exact
    p = synthetic_problem(4, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=40)
    d = [ShardDemand(4, 6, 10.0), ShardDemand(2, 6, 10.0)]             # 6 shards > half a GPU
    assert place_exact(d, 4, 80.0) is None
    with pytest.raises(PlacementUndecided):
        place_exact(d, 4, 80.0, max_dead_ends=0)
    real = dec.place_setup
    monkeypatch.setattr(dec, "place_setup", lambda prob, pm, max_dead_ends=0: real(prob, pm, 0))
    opt = rw.solve(p, "exact").score
    sol = dec.solve_decomposition(p)
    assert sol.stats["undecided_cuts"] >= 1
    assert sol.score <= opt + 1e-6 <= sol.bound + 2e-6
    assert sol.status in ("optimal", "feasible")
