"""The machine's drift measured on the served engine: one decode row re-measured before each
load point, and the replay scaling that point's steps by it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_served_steps import DECODE_BASE_MS, DECODE_PER_SEQ_MS, MODEL, FakeServedEngine

from profiling import served_steps, server_metrics
from profiling.engine_check import DRIFT_BATCH, ModelSetup, Point, evaluate, linear_step_times, sim_requests
from routerwise.serving import architectures
from routerwise.serving.engine import setup_for, simulate_engine

ARCH = architectures.get("llama-3.2-3b-instruct")
LIMITS = dict(max_num_batched_tokens=2048, max_num_seqs=128, kv_capacity_tokens=200_000)
COSTS = (3.0, 0.25, 2.0, 0.1)  # decode base, per sequence; prefill base, per token (ms)
OVER = dict(request_overhead_ms=6.0, iteration_overhead_ms=0.0, seq_overhead_us=0.0,
            layer_overhead_us=0.0)


def test_decode_step_ms_is_one_decode_row_of_the_probe(monkeypatch):
    engine = FakeServedEngine()
    monkeypatch.setattr(served_steps, "_batch", engine.batch)
    monkeypatch.setattr(server_metrics, "scrape", engine.scrape)
    got = served_steps.decode_step_ms("http://127.0.0.1:1", MODEL, 512, batch_size=4,
                                      repeats=2)
    assert got == pytest.approx(DECODE_BASE_MS + 4 * DECODE_PER_SEQ_MS)
    assert {b for b, _, _ in engine.batches} == {4}


def _point(rate: float, seed: int, slow: float) -> Point:
    """A point on an engine running ``slow`` times the table's step costs, which its
    re-measured decode row shows."""
    rng = np.random.default_rng(seed)
    send = np.cumsum(rng.exponential(1 / rate, 200))
    df = pd.DataFrame({"ok": True, "send_s": send, "prompt_tokens": 128,
                       "completion_tokens": 32})
    step = linear_step_times(*(slow * c for c in COSTS))
    setup = setup_for("vllm-v1", step, arch=ARCH, **LIMITS, **OVER)
    res = simulate_engine(step, sim_requests(df), setup, warmup_fraction=0.0)
    row = linear_step_times(*COSTS).decode_ms(DRIFT_BATCH, DRIFT_BATCH * (128 + 24))
    return Point("m", rate, seed, df.assign(ttft_ms=res.ttft_ms, tpot_ms=res.tpot_ms,
                                            end_s=send + res.e2e_ms / 1000,
                                            decode_step_ms=slow * row))


def test_a_drifting_machine_is_followed_where_the_points_measured_it():
    # calibration points on the table's speed, held-out points 1.4x slower
    points = [_point(r, i, s) for i, (r, s) in enumerate(((4.0, 1.0), (10.0, 1.0),
                                                          (30.0, 1.4), (45.0, 1.4)))]
    setup = ModelSetup(linear_step_times(*COSTS), ARCH, **LIMITS)
    assert setup.drift_factor(points[2].requests) == 1.0  # off unless asked
    from dataclasses import replace
    assert replace(setup, measured_drift=True).drift_factor(points[2].requests) \
        == pytest.approx(1.4)
    out = evaluate(points, {"m": setup})["summary"]
    assert out["median_abs_err_pct_tpot_mean_measured_drift"] < 3.0
    assert out["median_abs_err_pct_tpot_mean"] > 20.0
    # points without the column: no drift keys
    bare = [Point(p.model, p.rate_rps, p.repeat, p.requests.drop(columns="decode_step_ms"))
            for p in points]
    assert "median_abs_err_pct_tpot_mean_measured_drift" not in evaluate(
        bare, {"m": setup})["summary"]
