"""Tests that fail under the bugs of benchmarks/mutation_check.py that the other tests missed.

Each test checks one critical place against an answer worked out by hand (a known optimum,
a hand-traced schedule, the documented rule), never against the code under test itself. The
mutation it stands guard against is named in its docstring.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from tiny import two_model_problem

import routerwise as rw
from routerwise.data import registry
from routerwise.errors import ChecksumMismatch, VerificationError
from routerwise.optimize.baselines import nearest_setup_baseline
from routerwise.optimize.placement import ShardDemand, gpu_usage
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
from routerwise.serving import simulator as sim
from routerwise.serving.stepcost import StepTimes

FLAT = (0.0, 100.0)


# --- MILP rows ---------------------------------------------------------------------------------


def test_milp_respects_per_gpu_compute():
    """milp-gpu-compute. Three one-shard models on two GPUs, compute share 0.4 or 0.7; a 0.7
    replica serves up to 6 req/s, a 0.4 one up to 3 (flat 100 ms, the SLO never binds), at
    10 req/s. Two 0.7 shards cannot share a GPU with anything (0.7 + 0.4 > 1), so at most one
    model runs at 0.7: the best model a takes it (w = 0.6), b gets 0.3, c the last 0.1:
    S = 0.6 * 1.0 + 0.3 * 0.6 + 0.1 * 0.2 = 0.80. Without the per-GPU compute row the MILP
    would pick a and b at 0.7 (S = 0.84), a plan no GPU can hold."""
    names = ("a", "b", "c")
    models = tuple(ModelSpec(n, 1.0, ((1, 10.0),)) for n in names)
    curves = tuple(LatencyCurve(n, 1, r, (0.0, cap), (100.0, 100.0), "ttft_mean", "synthetic")
                   for n in names for r, cap in ((4, 3.0), (7, 6.0)))
    p = Problem(models, Cluster(GPUType("toy-80GB", 80.0), 2),
                Workload(np.tile([1.0, 0.6, 0.2], (10, 1)), 10.0, names),
                LatencyProfiles(curves, "ttft_mean"), SLO(1000.0),
                SetupSpace(tp_degrees=(1,), compute_tenths=(4, 7), rho_min=0.0))
    sol = rw.solve(p, "milp")
    assert sol.status == "optimal"
    assert sol.score == pytest.approx(0.80, abs=1e-6)
    assert [s.compute_tenths for s in sol.setup.per_model] == [7, 4, 4]
    np.testing.assert_allclose(sol.fractions, [0.6, 0.3, 0.1], atol=1e-6)
    demands = [ShardDemand(1, s.compute_tenths, 10.0) for s in sol.setup.per_model]
    assert max(gpu_usage(demands, sol.setup.placement, 2)[0]) <= 10


# --- verify() ----------------------------------------------------------------------------------


def _constant_problem(**kw):
    # a scores 0.4, b 0.8 on every prompt; a is 100 ms, b 500 ms at any load.
    return two_model_problem(np.tile([0.4, 0.8], (10, 1)),
                             {"a": (FLAT, (100.0, 100.0)), "b": (FLAT, (500.0, 500.0))}, **kw)


def test_verify_rejects_a_plan_over_the_slo():
    """verify-slo-dropped. The optimum at tau = 300 ms (w = 0.5, 0.5) has latency exactly
    300 ms: it verifies against its own problem and must fail against tau = 200 ms."""
    p = _constant_problem(tau=300.0)
    sol = rw.solve(p, "exact")
    assert sol.latency_ms == pytest.approx(300.0, abs=1e-6)
    sol.verify(p)
    tighter = replace(p, slo=replace(p.slo, latency_ms=200.0))
    with pytest.raises(VerificationError, match="violates the SLO"):
        sol.verify(tighter)


def test_verify_rejects_an_oversubscribed_gpu():
    """verify-compute-total. Two whole-GPU replicas on two GPUs: moving both onto GPU 0 asks
    for 200% of its compute (within the cluster's 200% in total), which verify must reject."""
    p = _constant_problem(num_gpus=2, tenths=(10,))
    sol = rw.solve(p, "exact")
    assert sorted(g for gs in sol.setup.placement for g in gs) == [0, 1]
    stacked = replace(sol, setup=replace(sol.setup, placement=((0,), (0,))))
    with pytest.raises(VerificationError, match="compute oversubscribed"):
        stacked.verify(p)


# --- the online router -------------------------------------------------------------------------


def test_router_realizes_the_planned_fractions():
    """router-price-sign. Four prompts gain 0.7 on b, six score 0.5 on both; latency allows
    w_b = 0.4. The optimal plan sends exactly the four gaining prompts to b and the six
    indifferent ones to a, so routing the ten prompts realizes (0.6, 0.4)."""
    s = np.array([[0.2, 0.9]] * 4 + [[0.5, 0.5]] * 6)
    p = two_model_problem(s, {"a": (FLAT, (100.0, 100.0)), "b": (FLAT, (500.0, 500.0))},
                          tau=260.0)
    sol = rw.solve(p, "exact")
    np.testing.assert_allclose(sol.fractions, [0.6, 0.4], atol=1e-6)
    router = rw.OnlineRouter.from_solution(sol, p.model_names)
    assert router.route_batch(s).tolist() == [1] * 4 + [0] * 6
    np.testing.assert_allclose(router.realized_fractions, [0.6, 0.4])


def test_router_splits_tied_prompts_as_planned():
    """router-tie-break. Equal prices and identical prompts: every prompt is tied, and the
    plan asks for a quarter on a, three quarters on b. Each tie goes to the model lagging its
    planned share most, so eight prompts go b, a, b, b, a, b, b, b (hand-traced; the fifth
    sees a zero lag for both and takes the first): 2 on a, 6 on b."""
    router = rw.OnlineRouter(("a", "b"), np.zeros(2), np.array([0.25, 0.75]))
    picks = router.route_batch(np.full((8, 2), 0.5))
    assert picks.tolist() == [1, 0, 1, 1, 0, 1, 1, 1]
    np.testing.assert_allclose(router.realized_fractions, [0.25, 0.75])


# --- the serving simulator ---------------------------------------------------------------------


def test_simulator_admits_a_request_that_exactly_fills_the_cache():
    """sim-kv-admission. The KV cache holds 105 tokens; two requests of 100 prompt + 5 output
    tokens arrive at 0. Prefill 10 ms, decode 1 ms per step. The first fills the cache exactly
    and is admitted at once: first token at 10 ms, its 4 more tokens by 14 ms. The second waits
    for that cache: admitted at 14, first token 24, done 28."""
    steps = StepTimes.constant(10.0, 1.0, max_batched_tokens=256, max_seqs=4)
    cfg = sim.EngineConfig(max_num_seqs=4, kv_capacity_tokens=105)
    req = sim.Requests(np.zeros(2), np.array([100, 100]), np.array([5, 5]))
    res = sim.simulate(steps, req, cfg, warmup_fraction=0.0)
    np.testing.assert_allclose(res.ttft_ms, [10.0, 24.0])
    np.testing.assert_allclose(res.e2e_ms, [14.0, 28.0])
    assert res.peak_kv_tokens <= 105


def test_a_short_overload_at_the_end_is_not_saturation():
    """sim-saturation-threshold. 4,000 requests at 50 req/s on a 100 req/s server (one at a
    time, 10 ms each), then 400 at 125 req/s: the queue grows only in the last tenth of the
    window. Its growth lies above SAT_MIN_GROWTH but below the proportional floor (2% of the
    4,400 measured requests), and it does not rise quarter after quarter: by the documented
    rule the replica kept up (a transient, not saturation)."""
    steps = StepTimes.constant(10.0, 1.0, max_batched_tokens=256, max_seqs=4)
    cfg = sim.EngineConfig(max_num_seqs=1, kv_capacity_tokens=10**6)
    arr = np.r_[np.arange(4000) * 0.02, 80.0 + np.arange(400) * 0.008]
    req = sim.Requests(arr, np.full(arr.size, 100), np.ones(arr.size, dtype=int))
    res = sim.simulate(steps, req, cfg, warmup_fraction=0.0)
    assert res.num_requests == 4400
    assert sim.SAT_MIN_GROWTH < res.backlog_growth < sim.SAT_GROWTH_FRACTION * 4400
    assert not res.saturated


# --- baselines ---------------------------------------------------------------------------------


def test_nearest_setup_baselines_take_the_nearest_setup():
    """baseline-farthest-first. Two models on one GPU with shares 0.3 / 0.5 / 0.7 retain
    (3, 7), (5, 5), (7, 3) tenths, all meeting the SLO. Equal-Split's target is (5, 5), met
    exactly; Size-Proportional's (params 1 and 2 B) is (3.33, 6.67), nearest (3, 7) at
    0.0667 GPUs."""
    p = two_model_problem(np.tile([0.4, 0.8], (10, 1)),
                          {"a": (FLAT, (100.0, 100.0)), "b": (FLAT, (100.0, 100.0))},
                          tau=1000.0, tenths=(3, 5, 7))
    eq = nearest_setup_baseline(p, "equal-split")
    assert [s.compute_tenths for s in eq.setup.per_model] == [5, 5]
    assert eq.stats["distance_gpus"] == pytest.approx(0.0)
    sz = nearest_setup_baseline(p, "size-proportional")
    assert [s.compute_tenths for s in sz.setup.per_model] == [3, 7]
    assert sz.stats["distance_gpus"] == pytest.approx(2 / 30)


# --- the data mirror ---------------------------------------------------------------------------


def test_a_corrupt_mirror_file_is_rejected(tmp_path, monkeypatch):
    """mirror-checksum-skipped. A mirror file whose bytes differ from the registered sha256
    is refused, as a downloaded one is; the right bytes are handed out."""
    payload = b"model,score\na,0.5\n"
    src = registry.DataSource("test.mirror", registry.Repo("owner", "repo", "ab" * 20, "MIT",
                                                           "test"),
                              "data/file.csv", hashlib.sha256(payload).hexdigest(), "a test file")
    monkeypatch.setitem(registry.REGISTRY, src.key, src)
    mirror = tmp_path / "mirror"
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(mirror))
    path = mirror / src.relpath
    path.parent.mkdir(parents=True)
    path.write_bytes(payload.replace(b"0.5", b"0.6"))
    with pytest.raises(ChecksumMismatch, match="expected " + src.sha256):
        registry.fetch(src.key)
    path.write_bytes(payload)
    assert registry.fetch(src.key) == path
