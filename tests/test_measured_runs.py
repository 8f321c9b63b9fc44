"""Measured online runs: counts and hand-checked values of the real files, typed errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mirror

from routerwise.data import measured_runs as mr
from routerwise.errors import DataError
from routerwise.serving import latency_validation as lv


@needs_mirror
def test_llmd_exp0_counts_rates_and_first_request():
    run = mr.load_llmd_benchmark("exp-0")
    m = run.meta
    assert (m.gpu, m.tp, m.hf_architecture) == ("A100-80GB", 2, "llama-3.3-70b-instruct")
    assert m.gpu_memory_utilization == pytest.approx(0.95)  # parsed from the deployment yaml
    assert "A100-SXM4-80GB" in m.gpu_note
    r = run.rates()
    assert r["rate_rps"].tolist() == [0.5, 0.67, 0.84, 1.0, 1.17, 1.34]
    assert r["requests"].tolist() == [252] * 6
    # first row of LMBench_sharegpt_output_1.csv (by hand): 689 prompt, 275 generated tokens,
    # ttft 0.17651 s, generation_time 16.18646 s -> e2e 16.36298 s, tpot 16186.46 / 274 ms
    one = run.requests[run.requests["rate_rps"] == 1.0].iloc[0]
    assert (one["prompt_tokens"], one["output_tokens"]) == (689, 275)
    assert one["arrival_s"] == 0.0
    assert one["ttft_ms"] == pytest.approx(176.5127, abs=1e-3)
    assert one["e2e_ms"] == pytest.approx((1746155425.9982946 - 1746155409.635317) * 1e3)
    assert one["tpot_ms"] == pytest.approx((one["e2e_ms"] - one["ttft_ms"]) / 274)
    # evenly spaced arrivals at the file's rate
    a = run.requests[run.requests["segment"] == 0]["arrival_s"].to_numpy()
    assert np.median(np.diff(a)) == pytest.approx(2.0, rel=0.01)


@needs_mirror
def test_inference_sim_uses_the_config_not_the_folder_name():
    run = mr.load_inference_sim("jan20-prefill-llama7b-tp1-1")
    assert run.meta.model == "codellama/CodeLlama-34b-Instruct-hf"
    assert lv.architecture_of(run.meta).name == "CodeLlama-34b-Instruct-hf"
    assert run.meta.max_num_batched_tokens == 4096 and run.meta.max_num_seqs == 256
    assert len(run.requests) == 197
    assert run.requests["queue_ms"].notna().all() and run.requests["replay"].nunique() == 1
    small = mr.load_inference_sim("jan20-codellama-prefill-1")
    assert small.meta.max_num_batched_tokens == 64 and small.meta.max_num_seqs == 32
    # the throughput burst of the sweep: 40 requests arriving within half a second
    r = small.rates()
    burst = r[r["rate_rps"] > 50]
    assert burst["requests"].tolist() == [40]


@needs_mirror
def test_llmservingsim_runs_and_unknown_architecture():
    run = mr.load_llmservingsim("RTX4090", "Llama-3.1-8B")
    assert len(run.requests) == 300 and run.meta.gpu == "NVIDIA GeForce RTX 4090"
    assert run.meta.kv_capacity_tokens == 41408 and run.meta.max_num_batched_tokens == 2048
    assert run.meta.rate_rps == 10.0
    assert run.requests["ttft_ms"].min() > 0
    scout = mr.load_llmd_benchmark("exp-4")
    with pytest.raises(lv.UnknownArchitecture, match="Llama-4-Scout"):
        lv.architecture_of(scout.meta)


@needs_mirror
def test_load_all_lists_every_run_and_the_exclusions():
    runs, skipped = mr.load_all(strict=True)
    assert len(runs) == len(mr.LLMD_EXPERIMENTS) + len(mr.ISIM_EXPERIMENTS) + len(
        mr.LLMSERVINGSIM_RUNS)
    assert set(skipped) == set(mr.EXCLUDED_SOURCES)
    for r in runs:
        assert list(r.requests.columns) == list(mr.REQUEST_COLUMNS)


def _meta(**kw):
    base = dict(run_id="x", source_keys=(), engine="vllm", engine_version="0", model="m",
                gpu="A100-80GB", tp=1)
    return mr.RunMeta(**{**base, **kw})


@pytest.mark.parametrize("field,value", [("gpu", ""), ("model", ""), ("tp", 0)])
def test_metadata_lacking_gpu_model_or_tp_is_a_typed_error(field, value):
    with pytest.raises(mr.RunMetadataError, match=field):
        mr.check_meta(_meta(**{field: value}))


def test_a_rate_with_no_completed_request_is_a_typed_error():
    df = pd.DataFrame({"replay": [0, 0, 1], "segment": [0, 0, 1], "rate_rps": [1.0, 1.0, 2.0],
                       "arrival_s": [0.0, 1.0, 0.0], "prompt_tokens": [10, 10, 10],
                       "output_tokens": [5, 5, 5], "ttft_ms": [10.0, 12.0, np.nan],
                       "e2e_ms": [50.0, 52.0, np.nan]})
    with pytest.raises(mr.EmptyRateError, match="2 req/s"):
        mr._finish(_meta(model="meta-llama/Llama-2-7b-hf"), df)
    assert issubclass(mr.EmptyRateError, DataError)


def test_unknown_architecture_is_a_typed_error():
    with pytest.raises(lv.UnknownArchitecture, match="no-such-model"):
        lv.architecture_of(_meta(model="no-such-model"))


def test_synthetic_otlp_file_parses(tmp_path):
    span = {"startTimeUnixNano": "2000000000", "attributes": [
        {"key": "gen_ai.latency.time_to_first_token", "value": {"doubleValue": 0.1}},
        {"key": "gen_ai.latency.e2e", "value": {"doubleValue": 1.1}},
        {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "7"}},
        {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "11"}}]}
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    df = mr._otlp_spans(p)
    assert df.loc[0, "start_s"] == 2.0 and df.loc[0, "output"] == 11.0
    empty = tmp_path / "e.json"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no OTLP spans"):
        mr._otlp_spans(empty)


def test_sweep_segmentation_joins_phases():
    # 3 synchronous requests 5 s apart, a burst of 5 within 0.1 s, then 10 at 1 req/s
    t = np.concatenate([[0.0, 5.0, 10.0], 20.0 + 0.02 * np.arange(5), 30.0 + np.arange(10)])
    seg = mr._sweep_segments(t)
    assert seg.tolist() == [0] * 3 + [1] * 5 + [2] * 10
