"""Cost objective: cheapest cluster against brute force over sizes, the Pareto frontier, prices."""

import math

import numpy as np
import pytest

import routerwise as rw
from routerwise.optimize.exact_search import evaluate_all
from routerwise.planning.cost import (
    ClusterTrial,
    GpuPrices,
    candidate_counts,
    cheapest_cluster,
    cluster_cost,
    cluster_pools,
    pareto_frontier,
    unlimited_capacity_bound,
)
from routerwise.problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
)

GPU = GPUType("toy-80GB", 80.0)


def _scores(n=30, seed=0):
    rng = np.random.default_rng(seed)
    # "a" is the weaker model, "b" the stronger one on most prompts
    return np.column_stack([rng.uniform(0.3, 0.7, n), rng.uniform(0.45, 1.0, n)])


def scaling_problem(*, num_gpus=1, rho_min=0.0, rate=6.0, tau=100.0, tps=(1, 2, 4),
                    tenths=(5, 10), mem_gb=(30.0, 30.0)):
    """Two models whose capacity grows with compute: option (tp, rho) carries up to
    4 * tp * rho req/s (a) and 3 * tp * rho req/s (b), latency 40 -> 150 ms (a) and
    60 -> 200 ms (b) across that range. Synthetic (modelled) curves."""
    names = ("a", "b")
    curves = []
    for n, cap_per_gpu, (l0, l1) in (("a", 4.0, (40.0, 150.0)), ("b", 3.0, (60.0, 200.0))):
        for tp in tps:
            for r in tenths:
                cap = cap_per_gpu * tp * r / 10
                curves.append(LatencyCurve(n, tp, r, (0.0, cap / 2, cap),
                                           (l0, (l0 + l1) / 2 - 10, l1), source="synthetic"))
    models = tuple(ModelSpec(n, 1.0 + 10 * i, tuple((t, m) for t in (1, 2, 4, 8)))
                   for i, (n, m) in enumerate(zip(names, mem_gb)))
    return Problem(models, Cluster(GPU, num_gpus), Workload(_scores(), rate, names),
                   LatencyProfiles(tuple(curves)), SLO(tau),
                   SetupSpace(tp_degrees=tps, compute_tenths=tenths, rho_min=rho_min))


def brute_force_scores(problem, sizes):
    """Optimum per size from every retained setup's exact routing (no bounds, no search)."""
    out = {}
    for g in sizes:
        try:
            q = problem.with_cluster(g)
        except rw.ValidationError:
            out[g] = math.nan
            continue
        table = evaluate_all(q)
        feas = table[table["feasible"]] if len(table) else table
        out[g] = float(feas["score"].max()) if len(feas) else math.nan
    return out


def test_unlimited_capacity_bound_is_mean_of_row_maxima():
    p = scaling_problem()
    s = p.workload.scores
    assert unlimited_capacity_bound(p) == pytest.approx(np.mean([max(r) for r in s.tolist()]))


@pytest.mark.parametrize("rho_min", (0.0, 1.0))
def test_cheapest_cluster_matches_brute_force_over_sizes(rho_min):
    # rho_min = 1 leaves a hole at 7 GPUs (no two options sum to 7): the search must go on
    p = scaling_problem(rho_min=rho_min)
    sizes = range(1, 9)
    best = brute_force_scores(p, sizes)
    U = unlimited_capacity_bound(p)
    feasible = sorted({v for v in best.values() if not math.isnan(v)})
    assert len(feasible) >= 2, "the instance must make the answer depend on the floor"
    floors = sorted(set(feasible) | {(x + y) / 2 for x, y in zip(feasible, feasible[1:])}
                    | {feasible[0] - 0.01, feasible[-1] + 1e-4})
    answers = set()
    for floor in floors:
        res = cheapest_cluster(p, quality_floor=floor, max_gpus=8)
        expect = [g for g in sizes if not math.isnan(best[g]) and best[g] >= floor - 1e-7]
        if not expect:
            assert not res.found, floor
            assert res.binding == ("quality_ceiling" if floor > U else "quality"), res.reason
            assert res.problem is None and res.solution is None
            continue
        assert res.found, (floor, res.reason)
        assert res.cluster.num_gpus == expect[0], floor
        assert res.cost == expect[0]
        assert res.solution.score == pytest.approx(best[expect[0]], abs=1e-6)
        assert res.solution.score >= floor - 1e-7
        assert res.proven
        # every cheaper size is rejected, every dearer one untried
        for t in res.trials:
            if t.num_gpus < expect[0]:
                assert t.status in ("below_floor", "bound_below_floor", "infeasible",
                                    "undeployable")
            elif t.num_gpus > expect[0]:
                assert t.status == "not_tried"
        answers.add(expect[0])
    assert len(answers) >= 2


@pytest.mark.parametrize("rho_min", (0.0, 1.0))
def test_size_bounds_used_to_skip_are_valid(rho_min):
    # A size is skipped when its bound is below the floor: the bound must never be below the
    # size's true optimum, whatever prices it is computed with; with zero prices it is the
    # unlimited-capacity bound, or -inf only when no plan meets the SLO (the converse need not
    # hold: the bound's SLO check is a relaxation).
    from routerwise.planning.cost import _cheap_bound
    p = scaling_problem(rho_min=rho_min)
    best = brute_force_scores(p, range(1, 9))
    U = unlimited_capacity_bound(p)
    rng = np.random.default_rng(1)
    alphas = [rng.normal(0, 0.2, 2) for _ in range(20)] + \
        [np.array([-a, a]) for a in np.linspace(0.0, 0.3, 31)]
    tighter = 0
    for g, opt in best.items():
        q = p.with_cluster(g)
        _, zero = _cheap_bound(q, [np.zeros(2)])
        if zero == -np.inf:
            assert math.isnan(opt)
        if math.isnan(opt):
            continue
        assert zero == pytest.approx(U)
        _, ub = _cheap_bound(q, [np.zeros(2)] + alphas + [rw.solve(q).prices])
        assert opt - 1e-9 <= ub <= U + 1e-12
        tighter += ub < U - 1e-3
    assert tighter >= 1          # prices do tighten the bound somewhere (it can skip sizes)


def test_frontier_monotone_with_idle_capacity_and_pareto_marks():
    # rho_min = 0: a setup of G GPUs fits G + 1, so the optimum never falls with more GPUs.
    p = scaling_problem(rho_min=0.0)
    df = pareto_frontier(p, range(1, 7), baselines=False)
    best = brute_force_scores(p, range(1, 7))
    np.testing.assert_allclose(df["score"], [best[g] for g in df["num_gpus"]], atol=1e-6)
    scores = df["score"].dropna().to_numpy()
    assert np.all(np.diff(scores) >= -1e-9)
    assert scores[-1] > scores[0] + 1e-3
    # independent marking: on the frontier iff strictly better than every cheaper size
    run = -np.inf
    for _, r in df.iterrows():
        on = not math.isnan(r["score"]) and r["score"] > run + 1e-9
        assert bool(r["pareto_optimal"]) == on, r["num_gpus"]
        if not math.isnan(r["score"]):
            run = max(run, r["score"])


def test_frontier_with_every_gpu_busy_can_fall():
    # rho_min = 1 (the paper's): every GPU must be allocated, whole GPUs only here. A tp=2
    # replica carries 0.6 x what a tp=1 one does (say, interconnect overhead), so on 3 GPUs
    # one model is forced onto tp=2 and the optimum falls; on 4 both are, and none meets tau.
    names = ("a", "b")
    curves = []
    for n, (l0, l1) in (("a", (40.0, 150.0)), ("b", (60.0, 200.0))):
        curves.append(LatencyCurve(n, 1, 10, (0.0, 8.0), (l0, l1), source="synthetic"))
        curves.append(LatencyCurve(n, 2, 10, (0.0, 4.8), (l0 + 20, l1), source="synthetic"))
    models = tuple(ModelSpec(n, 1.0, tuple((t, 30.0) for t in (1, 2))) for n in names)
    p = Problem(models, Cluster(GPU, 2), Workload(_scores(), 10.0, names),
                LatencyProfiles(tuple(curves)), SLO(150.0),
                SetupSpace(tp_degrees=(1, 2), compute_tenths=(10,), rho_min=1.0))
    df = pareto_frontier(p, [2, 3, 4], baselines=False).set_index("num_gpus")
    best = brute_force_scores(p, [2, 3, 4])
    assert df.loc[3, "score"] == pytest.approx(best[3], abs=1e-6)
    assert df.loc[3, "score"] < df.loc[2, "score"] - 1e-3          # more GPUs, lower optimum
    assert df.loc[4, "status"] == "infeasible"
    assert list(df["pareto_optimal"]) == [True, False, False]
    res = cheapest_cluster(p, quality_floor=df.loc[2, "score"], min_gpus=3, max_gpus=4)
    assert not res.found and res.binding == "quality"
    assert any("rho_min" in n for n in res.notes)


def test_frontier_baselines_at_matched_cost():
    # the frontier's baseline columns are run_baselines on the same cluster, and the optimum
    # (checked against every setup's exact routing) is never below any of them
    p = scaling_problem(rho_min=1.0)
    df = pareto_frontier(p, range(1, 7))
    best = brute_force_scores(p, range(1, 7))
    np.testing.assert_allclose(df["score"], [best[g] for g in df["num_gpus"]], atol=1e-6)
    assert df["equal-split_score"].notna().sum() >= 2
    from routerwise.optimize.baselines import run_baselines
    for _, r in df.iterrows():
        q = p.with_cluster(int(r["num_gpus"]))
        base = run_baselines(q)
        for b, sol in base.items():
            assert r[f"{b}_status"] == sol.status
            if sol.feasible:
                assert r[f"{b}_score"] == pytest.approx(sol.score)
                assert r[f"gain_vs_{b}"] == pytest.approx(r["score"] - sol.score)
                assert r[f"gain_vs_{b}"] >= -1e-7     # the optimum is never below a baseline


def test_prices_order_and_cost():
    p = scaling_problem(rho_min=0.0)
    prices = GpuPrices({"toy-80GB": 2.5}, source="test values, not real prices")
    a = cheapest_cluster(p, quality_floor=0.6, max_gpus=6)
    b = cheapest_cluster(p, quality_floor=0.6, max_gpus=6, prices=prices)
    assert b.cluster == a.cluster and b.cost == pytest.approx(2.5 * a.cluster.num_gpus)
    assert b.cost_unit == "usd_per_hour" and b.price_source.startswith("test values")
    df = pareto_frontier(p, [1, 2], baselines=False, prices=prices)
    assert list(df["cost"]) == [2.5, 5.0]
    assert cluster_cost(Cluster(GPU, 3), prices) == pytest.approx(7.5)


def test_candidate_counts_mixed_enumeration_in_cost_order():
    a, h = GPUType("A100-80GB", 80.0), GPUType("H100-80GB", 80.0)
    prices = GpuPrices({"A100-80GB": 2.0, "H100-80GB": 3.0})
    got = candidate_counts([a, h], max_gpus=4, gpu_bounds={"H100-80GB": (1, 2)}, prices=prices)
    expect = sorted(((na, nh), 2.0 * na + 3.0 * nh) for na in range(0, 5) for nh in (1, 2)
                    if 1 <= na + nh <= 4)
    assert sorted(((dict((t.name, c) for t, c in pools).get("A100-80GB", 0),
                    dict((t.name, c) for t, c in pools)["H100-80GB"]), cost)
                  for pools, cost in got) == expect
    costs = [c for _, c in got]
    assert costs == sorted(costs) and costs[0] == 3.0     # 1 x H100 is the cheapest allowed
    assert all(c > 0 for _, c in got[0][0])               # zero-count pools are left out


def test_mixed_cluster_search_uses_cheaper_type():
    if not hasattr(Cluster, "mixed"):
        pytest.skip("mixed GPU clusters (Cluster.mixed) are not in this version")
    a, h = GPUType("cheap-80GB", 80.0), GPUType("dear-80GB", 80.0)
    base = scaling_problem(rho_min=0.0)
    # the same curves on both types: the cheaper type must win at every floor
    curves = tuple(LatencyCurve(c.model, c.tp, c.compute_tenths, c.load_rps, c.latency_ms,
                                source="synthetic", gpu=g.name)
                   for c in base.profiles.curves for g in (a, h))
    p = Problem(base.models, Cluster.mixed([(a, 1), (h, 1)]), base.workload,
                LatencyProfiles(curves), base.slo, base.space)
    prices = GpuPrices({"cheap-80GB": 1.0, "dear-80GB": 4.0})
    homo = cheapest_cluster(base, quality_floor=0.6, max_gpus=4)
    res = cheapest_cluster(p, quality_floor=0.6, max_gpus=4, prices=prices)
    counts = {t.name: n for t, n in cluster_pools(res.cluster)}
    assert res.found and counts.get("dear-80GB", 0) == 0
    assert counts["cheap-80GB"] == homo.cluster.num_gpus
    assert res.cost == pytest.approx(1.0 * homo.cluster.num_gpus)
    assert res.solution.score == pytest.approx(homo.solution.score, abs=1e-6)
    # a dear-only composition at the same size is never cheaper: with the dear type forced in,
    # the cost rises by 3 per dear GPU and the score cannot beat the homogeneous optimum
    forced = cheapest_cluster(p, quality_floor=0.6, max_gpus=4, prices=prices,
                              gpu_bounds={"dear-80GB": (1, 4)})
    assert forced.found and forced.cost > res.cost
    # the frontier over given mixed clusters prices each pool
    df = pareto_frontier(p, [Cluster.mixed([(a, 2), (h, 1)]), Cluster.mixed([(a, 1), (h, 2)])],
                         baselines=False, prices=prices)
    assert list(df["cost"]) == [2 * 1.0 + 4.0, 1.0 + 2 * 4.0]


# ----------------------------------------------------------------------------- bad input

def test_price_table_missing_a_type_names_it():
    p = scaling_problem()
    prices = GpuPrices({"H100-80GB": 3.0, "L40S": 1.0})
    with pytest.raises(rw.ValidationError, match=r"'toy-80GB'.*\['H100-80GB', 'L40S'\]"):
        cheapest_cluster(p, quality_floor=0.5, prices=prices)
    with pytest.raises(rw.ValidationError, match="toy-80GB"):
        pareto_frontier(p, [1, 2], prices=prices)


@pytest.mark.parametrize("table", ({}, {"A100": -1.0}, {"A100": 0}, {"A100": float("nan")},
                                   {"A100": float("inf")}, {"A100": True}, {"A100": "2"},
                                   {"": 1.0}, [("A100", 1.0), ("A100", 2.0)], 3.0))
def test_bad_price_tables(table):
    with pytest.raises(rw.ValidationError):
        GpuPrices(table)


@pytest.mark.parametrize("kw", ({"quality_floor": 1.5}, {"quality_floor": float("nan")},
                                {"quality_floor": 0.5, "max_gpus": 0},
                                {"quality_floor": 0.5, "min_gpus": 5, "max_gpus": 4},
                                {"quality_floor": 0.5, "gpu_bounds": {"H100": (0, 2)}},
                                {"quality_floor": 0.5, "gpu_bounds": {"toy-80GB": (3, 1)}}))
def test_bad_search_arguments(kw):
    with pytest.raises(rw.ValidationError):
        cheapest_cluster(scaling_problem(), **kw)


def test_out_of_reach_targets_are_explained_not_raised():
    p = scaling_problem()
    U = unlimited_capacity_bound(p)
    res = cheapest_cluster(p, quality_floor=min(1.0, U + 0.01), max_gpus=4)
    assert not res.found and res.binding == "quality_ceiling" and f"{U:.4f}" in res.reason
    # an SLO below every curve's zero-load latency: no size meets it
    res = cheapest_cluster(p.with_slo(10.0), quality_floor=0.0, max_gpus=3)
    assert not res.found and res.binding in ("latency", "capacity")
    assert all(t.status == "infeasible" for t in res.trials)
    # every model needs more memory than a GPU has: undeployable at every size
    big = scaling_problem(num_gpus=4, tps=(4,), tenths=(10,), mem_gb=(30.0, 30.0))
    res = cheapest_cluster(big, quality_floor=0.0, max_gpus=3)
    assert not res.found and res.binding == "memory"
    assert [t.status for t in res.trials] == ["undeployable"] * 3
    assert isinstance(res.trials[0], ClusterTrial) and "cannot be deployed" in res.trials[0].message
    with pytest.raises(rw.ValidationError):
        pareto_frontier(p, [0])


# ----------------------------------------------------------------------------- file and CLI

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "examples"


def example_with(tmp_path, extra: str):
    """data/examples copied to tmp_path with ``extra`` TOML appended to its problem file."""
    import shutil
    d = tmp_path / "ex"
    shutil.copytree(EXAMPLES, d)
    f = d / "problem.toml"
    f.write_text(f.read_text() + "\n" + extra)
    return f


def test_problem_file_prices_table(tmp_path):
    from routerwise.planning.problem_file import read_problem_file
    f = example_with(tmp_path, '[prices]\nusd_per_hour = { "A100-80GB" = 2.5 }\n'
                               'source = "test value, not a price"\n')
    inputs = read_problem_file(f)
    assert inputs.prices.price("A100-80GB") == 2.5
    assert inputs.prices.source == "test value, not a price"
    assert read_problem_file(EXAMPLES / "problem.toml").prices is None


@pytest.mark.parametrize("table, match", (
    ('usd_per_hour = { "H100-80GB" = 3.0 }', r"\[prices\].*'A100-80GB'.*\['H100-80GB'\]"),
    ('usd_per_hour = { "A100-80GB" = -1.0 }', "positive"),
    ('usd_per_hour = 2.0', "maps GPU type names"),
    ('usd_per_hour = { "A100-80GB" = 2.0 }\ncurrency = "EUR"', r"unknown key\(s\) \['currency'\]"),
    ('source = "x"', "needs"),
))
def test_problem_file_bad_prices(tmp_path, table, match):
    from routerwise.planning.problem_file import read_problem_file
    f = example_with(tmp_path, "[prices]\n" + table + "\n")
    with pytest.raises(rw.ValidationError, match=match):
        read_problem_file(f)


def test_cli_cost_matches_the_library(tmp_path, capsys):
    import json

    from routerwise import cli
    from routerwise.planning.problem_file import read_problem_file
    f = example_with(tmp_path, '[prices]\nusd_per_hour = { "A100-80GB" = 2.5 }\n')
    p = rw.with_headroom(read_problem_file(f).problem)
    df = pareto_frontier(p, range(1, 5), baselines=False)
    feasible = df.dropna(subset=["score"])
    floor = float(feasible["score"].max())
    expect = int(feasible.loc[feasible["score"] >= floor - 1e-9, "num_gpus"].min())
    out = tmp_path / "cost.json"
    rc = cli.main(["cost", str(f), "--quality-floor", str(floor), "--max-gpus", "4",
                   "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["found"] and d["cost"] == pytest.approx(2.5 * expect)
    assert d["plan"]["score"] == pytest.approx(floor, abs=1e-7)
    assert "cheapest:" in capsys.readouterr().out
    # a floor out of reach: exit 1 and the reason; a bad --price: exit 2
    assert cli.main(["cost", str(f), "--quality-floor", "1.0", "--max-gpus", "2"]) == 1
    assert "no cluster meets both" in capsys.readouterr().out
    assert cli.main(["cost", str(f), "--quality-floor", "0.5", "--price", "H100=3"]) == 2
    assert "'A100-80GB'" in capsys.readouterr().err


def test_frontier_accepts_clusters_of_another_type():
    # a GPU with too little memory for a shard: that row is undeployable, the others solve
    p = scaling_problem(rho_min=0.0)
    small = GPUType("toy-24GB", 24.0)
    df = pareto_frontier(p, [Cluster(small, 4), 4], baselines=False)
    assert list(df["status"]) == ["undeployable", "optimal"]
    assert "toy-24GB" in df.loc[0, "message"] and df.loc[0, "binding"] == "memory"
    assert df.loc[1, "score"] == pytest.approx(brute_force_scores(p, [4])[4], abs=1e-6)
