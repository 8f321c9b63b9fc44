"""The plan-serving router in front of one real vLLM server on a tiny local model.

Needs vLLM in this environment (`make engine`): skipped without it, except under CI=true,
where it fails (CI installs the engine). One engine start; no timing thresholds: it checks
what passes through the router (exact token counts, zero errors, the engine's own counters).
"""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_real_engine import _need_engine

N, MAX_TOKENS, API_KEY = 12, 16, "sk-test-key-passed-through"


def _router_metrics(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_router_streams_through_a_real_engine_with_exact_tokens_and_no_errors(tmp_path):
    _need_engine()
    from profiling import server_metrics
    from profiling.launcher import launch
    from profiling.loadgen import Endpoint, poisson_schedule, run_load, synthetic_prompts
    from profiling.tiny_models import build_tiny_model
    from profiling.vllm_server import vllm_spec
    from routerwise.live.app import create_app
    from routerwise.live.plan import LivePlan
    from routerwise.live.server import RouterServer

    folder = build_tiny_model(tmp_path / "tiny-llama-s", "tiny-llama-s", seed=0)
    spec = vllm_spec(folder, startup_timeout_s=600.0)
    name = spec.served_model_name
    prompts = synthetic_prompts(N, prompt_words=32, max_tokens=MAX_TOKENS)
    # A one-model plan: its score table holds the prompts (scores are placeholders; a tiny
    # random model has no quality to measure, only latency).
    table = tmp_path / "scores.csv"
    pd.DataFrame({"prompt_id": [p.prompt_id for p in prompts.prompts], "model": name,
                  "score": 0.5, "prompt": [p.text for p in prompts.prompts]}).to_csv(table,
                                                                                      index=False)
    plan = LivePlan(path=tmp_path / "plan.json", problem="one-tiny-model", model_names=(name,),
                    fractions=(1.0,), prices=(0.0,), predicted_latency_ms=(None,),
                    arrival_rate_rps=4.0, slo_latency_ms=1000.0, slo_metric="ttft_mean",
                    slo_aggregate="mean", latency_ms=0.0, score_table=table)
    log = tmp_path / "decisions.jsonl"
    with launch(spec, log_path=tmp_path / "engine.log") as eng:
        before = server_metrics.scrape(eng.base_url)
        with RouterServer(create_app(plan, {name: [eng.base_url]}, decision_log=log)) as router:
            # token ids in every chunk: a random model's tokens may detokenize to nothing
            ep = Endpoint(router.url, "any-name", api_key=API_KEY, exact_length=True,
                          extra_body={"return_token_ids": True}, request_timeout_s=300.0)
            res = run_load(poisson_schedule(4.0, num_requests=N, seed=1), prompts, ep,
                           progress=False)
            # a request the engine itself rejects comes back with the engine's 4xx
            bad = httpx.post(router.url + "/v1/completions", timeout=60.0, json={
                "prompt": prompts.prompts[0].text, "max_tokens": 10**7})
            metrics = _router_metrics(httpx.get(router.url + "/metrics").text)
        after = server_metrics.scrape(eng.base_url)
    req = res.requests
    assert len(req) == N and req["ok"].all(), req["error_kind"].value_counts()
    assert (req["completion_tokens"] == MAX_TOKENS).all() and req["tokens_from_usage"].all()
    engine = server_metrics.delta(before, after, name)
    assert engine["ttft_count"] == N                        # the engine saw exactly these
    assert engine["generation_tokens"] == N * MAX_TOKENS
    assert 400 <= bad.status_code < 500 and "error" in bad.json()
    assert metrics[("routerwise_router_requests_total",
                    (("api", "completions"), ("model", name)))] == N + 1
    assert metrics[("routerwise_router_ttft_seconds_count", (("model", name),))] == N
    assert not any(k[0] == "routerwise_router_errors_total" and v for k, v in metrics.items())
    decisions = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(decisions) == N + 1 and {d["model"] for d in decisions} == {name}
    assert all(d["score_source"] == "table" for d in decisions)
    assert API_KEY not in log.read_text()
