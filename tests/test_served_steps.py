"""The served-engine step probe recovers known step costs from an engine's metric totals."""

from __future__ import annotations

import json

import httpx
import pytest

from profiling import served_steps, server_metrics
from profiling.errors import ProfilingError
from routerwise.errors import ValidationError
from routerwise.serving.stepcost import measured_step_times

MODEL = "tiny"
DECODE_BASE_MS, DECODE_PER_SEQ_MS = 2.0, 0.125
PREFILL_BASE_MS, PREFILL_PER_TOKEN_MS = 1.5, 0.0625
CONTAMINATION_MS = 7.0  # what both decode batches share (other requests' prefills)


class FakeServedEngine:
    """Counts what an engine with the step costs above would record in its histograms."""

    def __init__(self, *, drop_decode_metric: bool = False, stray_requests: int = 0):
        self.totals = {"prefill": [0, 0.0], "decode": [0, 0.0]}
        self.drop_decode_metric = drop_decode_metric
        self.stray_requests = stray_requests
        self.batches = []

    async def batch(self, client, model, prompts, max_tokens):
        assert model == MODEL
        self.batches.append((len(prompts), len(prompts[0]), max_tokens))
        b = len(prompts)
        for ids in prompts:
            pre = self.totals["prefill"]
            pre[0] += 1
            pre[1] += (PREFILL_BASE_MS + PREFILL_PER_TOKEN_MS * len(ids)) / 1000
            if max_tokens > 1:
                dec = self.totals["decode"]
                dec[0] += 1 + self.stray_requests
                dec[1] += ((max_tokens - 1) * (DECODE_BASE_MS + DECODE_PER_SEQ_MS * b)
                           + CONTAMINATION_MS * (b - 1) / b) / 1000

    def scrape(self, base_url, **_):
        labels = (("model_name", MODEL),)
        out = {}
        for short, (count, total) in self.totals.items():
            if short == "decode" and self.drop_decode_metric:
                continue
            name = server_metrics.HISTOGRAMS[short]
            out[(name + "_count", labels)] = float(count)
            out[(name + "_sum", labels)] = total
        return out


@pytest.fixture
def config(tmp_path):
    cfg = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
           "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
           "vocab_size": 512, "_name_or_path": MODEL}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def _probe(monkeypatch, config, engine, **kw):
    monkeypatch.setattr(served_steps, "_batch", engine.batch)
    monkeypatch.setattr(server_metrics, "scrape", engine.scrape)
    return served_steps.probe_served_steps("http://127.0.0.1:1", MODEL, config, **kw)


def test_decode_rows_are_the_per_step_cost_without_what_both_batches_share(monkeypatch, config):
    df = _probe(monkeypatch, config, FakeServedEngine(), batch_sizes=(1, 4, 16),
                context_lens=(64, 128), warmup=1, repeats=2)
    dec = df[df["phase"] == "decode"]
    assert sorted(dec["batch_size"].unique()) == [1, 4, 16]
    for _, r in dec.iterrows():
        assert r["step_ms_median"] == pytest.approx(DECODE_BASE_MS
                                                    + DECODE_PER_SEQ_MS * r["batch_size"])
        assert r["repeats"] == 2 and r["warmup"] == 1
    # the middle of the timed tokens (8..40 generated after the prompt)
    assert set(dec["context_len"]) == {64 + 24, 128 + 24}
    assert (df["source"] == "measured").all() and (df["error"] == "").all()


def test_prefill_rows_are_single_requests_up_to_the_token_budget(monkeypatch, config):
    engine = FakeServedEngine()
    df = _probe(monkeypatch, config, engine, batch_sizes=(1, 2), context_lens=(64, 128),
                max_num_batched_tokens=1024, warmup=0, repeats=3)
    pre = df[df["phase"] == "prefill"]
    assert list(pre["context_len"]) == [64, 128, 256, 512, 1024]
    assert (pre["batch_size"] == 1).all()
    for _, r in pre.iterrows():
        assert r["step_ms_median"] == pytest.approx(PREFILL_BASE_MS
                                                    + PREFILL_PER_TOKEN_MS * r["context_len"])
    # each prefill request is sent alone, with one output token
    assert all(b == 1 and t == 1 for b, _, t in engine.batches if t == 1)


def test_the_step_table_reads_back_into_the_serving_model(monkeypatch, config):
    df = _probe(monkeypatch, config, FakeServedEngine(), batch_sizes=(1, 2, 8, 32),
                context_lens=(64, 128, 256), warmup=0, repeats=1)
    st = measured_step_times(df, MODEL, max_batched_tokens=2048, max_seqs=64)
    # decode = a + b B + c B L: the probe's linear costs come back (context term ~0)
    assert st.decode_ms(8, 8 * 150) == pytest.approx(DECODE_BASE_MS + 8 * DECODE_PER_SEQ_MS,
                                                     rel=1e-3)
    assert st.prefill_ms(512, 512**2, 1) == pytest.approx(PREFILL_BASE_MS + 512
                                                          * PREFILL_PER_TOKEN_MS, rel=1e-3)


def test_another_client_on_the_server_is_refused(monkeypatch, config):
    with pytest.raises(ProfilingError, match="something else is using the server"):
        _probe(monkeypatch, config, FakeServedEngine(stray_requests=1), batch_sizes=(2,),
               context_lens=(64,), warmup=0, repeats=1)


def test_a_server_without_the_timing_histograms_is_named(monkeypatch, config):
    with pytest.raises(server_metrics.MetricsUnavailable, match="request_decode_time"):
        _probe(monkeypatch, config, FakeServedEngine(drop_decode_metric=True),
               batch_sizes=(1,), context_lens=(64,), warmup=0, repeats=1)


def test_prefill_lengths_and_bad_grids():
    assert served_steps.prefill_lengths((64, 128, 256), 2048) == (64, 128, 256, 512, 1024,
                                                                   2048)
    assert served_steps.prefill_lengths((100, 5000), 1000) == (100, 200, 400, 800)
    with pytest.raises(ValidationError, match="exceeds the batched-token budget"):
        served_steps.prefill_lengths((4096,), 2048)
    with pytest.raises(ValidationError, match="batch sizes"):
        served_steps.probe_served_steps("http://127.0.0.1:1", MODEL, "x", batch_sizes=(0,))


def test_prefill_lengths_leave_room_for_the_output_within_the_models_context(monkeypatch,
                                                                            config):
    cfg = json.loads(config.read_text())
    config.write_text(json.dumps({**cfg, "max_position_embeddings": 1024}))
    df = _probe(monkeypatch, config, FakeServedEngine(), batch_sizes=(1,),
                context_lens=(64, 128), max_num_batched_tokens=2048, warmup=0, repeats=1)
    assert df[df["phase"] == "prefill"]["context_len"].max() == 512
    with pytest.raises(ValidationError, match="exceed the model's 1024-token context"):
        _probe(monkeypatch, config, FakeServedEngine(), batch_sizes=(1,),
               context_lens=(1000,), warmup=0, repeats=1)


def test_the_steps_command_probes_a_served_engine(monkeypatch, config, tmp_path, capsys):
    from profiling.__main__ import main
    from profiling.gpu_steps import read_steps

    engine = FakeServedEngine()
    monkeypatch.setattr(served_steps, "_batch", engine.batch)
    monkeypatch.setattr(server_metrics, "scrape", engine.scrape)
    out = tmp_path / "steps.csv"
    assert main(["steps", "--engine", "served", "--endpoint", "http://127.0.0.1:1",
                 "--served-model-name", MODEL, "--config", str(config), "--batch", "1", "4",
                 "--context", "64", "--warmup", "0", "--repeats", "1", "--out", str(out)]) == 0
    df = read_steps(out)
    assert set(df["phase"]) == {"prefill", "decode"}
    assert "served engine" in df["command"].iloc[0]
    # without an endpoint the command says what it needs
    assert main(["steps", "--engine", "served", "--config", str(config), "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "--endpoint" in capsys.readouterr().err


class BreakingServedEngine(FakeServedEngine):
    """The fake engine whose ``breaks`` next batches lose their connection after the server
    finished half of their requests (it counted them in its histograms)."""

    def __init__(self, breaks: int):
        super().__init__()
        self.breaks = breaks

    async def batch(self, client, model, prompts, max_tokens):
        if self.breaks:
            self.breaks -= 1
            await super().batch(client, model, prompts[: max(1, len(prompts) // 2)], max_tokens)
            raise httpx.ReadError("connection reset")
        await super().batch(client, model, prompts, max_tokens)


def test_a_batch_whose_connection_broke_is_run_again_and_not_counted_twice(monkeypatch,
                                                                          config):
    engine = BreakingServedEngine(breaks=2)
    df = _probe(monkeypatch, config, engine, batch_sizes=(4,), context_lens=(64,), warmup=0,
                repeats=1)
    assert engine.breaks == 0
    dec = df[df["phase"] == "decode"].iloc[0]
    assert dec["step_ms_median"] == pytest.approx(DECODE_BASE_MS + 4 * DECODE_PER_SEQ_MS)
    # a connection that keeps breaking is the error it is
    with pytest.raises(httpx.ReadError):
        _probe(monkeypatch, config, BreakingServedEngine(breaks=10), batch_sizes=(4,),
               context_lens=(64,), warmup=0, repeats=1)


def test_in_flight_adds_the_engines_running_and_waiting_gauges(monkeypatch):
    text = ('vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
            'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0\n'
            'vllm:request_success_total{engine="0",model_name="m"} 7.0\n')
    monkeypatch.setattr(server_metrics, "scrape",
                        lambda url, **k: server_metrics.parse_prometheus(text))
    assert server_metrics.in_flight("http://127.0.0.1:1") == 3.0
