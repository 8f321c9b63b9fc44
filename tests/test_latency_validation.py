"""Latency validation: saturation rule, planning margin, replay of measured runs, calibration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mirror

from routerwise.data import measured_runs as mr
from routerwise.serving import curve_grid as pg
from routerwise.serving import engine as eng
from routerwise.serving import latency_validation as lv


def _levels(rates, ttft, requests=50, completion=None):
    n = len(rates)
    return pd.DataFrame({"rate_rps": rates, "requests": [requests] * n,
                         "meas_ttft_mean_ms": ttft, "sim_ttft_mean_ms": ttft,
                         "meas_completion_rps": completion or [np.nan] * n,
                         "sim_completion_rps": completion or [np.nan] * n})


def test_saturation_rate_interpolates_the_ttft_knee():
    # lightest 100 ms; crosses 300 ms between 2 req/s (200 ms) and 3 req/s (800 ms): in log
    # TTFT the crossing is at (ln 300 - ln 200) / (ln 800 - ln 200) = 0.2925 of the way
    rate, rule = lv.saturation_rate(_levels([1.0, 2.0, 3.0], [100.0, 200.0, 800.0]), "meas")
    want = 2.0 + (math.log(300) - math.log(200)) / (math.log(800) - math.log(200))
    assert rate == pytest.approx(want) and "crosses" in rule
    never, rule = lv.saturation_rate(_levels([1.0, 2.0, 3.0], [100.0, 110.0, 120.0]), "meas")
    assert math.isnan(never) and "not reached" in rule


def test_saturation_rate_of_a_throughput_burst_is_its_completion_rate():
    lv_ = _levels([0.5, 0.6, 80.0], [100.0, 100.0, 5000.0], completion=[0.5, 0.6, 1.7])
    rate, rule = lv.saturation_rate(lv_, "sim")
    assert rate == pytest.approx(1.7) and "burst" in rule


def test_planning_margin_lifts_the_mean_signed_error_to_zero():
    t = pd.DataFrame({"usable": True, "below_90pct_sat": True,
                      "signed_err_pct_ttft_mean": [-10.0, -30.0, 5.0, np.nan],
                      "signed_err_pct_tpot_mean": [10.0, 20.0, -5.0, 0.0]})
    m = lv.planning_margin(t)
    assert m["ttft"] == pytest.approx(1.0 / (1.0 - 35.0 / 300.0), abs=1e-4)
    assert m["ttft"] >= 1.0 / (1.0 - 35.0 / 300.0)  # rounded up, never below
    assert m["tpot"] == 1.0  # already pessimistic on average: no correction
    # corrected errors: mean of (1 + e) * margin - 1 is >= 0
    e = np.array([-10.0, -30.0, 5.0]) / 100
    assert ((1 + e) * m["ttft"] - 1).mean() >= 0


def test_apply_planning_margin_scales_latency_columns_and_says_so():
    df = pd.DataFrame({"load_rps": [1.0], "ttft_mean_ms": [100.0], "tpot_p99_ms": [10.0],
                       "e2e_mean_ms": [1000.0], "provenance": ["sim"]})
    m = lv.PLANNING_MARGINS["vllm-v1"]
    out = lv.apply_planning_margin(df, "vllm-v1")
    assert out["ttft_mean_ms"].iloc[0] == pytest.approx(100.0 * m["ttft"])
    assert out["tpot_p99_ms"].iloc[0] == pytest.approx(10.0 * m["tpot"])
    assert out["e2e_mean_ms"].iloc[0] == pytest.approx(1000.0 * m["tpot"])
    assert out["load_rps"].iloc[0] == 1.0
    assert "planning margin" in out["provenance"].iloc[0]
    assert "none for engine profile 'legacy'" in lv.apply_planning_margin(
        df, "legacy")["provenance"].iloc[0]


def test_grid_options_reject_an_unknown_profile():
    with pytest.raises(eng.UnknownEngineProfile, match="known profiles"):
        pg.GridOptions(engine_profile="tgi")


@needs_mirror
def test_grid_curves_record_profile_and_margin(tmp_path):
    model = "llama-3.2-3b-instruct"
    lengths = pg.LengthSample(np.array([200, 800, 1500]), np.array([50, 200, 400]), "test")
    kw = dict(workers=1, progress=False, cache_dir=tmp_path)
    on = pg.build_profile_table([model], "A100-80GB", (1,), (10,), lengths,
                                options=pg.GridOptions(num_requests=300), **kw)
    off = pg.build_profile_table([model], "A100-80GB", (1,), (10,), lengths,
                                 options=pg.GridOptions(num_requests=300,
                                                        planning_margin=False), **kw)
    prov = on["provenance"].iloc[0]
    assert "engine profile vllm-v1" in prov and "planning margin" in prov
    m = lv.PLANNING_MARGINS["vllm-v1"]
    # same simulation, then scaled: the ratio is exactly the margin
    np.testing.assert_allclose(on["tpot_mean_ms"] / off["tpot_mean_ms"], m["tpot"])
    np.testing.assert_allclose(on["ttft_p99_ms"] / off["ttft_p99_ms"], m["ttft"])


@needs_mirror
def test_replay_of_a_measured_run_and_its_step_substitution():
    run = mr.load_llmd_benchmark("exp-0")
    df = lv.replay(run)
    assert np.isfinite(df["sim_ttft_ms"]).all()
    multi = df["output_tokens"] > 1
    assert (df.loc[multi, "sim_e2e_ms"] > df.loc[multi, "sim_ttft_ms"]).all()
    assert (df.loc[~multi, "sim_e2e_ms"] == df.loc[~multi, "sim_ttft_ms"]).all()
    _, sub = lv.step_times_for(run)
    assert "fitted model" in sub and "llama-3.3-70b-instruct" in sub
    levels, info = lv.run_table(run)
    assert levels["rate_rps"].tolist() == [0.5, 0.67, 0.84, 1.0, 1.17, 1.34]
    # measured knee between 0.84 and 1.0 req/s (TTFT 464 -> 1506 ms)
    assert 0.84 < info["meas_saturation_rps"] < 1.0
    assert levels["below_90pct_sat"].tolist() == [True, True, True, False, False, False]
    # errors are computed from the two columns, not copied
    r = levels.iloc[0]
    assert r["signed_err_pct_ttft_mean"] == pytest.approx(
        100 * (r["sim_ttft_mean_ms"] - r["meas_ttft_mean_ms"]) / r["meas_ttft_mean_ms"])


@needs_mirror
def test_calibration_lowers_the_loss_and_excludes_what_it_cannot_replay():
    runs, skipped = lv.eligible_runs()
    assert "llmd-exp-4" in skipped and any(k.startswith("lss-") for k in skipped)
    run = next(r for r in runs if r.meta.run_id == "isim-jan21-llama7b-train-1")
    zero = dict(request_overhead_ms=0.0, iteration_overhead_ms=0.0, seq_overhead_us=0.0,
                layer_overhead_us=0.0)
    before, _ = lv.run_table(run, overheads=zero)
    cal = lv.calibrate([run], max_nfev=12)
    after, _ = lv.run_table(run, overheads=cal.overheads)
    sel = before["usable"] & before["below_90pct_sat"]
    assert sel.sum() >= 5
    err0 = before.loc[sel, "abs_err_pct_tpot_mean"].median()
    err1 = after.loc[sel, "abs_err_pct_tpot_mean"].median()
    assert err1 < err0  # zero overheads under-predict this run's TPOT by ~25%
    assert cal.notes and "not identified" in cal.notes[0]  # engine-timed run only


@needs_mirror
def test_grid_builds_with_each_vllm_profile(tmp_path):
    """Selectable by name: every vLLM profile builds curves and names itself in them."""
    model = "llama-3.2-3b-instruct"
    lengths = pg.LengthSample(np.array([200, 800, 1500]), np.array([50, 200, 400]), "test")
    caps = {}
    for prof in ("vllm-v0", "vllm-v1"):
        df = pg.build_profile_table([model], "A100-80GB", (1,), (10,), lengths,
                                    options=pg.GridOptions(num_requests=300,
                                                           engine_profile=prof),
                                    workers=1, progress=False, cache_dir=tmp_path)
        assert f"engine profile {prof}" in df["provenance"].iloc[0]
        caps[prof] = df["load_rps"].max()
    assert caps["vllm-v0"] != caps["vllm-v1"]  # different engines, different curves


def test_grid_cache_key_follows_the_margin_and_the_fitted_overheads(monkeypatch):
    lengths = {"m": pg.LengthSample(np.array([10]), np.array([5]), "x")}
    params = pytest.importorskip("routerwise.serving.stepcost").StepCostParams(
        {}, {}, {}, 3.0)
    from routerwise.serving.compute_share import DEFAULT as share
    from routerwise.serving.hardware import gpu_spec

    def key():
        return pg._grid_hash({"m": "m"}, gpu_spec("A100-80GB"), (1,), (10,), lengths,
                             pg.GridOptions(), params, share, None)

    k0 = key()
    monkeypatch.setitem(lv.PLANNING_MARGINS, "vllm-v1", {"ttft": 1.2, "tpot": 1.0})
    k1 = key()
    new = eng.PROFILES["vllm-v1"].__class__(**{**eng.PROFILES["vllm-v1"].__dict__,
                                               "iteration_overhead_ms": 9.0})
    monkeypatch.setitem(eng.PROFILES, "vllm-v1", new)
    k2 = key()
    assert len({k0, k1, k2}) == 3


@needs_mirror
def test_committed_overheads_are_a_fresh_fit_on_every_run():
    """engine.V1_FIT is what calibrate() returns on the eligible runs today (not a stale fit)."""
    from routerwise.serving.engine import V1_FIT
    runs, _ = lv.eligible_runs()
    fit = lv.calibrate(runs).overheads
    for key, value in V1_FIT.items():
        assert value == pytest.approx(fit[key], rel=0.05), key
