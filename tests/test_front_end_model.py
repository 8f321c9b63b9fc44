"""The front end's queue (profiling.engine_check.FrontEnd): known answers, and a held-out
prediction on an engine whose front end is a processor-sharing CPU with known costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiling.engine_check import (
    FrontEnd,
    ModelSetup,
    Point,
    evaluate,
    fit_front_end,
    front_end_costs,
    linear_step_times,
    sim_requests,
)
from routerwise.errors import DataError
from routerwise.serving import architectures
from routerwise.serving.engine import setup_for, simulate_engine
from routerwise.serving.simulator import Requests, SimResult

ARCH = architectures.get("llama-3.2-3b-instruct")
LIMITS = dict(max_num_batched_tokens=2048, max_num_seqs=128, kv_capacity_tokens=200_000)
STEP = linear_step_times(3.0, 0.25, 2.0, 0.1)
OVER = dict(request_overhead_ms=6.0, iteration_overhead_ms=0.0, seq_overhead_us=0.0,
            layer_overhead_us=0.0)
# the true front end: 6 ms of CPU per request, 0.25 ms per token, 0.5 ms per iteration; the
# engine's 6 ms request overhead holds on an idle core
TRUE = FrontEnd(cpu_ms_per_request=6.0, cpu_ms_per_token=0.25, cpu_ms_per_iteration=0.5,
                request_overhead_ms=6.0, calibration_busy=0.0)


def _run(n: int, iterations: int, duration_s: float) -> SimResult:
    z = np.zeros(n)
    return SimResult(1.0, n, duration_s, False, 0.0, 0, {}, z, z, z, iterations=iterations)


def test_busy_share_and_delay_follow_processor_sharing():
    fe = FrontEnd(cpu_ms_per_request=6.0, cpu_ms_per_token=0.125, cpu_ms_per_iteration=1.0,
                  request_overhead_ms=10.0, calibration_busy=0.1)
    req = Requests(np.linspace(0.0, 4.0, 100), np.full(100, 128), np.full(100, 32))
    # (100 x 6 + 3200 x 0.125 + 300 x 1) ms of work over 4 s: u = 0.325
    assert fe.busy(_run(100, 300, 4.0), req) == pytest.approx(0.325)
    # only the CPU work on the way to the first token (6 + 0.125 ms) stretches
    extra = fe.extra_ms(_run(100, 300, 4.0), req)
    assert extra == pytest.approx(np.full(100, 6.125 / 0.675 - 6.125 / 0.9))
    # past u = 1 the core falls behind: the backlog grows with the arrival time
    over = Requests(np.array([0.0, 2.0]), np.full(2, 128), np.full(2, 32))
    res = _run(2, 0, 0.01)  # (2 x 6 + 64 x 0.125) ms = 20 ms over 10 ms: u = 2
    late = fe.extra_ms(res, over)
    assert late[1] - late[0] == pytest.approx(1.0 * 2000.0)
    assert late[0] == pytest.approx(6.125 / 0.01 - 6.125 / 0.9)  # stretch capped at u = 0.99


def test_the_simulated_engine_counts_its_iterations():
    """One request alone: one prefill iteration (its first token) and one decode iteration per
    further token; the skip-ahead counts what stepping one decode at a time counts."""
    setup = setup_for("vllm-v1", STEP, arch=ARCH, **LIMITS, **OVER)
    one = simulate_engine(STEP, Requests([0.0], [128], [32]), setup, warmup_fraction=0.0)
    assert one.iterations == 32
    rng = np.random.default_rng(3)
    req = Requests(np.cumsum(rng.exponential(0.05, 80)), np.full(80, 128),
                   rng.integers(2, 60, 80))
    fast = simulate_engine(STEP, req, setup, warmup_fraction=0.0)
    slow = simulate_engine(STEP, req, setup, warmup_fraction=0.0, max_skip_steps=1)
    assert fast.iterations == slow.iterations
    assert 60 < fast.iterations < int(req.output_tokens.sum())  # batching shares iterations


def _cpu_s(b: int, tokens: int, iterations: int) -> float:
    return (TRUE.cpu_ms_per_request * b + TRUE.cpu_ms_per_token * tokens
            + TRUE.cpu_ms_per_iteration * iterations) / 1e3


def test_front_end_costs_are_recovered_from_bursts():
    rows = [{"requests": b, "tokens": b * n, "iterations": it,
             # 20 ms of the load generator's set-up per burst: not a cost of the requests
             "api_server_cpu_s": 0.6 * _cpu_s(b, b * n, it),
             "loadgen_cpu_s": 0.4 * _cpu_s(b, b * n, it) + 0.020}
            for b, n, it in ((1, 8, 8), (1, 32, 32), (16, 8, 9), (16, 32, 34), (64, 8, 12),
                             (64, 32, 40))]
    assert front_end_costs(pd.DataFrame(rows)) == pytest.approx(
        (TRUE.cpu_ms_per_request, TRUE.cpu_ms_per_token, TRUE.cpu_ms_per_iteration))
    with pytest.raises(DataError, match="iterations"):
        front_end_costs(pd.DataFrame({"requests": [1]}))


def test_one_stalled_repeat_of_a_burst_does_not_move_the_costs():
    def row(b, n, it, repeat, extra_iterations=0, extra_cpu_s=0.0):
        cpu = _cpu_s(b, b * n, it)
        return {"burst": b, "output_tokens": n, "repeat": repeat, "requests": b,
                "tokens": b * n, "iterations": it + extra_iterations,
                "api_server_cpu_s": 0.6 * cpu + extra_cpu_s, "loadgen_cpu_s": 0.4 * cpu + 0.020}

    bursts = ((1, 8, 8), (1, 32, 32), (16, 8, 9), (16, 32, 34), (64, 8, 12), (64, 32, 40))
    rows = [row(b, n, it, r) for b, n, it in bursts for r in range(3)]
    # the second repeat of (16, 32) stalled: twice the iterations and half a second more CPU
    # time, which no cost per request, token or iteration explains
    rows[10] = row(16, 32, 34, 1, extra_iterations=50, extra_cpu_s=0.5)
    probe = pd.DataFrame(rows)
    assert front_end_costs(probe) == pytest.approx(
        (TRUE.cpu_ms_per_request, TRUE.cpu_ms_per_token, TRUE.cpu_ms_per_iteration))
    # taken row by row, the stall would have moved them
    assert front_end_costs(probe.drop(columns=["burst", "output_tokens"])) != pytest.approx(
        (TRUE.cpu_ms_per_request, TRUE.cpu_ms_per_token, TRUE.cpu_ms_per_iteration), rel=0.05)


def _point(rate: float, n: int, seed: int) -> Point:
    """A point measured on the kit's scheduler behind the TRUE front end (its busy shares
    recorded as the benchmark records them)."""
    rng = np.random.default_rng(seed)
    send = np.cumsum(rng.exponential(1 / rate, n))
    df = pd.DataFrame({"ok": True, "send_s": send, "prompt_tokens": 128,
                       "completion_tokens": 32})
    setup = setup_for("vllm-v1", STEP, arch=ARCH, **LIMITS, **OVER)
    res = simulate_engine(STEP, sim_requests(df), setup, warmup_fraction=0.0)
    u = TRUE.busy(res, sim_requests(df))
    df["ttft_ms"] = res.ttft_ms + TRUE.extra_ms(res, sim_requests(df))
    df["tpot_ms"] = res.tpot_ms
    df["end_s"] = send + res.e2e_ms / 1000
    return Point("m", rate, seed, df.assign(api_server_busy=0.6 * u, loadgen_busy=0.4 * u))


def _probe() -> pd.DataFrame:
    rows = []
    setup = setup_for("vllm-v1", STEP, arch=ARCH, **LIMITS, **OVER)
    for b in (1, 16, 64):
        for n in (8, 32):
            res = simulate_engine(STEP, Requests(np.zeros(b), np.full(b, 128), np.full(b, n)),
                                  setup, warmup_fraction=0.0)
            rows.append({"requests": b, "tokens": b * n, "iterations": res.iterations,
                         "api_server_cpu_s": _cpu_s(b, b * n, res.iterations),
                         "loadgen_cpu_s": 0.0})
    return pd.DataFrame(rows)


def test_the_front_end_predicts_held_out_rates_the_constant_overhead_misses():
    points = [_point(r, 300, seed=i) for i, r in enumerate((4.0, 10.0, 30.0, 50.0))]
    busy = [float(p.requests["api_server_busy"].iloc[0] + p.requests["loadgen_busy"].iloc[0])
            for p in points]
    assert busy[0] < 0.2 and busy[3] > 0.5  # the queue matters only at the held-out rates
    setups = {"m": ModelSetup(STEP, ARCH, **LIMITS)}
    out = evaluate(points, setups, front_end_probes={"m": _probe()})
    fe = out["summary"]["front_end"]["m"]
    assert fe["cpu_ms_per_request"] == pytest.approx(TRUE.cpu_ms_per_request, rel=1e-6)
    assert fe["cpu_ms_per_token"] == pytest.approx(TRUE.cpu_ms_per_token, rel=1e-6)
    assert fe["cpu_ms_per_iteration"] == pytest.approx(TRUE.cpu_ms_per_iteration, rel=1e-6)
    held = out["levels"].set_index("rate_rps").loc[[30.0, 50.0]]
    alone = out["levels_constant_overhead"].set_index("rate_rps").loc[[30.0, 50.0]]
    assert held["abs_err_pct_ttft_mean"].max() < 3.0
    assert alone["abs_err_pct_ttft_mean"].max() > 8.0
    # TPOT is the engine's: the front end does not touch it
    assert (held["sim_tpot_mean_ms"] == alone["sim_tpot_mean_ms"]).all()
    # without a probe the constant overhead is all there is
    plain = evaluate(points, setups)
    assert plain["summary"]["front_end"] == {"m": None}
    assert plain["levels"]["sim_ttft_mean_ms"].tolist() == \
        plain["levels_constant_overhead"]["sim_ttft_mean_ms"].tolist()


def test_fit_front_end_needs_a_probe_and_measured_busy_shares():
    setup = ModelSetup(STEP, ARCH, **LIMITS)
    p = _point(5.0, 50, seed=0)
    assert fit_front_end(setup, None, [p], OVER) is None
    bare = Point("m", 5.0, 0, p.requests.drop(columns=["api_server_busy", "loadgen_busy"]))
    assert fit_front_end(setup, _probe(), [bare], OVER) is None
    fe = fit_front_end(setup, _probe(), [p], OVER)
    u = float(p.requests["api_server_busy"].iloc[0] + p.requests["loadgen_busy"].iloc[0])
    assert fe.calibration_busy == pytest.approx(u)
    assert fe.request_overhead_ms == OVER["request_overhead_ms"]
    assert np.mean(fe.spread_ms(1000)) == pytest.approx(0.0, abs=1e-9)


def test_the_overhead_keeps_the_spread_measured_at_the_calibration_points():
    """Requests whose measured TTFT scatters around the engine's (a 99th percentile 20 ms
    above the mean) keep that tail in the prediction; the mean is unchanged."""
    setup = ModelSetup(STEP, ARCH, **LIMITS)
    p = _point(5.0, 400, seed=4)
    jitter = np.random.default_rng(1).exponential(5.0, len(p.requests))
    noisy = Point("m", 5.0, 4, p.requests.assign(ttft_ms=p.requests["ttft_ms"] + jitter))
    fe = fit_front_end(setup, _probe(), [noisy], OVER)
    offsets = fe.spread_ms(400)
    assert np.mean(offsets) == pytest.approx(0.0, abs=1e-9)
    assert np.percentile(offsets, 99) == pytest.approx(
        np.percentile(jitter, 99) - np.mean(jitter), rel=0.15)
    flat = FrontEnd(1.0, 0.0, 0.0, 6.0, 0.1)
    assert not flat.spread_ms(10).any()
