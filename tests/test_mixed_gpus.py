"""Mixed GPU types in one cluster: records, setup space, placement, exact search, MILP, verify.

The known optimum comes from a brute force written here (every option, every shard-to-GPU
assignment, the routing optimum in closed form), independent of the kit's setup space,
placement search and routing solvers.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

import routerwise as rw
from routerwise.errors import ValidationError, VerificationError
from routerwise.optimize.baselines import isolated_baseline, run_baselines
from routerwise.optimize.placement import ShardDemand, place_pools
from routerwise.optimize.setup_space import candidate_setup_count, enumerate_setups
from routerwise.paper.synthetic import synthetic_problem
from routerwise.problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSetup,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
)

A = GPUType("A-40GB", 40.0)
H = GPUType("H-80GB", 80.0)


# ----------------------------------------------------------------------------- records

def test_cluster_pools_number_gpus_pool_by_pool():
    c = Cluster.mixed([(A, 2), (H, 3)])
    assert c.is_mixed and c.num_gpus == 5 and c.pools == ((A, 2), (H, 3))
    assert c.gpu_types == (A, H) and c.count("H-80GB") == 3 and c.count("A-40GB") == 2
    assert [c.gpu_of(g).name for g in range(5)] == ["A-40GB"] * 2 + ["H-80GB"] * 3
    assert list(c.gpu_indices("H-80GB")) == [2, 3, 4]
    homo = Cluster(A, 4)
    assert not homo.is_mixed and homo.pools == ((A, 4),) and homo.count() == 4
    assert Cluster.mixed([(A, 4)]) == homo            # one pool is the same cluster
    assert replace(homo, num_gpus=8).pools == ((A, 8),)
    with pytest.raises(ValidationError, match="repeat"):
        Cluster.mixed([(A, 1), (GPUType("A-40GB", 40.0), 2)])
    with pytest.raises(ValidationError, match="integer >= 1"):
        Cluster.mixed([(A, 0), (H, 1)])
    with pytest.raises(ValidationError, match="outside"):
        c.gpu_of(5)
    with pytest.raises(ValidationError, match="not in the cluster"):
        c.count("B200")
    with pytest.raises(ValidationError, match="name the GPU type"):
        c.gpu_type("")


def test_setup_labels_name_the_gpu_only_on_mixed_clusters():
    assert ModelSetup(2, 5, 0.5).label() == "tp2/rho0.5"
    assert ModelSetup(2, 5, 0.5, "H100-80GB").label() == "tp2/rho0.5@H100-80GB"


# ----------------------------------------------------------------------------- tiny instance

SPEED = {"A-40GB": 1.0, "H-80GB": 3.0, "S-20GB": 1.0}          # capacity multiplier per type (modelled)
BASE = {"big": 10.0, "small": 40.0}             # req/s at tp=1, full share, speed 1
MEM = {"big": {1: 60.0, 2: 30.0}, "small": {1: 10.0, 2: 5.0}}
TAU = 200.0
RATE = 30.0


def _max_load(m, tp, r, gpu):
    return BASE[m] * tp * (r / 10) * SPEED[gpu]


def tiny_mixed(pools=((A, 2), (H, 1)), aggregate="max"):
    """big (needs 60 GB at tp1) and small, on 2 x 40 GB + 1 x 80 GB GPUs. Curves are linear
    pieces 100 -> 150 -> 300 ms over [0, max/2, max] (modelled), so l = tau = 200 ms at 2/3 of
    the maximum load. Scores: 3 prompts big 0.9 / small 0.5, 1 prompt big 0.4 / small 0.6."""
    models = tuple(ModelSpec(m, 30.0 if m == "big" else 3.0, MEM[m]) for m in ("big", "small"))
    curves = []
    for m in ("big", "small"):
        for t, _ in pools:
            for tp in (1, 2):
                for r in (5, 10):
                    x = _max_load(m, tp, r, t.name)
                    curves.append(LatencyCurve(m, tp, r, (0.0, x / 2, x), (100.0, 150.0, 300.0),
                                               source="synthetic", gpu=t.name))
    scores = np.array([[0.9, 0.5]] * 3 + [[0.4, 0.6]])
    return Problem(models, Cluster.mixed(list(pools)), Workload(scores, RATE, ("big", "small")),
                   LatencyProfiles(tuple(curves)), SLO(TAU, aggregate=aggregate),
                   SetupSpace(tp_degrees=(1, 2), compute_tenths=(5, 10), rho_min=0.5),
                   name="tiny-mixed")


def brute_force(pools=((A, 2), (H, 1)), rho_min=0.5):
    """Best score over every (tp, rho, type) per model and every shard-to-GPU assignment."""
    gpus = [t for t, n in pools for _ in range(n)]
    best = (-np.inf, None)
    opts = {m: [(tp, r, t) for t, n in pools for tp in (1, 2) for r in (5, 10)
                if tp <= n and MEM[m][tp] <= t.mem_gb] for m in ("big", "small")}
    for ob, os_ in itertools.product(opts["big"], opts["small"]):
        units = ob[0] * ob[1] + os_[0] * os_[1]
        if not 10 * len(gpus) * rho_min <= units <= 10 * len(gpus):
            continue
        if any(sum(o[0] * o[1] for o in (ob, os_) if o[2] == t) > 10 * n for t, n in pools):
            continue
        placeable = False
        choices = [itertools.permutations([g for g, u in enumerate(gpus) if u == o[2]], o[0])
                   for o in (ob, os_)]
        for pb, ps in itertools.product(*[list(c) for c in choices]):
            comp, mem = [0] * len(gpus), [0.0] * len(gpus)
            for (tp, r, _t), pl, m in ((ob, pb, "big"), (os_, ps, "small")):
                for g in pl:
                    comp[g] += r
                    mem[g] += MEM[m][tp]
            if max(comp) <= 10 and all(mem[g] <= gpus[g].mem_gb for g in range(len(gpus))):
                placeable = True
                break
        if not placeable:
            continue
        cap = [min(1.0, (2 / 3) * _max_load(m, o[0], o[1], o[2].name) / RATE)
               for m, o in (("big", ob), ("small", os_))]
        if cap[0] + cap[1] < 1:
            continue
        # S(w) = 0.5*0.75 + 0.6*0.25 + 0.4 min(w, .75) - 0.2 max(0, w - .75): peak at w = .75
        w = float(np.clip(0.75, 1 - cap[1], cap[0]))
        s = 0.375 + 0.15 + 0.4 * min(w, 0.75) - 0.2 * max(0.0, w - 0.75)
        if s > best[0]:
            best = (s, (ob, os_))
    return best


def test_tiny_mixed_instance_matches_brute_force():
    p = tiny_mixed()
    ref, (ob, os_) = brute_force()
    # The optimum needs the 80 GB type: big fits it at tp=1 with 3x the capacity.
    assert ob[2] == H and ref == pytest.approx(0.375 + 0.15 + 0.4 * (2 / 3))
    for method in ("exact", "milp", "decomposition"):
        sol = rw.solve(p, method)
        assert sol.status == "optimal" and sol.score == pytest.approx(ref, abs=1e-7), method
        big = sol.setup.per_model[0]
        assert big.gpu == "H-80GB" and big.label().endswith("@H-80GB")
        assert sol.setup.placement[0] == (2,)       # the only H GPU: A GPUs are 0 and 1
        assert sol.setup.per_model[1].gpu == "A-40GB"
        assert all(p.cluster.gpu_of(g).name == s.gpu
                   for s, pl in zip(sol.setup.per_model, sol.setup.placement) for g in pl)
    # Without the H GPU the best plan is strictly worse (big must split over both A GPUs).
    only_a, _ = brute_force(((A, 2),))
    assert only_a < ref - 0.01


def test_mixed_utilization_is_per_type():
    p = tiny_mixed()
    r = enumerate_setups(p)
    for s in range(len(r)):
        setup = r.setup(s)
        for t, n in p.cluster.pools:
            used = sum(o.compute_units_tenths for o in setup.per_model if o.gpu == t.name)
            assert used <= 10 * n
    from routerwise.optimize.exact_search import evaluate_all
    table = evaluate_all(p)
    assert len(table) == len(r) and set(table["gpu[big]"]) <= {"A-40GB", "H-80GB"}
    ref, _ = brute_force()
    assert table["score"].max() == pytest.approx(ref, abs=1e-7)
    # small at tp=2 on the single H GPU is not an option (tp exceeds that type's count)
    assert not any(o.tp == 2 and o.gpu == "H-80GB" for o in r.options[1])
    assert any("exceeds the 1 H-80GB GPUs" in d[3] for d in r.excluded_options)


# ----------------------------------------------------------------------------- random instances

def mixed_synthetic(seed=0, rate=30.0, tau=300.0):
    """The synthetic 3-model ladder on 2 x A100-80GB + 2 x H200-141GB; H200 curves are the A100
    ones with 1.5x the load at each latency (modelled)."""
    p = synthetic_problem(3, 4, arrival_rate_rps=rate, slo_ms=tau, num_prompts=60, seed=seed)
    a100, h200 = GPUType("A100-80GB", 80.0), GPUType("H200-141GB", 141.0)
    curves = []
    for c in p.profiles.curves:
        curves.append(replace(c, gpu=a100.name))
        curves.append(LatencyCurve(c.model, c.tp, c.compute_tenths,
                                   tuple(np.asarray(c.load_rps) * 1.5), c.latency_ms, c.metric,
                                   c.source, c.provenance, gpu=h200.name))
    space = SetupSpace(tp_degrees=(1, 2), compute_tenths=(2, 4, 5, 6, 8, 10))
    return replace(p, cluster=Cluster.mixed([(a100, 2), (h200, 2)]),
                   profiles=LatencyProfiles(tuple(curves), p.profiles.metric), space=space,
                   name=f"synthetic-mixed-{seed}")


@pytest.mark.parametrize("seed,rate,tau", [(0, 30.0, 300.0), (1, 45.0, 400.0)])
def test_exact_and_milp_agree_on_mixed_instances(seed, rate, tau):
    p = mixed_synthetic(seed, rate, tau)
    ex = rw.solve(p, "exact")
    mi = rw.solve(p, "milp")
    assert ex.status == "optimal" and mi.status == "optimal"
    assert ex.score == pytest.approx(mi.score, rel=1e-5)
    assert mi.bound >= mi.score - 1e-9
    de = rw.solve(p, "decomposition")                # aggregate rows and placement per pool
    assert de.status == "optimal" and de.score == pytest.approx(ex.score, rel=1e-5)
    assert candidate_setup_count(p) == enumerate_setups(p).stage_counts["usable_options"]
    du = rw.solve(p, "dual-price")                   # the paper's method runs on mixed setups
    assert du.score <= mi.bound * (1 + 1e-4)
    for sol in (ex, mi, de, du):
        for s, pl in zip(sol.setup.per_model, sol.setup.placement):
            assert {p.cluster.gpu_of(g).name for g in pl} == {s.gpu}
    base = run_baselines(p)                          # Isolated is left out on mixed clusters
    assert set(base) == {"equal-split", "size-proportional"}
    assert all(b.score <= ex.score + 1e-9 for b in base.values() if b.feasible)
    # The mixed cluster is at least as good as its A100 pool alone (a subset of its setups).
    a_only = replace(p, cluster=Cluster(GPUType("A100-80GB", 80.0), 2))
    a_sol = rw.solve(a_only, "exact")
    assert not a_sol.feasible or a_sol.score <= ex.score + 1e-9


def test_every_retained_placement_stays_on_its_type():
    p = mixed_synthetic()
    r = enumerate_setups(p)
    assert len(r) > 0
    for s in range(len(r)):
        setup = r.setup(s)
        for o, pl in zip(setup.per_model, setup.placement):
            assert len(pl) == o.tp and all(p.cluster.gpu_of(g).name == o.gpu for g in pl)


def test_place_pools_keeps_shards_in_their_pool():
    # Two tp=2 models on one pool of 2 GPUs fit by compute (5 + 5 tenths) only together there.
    d = [ShardDemand(2, 5, 30.0), ShardDemand(2, 5, 30.0), ShardDemand(1, 10, 70.0)]
    pl = place_pools(d, [0, 0, 1], [(2, 80.0), (1, 80.0)])
    assert pl == ((0, 1), (0, 1), (2,))
    assert place_pools(d, [0, 0, 0], [(2, 80.0), (1, 80.0)]) is None   # pool 0 overfull
    assert place_pools(d, [0, 0, 1], [(2, 80.0), (1, 60.0)]) is None   # 70 GB > 60 GB


def test_verify_rejects_a_shard_on_the_wrong_type():
    p = tiny_mixed()
    sol = rw.solve(p, "exact")
    pl = list(sol.setup.placement)
    pl[0] = (0,)                                     # big's shard onto an A GPU
    bad = replace(sol, setup=replace(sol.setup, placement=tuple(pl)))
    with pytest.raises(VerificationError, match="not H-80GB"):
        bad.verify(p)


# ----------------------------------------------------------------------------- homogeneous

def test_one_pool_cluster_gives_the_same_optimum_as_before():
    p = synthetic_problem(3, 4, arrival_rate_rps=30.0, slo_ms=300.0, num_prompts=60, seed=3)
    q = p.with_cluster(Cluster.mixed([(p.cluster.gpu, 4)]))
    # Curves naming the cluster's type are used like curves naming none.
    named = replace(q, profiles=LatencyProfiles(tuple(replace(c, gpu="A100-80GB")
                                                      for c in p.profiles.curves)))
    a, b, c = (enumerate_setups(x) for x in (p, q, named))
    assert a.stage_counts == b.stage_counts == c.stage_counts
    assert a.options == b.options == c.options and all(o.gpu == "" for o in a.options[0])
    sa, sb, sc = (rw.solve(x, "exact") for x in (p, q, named))
    assert sa.score == sb.score == sc.score
    assert sa.setup == sb.setup == sc.setup and "@" not in sa.setup.label()


# ----------------------------------------------------------------------------- bad input

def test_mixed_cluster_needs_curves_that_name_a_gpu_type():
    p = tiny_mixed()
    plain = LatencyProfiles(tuple(replace(c, gpu="") for c in p.profiles.curves
                                  if c.gpu == "A-40GB"))
    with pytest.raises(ValidationError, match="do not name a GPU type"):
        replace(p, profiles=plain)


def test_model_that_fits_no_gpu_type_is_rejected():
    # big needs 60 GB at tp=1 (> 40 and > 20) and 30 GB at tp=2 (> 20; one 40 GB GPU only)
    with pytest.raises(ValidationError, match="big.*fits no GPU type"):
        tiny_mixed(pools=((A, 1), (GPUType("S-20GB", 20.0), 4)))
    tiny_mixed(pools=((A, 2), (GPUType("S-20GB", 20.0), 4)))   # two 40 GB GPUs: tp=2 fits


def test_curves_for_a_type_not_in_the_cluster_are_unused():
    p = tiny_mixed()
    extra = LatencyCurve("big", 1, 10, (0.0, 1000.0), (1.0, 2.0), source="synthetic",
                         gpu="B200")                 # a very fast type the cluster lacks
    q = replace(p, profiles=LatencyProfiles(p.profiles.curves + (extra,)))
    assert rw.solve(q, "exact").score == pytest.approx(rw.solve(p, "exact").score, abs=1e-12)


def test_model_setup_on_an_unknown_type_and_isolated_baseline():
    p = tiny_mixed()
    with pytest.raises(ValidationError, match="not in the cluster"):
        p.model_setup(0, 1, 10, "B200")
    with pytest.raises(ValidationError, match="name the GPU type"):
        p.model_setup(0, 1, 10)
    assert p.model_setup(0, 1, 10, "H-80GB").mem_share == pytest.approx(60 / 80)
    with pytest.raises(ValidationError, match="not supported on mixed clusters"):
        isolated_baseline(p)
    with pytest.raises(ValidationError, match="pass a Cluster"):
        p.with_cluster(3)


# ----------------------------------------------------------------------------- files and grids

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "examples"


def _mixed_example(tmp_path, cluster_toml: str, types=("A100-80GB", "H100-80GB")):
    """The worked example with its curves duplicated for a second type (loads x 1.5:
    modelled, a test stand-in) and ``cluster_toml`` as its [cluster] table."""
    import shutil

    import pandas as pd

    from routerwise.data import latency_table

    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    t = latency_table.read_table(EXAMPLES / "curves.csv")
    parts = [t.assign(gpu=types[0])]
    parts += [t.assign(gpu=g, load_rps=t["load_rps"] * 1.5) for g in types[1:]]
    latency_table.write_table(pd.concat(parts, ignore_index=True), tmp_path / "curves.csv")
    text = (EXAMPLES / "problem.toml").read_text()
    text = text.replace('[cluster]\ngpu = "A100-80GB"\nnum_gpus = 4\n', cluster_toml)
    assert cluster_toml in text
    (tmp_path / "problem.toml").write_text(text)
    return tmp_path / "problem.toml"


def test_problem_file_with_a_mixed_cluster(tmp_path):
    from routerwise.planning.problem_file import load_problem

    path = _mixed_example(tmp_path, '[cluster]\ngpus = {"A100-80GB" = 2, "H100-80GB" = 2}\n')
    p = load_problem(path)
    assert p.cluster.is_mixed and [(t.name, n) for t, n in p.cluster.pools] == \
        [("A100-80GB", 2), ("H100-80GB", 2)]
    assert p.profiles.gpus == {"A100-80GB", "H100-80GB"}
    ex, mi = rw.solve(p, "exact"), rw.solve(p, "milp")
    assert ex.status == mi.status == "optimal"
    assert ex.score == pytest.approx(mi.score, rel=1e-5)
    # the same file on the one-type cluster it came from is never better (fewer setups)
    (tmp_path / "one-type").mkdir()
    homo = load_problem(_mixed_example(tmp_path / "one-type",
                                       '[cluster]\ngpu = "A100-80GB"\nnum_gpus = 2\n'))
    h = rw.solve(homo, "exact")
    assert not h.feasible or h.score <= ex.score + 1e-9


@pytest.mark.parametrize("cluster,match", [
    ('[cluster]\ngpus = {"A100-80GB" = 2}\nnum_gpus = 2\n', "keep one way"),
    ('[cluster]\ngpus = {"A100-80GB" = 2, "Z-99GB" = 1}\n', "not in the catalogue"),
    ('[cluster]\ngpus = {"A100-80GB" = 2, "A100-40GB" = 2}\n', "no rows for GPU type"),
    ('[cluster]\ngpu = "A100-80GB"\n', "needs num_gpus"),
])
def test_problem_file_mixed_cluster_errors(tmp_path, cluster, match):
    from routerwise.planning.problem_file import load_problem

    with pytest.raises(ValidationError, match=match):
        load_problem(_mixed_example(tmp_path, cluster))


def test_gpu_type_without_step_cost_data_is_a_clear_error(monkeypatch):
    from routerwise.serving import curve_grid, hardware

    spec = hardware.GPUSpec("B200-180GB", "blackwell", 2250.0, 8000.0, 180.0, 1800.0, "test")
    monkeypatch.setitem(hardware.GPUS, spec.name, spec)
    with pytest.raises(ValidationError, match="'B200-180GB' .*no step-cost data.*stepcost"):
        curve_grid.check_gpu_data("B200-180GB")
    with pytest.raises(ValidationError, match="no step-cost data"):
        curve_grid.build_profile_tables(("llama-3.1-8b-instruct",), ("A100-80GB", "B200-180GB"),
                                        params=curve_grid.fit())
    with pytest.raises(ValidationError, match="unknown GPU type 'Q-1GB'.*hardware.GPUS"):
        curve_grid.check_gpu_data("Q-1GB")
    curve_grid.check_gpu_data("H200-141GB")          # hopper: fitted


def test_milp_has_placement_variables_only_on_the_options_type(tmp_path):
    from routerwise.optimize.milp import build_milp, write_lp

    p = tiny_mixed()
    m = build_milp(p)
    for (i, k, g) in m.y:
        assert p.cluster.gpu_of(g).name == m.options[i][k].gpu
    text = write_lp(m, tmp_path / "mixed.lp").read_text()
    assert "utilization_hi_A_40GB_" in text.replace("[", "_").replace("]", "_").replace("-", "_")
    # symmetry breaking only between GPUs of one type: GPU 1 (A) and GPU 2 (H) are not ordered
    assert "gpu_order_0_" in text.replace("[", "_").replace("]", "_")
    assert "gpu_order_1_" not in text.replace("[", "_").replace("]", "_")


def test_infeasible_mixed_instance_is_diagnosed():
    p = tiny_mixed().with_slo(SLO(99.0, aggregate="max"))   # every curve starts at 100 ms
    for method in ("exact", "milp", "decomposition"):
        sol = rw.solve(p, method)
        assert sol.status == "infeasible" and sol.infeasibility.binding == "latency"
        best = sol.infeasibility.min_latency_ms
        assert 100.0 < best < 300.0 and "@" in sol.infeasibility.message
        # the diagnosis is tight: an SLO just above the lowest latency it reports is feasible
        assert rw.solve(p.with_slo(SLO(best * 1.001, aggregate="max")), method).feasible


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_ladder_on_a_mixed_cluster():
    """Real-data instance on 2 x A100-80GB + 2 x H100-80GB (curves simulated per type; the
    first run builds the H100 grid, a few minutes): exact and MILP prove the same optimum."""
    from conftest import mirror_available

    from routerwise.paper.instances import mixed_problem

    if not mirror_available():
        pytest.skip("needs the data mirror")
    p = mixed_problem(3, {"A100-80GB": 2, "H100-80GB": 2}, 20.0, 600.0)
    assert p.cluster.is_mixed and p.profiles.gpus == {"A100-80GB", "H100-80GB"}
    assert p.profiles.sources == {"simulated"}
    text = " ".join(p.assumptions)
    assert "A100-80GB" in text and "H100-80GB" in text and "simulated" in text
    ex, mi = rw.solve(p, "exact"), rw.solve(p, "milp")
    assert ex.status == mi.status == "optimal"
    assert ex.score == pytest.approx(mi.score, rel=1e-5)
    assert mi.bound <= ex.score * (1 + 1e-5)        # the MILP's proven bound closes on it
    # at least as good as either pool alone (those setups are a subset)
    for g in ("A100-80GB", "H100-80GB"):
        alone = rw.solve(p.with_cluster(Cluster(p.cluster.gpu_type(g), 2)), "exact")
        assert not alone.feasible or alone.score <= ex.score + 1e-9
