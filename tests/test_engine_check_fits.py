"""The structure check finds the step costs of an engine that follows the kit's scheduler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiling.engine_check import STRUCTURE_KEYS, ModelSetup, Point, linear_step_times, sim_requests, structure_check
from routerwise.serving import architectures
from routerwise.serving.engine import setup_for, simulate_engine

TRUE = dict(decode_base_ms=3.0, decode_ms_per_seq=0.25, prefill_base_ms=2.0,
            prefill_ms_per_token=0.1)
REQUEST_OVERHEAD_MS = 6.0
LIMITS = dict(max_num_batched_tokens=2048, max_num_seqs=128, kv_capacity_tokens=200_000)


def _setup(step) -> ModelSetup:
    return ModelSetup(step, architectures.get("llama-3.2-3b-instruct"), **LIMITS)


def _point(rate: float, n: int, seed: int, extra_ttft_ms: float = 0.0) -> Point:
    """A load point measured on an engine that is exactly the kit's scheduler with TRUE."""
    rng = np.random.default_rng(seed)
    send = np.cumsum(rng.exponential(1 / rate, n))
    df = pd.DataFrame({"ok": True, "send_s": send, "prompt_tokens": 128,
                       "completion_tokens": 32})
    step = linear_step_times(**TRUE)
    setup = setup_for("vllm-v1", step, arch=architectures.get("llama-3.2-3b-instruct"),
                      max_num_seqs=128, max_num_batched_tokens=2048,
                      kv_capacity_tokens=200_000, request_overhead_ms=REQUEST_OVERHEAD_MS,
                      iteration_overhead_ms=0.0, seq_overhead_us=0.0, layer_overhead_us=0.0)
    res = simulate_engine(step, sim_requests(df), setup, warmup_fraction=0.0)
    # the extra delay grows with the rate: something outside the engine (a busy front end)
    df["ttft_ms"] = res.ttft_ms + extra_ttft_ms
    df["tpot_ms"] = res.tpot_ms
    df["end_s"] = send + res.e2e_ms / 1000
    return Point("m", rate, 0, df)


def test_an_engine_that_follows_the_scheduler_is_fitted_at_every_rate():
    points = [_point(r, 120, seed=i) for i, r in enumerate((5.0, 20.0, 40.0))]
    # start from a probe that read every cost 60% high
    probe = linear_step_times(*(1.6 * TRUE[k] for k in STRUCTURE_KEYS[:4]))
    out = structure_check(_setup(probe), points)
    for lv in out["levels"]:
        assert abs(lv["signed_err_pct_ttft_mean"]) < 3.0
        assert abs(lv["signed_err_pct_tpot_mean"]) < 3.0
    assert out["fitted"]["request_overhead_ms"] == pytest.approx(REQUEST_OVERHEAD_MS, rel=0.25)
    assert out["fitted"]["decode_base_ms"] == pytest.approx(TRUE["decode_base_ms"], rel=0.25)


def test_a_delay_outside_the_engine_that_grows_with_load_is_left_as_error():
    points = [_point(r, 120, seed=i, extra_ttft_ms=x) for i, (r, x) in
              enumerate(((5.0, 0.0), (20.0, 0.0), (40.0, 25.0)))]
    out = structure_check(_setup(linear_step_times(**TRUE)), points)
    worst = max(abs(lv["signed_err_pct_ttft_mean"]) for lv in out["levels"])
    assert worst > 10.0


def test_calibration_finds_a_machine_faster_than_its_step_probe():
    """The sweep ran on steps 0.8x the probe's (the machine's speed drifted between them): the
    step factor takes it, the overheads stay what they were."""
    from profiling.engine_check import calibrate, level_table

    truth = linear_step_times(**TRUE)
    probe = linear_step_times(*(TRUE[k] / 0.8 for k in STRUCTURE_KEYS[:4]))
    points = [_point(r, 150, seed=i) for i, r in enumerate((5.0, 12.0, 30.0, 45.0))]
    fitted = calibrate(_setup(probe), points[:2])
    assert fitted["step_scale"] == pytest.approx(0.8, abs=0.06)
    assert fitted["request_overhead_ms"] == pytest.approx(REQUEST_OVERHEAD_MS, abs=1.5)
    held = level_table(points[2:], {"m": _setup(probe)}, {"m": fitted}, "calibrated")
    assert held["abs_err_pct_ttft_mean"].max() < 5.0
    assert held["abs_err_pct_tpot_mean"].max() < 5.0
    # without the factor the same data are predicted worse
    unscaled = level_table(points[2:], {"m": _setup(probe)},
                           {"m": {**fitted, "step_scale": 1.0}}, "no factor")
    assert unscaled["abs_err_pct_tpot_mean"].max() > 15.0
    assert truth.decode_ms(4, 0) == pytest.approx(0.8 * probe.decode_ms(4, 0))


def test_the_front_end_check_stretches_the_request_overhead_by_the_measured_busy_share():
    from profiling.engine_check import front_end_check

    def pt(rate, api, gen):
        return Point("m", rate, 0, pd.DataFrame({"ok": [True], "api_server_busy": [api],
                                                 "loadgen_busy": [gen]}))

    # u = 0.2 at both calibration rates: S = 10 ms x 0.8 = 8 ms; u = 0.6 -> 8 / 0.4 = 20 ms
    points = [pt(4.0, 0.1, 0.1), pt(8.0, 0.15, 0.05), pt(30.0, 0.35, 0.25)]
    levels = pd.DataFrame({"model": "m", "rate_rps": [4.0, 8.0, 30.0],
                           "meas_ttft_mean_ms": [30.0, 31.0, 45.0],
                           "sim_ttft_mean_ms": [30.0, 31.0, 35.0]})
    out = front_end_check(levels, points, {"m": {"request_overhead_ms": 10.0}},
                          {"m": [4.0, 8.0]}).set_index("rate_rps")
    assert out.loc[4.0, "front_end_extra_ms"] == pytest.approx(0.0)
    assert out.loc[30.0, "front_end_busy"] == pytest.approx(0.6)
    assert out.loc[30.0, "front_end_extra_ms"] == pytest.approx(10.0)
    assert out.loc[30.0, "signed_err_pct_ttft_mean_front_end"] == pytest.approx(0.0)
    # points without the busy columns: no claim
    bare = [Point("m", r, 0, pd.DataFrame({"ok": [True]})) for r in (4.0, 8.0, 30.0)]
    assert front_end_check(levels, bare, {"m": {"request_overhead_ms": 10.0}},
                           {"m": [4.0, 8.0]})["front_end_extra_ms"].isna().all()
