"""profiling.gpu_steps: shapes, tables, MPS bookkeeping, CLI without torch; the forward with it."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from profiling import gpu_steps as gs
from profiling.__main__ import build_parser, main, step_shape
from profiling.errors import ToolUnavailable
from routerwise.errors import DataError, ValidationError

pytestmark = pytest.mark.timeout(120)

HF_LLAMA3_8B = {"_name_or_path": "meta-llama/Meta-Llama-3-8B", "architectures":
                ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
                "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
                "vocab_size": 128256, "rope_theta": 500000.0}


def test_shapes_from_presets_mappings_and_objects():
    from_cfg = gs.llama_shape(HF_LLAMA3_8B)
    assert from_cfg == gs.LlamaShape("meta-llama/Meta-Llama-3-8B", 32, 4096, 32, 8, 14336,
                                     128256)
    obj = SimpleNamespace(name="arch", num_layers=40, hidden_size=5120, num_heads=40,
                          intermediate_size=13824, vocab_size=32000)  # no KV heads: MHA
    s = gs.llama_shape(obj)
    assert s.num_kv_heads == 40 and s.head_dim == 128 and s.name == "arch"
    assert gs.llama_shape("llama-2-13b") == gs.LlamaShape("llama-2-13b", 40, 5120, 40, 40, 13824,
                                                          32000)
    assert gs.llama_shape(s) is s
    with pytest.raises(ValidationError, match="intermediate_size"):
        gs.llama_shape({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2,
                        "vocab_size": 10})
    with pytest.raises(ValidationError, match="presets"):
        gs.llama_shape("gpt-5")
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        gs.LlamaShape("bad", 1, 10, 3, 3, 8, 8)
    assert gs.LlamaShape("explicit", 1, 10, 2, 1, 8, 8, head_dim=4).head_dim == 4
    with pytest.raises(ValidationError, match="multiple of num_kv_heads"):
        gs.LlamaShape("bad", 1, 12, 4, 3, 8, 8)


def test_records_that_are_not_dense_llamas_are_refused():
    moe = SimpleNamespace(name="moe", num_layers=2, hidden_size=8, num_heads=2, num_kv_heads=1,
                          intermediate_size=16, vocab_size=32, num_experts=8, gated_mlp=True)
    with pytest.raises(ValidationError, match="not a dense"):
        gs.llama_shape(moe)
    with pytest.raises(ValidationError, match="not a dense"):
        gs.llama_shape({**HF_LLAMA3_8B, "num_local_experts": 8})
    with pytest.raises(ValidationError, match="gated_mlp=False"):
        gs.llama_shape(SimpleNamespace(**{**vars(moe), "num_experts": 1, "gated_mlp": False}))


def test_routerwise_architectures_are_accepted():
    arch = pytest.importorskip("routerwise.serving.architectures")
    llama3 = gs.llama_shape(arch.get("Meta-Llama-3-8B"))
    assert dataclasses.replace(llama3, name="llama-3-8b") == gs.PRESETS["llama-3-8b"]
    small = gs.llama_shape(arch.get("mistral-small-24b-instruct-2501-bf16"))
    assert small.head_dim == 128 and small.hidden_size == 5120
    assert small.num_params == pytest.approx(23.572e9, rel=0.002)  # published count


def test_parameter_counts_match_the_published_sizes():
    assert gs.PRESETS["llama-3-8b"].num_params == 8_030_261_248
    assert gs.PRESETS["mistral-7b"].num_params == 7_241_732_096
    assert gs.PRESETS["llama-2-13b"].num_params == 13_015_864_320
    assert gs.PRESETS["yi-34b"].num_params == pytest.approx(34.39e9, rel=0.002)


def test_read_shape_from_config_file(tmp_path):
    p = tmp_path / "Meta-Llama-3-8B" / "config.json"
    p.parent.mkdir()
    p.write_text(json.dumps(HF_LLAMA3_8B))
    assert gs.read_shape(p).num_kv_heads == 8
    p.write_text("{not json")
    with pytest.raises(DataError):
        gs.read_shape(p)


def test_plan_orders_and_validates():
    pts = gs.plan([8, 1, 8], [512, 128], ["decode"])
    assert [(p.batch_size, p.context_len) for p in pts] == [(1, 128), (1, 512), (8, 128),
                                                           (8, 512)]
    with pytest.raises(ValidationError):
        gs.plan([0], [128])
    with pytest.raises(ValidationError):
        gs.plan([1], [128], ["train"])


def test_step_table_roundtrip(tmp_path):
    shape = gs.PRESETS["tiny"]
    env = {"device": "cuda:0", "dtype": "bfloat16", "gpu_name": "NVIDIA H100 80GB HBM3",
           "driver_version": "560.35.03", "cuda_driver_version": "12.6",
           "torch_version": "2.5.0", "torch_cuda_version": "12.4", "date": "2026-01-01",
           "command": "python -m profiling steps"}
    ok = gs.step_row(shape, gs.StepPoint("decode", 4, 256), [3.0, 1.0, 2.0, 4.0, 5.0], env=env,
                     warmup=2, cuda_graph=True)
    bad = gs.step_row(shape, gs.StepPoint("prefill", 64, 8192), None, env=env, warmup=2,
                      error="out of memory")
    df = gs.steps_frame([ok, bad])
    assert ok["step_ms_median"] == 3.0 and ok["step_ms_p10"] == pytest.approx(1.4)
    assert ok["repeats"] == 5 and ok["source"] == "measured" and ok["weights"] == "random"
    path = gs.write_steps(df, tmp_path / "steps.csv")
    back = gs.read_steps(path)
    assert list(back.columns) == list(gs.STEP_COLUMNS) and back["step_ms_median"].isna().iloc[1]
    assert back["error"].iloc[1] == "out of memory"
    assert back["gpu_name"].iloc[0].startswith("NVIDIA")
    with pytest.raises(ValidationError):
        gs.write_steps(df.drop(columns=["phase"]), tmp_path / "x.csv")


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ToolUnavailable, match="pip install torch"):
        gs.measure_steps("tiny", device="cpu")


def test_mps_unavailable_is_recorded_per_row(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    df = gs.measure_steps_under_mps("tiny", [0.5, 1.0], batch_sizes=[1], context_lens=[8, 16],
                                    phases=["decode"])
    assert len(df) == 4 and sorted(set(df["compute_share"])) == [0.5, 1.0]
    assert df["error"].str.contains("MPS unavailable: nvidia-cuda-mps-control was not found").all()
    assert df["step_ms_median"].isna().all() and not df["mps"].any()
    with pytest.raises(ValidationError):
        gs.measure_steps_under_mps("tiny", [0.25])


@pytest.mark.timeout(120)
def test_failing_child_under_mps_is_recorded(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-cuda-mps-control"
    exe.write_text('#!/bin/sh\nif [ "$1" = "-d" ]; then echo start >> "$REC"; exit 0; fi\n'
                   'read c; echo "$c" >> "$REC"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("REC", str(tmp_path / "rec"))
    # No GPU here: each child fails (no torch, or a torch without CUDA) and says so.
    df = gs.measure_steps_under_mps("tiny", [0.3], batch_sizes=[1], context_lens=[8],
                                    phases=["prefill"], repeats=1, warmup=0)
    assert len(df) == 1 and "child for share 30% failed" in df["error"].iloc[0]
    assert "torch" in df["error"].iloc[0].lower() or "cuda" in df["error"].iloc[0].lower()
    assert (tmp_path / "rec").read_text().split() == ["start", "quit"]


# -- command line -------------------------------------------------------------------------


def test_steps_cli_arguments(tmp_path):
    a = build_parser().parse_args(["steps", "--model", "yi-34b", "--batch", "1", "16",
                                   "--context", "2048", "--phase", "decode", "--shares", "0.3",
                                   "1.0", "--out", str(tmp_path / "s.csv")])
    assert (a.batch, a.context, a.phase, a.shares) == ([1, 16], [2048], ["decode"], [0.3, 1.0])
    assert step_shape(a) == gs.PRESETS["yi-34b"] and a.dtype == "bfloat16"
    a = build_parser().parse_args(["steps", "--shape-json", json.dumps(
        {"name": "x", "num_layers": 1, "hidden_size": 8, "num_heads": 2, "num_kv_heads": 1,
         "intermediate_size": 16, "vocab_size": 32}), "--out", "o.csv"])
    assert step_shape(a).num_kv_heads == 1
    a = build_parser().parse_args(["steps", "--shape-json", '{"name": 1}', "--out", "o.csv"])
    with pytest.raises(ValidationError):
        step_shape(a)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["steps", "--model", "x", "--config", "c.json", "--out", "o"])


def test_sweep_cli_builds_setups():
    from profiling.__main__ import sweep_setups
    a = build_parser().parse_args(["sweep", "--model", "m", "--tp", "1", "2", "--shares", "0.5",
                                   "1.0", "--gpus", "4", "5", "--loads", "1", "2", "--out", "o"])
    setups = sweep_setups(a)
    assert [(s.tp, s.compute_share, s.engine.gpus) for s in setups] == [
        (1, 0.5, (4,)), (1, 1.0, (4,)), (2, 0.5, (4, 5)), (2, 1.0, (4, 5))]
    a = build_parser().parse_args(["sweep", "--model", "m", "--tp", "4", "--loads", "1",
                                   "--out", "o"])
    with pytest.raises(ValidationError, match="needs 4 GPUs"):
        sweep_setups(a)
    a = build_parser().parse_args(["sweep", "--model", "m", "--shares", "0.5", "1.0",
                                   "--endpoint", "http://127.0.0.1:1", "--loads", "1",
                                   "--out", "o"])
    with pytest.raises(ValidationError, match="one running setup"):
        sweep_setups(a)


def test_cli_reports_typed_errors(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    rc = main(["steps", "--model", "tiny", "--device", "cpu", "--out", str(tmp_path / "s.csv")])
    assert rc == 2 and "pip install torch" in capsys.readouterr().err


# -- with torch ---------------------------------------------------------------------------


def test_measure_steps_on_cpu(tmp_path):
    pytest.importorskip("torch")
    df = gs.measure_steps("tiny", batch_sizes=[1, 2], context_lens=[8, 16], device="cpu",
                          dtype="float32", warmup=1, repeats=3)
    assert len(df) == 8 and (df["error"] == "").all()
    assert set(df["phase"]) == {"prefill", "decode"} and not df["cuda_graph"].any()
    assert (df["step_ms_median"] > 0).all()
    assert (df["step_ms_p10"] <= df["step_ms_median"]).all()
    assert (df["step_ms_median"] <= df["step_ms_p90"]).all()
    assert df["torch_version"].notna().all() and df["gpu_name"].isna().all()
    gs.write_steps(df, tmp_path / "s.csv")
    assert len(gs.read_steps(tmp_path / "s.csv")) == 8


def test_decode_with_the_kv_cache_matches_a_full_prefill():
    torch = pytest.importorskip("torch")
    shape = gs.LlamaShape("t", 2, 32, 4, 2, 64, 50, head_dim=16)  # heads x head_dim != hidden
    m = gs.RandomLlama(torch, shape, torch.device("cpu"), torch.float32, seed=1)
    tokens = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = m.forward(tokens, 0, m.cache(2, 9))
        cache = m.cache(2, 9)
        m.forward(tokens[:, :8], 0, cache)
        step = m.forward(tokens[:, 8:], 8, cache)
        other = m.forward(tokens[:, :8], 0, m.cache(2, 9))
    assert full.shape == (2, 50)
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(other, full)  # the last token matters: the check can fail


def test_steps_cli_end_to_end_on_cpu(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "steps.csv"
    rc = main(["steps", "--model", "tiny", "--device", "cpu", "--dtype", "float32", "--batch",
               "1", "--context", "8", "--warmup", "1", "--repeats", "2", "--out", str(out)])
    assert rc == 0 and "2 step rows (0 with errors)" in capsys.readouterr().out
    df = pd.read_csv(out)
    assert df["command"].iloc[0].startswith("python -m profiling steps --model tiny")


@pytest.mark.gpu
def test_measure_steps_on_a_real_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    df = gs.measure_steps("tiny", batch_sizes=[1, 4], context_lens=[32], device="cuda",
                          dtype="bfloat16", warmup=2, repeats=5)
    assert (df["error"] == "").all() and (df["step_ms_median"] > 0).all()
    assert df.loc[df["phase"] == "decode", "cuda_graph"].all()
    assert df["gpu_name"].notna().all() and df["torch_cuda_version"].notna().all()
