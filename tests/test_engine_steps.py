"""The engine's step costs and the serving model checked against live load points.

The step probe's plain-PyTorch path (a GPU machine without vLLM) runs here on CPU with torch;
the vLLM path runs in benchmarks/bench_real_engine.py. The replay/calibration plumbing is
checked on load points the kit's own simulator produced with known overheads.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from profiling.__main__ import main as profiling_main
from profiling.engine_steps import engine_kwargs
from profiling.gpu_steps import read_steps
from profiling.loadgen import _chunk_has_tokens
from profiling.tiny_models import TINY_MODELS
from routerwise.serving import architectures
from routerwise.serving.engine import setup_for, simulate_engine
from routerwise.serving.simulator import poisson_requests
from routerwise.serving.stepcost import measured_step_times


def _config(tmp_path, name="tiny-llama-s"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_MODELS[name].config()))
    return folder / "config.json"


def test_steps_cli_falls_back_to_plain_torch_when_vllm_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import profiling.vllm_server as vs
    monkeypatch.setattr(vs, "engine_installed", lambda: "vLLM is not installed here")
    out = tmp_path / "steps.csv"
    rc = profiling_main(["steps", "--engine", "auto", "--config", str(_config(tmp_path)),
                         "--device", "cpu", "--dtype", "float32", "--batch", "1", "2",
                         "--context", "8", "16", "--warmup", "0", "--repeats", "1",
                         "--out", str(out)])
    assert rc == 0
    table = read_steps(out)
    assert len(table) == 8 and table["error"].isna().all()
    assert set(table["model"]) == {"tiny-llama-s"} and (table["num_layers"] == 4).all()
    # the table is one the serving model can simulate
    step = measured_step_times(table, "tiny-llama-s", max_batched_tokens=64, max_seqs=4)
    assert step.source == "measured" and step.decode_ms(2, 32.0) > 0


def test_vllm_probe_needs_a_model_folder(tmp_path, capsys):
    rc = profiling_main(["steps", "--engine", "vllm", "--model", "tiny",
                         "--out", str(tmp_path / "s.csv")])
    assert rc == 2 and "--config" in capsys.readouterr().err


def test_probe_runs_the_engine_with_the_servers_flags():
    kw = engine_kwargs(cpu=True)
    assert kw == {"enforce_eager": True, "distributed_executor_backend": "uni",
                  "dtype": "bfloat16", "enable_prefix_caching": False}
    assert engine_kwargs(cpu=False)["dtype"] == "bfloat16"


def test_a_chunk_with_token_ids_but_no_text_carries_tokens():
    # random-weight models generate tokens whose text is empty (partial UTF-8 bytes)
    assert _chunk_has_tokens({"text": "", "token_ids": [17]})
    assert _chunk_has_tokens({"text": "a"})
    assert not _chunk_has_tokens({"text": "", "token_ids": []})
    assert not _chunk_has_tokens({"text": ""})


def _step_table(model: str) -> pd.DataFrame:
    rows = []
    for b in (1, 2, 4, 8):
        for L in (64, 128, 256):
            rows.append({"model": model, "phase": "prefill", "batch_size": b,
                         "context_len": L, "compute_share": 1.0,
                         "step_ms_median": 2.0 + 0.02 * b * L + 1e-5 * b * L * L})
            rows.append({"model": model, "phase": "decode", "batch_size": b,
                         "context_len": L, "compute_share": 1.0,
                         "step_ms_median": 3.0 + 0.2 * b + 1e-4 * b * L})
    return pd.DataFrame(rows)


def test_calibration_on_low_rates_recovers_the_overheads_and_predicts_the_rest(tmp_path):
    from profiling.engine_check import ModelSetup, Point, evaluate
    arch = architectures.from_hf_config(_config(tmp_path), name="tiny-llama-s")
    setup = ModelSetup.from_table(_step_table("tiny-llama-s"), "tiny-llama-s", arch=arch,
                                  max_num_batched_tokens=2048, max_num_seqs=128,
                                  kv_capacity_tokens=100_000)
    true = {"request_overhead_ms": 6.0, "iteration_overhead_ms": 1.5, "seq_overhead_us": 0.0,
            "layer_overhead_us": 0.0}
    eng = setup_for("vllm-v1", setup.step, arch=arch, max_num_seqs=128,
                    max_num_batched_tokens=2048, kv_capacity_tokens=100_000, **true)
    points = []
    for rate in (5.0, 15.0, 100.0, 250.0, 500.0):
        for rep in range(2):
            req = poisson_requests(rate, 80, [128], [32], seed=rep + int(rate))
            res = simulate_engine(setup.step, req, eng, warmup_fraction=0.0)
            send = req.arrival_s
            points.append(Point("tiny-llama-s", rate, rep, pd.DataFrame({
                "ok": True, "send_s": send, "end_s": send + res.e2e_ms / 1e3,
                "prompt_tokens": req.prompt_tokens, "completion_tokens": req.output_tokens,
                "ttft_ms": res.ttft_ms, "tpot_ms": (res.e2e_ms - res.ttft_ms) / 31})))
    out = evaluate(points, {"tiny-llama-s": setup})
    s = out["summary"]
    assert s["calibration_rates_rps"] == {"tiny-llama-s": [5.0, 15.0]}
    fitted = s["overheads"]["tiny-llama-s"]
    assert fitted["request_overhead_ms"] == pytest.approx(6.0, rel=0.05)
    assert fitted["iteration_overhead_ms"] == pytest.approx(1.5, rel=0.05)
    assert s["median_abs_err_pct_ttft_mean"] < 2.0 and s["median_abs_err_pct_tpot_mean"] < 2.0
    assert abs(s["saturation_rate_err_pct"]) < 2.0
    # the GPU-fitted defaults are a different engine: the uncalibrated errors are larger
    assert s["median_abs_err_pct_tpot_mean_uncalibrated"] > s["median_abs_err_pct_tpot_mean"]
    assert set(out["levels"]["rate_rps"]) == {5.0, 15.0, 100.0, 250.0, 500.0}
