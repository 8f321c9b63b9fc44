"""Architectures, memory model, compute-share assumption and the fitted step-cost model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mirror

from routerwise.errors import DataError, ValidationError
from routerwise.serving import architectures, compute_share, hardware, memory, stepcost

# --- architectures ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(architectures.REGISTRY))
def test_derived_parameter_count_matches_published(name):
    arch = architectures.REGISTRY[name]
    assert abs(arch.param_error()) < 0.02, (name, arch.param_count(), arch.params_b)
    assert arch.source.startswith("https://huggingface.co/") and arch.source.endswith(
        "config.json")


def test_derived_quantities_of_llama3_8b():
    a = architectures.get("meta-llama/Meta-Llama-3-8B")
    assert a.kv_bytes_per_token(2) == 2 * 32 * 8 * 128 * 2
    assert a.weight_bytes(2) == 2 * a.param_count()
    # 2 FLOPs per active weight, plus QK^T and PV against the context
    assert a.flops_per_token(1000) - a.flops_per_token(0) == pytest.approx(4 * 32 * 32 * 128 * 1000)
    mix = architectures.get("mixtral-8x7b-instruct-v0.1")
    assert mix.active_params() < 0.35 * mix.param_count()  # 2 of 8 experts per token


def test_unknown_architecture_says_how_to_fix():
    with pytest.raises(ValidationError, match="config.json"):
        architectures.get("no-such-model")


@needs_mirror
def test_registry_matches_the_shapes_vidur_profiled():
    from routerwise.data.registry import REGISTRY, fetch

    for key in (k for k in REGISTRY if k.startswith("vidur.mlp.a100.")):
        row = pd.read_csv(fetch(key), nrows=1).iloc[0]
        a = architectures.get(key.split(".", 3)[3])
        assert (row["n_head"], row["n_kv_head"], row["n_embd"], row["n_expanded_embd"]) == (
            a.num_heads, a.num_kv_heads, a.hidden_size, a.intermediate_size), key
        assert bool(row["use_gated_mlp"]) == a.gated_mlp


# --- memory -----------------------------------------------------------------------------------


def test_shard_memory_falls_with_tp_and_capacity_inverts_it():
    arch = architectures.get("llama-3.3-70b-instruct")
    need = memory.shard_memory_table(arch, (1, 2, 4))
    assert need[1] > need[2] > need[4] > arch.weight_bytes() / 4 / 1e9
    assert not memory.fits(arch, 1, "A100-80GB") and memory.fits(arch, 4, "A100-80GB")
    gpu = hardware.gpu_spec("A100-80GB")
    share = need[4] / gpu.memory_gb  # exactly the modelled need of one shard
    cap = memory.kv_capacity_tokens(arch, 4, gpu, share)
    assert abs(cap - memory.DEFAULT.kv_reserve_tokens) <= 4
    assert memory.kv_capacity_tokens(arch, 1, gpu, 1.0) == 0


# --- compute share ----------------------------------------------------------------------------


def test_compute_share_law():
    m = compute_share.DEFAULT
    assert compute_share.step_time_scale(1.0, "compute") == 1.0
    assert compute_share.step_time_scale(0.5, "compute") == pytest.approx(2.0)
    assert compute_share.step_time_scale(0.5, "memory") == 1.0  # above rho_bw: full bandwidth
    assert compute_share.step_time_scale(0.1, "memory") == pytest.approx(m.rho_bw / 0.1)
    with pytest.raises(ValidationError):
        compute_share.step_time_scale(0.0, "compute")
    with pytest.raises(ValidationError):
        compute_share.step_time_scale(0.5, "io")


def test_measured_share_table_replaces_the_law(tmp_path):
    p = tmp_path / "share.csv"
    pd.DataFrame({"compute_share": [0.25, 0.25, 1.0, 1.0], "step_kind": ["compute", "memory"] * 2,
                  "slowdown": [3.0, 1.5, 1.0, 1.0]}).to_csv(p, index=False)
    m = compute_share.ComputeShareModel.from_table(p)
    assert m.source == "measured"
    assert m.slowdown(0.25, "compute") == pytest.approx(3.0)
    assert m.slowdown(0.5, "memory") == pytest.approx(1.0 + 0.5 * (2.0 - 1.0) / 3.0)
    pd.DataFrame({"compute_share": [1.0], "step_kind": ["compute"], "slowdown": [1.0]}).to_csv(
        p, index=False)
    with pytest.raises(DataError):
        compute_share.ComputeShareModel.from_table(p)


def test_share_slowdowns_from_a_measured_step_table():
    rows = []
    for share, fc, fm in ((1.0, 1.0, 1.0), (0.5, 1.9, 1.1)):
        for b in (1, 8):
            rows.append(("m", "prefill", b, 512, share, 10.0 * b * fc, ""))
            rows.append(("m", "decode", b, 512, share, 5.0 * fm, ""))
    df = pd.DataFrame(rows, columns=["model", "phase", "batch_size", "context_len",
                                     "compute_share", "step_ms_median", "error"])
    m = compute_share.ComputeShareModel.from_step_table(df)
    assert m.slowdown(0.5, "compute") == pytest.approx(1.9)
    assert m.slowdown(0.5, "memory") == pytest.approx(1.1)


# --- step times -------------------------------------------------------------------------------


def _toy_params() -> stepcost.StepCostParams:
    fam = {f: {"e_c": 0.6, "e_b": 0.8, "e_a": 0.5, "e_kv": 0.7} for f in stepcost.FAMILIES}
    eng = {e: {f: {k: 1.0 for k in stepcost._ENGINE_USES[e]} for f in stepcost.FAMILIES}
           for e in stepcost.ENGINES}
    ar = {f: {2: (0.03, 150.0), 4: (0.04, 120.0)} for f in stepcost.FAMILIES}
    return stepcost.StepCostParams(fam, eng, ar, q=3.0)


def test_replica_step_times_follow_the_model():
    p = _toy_params()
    arch = architectures.get("llama-3.1-8b-instruct")
    st = stepcost.replica_step_times(arch, "A100-80GB", 2, 1.0, params=p, max_batched_tokens=4096,
                                     max_seqs=64)
    assert np.all(np.diff(st.prefill_by_tokens_ms[1:]) >= 0)
    assert np.all(np.diff(st.decode_base_ms[1:]) >= 0)
    # decode is linear in the cached context: the table reproduces a direct evaluation
    gpu = hardware.gpu_spec("A100-80GB")
    direct = stepcost.forward_ms(p, stepcost.Passes(
        [arch], [gpu], ["vllm"], np.array([2]), np.array([16.0]), np.zeros(1),
        np.array([16 * 3000.0]), np.array([16.0]), np.zeros(1), np.zeros(1, bool)))[0]
    assert st.decode_ms(16, 16 * 3000) == pytest.approx(direct, rel=1e-9)
    # a smaller compute share never speeds a step up, and slows compute-bound prefill most
    slow = stepcost.replica_step_times(arch, "A100-80GB", 2, 0.2, params=p,
                                       max_batched_tokens=4096, max_seqs=64)
    assert slow.prefill_ms(4096, 4096**2, 1) / st.prefill_ms(4096, 4096**2, 1) > 3
    assert np.all(slow.decode_base_ms >= st.decode_base_ms - 1e-12)


def test_measured_step_table_replaces_the_fit():
    rows = []
    for b in (1, 2, 4, 8):
        for L in (128, 512, 2048):
            n = b * L
            rows.append(("m", "prefill", b, L, 1.0, 3.0 + 0.01 * n + 1e-7 * b * L * L + 0.2 * b))
            rows.append(("m", "decode", b, L, 1.0, 5.0 + 0.05 * b + 2e-5 * b * L))
    df = pd.DataFrame(rows, columns=list(stepcost.MEASURED_COLUMNS))
    st = stepcost.measured_step_times(df, "m", max_batched_tokens=4096, max_seqs=16)
    assert st.source == "measured"
    assert st.prefill_ms(1024, 2 * 512**2, 2) == pytest.approx(3 + 10.24 + 1e-7 * 2 * 512**2 + 0.4,
                                                               rel=1e-6)
    assert st.decode_ms(8, 8 * 1000) == pytest.approx(5 + 0.4 + 0.16, rel=1e-6)
    with pytest.raises(DataError):
        stepcost.measured_step_times(df, "other-model")


def test_params_round_trip_and_version_check():
    p = _toy_params()
    q = stepcost.StepCostParams.from_json(json.loads(json.dumps(p.to_json())))
    assert q.to_json() == p.to_json()
    bad = dict(p.to_json(), version="old")
    with pytest.raises(DataError, match="refit"):
        stepcost.StepCostParams.from_json(bad)


# --- the fit against measured rows ------------------------------------------------------------


@pytest.fixture(scope="module")
def measurements():
    return stepcost.load_measurements()


@pytest.fixture(scope="module")
def fitted(measurements):
    return stepcost.fit_params(measurements)


@needs_mirror
def test_exclusions_are_recorded(measurements):
    rows = measurements.rows
    sw = rows[rows["source"] == "splitwise"]
    capped = sw[sw["excluded"].str.startswith("memory-capped")]
    assert len(capped) and set(capped["batch"]) == {64} and set(capped["tp"]) == {2}
    assert (sw[sw["gpu"] == "h100-80gb-pcap"]["excluded"] != "").all()
    ib = rows[rows["source"] == "inference_bench"]
    kv = ib[ib["excluded"].str.startswith("KV demand")]
    assert len(kv) and (kv["batch"] * 2 * kv["in_len"] >= 16384).all()
    assert (rows["excluded"] == "").sum() > 1500


@needs_mirror
def test_fit_reproduces_the_measured_rows(fitted, measurements):
    err = stepcost.in_sample_errors(fitted, measurements)
    assert set(err["source"]) == {"inference_bench", "splitwise", "vidur"}
    assert err["median_ape_pct"].median() < 6.0
    assert (err["median_ape_pct"] < 12.0).all(), err.sort_values("median_ape_pct").tail()
    for fam in stepcost.FAMILIES:
        for k, v in fitted.family[fam].items():
            assert 0.05 < v <= 1.0, (fam, k, v)


@needs_mirror
def test_leave_one_model_out_predicts_the_held_out_model(measurements):
    lomo = stepcost.leave_one_model_out(measurements, models=["Meta-Llama-3-8B"])
    assert set(lomo["source"]) == {"inference_bench", "vidur"}
    assert (lomo["median_ape_pct"] < 15.0).all(), lomo


@needs_mirror
def test_fit_is_cached_and_deterministic(tmp_path, monkeypatch, fitted):
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path))
    calls = []
    real = stepcost.fit_params
    monkeypatch.setattr(stepcost, "fit_params", lambda *a, **k: calls.append(1) or fitted)
    first = stepcost.fit()
    second = stepcost.fit()
    assert calls == [1] and first.to_json() == second.to_json()
    files = list((tmp_path / "stepcost").glob("params-*.json"))
    assert len(files) == 1
    files[0].write_text("{not json")
    stepcost.fit()
    assert calls == [1, 1]
    monkeypatch.setattr(stepcost, "fit_params", real)
