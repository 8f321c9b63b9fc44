"""Step probes repeated through a run: the median table, and measure_model's order of probes and
load points (a probe round before each repeat cycle, resumable)."""

from __future__ import annotations

import contextlib
import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from profiling import engine_check, launcher, loadgen, served_steps, tiny_models, vllm_server
from profiling.engine_check import measure_model, read_step_rounds, steps_path
from profiling.gpu_steps import LlamaShape, StepPoint, median_steps, step_row, steps_frame
from routerwise.errors import ValidationError

SHAPE = LlamaShape("m", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=4,
                   intermediate_size=128, vocab_size=512)
GRID = [StepPoint("prefill", 1, 128), StepPoint("decode", 1, 152), StepPoint("decode", 4, 152)]


def _table(ms: dict[tuple, list[float]], *, grid=GRID) -> pd.DataFrame:
    return steps_frame([step_row(SHAPE, p, ms[(p.phase, p.batch_size)], env={}, warmup=1)
                        for p in grid])


def test_the_median_table_takes_each_points_median_over_the_probes():
    probes = [_table({("prefill", 1): [4.0 * f], ("decode", 1): [2.0 * f],
                      ("decode", 4): [3.0 * f, 3.0 * f]}) for f in (1.0, 1.5, 0.8)]
    got = median_steps(probes).set_index(["phase", "batch_size"])
    assert got.loc[("prefill", 1), "step_ms_median"] == pytest.approx(4.0)
    assert got.loc[("decode", 1), "step_ms_median"] == pytest.approx(2.0)
    assert got.loc[("decode", 4), "step_ms_p90"] == pytest.approx(3.0)
    assert got.loc[("decode", 4), "repeats"] == 6  # 2 per probe
    assert list(median_steps(probes).columns) == list(probes[0].columns)
    # rows in another order are matched by their point, not their position
    shuffled = [probes[0], probes[1].iloc[::-1], probes[2]]
    assert median_steps(shuffled)["step_ms_median"].tolist() == \
        median_steps(probes)["step_ms_median"].tolist()
    pd.testing.assert_frame_equal(median_steps(probes[:1]), probes[0])


def test_probes_of_other_points_are_not_combined():
    a = _table({("prefill", 1): [4.0], ("decode", 1): [2.0], ("decode", 4): [3.0]})
    b = _table({("prefill", 1): [4.0], ("decode", 1): [2.0]}, grid=GRID[:2])
    with pytest.raises(ValidationError, match="other points"):
        median_steps([a, b])
    with pytest.raises(ValidationError, match="at least one"):
        median_steps([])


@pytest.fixture
def fake_engine(monkeypatch, tmp_path):
    """measure_model's engine, load generator and probes, recording what ran in what order;
    each probe round k reads steps (k + 1) times the base costs."""
    events = []
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "hidden_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
        "vocab_size": 512, "max_position_embeddings": 512}))

    @contextlib.contextmanager
    def launch(spec, log_path):
        events.append("start")
        yield SimpleNamespace(provenance=lambda: {}, processes=lambda: [],
                              base_url="http://127.0.0.1:1",
                              process=SimpleNamespace(pid=os.getpid()))
        events.append("stop")

    def probe(base_url, model, config, *, seed, **kw):
        k = sum(e.startswith("probe") for e in events)
        events.append(f"probe{k}")
        return _table({("prefill", 1): [4.0 * (k + 1)], ("decode", 1): [2.0 * (k + 1)],
                       ("decode", 4): [3.0 * (k + 1)]})

    def run_load(schedule, prompts, ep, progress=False):
        n = len(schedule)
        send = np.asarray(schedule.times_s)
        end = send + 0.1
        if n > 10 and not send.any():  # the capacity probe: closed loop, 0.1 s per request
            events.append("capacity")
            send = (np.arange(n) // ep.max_concurrency) * 0.1
            end = send + 0.1
        elif n > 10:  # not the warm-up
            events.append(f"point{schedule.times_s[0]:.6f}")
        return SimpleNamespace(requests=pd.DataFrame({
            "request_id": range(n), "prompt_id": range(n), "scheduled_s": send,
            "send_s": send, "first_token_s": send + 0.01, "end_s": end,
            "send_lag_ms": 0.0, "ttft_ms": 10.0, "tpot_ms": 3.0, "e2e_ms": 100.0,
            "itl_max_ms": 4.0, "prompt_tokens": 128, "completion_tokens": 32,
            "tokens_from_usage": True, "num_chunks": 32, "http_status": 200, "ok": True,
            "error_kind": "", "error_message": "", "waited_for_cap": False}))

    monkeypatch.setattr(tiny_models, "build_tiny_model", lambda *a, **k: folder)
    monkeypatch.setattr(launcher, "launch", launch)
    monkeypatch.setattr(launcher, "engine_version", lambda: "fake 0")
    monkeypatch.setattr(vllm_server, "vllm_spec", lambda *a, **k: SimpleNamespace(
        child_cpu_affinity={}, cpu_affinity=(), served_model_name="m"))
    monkeypatch.setattr(loadgen, "run_load", run_load)
    monkeypatch.setattr(served_steps, "probe_served_steps", probe)
    monkeypatch.setattr(served_steps, "decode_step_ms", lambda *a, **k: 2.0)
    monkeypatch.setattr(engine_check, "speed_index_ms", lambda *a, **k: 1.0)

    def probe_front_end(*a, **k):
        events.append("front end")
        return pd.DataFrame({"burst": [1]})
    monkeypatch.setattr(engine_check, "probe_front_end", probe_front_end)
    return events


def test_a_probe_round_runs_before_each_repeat_cycle_and_the_table_is_their_median(
        tmp_path, fake_engine):
    results = tmp_path / "results"
    points, steps, prov = measure_model("m", results, (4.0, 12.0), repeats=3, num_requests=20,
                                        warmup_requests=5, probe_rounds=3,
                                        front_end_probe=True, log=lambda *a: None)
    kinds = [e if not e.startswith("point") else "point" for e in fake_engine]
    assert kinds == ["start", "probe0", "front end", "point", "point", "probe1", "point", "point",
                     "probe2", "point", "point", "stop"]
    assert [len(read_step_rounds(results, "m"))] == [3]
    assert steps_path(results, "m", 2).name == "steps-served-2.csv"
    # rounds read 1x, 2x, 3x the base costs: the median is the 2x round
    assert steps.set_index(["phase", "batch_size"]).loc[("decode", 4), "step_ms_median"] \
        == pytest.approx(6.0)
    assert prov["step_probe_rounds"] == 3 and len(points) == 6


def test_rounds_missing_after_every_point_was_measured_are_probed_on_a_rerun(
        tmp_path, fake_engine):
    results = tmp_path / "results"
    run = dict(repeats=2, num_requests=20, warmup_requests=5, log=lambda *a: None)
    measure_model("m", results, (4.0, 12.0), **run)
    assert len(read_step_rounds(results, "m")) == 1
    fake_engine.clear()
    measure_model("m", results, (4.0, 12.0), probe_rounds=2, **run)
    assert fake_engine == ["start", "probe0", "stop"]  # no point again; the missing round
    assert len(read_step_rounds(results, "m")) == 2
    fake_engine.clear()
    measure_model("m", results, (4.0, 12.0), probe_rounds=2, **run)
    assert fake_engine == []  # nothing missing: no server started
    with pytest.raises(ValidationError, match="probe_rounds"):
        measure_model("m", results, (4.0,), probe_rounds=0, log=lambda *a: None)


def test_steal_share_is_the_stolen_share_of_the_ticks_between_two_readings():
    assert engine_check.steal_share((10, 1000), (60, 1500)) == pytest.approx(0.1)
    assert np.isnan(engine_check.steal_share((10, 1000), (10, 1000)))  # no time passed
    steal, total = engine_check.steal_totals()
    if total:  # Linux: every core's ticks; one core's are part of them
        assert 0 <= steal <= total
        assert engine_check.steal_totals([0])[1] <= total
        assert engine_check.steal_totals(None)[1] > 0  # no cores given: the whole machine


def test_capacity_is_the_closed_loop_rate_while_the_batch_stays_full():
    # 4 in flight, 1 s each: waves end at 1, 2, 3, 4 s; the steady window holds 4 req/s
    ends = np.repeat([1.0, 2.0, 3.0, 4.0], 4)
    assert engine_check.capacity_rps(ends, 4) == pytest.approx(4.0)
    # a slow first wave (kernels built on the fly) is outside the window
    assert engine_check.capacity_rps(np.r_[[5.0] * 4, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8], 4) \
        == pytest.approx(4.0)
    with pytest.raises(ValidationError, match="no steady window"):
        engine_check.capacity_rps(np.ones(8), 4)


def test_rates_are_fractions_of_the_capacity_to_two_digits():
    assert engine_check.capacity_rates(30.3, (0.1, 0.3, 0.5, 0.7, 0.9, 1.25)) == (
        3.0, 9.1, 15.0, 21.0, 27.0, 38.0)
    with pytest.raises(ValidationError, match="distinct"):
        engine_check.capacity_rates(10.0, (0.1, 0.101))
    with pytest.raises(ValidationError, match="positive"):
        engine_check.capacity_rates(0.0, (0.5,))
    with pytest.raises(ValidationError, match="positive"):
        engine_check.capacity_rates(10.0, (0.5, -1.0))


def test_rate_fractions_probe_the_capacity_once_then_sweep_its_fractions(tmp_path, fake_engine):
    results = tmp_path / "results"
    run = dict(repeats=1, num_requests=20, warmup_requests=5, log=lambda *a: None)
    points, _, prov = measure_model("m", results, None, rate_fractions=(0.1, 0.5), **run)
    kinds = [e if not e.startswith("point") else "point" for e in fake_engine]
    assert kinds == ["start", "capacity", "probe0", "point", "point", "stop"]
    # 128 in flight (max_num_seqs), 0.1 s per request: 1280 req/s
    assert prov["capacity"]["capacity_rps"] == pytest.approx(1280.0)
    assert prov["rates_rps"] == [130.0, 640.0] and [p.rate_rps for p in points] == [130.0, 640.0]
    assert engine_check.read_capacity(results, "m")["concurrency"] == 128
    fake_engine.clear()  # a rerun reads the capacity and finds every point: nothing starts
    again, _, prov2 = measure_model("m", results, None, rate_fractions=(0.1, 0.5), **run)
    assert fake_engine == [] and prov2["rates_rps"] == [130.0, 640.0] and len(again) == 2
    with pytest.raises(ValidationError, match="either rates or rate_fractions"):
        measure_model("m", results, (4.0,), rate_fractions=(0.5,), **run)
    with pytest.raises(ValidationError, match="either rates or rate_fractions"):
        measure_model("m", results, None, **run)
