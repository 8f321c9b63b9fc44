"""Notebook 07's latencies: the real engine by default, an endpoint, or the simulated fallback,
with every load repeated and the repeats' spread kept (the noise floor of a measurement)."""

import math

import pandas as pd
import pytest
from conftest import needs_mirror
from fake_engine import FakeEngine

from profiling import measure
from profiling.errors import ToolUnavailable
from routerwise.data import latency_table
from routerwise.errors import ValidationError

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]


def _no_engine(monkeypatch):
    import profiling.vllm_server as vs
    monkeypatch.setattr(vs, "engine_installed", lambda: "vLLM is not installed here: run make engine")


@needs_mirror
def test_auto_without_the_engine_falls_back_to_simulation_and_says_why(monkeypatch, tmp_path):
    _no_engine(monkeypatch)
    res = measure.latency_run("auto", out_dir=tmp_path, tp_degrees=[1], shares=[1.0])
    assert res.mode == "simulated" and "not installed" in res.reason
    assert set(res.table["source"]) == {"simulated"} and len(res.table) > 5
    assert res.model == "llama-3.1-8b-instruct" and res.tp_degrees == (1,)


def test_tiny_without_the_engine_is_a_typed_error(monkeypatch, tmp_path):
    _no_engine(monkeypatch)
    with pytest.raises(ToolUnavailable, match="make engine"):
        measure.latency_run("tiny", out_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing built or started


def test_bad_mode_and_missing_endpoint_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="choose one of"):
        measure.latency_run("gpu", out_dir=tmp_path)
    with pytest.raises(ValidationError, match="endpoint="):
        measure.latency_run("endpoint", out_dir=tmp_path)


def test_endpoint_is_swept_with_repeats_and_their_spread(tmp_path):
    with FakeEngine(ttft_s=0.02, tpot_s=0.002) as eng:
        res = measure.latency_run("endpoint", endpoint=eng.url, served_model="fake-model",
                                  model="fake-model", gpu="test-gpu", loads_rps=[8.0, 4.0],
                                  repeats=2, num_requests=6, out_dir=tmp_path)
        again = measure.latency_run("endpoint", endpoint=eng.url, served_model="fake-model",
                                    model="fake-model", gpu="test-gpu", loads_rps=[4.0],
                                    repeats=1, num_requests=6, out_dir=tmp_path)
    assert res.mode == "measured" and "2 loads x 2 repeats x 6 requests" in res.reason
    assert sorted(zip(res.table["load_rps"], res.table["repeat"])) == [
        (4.0, 0), (4.0, 1), (8.0, 0), (8.0, 1)]
    assert set(res.table["source"]) == {"measured"} and (res.table["ttft_mean_ms"] >= 20).all()
    lv = res.levels
    assert list(lv["load_rps"]) == [4.0, 8.0] and list(lv["repeats"]) == [2, 2]
    assert list(lv["num_requests"]) == [12, 12]
    assert (lv["ttft_mean_ms_min"] <= lv["ttft_mean_ms"]).all()
    assert (lv["ttft_mean_ms"] <= lv["ttft_mean_ms_max"]).all()
    latency_table.normalize(lv)  # the levels plot like a profile
    # a rerun measures afresh instead of finding the last run's points finished
    assert again.mode == "measured" and len(again.table) == 1


def test_repeat_levels_mean_range_and_noise():
    base = {"model": "m", "gpu": "cpu", "tp": 1, "compute_share": 1.0, "num_requests": 10,
            "duration_s": 2.0, "source": "measured", "provenance": "{}"}
    rows = [{**base, "load_rps": 4.0, "ttft_mean_ms": 30.0, "ttft_p99_ms": 50.0,
             "tpot_mean_ms": 2.0, "saturated": False},
            {**base, "load_rps": 4.0, "ttft_mean_ms": 50.0, "ttft_p99_ms": 50.0,
             "tpot_mean_ms": 2.0, "saturated": False},
            {**base, "load_rps": 8.0, "ttft_mean_ms": 90.0, "ttft_p99_ms": 100.0,
             "tpot_mean_ms": 3.0, "saturated": False},
            {**base, "load_rps": 8.0, "ttft_mean_ms": 110.0, "ttft_p99_ms": 300.0,
             "tpot_mean_ms": 3.0, "saturated": True}]
    lv = measure.repeat_levels(pd.DataFrame(rows))
    assert list(lv["ttft_mean_ms"]) == [40.0, 100.0]
    assert list(lv["ttft_mean_ms_spread_pct"]) == [50.0, 20.0]   # 100 (max - min) / mean
    assert list(lv["ttft_p99_ms_spread_pct"]) == [0.0, 100.0]
    assert list(lv["saturated"]) == [False, True] and list(lv["num_requests"]) == [20, 20]
    assert measure.repeat_noise_pct(lv) == 35.0
    assert math.isnan(measure.repeat_noise_pct(lv.drop(columns=["ttft_mean_ms_spread_pct"])))


def test_warnings_of_a_measurement_become_notes_not_stderr(monkeypatch, tmp_path, capfd):
    """A late client or a point without server metrics is reported in ``notes``: a notebook
    under nbval fails on a stderr output that a quiet run does not have."""
    import profiling.loadgen as loadgen
    monkeypatch.setattr(loadgen, "lag_warning", lambda lag, limit: "the load generator fell "
                        "behind its schedule (test)")
    with FakeEngine(ttft_s=0.005, tpot_s=0.001) as eng:
        res = measure.latency_run("endpoint", endpoint=eng.url, served_model="fake-model",
                                  model="fake-model", gpu="test-gpu", loads_rps=[4.0],
                                  repeats=1, num_requests=4, out_dir=tmp_path)
    assert res.mode == "measured"
    assert "warning: the load generator fell behind its schedule (test)" in res.notes
    # the fake engine has no /metrics: the sweep's logged warning is a note too
    assert any(n.startswith("warning: no server metrics for this point") for n in res.notes)
    with measure.collect_notes() as notes:
        import logging
        logging.getLogger("profiling.sweep").warning("no server metrics for this point: %s", "x")
        logging.getLogger("profiling.sweep").info("measured")   # below WARNING: not a note
    assert notes == ["warning: no server metrics for this point: x"]
    assert capfd.readouterr().err == ""
