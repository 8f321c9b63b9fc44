"""Engine profiles: paged KV, preemption, chunked prefill, overheads, defaults, typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from routerwise.errors import ValidationError
from routerwise.serving import architectures, memory
from routerwise.serving import engine as eng
from routerwise.serving import simulator as sim
from routerwise.serving.hardware import GPUS
from routerwise.serving.stepcost import StepTimes


def _linear_steps(max_tokens=4096, max_seqs=64) -> StepTimes:
    n = np.arange(max_tokens + 1, dtype=float)
    b = np.arange(max_seqs + 1, dtype=float)
    pre, dec = 4.0 + 0.02 * n, 6.0 + 0.15 * b
    pre[0] = dec[0] = 0.0
    return StepTimes(pre, 2e-6, 0.1, dec, 3e-4, label="test", source="modelled")


def test_unknown_profile_is_a_typed_error_listing_the_known_ones():
    with pytest.raises(eng.UnknownEngineProfile, match="vllm-v1"):
        eng.get_profile("vllm-v9")
    assert issubclass(eng.UnknownEngineProfile, ValidationError)


def test_v0_without_memory_pressure_or_overheads_reproduces_the_legacy_replica():
    """Same scheduling policy when the cache never binds: identical times, request by request."""
    steps = _linear_steps()
    req = sim.poisson_requests(6.0, 1500, [20, 100, 700, 1500], [1, 3, 30, 120], seed=9)
    legacy = sim.simulate(steps, req, sim.EngineConfig(8, 10**7), warmup_fraction=0.0)
    setup = eng.setup_for("vllm-v0", steps, max_num_seqs=8, kv_capacity_tokens=10**7,
                          request_overhead_ms=0.0)
    paged = eng.simulate_engine(steps, req, setup, warmup_fraction=0.0)
    np.testing.assert_allclose(paged.ttft_ms, legacy.ttft_ms, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(paged.e2e_ms, legacy.e2e_ms, rtol=1e-12, atol=1e-9)
    assert paged.preemptions == 0


def test_chunked_prefill_of_one_request_costs_its_chunks():
    """One 1000-token prompt, budget 256: chunks 256, 256, 256, 232, the last emitting the first
    token; each chunk costs prefill_tok[c] + c_sq ((d + c)^2 - d^2) + c_seq."""
    steps = _linear_steps()
    setup = eng.setup_for("vllm-v1", steps, max_num_batched_tokens=256,
                          kv_capacity_tokens=10**6, request_overhead_ms=0.0,
                          iteration_overhead_ms=0.0, seq_overhead_us=0.0,
                          layer_overhead_us=0.0)
    res = eng.simulate_engine(steps, sim.Requests([0.0], [1000], [1]), setup,
                              warmup_fraction=0.0)
    want, d = 0.0, 0
    for c in (256, 256, 256, 232):
        want += 4.0 + 0.02 * c + 2e-6 * ((d + c) ** 2 - d ** 2) + 0.1
        d += c
    assert res.ttft_ms[0] == pytest.approx(want, rel=1e-12)


def test_overheads_add_where_they_should():
    steps = _linear_steps()
    req = sim.Requests([0.0], [100], [11])
    kw = dict(max_num_batched_tokens=512, kv_capacity_tokens=10**6,
              arch="llama-3.1-8b-instruct")  # 32 layers
    base = eng.simulate_engine(steps, req, eng.setup_for(
        "vllm-v1", steps, request_overhead_ms=0.0, iteration_overhead_ms=0.0,
        seq_overhead_us=0.0, layer_overhead_us=0.0, **kw), warmup_fraction=0.0)
    more = eng.simulate_engine(steps, req, eng.setup_for(
        "vllm-v1", steps, request_overhead_ms=20.0, iteration_overhead_ms=1.5,
        seq_overhead_us=500.0, layer_overhead_us=10.0, **kw), warmup_fraction=0.0)
    # 1 prefill iteration + 10 decode iterations, each with one sequence
    per_it = 1.5 + 32 * 0.010 + 0.5
    assert more.ttft_ms[0] - base.ttft_ms[0] == pytest.approx(20.0 + per_it)
    assert more.e2e_ms[0] - base.e2e_ms[0] == pytest.approx(20.0 + 11 * per_it)
    assert more.tpot_ms[0] - base.tpot_ms[0] == pytest.approx(per_it)
    engine_side = eng.simulate_engine(steps, req, eng.setup_for(
        "vllm-v1", steps, request_overhead_ms=20.0, iteration_overhead_ms=1.5,
        seq_overhead_us=500.0, layer_overhead_us=10.0, **kw), warmup_fraction=0.0,
        add_request_overhead=False)
    assert engine_side.ttft_ms[0] == pytest.approx(base.ttft_ms[0] + per_it)
    with pytest.raises(ValidationError, match="give arch"):
        eng.setup_for("vllm-v1", steps, kv_capacity_tokens=10**6, layer_overhead_us=5.0)


@pytest.mark.parametrize("profile", ["vllm-v0", "vllm-v1"])
def test_on_demand_kv_preempts_and_never_exceeds_the_cache(profile):
    steps = _linear_steps()
    cap = 6000
    req = sim.poisson_requests(200.0, 1500, [300, 800, 1500], [50, 400, 900], seed=3)
    budget = 2048 if profile == "vllm-v1" else 4096  # V0: a recompute is one prefill
    setup = eng.setup_for(profile, steps, max_num_seqs=64, kv_capacity_tokens=cap,
                          max_num_batched_tokens=budget, arch="llama-3.1-8b-instruct")
    res = eng.simulate_engine(steps, req, setup)
    assert res.peak_kv_tokens <= cap
    assert res.preemptions > 0
    assert np.all(np.isfinite(res.e2e_ms)) and np.all(res.e2e_ms >= res.ttft_ms)
    # the same stream with room to spare: no preemption, and every request is done sooner
    roomy = eng.simulate_engine(steps, req, eng.setup_for(
        profile, steps, max_num_seqs=64, kv_capacity_tokens=10**7,
        max_num_batched_tokens=budget, arch="llama-3.1-8b-instruct"))
    assert roomy.preemptions == 0
    assert roomy.stats_ms["e2e_mean"] < res.stats_ms["e2e_mean"]


@pytest.mark.parametrize("profile", ["vllm-v0", "vllm-v1"])
def test_skip_ahead_matches_one_step_at_a_time(profile):
    """Closed-form decode skip-ahead (to the next completion, admissible arrival or cache
    overflow) reproduces stepping one decode iteration at a time, preemptions included."""
    steps = _linear_steps()
    req = sim.poisson_requests(30.0, 600, [20, 300, 900, 1500], [1, 30, 200, 600], seed=4)
    setup = eng.setup_for(profile, steps, max_num_seqs=16, kv_capacity_tokens=7000,
                          max_num_batched_tokens=1600 if profile == "vllm-v1" else 4096,
                          arch="llama-3.1-8b-instruct")
    fast = eng.simulate_engine(steps, req, setup, warmup_fraction=0.0)
    slow = eng.simulate_engine(steps, req, setup, warmup_fraction=0.0, max_skip_steps=1)
    assert fast.preemptions == slow.preemptions > 0
    np.testing.assert_allclose(fast.ttft_ms, slow.ttft_ms, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(fast.e2e_ms, slow.e2e_ms, rtol=1e-9, atol=1e-6)


def test_v0_needs_a_budget_that_holds_a_whole_request():
    steps = _linear_steps()
    setup = eng.setup_for("vllm-v0", steps, max_num_batched_tokens=512, kv_capacity_tokens=10**6)
    with pytest.raises(ValidationError, match="chunked-prefill profile"):
        eng.simulate_engine(steps, sim.Requests([0.0], [400], [200]), setup)


def test_on_demand_admission_admits_more_than_reservation():
    """Reserving prompt + output at admission holds 2 requests of 100 + 900 in 2,100 tokens;
    allocating on demand starts all 4 prompts at once, so the 4th request's first token comes
    much earlier."""
    steps = _linear_steps()
    req = sim.Requests([0.0] * 4, [100] * 4, [900] * 4)
    legacy = sim.simulate(steps, req, sim.EngineConfig(64, 2100), warmup_fraction=0.0)
    paged = eng.simulate_engine(steps, req, eng.setup_for(
        "vllm-v0", steps, kv_capacity_tokens=2100, request_overhead_ms=0.0),
        warmup_fraction=0.0)
    assert paged.ttft_ms.max() < 0.1 * legacy.ttft_ms.max()
    assert paged.preemptions > 0  # 4 x 1000 tokens do not fit: some are recomputed


def test_kv_capacity_follows_the_memory_model_and_utilisation():
    steps = _linear_steps(max_tokens=8192, max_seqs=256)
    arch = architectures.get("llama-3.1-8b-instruct")
    s9 = eng.setup_for("vllm-v1", steps, arch=arch, gpu="A100-80GB", tp=1)
    s5 = eng.setup_for("vllm-v1", steps, arch=arch, gpu="A100-80GB", tp=1,
                       gpu_memory_utilization=0.5)
    assert s9.kv_capacity_tokens == memory.kv_capacity_tokens(arch, 1, "A100-80GB", 0.9)
    assert s5.kv_capacity_tokens == memory.kv_capacity_tokens(arch, 1, "A100-80GB", 0.5)
    assert s5.kv_capacity_tokens < s9.kv_capacity_tokens
    # vLLM V1 defaults: 8192-token budget on >= 70 GiB GPUs, 2048 below; max_num_seqs 256
    assert (s9.max_num_batched_tokens, s9.max_num_seqs) == (8192, 256)
    small = eng.setup_for("vllm-v1", steps, arch="llama-3.2-3b-instruct", gpu="A100-40GB")
    assert small.max_num_batched_tokens == 2048
    with pytest.raises(ValidationError, match="arch and gpu"):
        eng.setup_for("vllm-v0", steps)
    with pytest.raises(ValidationError, match="two blocks"):
        eng.setup_for("vllm-v1", steps, arch="llama-3.3-70b-instruct", gpu="A100-80GB", tp=1)


def test_h200_is_in_the_catalogue_with_datasheet_figures():
    h = GPUS["H200-141GB"]
    assert (h.family, h.peak_bf16_tflops, h.hbm_gbs, h.memory_gib) == ("hopper", 989.0,
                                                                        4800.0, 141.0)
    assert "datasheet" in h.source


def test_queue_growing_through_the_whole_run_is_saturated():
    """Evenly spaced arrivals at 102 req/s into a 10 ms server: the queue grows by 0.0196 per
    arrival, ~71 over 3,600 measured requests: under the old proportional threshold (72) this
    passed as 'keeps up'."""
    steps = StepTimes.constant(10.0, 1.0, max_batched_tokens=256, max_seqs=4)
    cfg = sim.EngineConfig(max_num_seqs=1, kv_capacity_tokens=10**6)
    n = 4000
    req = sim.Requests(np.arange(n) / 102.0, np.full(n, 100), np.ones(n, int))
    res = sim.simulate(steps, req, cfg)
    assert 60 < res.backlog_growth < 72
    assert res.saturated
    ok = sim.simulate(steps, sim.Requests(np.arange(n) / 98.0, np.full(n, 100),
                                          np.ones(n, int)), cfg)
    assert not ok.saturated
