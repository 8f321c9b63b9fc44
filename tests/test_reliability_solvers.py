"""The cost command on mixed clusters and with exact methods, and solver time limits: the
deadline logic runs on an injected clock (no assertion here depends on wall time)."""

import json

import pytest
from test_cost import example_with
from test_mixed_gpus import _mixed_example

import routerwise as rw
from routerwise import cli
from routerwise.optimize.bounds import SearchContext
from routerwise.optimize.decomposition import solve_decomposition
from routerwise.optimize.exact_search import solve_exact
from routerwise.optimize.milp import solve_milp
from routerwise.paper.synthetic import synthetic_problem
from routerwise.planning.cost import cheapest_cluster
from routerwise.problem import SetupSpace

# ----------------------------------------------------------------------------- cost command

def test_cost_frontier_on_a_mixed_cluster_problem_file(tmp_path, capsys):
    f = _mixed_example(tmp_path, '[cluster]\ngpus = {"A100-80GB" = 2, "H100-80GB" = 2}\n')
    out = tmp_path / "cost.json"
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--max-gpus", "4", "--frontier",
                   "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    # the frontier covers the compositions the search tried, each named by its types
    assert sorted(r["gpus"] for r in d["frontier"]) == sorted(r["gpus"] for r in d["trials"])
    assert "2 x A100-80GB + 2 x H100-80GB" in {r["gpus"] for r in d["frontier"]}
    best = max((r for r in d["frontier"] if r["score"] is not None), key=lambda r: r["score"])
    assert d["plan"]["score"] == pytest.approx(best["score"], abs=1e-7)


def test_decomposition_is_an_exact_method_in_the_cost_search(tmp_path, capsys):
    f = example_with(tmp_path, "")
    out = tmp_path / "cost.json"
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--max-gpus", "4",
                   "--method", "decomposition", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "cheapest:" in printed
    assert "not proven" not in printed and "heuristic" not in printed
    d = json.loads(out.read_text())
    assert d["proven"] and all(t["proven"] for t in d["trials"])
    # the dual-price method is still labelled a heuristic
    p = rw.with_headroom(rw.read_problem_file(f).problem)
    res = cheapest_cluster(p, quality_floor=0.5, max_gpus=4, method="dual-price")
    assert any("heuristic" in n for n in res.notes)


def test_a_repeated_price_names_the_type(tmp_path, capsys):
    f = example_with(tmp_path, "")
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--price", "A100-80GB=2",
                   "--price", "A100-80GB=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "'A100-80GB' twice" in err


# ----------------------------------------------------------------------------- time limits

class StepClock:
    """A clock that advances ``step`` seconds each time it is read (no waiting)."""

    def __init__(self, step=1.0):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


@pytest.fixture
def highs_limits(monkeypatch):
    """The time limit each PuLP HiGHS call starts with, in call order."""
    import pulp
    seen = []
    run = pulp.HiGHS.callSolver

    def record(self, lp):
        v = lp.solverModel.getOptionValue("time_limit")
        seen.append(v[1] if isinstance(v, tuple) else v)
        return run(self, lp)

    monkeypatch.setattr(pulp.HiGHS, "callSolver", record)
    return seen


def test_milp_gives_highs_the_time_the_build_left(highs_limits):
    p = synthetic_problem(3, 4, num_prompts=20)
    sol = solve_milp(p, time_limit_s=100.0, clock=StepClock(1.0))
    assert sol.status == "optimal"
    assert len(highs_limits) == 1 and 0 < highs_limits[0] <= 99.0   # the build's step is spent
    # a build that uses up the limit: no solver call, a time limit without a plan
    highs_limits.clear()
    sol = solve_milp(p, time_limit_s=5.0, clock=StepClock(10.0))
    assert sol.status == "time_limit" and sol.setup is None and highs_limits == []


def test_decomposition_gives_each_master_what_is_left(highs_limits):
    p = synthetic_problem(3, 4, num_prompts=20)
    sol = solve_decomposition(p, time_limit_s=1000.0, clock=StepClock(1.0))
    assert sol.status == "optimal" and sol.stats["masters"] >= 2
    assert len(highs_limits) == sol.stats["masters"]
    assert all(b < a for a, b in zip([1000.0] + highs_limits, highs_limits))


def test_placement_search_stops_when_told_and_caches_nothing_then():
    from routerwise.optimize import placement as pl
    d = [pl.ShardDemand(2, 6, 30.0), pl.ShardDemand(2, 4, 30.0), pl.ShardDemand(1, 4, 20.0)]
    pl._place_canonical.cache_clear()
    with pl.stop_when(lambda: True), pytest.raises(pl.PlacementUndecided):
        pl.place_exact(d, 3, 80.0)
    assert pl.place_exact(d, 3, 80.0) is not None        # decided once nothing stops it


def test_decomposition_stops_the_placement_search_on_the_deadline(monkeypatch):
    from routerwise.optimize import placement as pl
    p = synthetic_problem(3, 4, num_prompts=20)
    clock = StepClock(0.0)

    def no_ffd(*args, **kw):           # FFD finds nothing: the exact search must judge,
        clock.step = 1000.0            # and the limit passes while it runs
        return None

    monkeypatch.setattr(pl, "place_ffd", no_ffd)
    pl._place_canonical.cache_clear()
    sol = solve_decomposition(p, time_limit_s=10.0, clock=clock)
    assert sol.status == "time_limit" and sol.setup is None and sol.bound is not None
    # one master reached the placement check; any before it were latency-envelope re-solves
    h = sol.history
    assert sol.stats["masters"] == 1 + len(h) and (h.empty or h["placeable"].isna().all())
    assert sol.stats["undecided_cuts"] == 0


def test_exact_search_time_limit_reports_the_unsolved_setups_bound():
    # Stopped by a clock that advances one second per check, i.e. after 14 setup LPs: the
    # incumbent is not optimal yet, so the proven bound must exceed it and cover the optimum.
    p = synthetic_problem(4, 4, arrival_rate_rps=40.0, slo_ms=300.0, num_prompts=80,
                          space=SetupSpace(check_memory=False, check_compute=False))
    ctx = SearchContext.build(p)
    opt = solve_exact(p, context=ctx)
    assert opt.status == "optimal"
    early = solve_exact(p, context=ctx, time_limit_s=15.0, clock=StepClock(1.0))
    assert early.status == "time_limit" and early.setup is not None
    assert early.score < opt.score - 1e-6                 # stopped before the optimum
    assert early.bound >= opt.score - 1e-9                # the bound covers the optimum,
    assert early.bound > early.score + 1e-6 and early.gap > 0   # so the gap is not hidden


def test_a_bound_never_exceeds_the_best_model_per_prompt():
    """A master stopped before its root LP reported bounds above 1 for a mean score in [0, 1];
    the unlimited-capacity bound (each prompt on its best model) caps every proven bound."""
    from routerwise.optimize.bounds import capped_bound, unlimited_capacity_bound
    p = rw.paper.synthetic.ladder_problem(3, 4, num_prompts=50, seed=0)
    U = unlimited_capacity_bound(p)
    assert U == pytest.approx(float(p.workload.scores.max(axis=1).mean()))
    assert capped_bound(p, 5.16) == pytest.approx(U)
    assert capped_bound(p, U / 2) == pytest.approx(U / 2) and capped_bound(p, None) is None
