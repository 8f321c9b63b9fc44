"""The served-engine step probe against one real vLLM server on a tiny local model.

Needs vLLM in this environment (`make engine`): skipped without it, except under CI=true,
where it fails (CI installs the engine). One engine start; no timing thresholds: it checks the
table's shape, that every point was timed by the engine's own histograms, and that the kit's
serving model reads it.
"""

from __future__ import annotations

import math

import pytest
from test_real_engine import _need_engine

from routerwise.io import blank


@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_served_probe_times_a_real_engine(tmp_path):
    _need_engine()
    from profiling.gpu_steps import read_steps, write_steps
    from profiling.launcher import launch
    from profiling.served_steps import probe_served_steps
    from profiling.tiny_models import build_tiny_model
    from profiling.vllm_server import vllm_spec
    from routerwise.serving.stepcost import measured_step_times

    folder = build_tiny_model(tmp_path / "tiny-llama-s", "tiny-llama-s", seed=0)
    spec = vllm_spec(folder, startup_timeout_s=600.0,
                     extra_args=("--max-num-batched-tokens", "2048"))
    with launch(spec, log_path=tmp_path / "engine.log") as eng:
        df = probe_served_steps(eng.base_url, spec.served_model_name, folder / "config.json",
                                batch_sizes=(1, 4), context_lens=(64, 128), warmup=1,
                                repeats=2, max_num_batched_tokens=2048, engine="vllm")
    write_steps(df, tmp_path / "steps.csv")
    df = read_steps(tmp_path / "steps.csv")
    pre, dec = df[df["phase"] == "prefill"], df[df["phase"] == "decode"]
    # prompts of 64 tokens doubling to the model's 2048-token context less one output token
    assert list(pre["context_len"]) == [64, 128, 256, 512, 1024]
    assert sorted(zip(dec["batch_size"], dec["context_len"])) == [(1, 88), (1, 152), (4, 88),
                                                                   (4, 152)]
    assert (df["repeats"] == 2).all() and blank(df["error"]).all()
    assert all(math.isfinite(v) and v > 0 for v in df["step_ms_median"])
    assert df["command"].str.contains("served engine").all()
    step = measured_step_times(df, "tiny-llama-s", max_batched_tokens=2048, max_seqs=64)
    assert step.source == "measured" and step.decode_ms(4, 4 * 120) > 0
