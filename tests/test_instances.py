"""End to end on real data: the default instances, solved, with every assumption named."""

import numpy as np
import pytest
from conftest import needs_mirror

import routerwise as rw
from routerwise.paper.instances import LADDER_3, default_problem, max_capacity_rps, paper_loads
from routerwise.planning.replay import replay_plan

pytestmark = [needs_mirror, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def problem():
    return default_problem(3, 4, arrival_rate_rps=20.0, slo_ms=600.0)


def test_default_instance_is_built_from_real_data(problem):
    assert problem.model_names == LADDER_3
    assert problem.workload.scores.shape == (500, 3)               # RouteProfile minus 2 tasks
    assert problem.workload.true_scores is not None
    assert problem.profiles.sources == {"simulated"}
    assert problem.cluster.gpu.mem_gb == pytest.approx(85.9, abs=0.1)   # 80 GiB
    kinds = " ".join(problem.assumptions)
    for word in ("measured", "fitted", "simulated", "modelled", "engine profile vllm-v1",
                 "planning margin"):
        assert word in kinds
    # The 70B model cannot run at tp=1 on one GPU (modelled need > 80 GiB).
    assert problem.models[2].mem_gb(1) > problem.cluster.gpu.mem_gb > problem.models[2].mem_gb(2)


def test_solvers_agree_and_name_their_assumptions(problem):
    ex = rw.solve(problem, "exact")
    mi = rw.solve(problem, "milp")
    du = rw.solve(problem, "dual-price")
    assert ex.score == pytest.approx(mi.score, rel=1e-5)
    assert du.score <= mi.bound * (1 + 1e-4)
    # and within a stated gap of the optimum. The paper's method has no guarantee: on this
    # instance (vllm-v1 curves with the planning margin) it lands 0.84% below the optimum, so
    # 2% is the bound asserted here (synthetic instances: DUAL_GAP in tests/test_solvers.py).
    assert du.feasible and du.score >= mi.score * (1 - 0.02)
    for s in (ex, mi, du):
        assert all(f"input: {a}" in s.notes for a in problem.assumptions)
    realized = ex.realized_score(problem)
    assert 0.5 < realized < 1.0


def test_paper_loads_scale_with_capacity():
    loads = paper_loads(3)
    assert list(loads) == sorted(loads)
    # The paper's 50..80 req/s become 50..80% of one capacity: the ratios are the paper's.
    assert np.array(loads) / loads[-1] == pytest.approx(np.array([50, 60, 70, 80]) / 80,
                                                        abs=0.01 / loads[-1])
    # That capacity (80% load / 0.8) is the largest load the G = 4 cluster carries, checked by
    # the solver itself, not by the formula: with a loose SLO, 0.5% below it some plan meets
    # it; 1% above it no setup can carry the load (a capacity diagnosis).
    cap = loads[-1] / 0.8
    below = rw.solve(default_problem(3, 4, arrival_rate_rps=cap * 0.995, slo_ms=1e6))
    assert below.feasible
    above = rw.solve(default_problem(3, 4, arrival_rate_rps=cap * 1.01, slo_ms=1e6))
    assert above.status == "infeasible" and above.infeasibility.binding == "capacity"
    assert max_capacity_rps(default_problem(3, 4, arrival_rate_rps=1.0)) == \
        pytest.approx(cap, abs=0.02 / 0.8)


def test_replay_uses_each_models_routed_prompts(problem):
    from routerwise.paper.instances import predicted_scores
    qm, _ = predicted_scores(problem.model_names)
    plan = rw.solve(problem)
    rep = replay_plan(problem, plan, qm, num_requests=600)
    routed = np.flatnonzero(plan.fractions > 1e-9)
    assert len(rep.per_model) == routed.size
    assert rep.predicted_ms == pytest.approx(plan.latency_ms)
    for r in rep.per_model.itertuples():
        i = problem.model_names.index(r.model)
        assert r.predicted_ms == pytest.approx(
            problem.curve(i, plan.setup.per_model[i]).latency_at(r.load_rps))
        assert r.simulated_ms > 0
    assert rep.simulated_p99_ms >= rep.simulated_mean_ms > 0


def test_cli_solves_and_explains_an_unreachable_slo(capsys):
    from routerwise.cli import main
    assert main(["solve", "--rate", "20", "--slo", "600"]) == 0
    out = capsys.readouterr().out
    assert "routerwise-exact: optimal" in out and "input: scores" in out
    assert main(["solve", "--rate", "20", "--slo", "5"]) == 1
    assert "Raise the SLO" in capsys.readouterr().out


def test_paper_load_takes_any_percent_of_capacity():
    from routerwise.errors import ValidationError
    from routerwise.paper.instances import paper_load
    loads = paper_loads(3)
    assert [paper_load(3, p) for p in (50, 60, 70, 80)] == list(loads)
    cap = loads[-1] / 0.8                                  # capacity, from the paper's 80%
    assert paper_load(3, 65) == pytest.approx(0.65 * cap, abs=0.02)
    assert paper_load(3, 100) == pytest.approx(cap, abs=0.02)
    for bad in (0, -5, 100.5, float("nan"), "60"):
        with pytest.raises(ValidationError, match=r"\(0, 100\]"):
            paper_load(3, bad)
