"""The serving simulator: queueing theory, determinism, saturation, KV limits, skip-ahead."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from conftest import needs_mirror

from routerwise.errors import ValidationError
from routerwise.serving import simulator as sim
from routerwise.serving.stepcost import StepTimes


def _linear_steps(max_tokens=4096, max_seqs=64) -> StepTimes:
    n = np.arange(max_tokens + 1, dtype=float)
    b = np.arange(max_seqs + 1, dtype=float)
    pre, dec = 4.0 + 0.02 * n, 6.0 + 0.15 * b
    pre[0] = dec[0] = 0.0
    return StepTimes(pre, 2e-6, 0.1, dec, 3e-4, label="test", source="modelled")


@pytest.mark.parametrize("rho", [0.5, 0.7])
def test_md1_queue_matches_pollaczek_khinchine(rho):
    """Batch size 1, one-token outputs, constant service: an M/D/1 queue."""
    service_ms = 10.0
    steps = StepTimes.constant(service_ms, 1.0, max_batched_tokens=256, max_seqs=4)
    cfg = sim.EngineConfig(max_num_seqs=1, kv_capacity_tokens=10**6)
    req = sim.poisson_requests(rho / (service_ms / 1e3), 60000, [100], [1], seed=11)
    res = sim.simulate(steps, req, cfg)
    wait = res.stats_ms["ttft_mean"] - service_ms
    assert wait == pytest.approx(sim.md1_wait_ms(rho, service_ms), rel=0.05)
    assert not res.saturated


def test_deterministic_under_a_seed():
    steps = _linear_steps()
    pool_p, pool_o = [50, 300, 900], [1, 40, 200]
    a = sim.simulate(steps, sim.poisson_requests(20.0, 3000, pool_p, pool_o, seed=5))
    b = sim.simulate(steps, sim.poisson_requests(20.0, 3000, pool_p, pool_o, seed=5))
    c = sim.simulate(steps, sim.poisson_requests(20.0, 3000, pool_p, pool_o, seed=6))
    assert np.array_equal(a.ttft_ms, b.ttft_ms) and np.array_equal(a.e2e_ms, b.e2e_ms)
    assert a.stats_ms == b.stats_ms
    assert not np.array_equal(a.ttft_ms, c.ttft_ms)


def test_saturation_detected_above_capacity_not_at_light_load():
    service_ms = 10.0  # capacity 100 req/s at batch size 1
    steps = StepTimes.constant(service_ms, 1.0, max_batched_tokens=256, max_seqs=4)
    cfg = sim.EngineConfig(max_num_seqs=1, kv_capacity_tokens=10**6)
    for rate, expect in ((20.0, False), (60.0, False), (120.0, True), (300.0, True)):
        res = sim.simulate(steps, sim.poisson_requests(rate, 4000, [100], [1], seed=2), cfg)
        assert res.saturated is expect, (rate, res.backlog_growth)
    # a batching replica: light load keeps up, an arrival rate far above its throughput does not
    steps = _linear_steps()
    cfg = sim.EngineConfig(max_num_seqs=64, kv_capacity_tokens=20000)
    light = sim.simulate(steps, sim.poisson_requests(2.0, 2000, [200], [100], seed=1), cfg)
    heavy = sim.simulate(steps, sim.poisson_requests(400.0, 2000, [200], [100], seed=1), cfg)
    assert not light.saturated and heavy.saturated
    assert heavy.stats_ms["ttft_mean"] > 20 * light.stats_ms["ttft_mean"]


def test_kv_capacity_is_never_exceeded():
    steps = _linear_steps()
    cap = 6000
    cfg = sim.EngineConfig(max_num_seqs=64, kv_capacity_tokens=cap)
    req = sim.poisson_requests(200.0, 3000, [300, 800, 1500], [50, 400, 900], seed=3)
    res = sim.simulate(steps, req, cfg)
    assert res.peak_kv_tokens <= cap
    assert res.peak_kv_tokens > 0.7 * cap  # the limit binds in this run


def _reference(steps: StepTimes, req: sim.Requests, cfg: sim.EngineConfig):
    """One iteration at a time, same policy: the skip-ahead must reproduce it exactly."""
    n = len(req)
    arr = req.arrival_s * 1e3
    P, O = req.prompt_tokens.tolist(), req.output_tokens.tolist()
    first, finish = np.zeros(n), np.zeros(n)
    waiting, running = deque(), {}  # running: request -> tokens generated so far
    t, nxt, done, reserved = 0.0, 0, 0, 0
    while done < n:
        while nxt < n and arr[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        batch, tokens, sq = [], 0, 0
        while waiting:
            i = waiting[0]
            if (len(running) + len(batch) >= cfg.max_num_seqs or tokens + P[i] >
                    steps.max_batched_tokens or reserved + P[i] + O[i] > cfg.kv_capacity_tokens):
                break
            waiting.popleft()
            batch.append(i)
            tokens += P[i]
            sq += P[i] ** 2
            reserved += P[i] + O[i]
        if batch:
            t += steps.prefill_ms(tokens, sq, len(batch))
            for i in batch:
                first[i] = t
                if O[i] == 1:
                    finish[i], done, reserved = t, done + 1, reserved - P[i] - 1
                else:
                    running[i] = 1
        elif running:
            ctx = sum(P[i] + g for i, g in running.items())
            t += steps.decode_ms(len(running), ctx)
            for i in list(running):
                running[i] += 1
                if running[i] == O[i]:
                    del running[i]
                    finish[i], done, reserved = t, done + 1, reserved - P[i] - O[i]
        else:
            t = arr[nxt]
    return first - arr, finish - arr


def test_skip_ahead_matches_an_iteration_by_iteration_reference():
    steps = _linear_steps()
    cfg = sim.EngineConfig(max_num_seqs=8, kv_capacity_tokens=5000)
    req = sim.poisson_requests(6.0, 400, [20, 100, 700, 1500], [1, 3, 30, 120], seed=9)
    res = sim.simulate(steps, req, cfg, warmup_fraction=0.0)
    ttft, e2e = _reference(steps, req, cfg)
    np.testing.assert_allclose(res.ttft_ms, ttft, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.e2e_ms, e2e, rtol=1e-9, atol=1e-6)


def test_statistics_exclude_the_warm_up():
    steps = _linear_steps()
    req = sim.poisson_requests(5.0, 1000, [100], [10], seed=4)
    res = sim.simulate(steps, req, warmup_fraction=0.2)
    assert res.num_requests == 800 == res.ttft_ms.size
    assert res.stats_ms["tpot_p50"] <= res.stats_ms["tpot_p99"]
    row = res.row()
    assert {"ttft_mean_ms", "e2e_p99_ms", "saturated", "duration_s"} <= set(row)


def test_invalid_inputs_are_rejected():
    steps = _linear_steps(max_tokens=512)
    with pytest.raises(ValidationError, match="budget"):
        sim.simulate(steps, sim.Requests([0.0], [600], [5]))
    with pytest.raises(ValidationError, match="capacity"):
        sim.simulate(steps, sim.Requests([0.0], [500], [50]), sim.EngineConfig(8, 100))
    with pytest.raises(ValidationError):
        sim.Requests([1.0, 0.5], [10, 10], [1, 1])
    with pytest.raises(ValidationError):
        sim.md1_wait_ms(1.0, 10.0)


@needs_mirror
def test_trace_arrivals_are_rescaled_to_the_target_rate():
    req = sim.trace_requests("azure.conv", 12.0, n=3000)
    rate = (len(req) - 1) / (req.arrival_s[-1] - req.arrival_s[0])
    assert rate == pytest.approx(12.0, rel=1e-9)
    assert req.prompt_tokens.min() >= 1 and req.output_tokens.max() <= 1000
