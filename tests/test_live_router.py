"""The plan-serving router (routerwise.live) against fake upstreams on loopback.

The plan is the worked example's, solved by `routerwise solve --json` with a prompt column
added to its score table. Routing is checked against the plan's fractions and an independent
argmax of the table's scores minus the plan's prices; everything else through real HTTP: the
router and the fake model servers run under uvicorn on free ports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from routerwise.cli import main as cli_main
from routerwise.errors import ValidationError
from routerwise.live.app import create_app, normalize_endpoint
from routerwise.live.fake_upstream import FakeUpstream
from routerwise.live.plan import LivePlan
from routerwise.live.server import RouterServer

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
TASK_WORDS = {"math": "solve integral equation number prove sum",
              "code": "python function bug compile loop class",
              "chat": "hello tell story friend weather trip"}
SECRET = "sk-live-SECRET-0123456789"


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory) -> Path:
    """The worked example with prompt texts, solved by the CLI into plan.json."""
    d = tmp_path_factory.mktemp("live-plan")
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    df = pd.read_csv(d / "scores.csv")
    rng = np.random.default_rng(0)
    ids = list(dict.fromkeys(df["prompt_id"]))
    task = df.drop_duplicates("prompt_id").set_index("prompt_id")["task"]
    text = {p: f"{task[p]} question {i}: " + " ".join(rng.choice(TASK_WORDS[task[p]].split(), 6))
            for i, p in enumerate(ids)}
    df["prompt"] = df["prompt_id"].map(text)
    df.to_csv(d / "scores.csv", index=False)
    assert cli_main(["solve", str(d / "problem.toml"), "--json", str(d / "plan.json"),
                     "--no-replay"]) == 0
    return d / "plan.json"


@pytest.fixture(scope="module")
def plan(plan_path) -> LivePlan:
    return LivePlan.from_json(plan_path)


@pytest.fixture(scope="module")
def table(plan):
    """The score table (prompt text -> scores in plan order) and, for prompts with one clear
    best s - alpha, the model the plan must send them to: computed here, not by the router."""
    df = pd.read_csv(plan.score_table)
    wide = df.pivot(index="prompt", columns="model", values="score")[list(plan.model_names)]
    v = wide.to_numpy() - np.array(plan.prices)
    order = np.sort(v, axis=1)
    clear = order[:, -1] - order[:, -2] > 1e-6
    target = {p: plan.model_names[int(i)] for p, i, c in zip(wide.index, v.argmax(axis=1), clear)
              if c}
    return wide, target


def _prompt_for(table, model: str) -> str:
    return next(p for p, m in table[1].items() if m == model)


class GatedUpstream(FakeUpstream):
    """Sends the first token, then waits for ``gate`` (set from the test) before the rest."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.gate = threading.Event()

    async def _stream(self, send, body, chat, mode, text):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        n = int(body.get("max_tokens", 16))
        for i in range(n):
            await send({"type": "http.response.body", "more_body": True,
                        "body": f"data: {json.dumps(self._chunk(body, chat, i))}\n\n".encode()})
            while i == 0 and not self.gate.is_set():
                await anyio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": False})


@contextlib.contextmanager
def serving(app_or_upstreams):
    with RouterServer(app_or_upstreams) as srv:
        yield srv


@pytest.fixture(scope="module")
def stack(plan, tmp_path_factory):
    """One fake upstream per model (two for the second model), the router in front."""
    log = tmp_path_factory.mktemp("live-log") / "decisions.jsonl"
    ups = {m: [FakeUpstream(m)] for m in plan.model_names}
    ups[plan.model_names[1]].append(FakeUpstream(plan.model_names[1]))
    with contextlib.ExitStack() as st:
        urls = {m: [st.enter_context(RouterServer(u)).url for u in us] for m, us in ups.items()}
        app = create_app(plan, urls, decision_log=log, upstream_timeout_s=2.0)
        router = st.enter_context(RouterServer(app))
        client = st.enter_context(httpx.Client(base_url=router.url, timeout=30.0))
        yield {"ups": ups, "urls": urls, "router": router, "client": client, "log": log,
               "app": app}


def _metrics(client) -> dict:
    out = {}
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _events(resp) -> list:
    return [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]


# ---------------------------------------------------------------------------------------------
# The plan and its router


def test_plan_is_what_solve_json_wrote(plan_path, plan):
    d = json.loads(plan_path.read_text())
    assert plan.model_names == tuple(m["name"] for m in d["models"])
    assert plan.fractions == tuple(m["fraction"] for m in d["models"])
    assert plan.prices == tuple(m["price"] for m in d["models"])
    assert plan.score_table == plan_path.parent / "scores.csv"
    assert plan.problem_file == plan_path.parent / "problem.toml"
    assert plan.arrival_rate_rps == 12.0 and plan.slo_latency_ms == 150.0
    assert sum(plan.fractions) == pytest.approx(1.0)


def test_infeasible_or_foreign_json_is_refused(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"status": "infeasible", "infeasibility": {"message": "too tight"}}))
    with pytest.raises(ValidationError, match="too tight"):
        LivePlan.from_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(Exception, match="not a plan"):
        LivePlan.from_json(bad)


def test_router_realizes_the_planned_fractions_on_the_plans_prompts(plan, table):
    router = plan.router()
    wide, target = table
    rng = np.random.default_rng(3)
    for _ in range(5):
        for p in rng.permutation(wide.index.to_numpy()):
            d = router.choose(str(p))
            assert d.source == "table"
            assert d.predicted_scores == pytest.approx(dict(wide.loc[p]))
            if p in target:       # a clear best s - alpha: no tie rule involved
                assert d.model == target[p]
    for m, w in plan.planned_fractions.items():
        assert router.realized_fractions[m] == pytest.approx(w, abs=0.01)


def test_unseen_prompt_is_scored_by_the_predictor(plan):
    from routerwise.data.score_predictor import build_pipeline, stable_scores
    wide = pd.read_csv(plan.score_table).pivot(index="prompt", columns="model", values="score")
    wide = wide[list(plan.model_names)]
    text = "python function with a compile bug in a loop, please"
    d = plan.router().choose(text)
    assert d.source == "predictor"
    ref = stable_scores(build_pipeline("ridge").fit(np.array(wide.index, dtype=object),
                                                    wide.to_numpy()).predict([text]))[0]
    assert list(d.predicted_scores.values()) == pytest.approx(list(ref), abs=1e-6)
    v = ref - np.array(plan.prices)
    assert d.model == plan.model_names[int(v.argmax())]
    assert d.prices == plan.planned_prices


def test_a_model_planned_no_traffic_needs_no_endpoint_and_gets_none(plan, table):
    idle = plan.model_names[0]
    w = np.array(plan.fractions)
    w[1:] += w[0] / 2
    w[0] = 0.0
    p0 = replace(plan, fractions=tuple(w))
    create_app(p0, {m: ["http://127.0.0.1:9"] for m in plan.model_names[1:]})
    router = p0.router()
    chosen = {router.choose(str(p)).model for p in table[0].index}
    assert idle not in chosen and chosen


def test_missing_endpoints_are_refused_at_start_naming_them(plan, plan_path, capsys):
    a, b, c = plan.model_names
    with pytest.raises(ValidationError, match=rf"\['{b}', '{c}'\] without an endpoint"):
        create_app(plan, {a: ["http://127.0.0.1:9"]})
    with pytest.raises(ValidationError, match="'nope'.*does not have"):
        create_app(plan, {m: ["http://127.0.0.1:9"] for m in plan.model_names + ("nope",)})
    assert cli_main(["serve", str(plan_path), "--endpoint", f"{a}=http://127.0.0.1:9",
                     "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert b in err and c in err and "without an endpoint" in err
    assert cli_main(["serve", str(plan_path), "--endpoint", "no-equals-sign"]) == 2
    assert "MODEL=URL" in capsys.readouterr().err


def test_endpoint_urls_are_normalized_and_checked():
    assert normalize_endpoint("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert normalize_endpoint("http://h:1") == "http://h:1"
    with pytest.raises(ValidationError, match="http"):
        normalize_endpoint("ftp://h:1")


# ---------------------------------------------------------------------------------------------
# Through HTTP


def test_stream_is_passed_through_and_only_the_model_is_rewritten(stack, plan, table):
    c, ups = stack["client"], stack["ups"]
    model = plan.model_names[2]
    prompt = _prompt_for(table, model)
    body = {"model": "whatever", "prompt": prompt, "max_tokens": 5, "stream": True,
            "temperature": 0.3, "stream_options": {"include_usage": True}, "extra": [1, {"a": 2}]}
    before = len(ups[model][0].requests)
    with c.stream("POST", "/v1/completions", json=body,
                  headers={"Authorization": f"Bearer {SECRET}", "X-Custom": "kept"}) as r:
        assert r.status_code == 200 and r.headers["x-routerwise-model"] == model
        events = _events(r)
    assert events[-1] == "[DONE]"
    texts = [json.loads(e)["choices"][0]["text"] for e in events[:-2]]
    assert texts == [f" tok{i}" for i in range(5)]
    assert json.loads(events[-2])["usage"]["completion_tokens"] == 5
    seen = ups[model][0].requests[before:]
    assert len(seen) == 1
    assert seen[0]["body"] == {**body, "model": model}
    assert seen[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert seen[0]["headers"]["x-custom"] == "kept"


def test_a_body_sent_without_a_content_type_reaches_the_upstream_as_json(stack, plan, table):
    c, ups = stack["client"], stack["ups"]
    model = plan.model_names[0]
    before = len(ups[model][0].requests)
    body = {"model": "x", "prompt": _prompt_for(table, model), "max_tokens": 2}
    r = c.post("/v1/completions", content=json.dumps(body).encode())
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == " tok0 tok1"
    (seen,) = ups[model][0].requests[before:]
    assert seen["headers"]["content-type"] == "application/json"
    # a content type the client gave is passed on as it came
    r = c.post("/v1/completions", content=json.dumps(body).encode(),
               headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    assert ups[model][0].requests[-1]["headers"]["content-type"] == \
        "application/json; charset=utf-8"


def test_chat_and_non_streamed_answers_pass_through(stack, plan, table):
    c = stack["client"]
    model = plan.model_names[0]
    r = c.post("/v1/chat/completions", json={
        "model": "x", "max_tokens": 3,
        "messages": [{"role": "user", "content": _prompt_for(table, model)}]})
    assert r.status_code == 200
    assert r.json()["model"] == model
    assert r.json()["choices"][0]["message"]["content"] == " tok0 tok1 tok2"
    with c.stream("POST", "/v1/chat/completions", json={
            "model": "x", "max_tokens": 2, "stream": True,
            "messages": [{"role": "user", "content": _prompt_for(table, model)}]}) as r:
        events = _events(r)
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]] == \
        [" tok0", " tok1"]
    assert stack["client"].get("/v1/models").json()["data"][0]["id"] == plan.model_names[0]
    assert stack["client"].get("/health").json()["status"] == "ok"


def test_chunks_reach_the_client_before_the_upstream_finishes(plan, table):
    """The upstream holds its second token until the client has seen the first: a router
    that buffered the stream would never deliver it (the read would time out)."""
    model = plan.model_names[1]
    gated = GatedUpstream(model)
    with contextlib.ExitStack() as st:
        urls = {m: [st.enter_context(RouterServer(gated if m == model else FakeUpstream(m))).url]
                for m in plan.model_names}
        router = st.enter_context(RouterServer(create_app(plan, urls)))
        with httpx.Client(base_url=router.url, timeout=10.0) as c:
            with c.stream("POST", "/v1/completions", json={
                    "prompt": _prompt_for(table, model), "max_tokens": 3, "stream": True}) as r:
                lines = r.iter_lines()
                first = next(line for line in lines if line)
                assert json.loads(first[6:])["choices"][0]["text"] == " tok0"
                gated.gate.set()
                rest = [line for line in lines if line]
    assert [json.loads(x[6:])["choices"][0]["text"] for x in rest[:-1]] == [" tok1", " tok2"]
    assert rest[-1] == "data: [DONE]"


def test_upstream_failures_answer_502_504_and_never_hang(stack, plan):
    c = stack["client"]

    def post(prompt, **kw):
        return c.post("/v1/completions", json={"prompt": prompt, "max_tokens": 4, **kw})

    r = post("FAKE:http_500 please")
    assert r.status_code == 502 and "answered 500" in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "upstream_error"
    r = post("FAKE:http_400 please")          # the request's own fault: passed through
    assert r.status_code == 400 and r.json()["error"]["message"] == "injected 400"
    cancelled = sum(u.cancelled for us in stack["ups"].values() for u in us)
    r = post("FAKE:hang please", stream=True)
    assert r.status_code == 504 and r.json()["error"]["code"] == 504
    deadline = time.monotonic() + 10
    while sum(u.cancelled for us in stack["ups"].values() for u in us) == cancelled:
        assert time.monotonic() < deadline, "the router left the hung upstream request open"
        time.sleep(0.05)
    with c.stream("POST", "/v1/completions", json={
            "prompt": "FAKE:die_mid_stream now", "max_tokens": 6, "stream": True}) as r:
        assert r.status_code == 200
        events = _events(r)
    assert [json.loads(e)["choices"][0]["text"] for e in events[:2]] == [" tok0", " tok1"]
    assert json.loads(events[2])["error"]["code"] == 502 and "[DONE]" not in events


def test_an_upstream_that_is_down_gives_502(plan):
    with socket_closed_port() as port:
        app = create_app(plan, {m: [f"http://127.0.0.1:{port}"] for m in plan.model_names},
                         upstream_timeout_s=5.0)
        with RouterServer(app) as router, httpx.Client(base_url=router.url, timeout=30) as c:
            r = c.post("/v1/completions", json={"prompt": "hello", "stream": True})
            assert r.status_code == 502
            assert r.json()["error"]["type"] == "upstream_unavailable"
            m = _metrics(c)
    model = r.headers["x-routerwise-model"]
    assert m[("routerwise_router_errors_total", (("kind", "upstream_down"), ("model", model)))] == 1
    assert m[("routerwise_router_outstanding_requests",
              (("endpoint", f"http://127.0.0.1:{port}"), ("model", model)))] == 0


@contextlib.contextmanager
def socket_closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                 # nothing listens there now
    yield port


def test_client_disconnect_cancels_the_upstream_request(plan, table):
    model = plan.model_names[0]
    slow = FakeUpstream(model, tpot_s=0.05)
    with contextlib.ExitStack() as st:
        urls = {m: [st.enter_context(RouterServer(slow if m == model else FakeUpstream(m))).url]
                for m in plan.model_names}
        router = st.enter_context(RouterServer(create_app(plan, urls)))
        with httpx.Client(base_url=router.url, timeout=10.0) as c:
            with c.stream("POST", "/v1/completions", json={
                    "prompt": _prompt_for(table, model), "max_tokens": 400,
                    "stream": True}) as r:
                first = next(line for line in r.iter_lines() if line)
                assert "tok0" in first
            deadline = time.monotonic() + 10            # 400 tokens would take 20 s
            while slow.cancelled == 0:
                assert time.monotonic() < deadline, "the upstream request was not cancelled"
                time.sleep(0.05)
            assert slow.completed == 0
            m = _metrics(c)
    assert m[("routerwise_router_client_disconnects_total", (("model", model),))] == 1
    assert not any(k[0] == "routerwise_router_errors_total" and v for k, v in m.items())
    assert m[("routerwise_router_outstanding_requests", (("endpoint", urls[model][0]),
                                                         ("model", model)))] == 0


@pytest.mark.parametrize("content, why", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"max_tokens": 3}', "'prompt' must be"),
    (b'{"prompt": [1, 2, 3]}', "token-id prompts"),
])
def test_malformed_bodies_get_400_and_reach_no_upstream(stack, content, why):
    before = sum(len(u.requests) for us in stack["ups"].values() for u in us)
    r = stack["client"].post("/v1/completions", content=content,
                             headers={"content-type": "application/json"})
    assert r.status_code == 400 and why in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = stack["client"].post("/v1/chat/completions", json={"messages": "hi"})
    assert r.status_code == 400 and "'messages'" in r.json()["error"]["message"]
    assert sum(len(u.requests) for us in stack["ups"].values() for u in us) == before


def test_decision_log_and_metrics_record_each_request_without_secrets(stack, plan, table, caplog,
                                                                       capfd):
    import logging
    caplog.set_level(logging.DEBUG)
    c, log = stack["client"], stack["log"]
    n_before = len(log.read_text().splitlines()) if log.exists() else 0
    m0 = _metrics(c)
    prompts = [_prompt_for(table, m) for m in plan.model_names]
    for p in prompts:
        assert c.post("/v1/completions", json={"prompt": p, "max_tokens": 2},
                      headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
    lines = [json.loads(x) for x in log.read_text().splitlines()[n_before:]]
    assert [d["model"] for d in lines] == list(plan.model_names)
    for d, p in zip(lines, prompts):
        assert d["prompt_sha256"] == hashlib.sha256(p.encode()).hexdigest()
        assert "prompt" not in d and d["score_source"] == "table"
        assert d["prices"] == plan.planned_prices
        assert set(d["predicted_scores"]) == set(plan.model_names)
    m1 = _metrics(c)
    for model in plan.model_names:
        key = ("routerwise_router_requests_total", (("api", "completions"), ("model", model)))
        assert m1[key] - m0.get(key, 0) == 1
        ttft = ("routerwise_router_ttft_seconds_count", (("model", model),))
        assert m1[ttft] - m0.get(ttft, 0) == 1
        dec = ("routerwise_router_decisions_total", (("model", model), ("source", "table")))
        assert m1[dec] - m0.get(dec, 0) == 1
    out = capfd.readouterr()
    for text in (log.read_text(), c.get("/metrics").text, caplog.text, out.out, out.err):
        assert SECRET not in text


def test_prompt_text_is_logged_only_when_asked(plan, tmp_path):
    log = tmp_path / "d.jsonl"
    with contextlib.ExitStack() as st:
        urls = {m: [st.enter_context(RouterServer(FakeUpstream(m))).url] for m in plan.model_names}
        router = st.enter_context(RouterServer(create_app(plan, urls, decision_log=log,
                                                          log_prompts=True)))
        with httpx.Client(base_url=router.url) as c:
            c.post("/v1/chat/completions", json={"messages": [
                {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})
    (rec,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert rec["prompt"] == "be brief\nhi" and rec["api"] == "chat"


def test_least_outstanding_requests_balances_one_models_endpoints(plan, table):
    model = plan.model_names[1]
    a, b = GatedUpstream(model), GatedUpstream(model)
    b.gate.set()
    with contextlib.ExitStack() as st:
        urls = {m: [st.enter_context(RouterServer(FakeUpstream(m))).url] for m in plan.model_names}
        urls[model] = [st.enter_context(RouterServer(a)).url, st.enter_context(RouterServer(b)).url]
        router = st.enter_context(RouterServer(create_app(plan, urls)))
        body = {"prompt": _prompt_for(table, model), "max_tokens": 2, "stream": True}
        with httpx.Client(base_url=router.url, timeout=10.0) as c:
            with c.stream("POST", "/v1/completions", json=body) as held:
                lines = held.iter_lines()       # kept: closing it would close the stream
                next(line for line in lines if line)                # a holds it open
                for _ in range(3):                                  # a busy: all go to b
                    assert c.post("/v1/completions", json=body).status_code == 200
                assert (len(a.requests), len(b.requests)) == (1, 3)
                a.gate.set()
                list(lines)
            for _ in range(4):                                      # both idle: in turn
                c.post("/v1/completions", json=body)
    assert (len(a.requests), len(b.requests)) == (3, 5)


# ---------------------------------------------------------------------------------------------
# Router overhead helpers (profiling.router_overhead): known values


def test_overhead_is_the_difference_of_quantiles():
    from profiling.router_overhead import overhead_summary
    direct = np.arange(1.0, 101.0)                 # 1..100 ms
    routed = direct + 2.0                          # the router adds 2 ms to every request
    s = overhead_summary(direct, np.append(routed, np.nan))     # a failed request: left out
    assert s["direct_ttft_p50_ms"] == pytest.approx(50.5)
    assert s["routed_ttft_p99_ms"] == pytest.approx(np.percentile(routed, 99))
    for q in ("p50", "p99", "mean"):
        assert s[f"router_overhead_ms_{q}"] == pytest.approx(2.0)
    with pytest.raises(ValidationError):
        overhead_summary([np.nan], [1.0])


def test_paired_overhead_is_per_request():
    from profiling.router_overhead import overhead_summary, paired_overhead
    rng = np.random.default_rng(0)
    direct = rng.exponential(20.0, 1000)          # a noisy machine: large shared stalls
    routed = direct + 1.5                         # each request 1.5 ms later via the router
    routed[0] = np.nan                            # a failed request: its pair is left out
    s = paired_overhead(direct, routed)
    assert s["pairs"] == 999
    assert s["paired_overhead_ms_p50"] == pytest.approx(1.5)
    assert s["paired_overhead_ms_p99"] == pytest.approx(1.5)
    shuffled = overhead_summary(direct, rng.permutation(routed))   # unpaired: same quantiles
    assert shuffled["router_overhead_ms_p50"] == pytest.approx(1.5, abs=0.1)
    with pytest.raises(ValidationError, match="one of each"):
        paired_overhead(direct, routed[:10])


def test_highest_sustained_rate_stops_at_the_first_failing_point():
    from profiling.router_overhead import highest_sustained_rate

    def point(rate, p99, failed=0, achieved=None):
        return {"rate_rps": rate, "offered_rps": rate, "router_overhead_ms_p99": p99,
                "routed_requests_failed": failed, "direct_requests_failed": 0,
                "routed_achieved_rps": rate if achieved is None else achieved}

    pts = [point(400, 3.0), point(100, 1.0), point(200, 2.0), point(800, 30.0), point(1600, 1.0)]
    assert highest_sustained_rate(pts) == 400           # 1600 passes, but after a failure
    assert highest_sustained_rate([point(100, 1.0), point(200, 2.0, failed=1)]) == 100
    assert highest_sustained_rate([point(100, 1.0), point(200, 2.0, achieved=150)]) == 100
    assert highest_sustained_rate([point(100, 11.0)]) is None
    assert highest_sustained_rate([point(100, 11.0)], max_p99_overhead_ms=20) == 100


def test_routerwise_serve_runs_the_plan_as_a_process_and_stops_cleanly(plan_path, plan, table,
                                                                      tmp_path):
    """The front door: `routerwise serve` started and stopped by the kit's launcher."""
    from profiling.launcher import EngineSpec, free_port, launch, port_in_use
    model = plan.model_names[2]
    with RouterServer(FakeUpstream(model)) as up:
        url = up.url
        ends = [x for m in plan.model_names for x in ("--endpoint", f"{m}={url}")]
        spec = EngineSpec("router", port=free_port(), startup_timeout_s=120.0, grace_s=10.0,
                          command=("{python}", "-m", "routerwise", "serve", str(plan_path),
                                   *ends, "--port", "{port}", "--decision-log",
                                   str(tmp_path / "d.jsonl")))
        with launch(spec, log_path=tmp_path / "router.log") as router:
            r = httpx.post(router.base_url + "/v1/completions", timeout=30.0,
                           json={"prompt": _prompt_for(table, model), "max_tokens": 2})
            assert r.status_code == 200 and r.json()["model"] == model
        assert not port_in_use(spec.host, spec.port)
    (rec,) = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert rec["model"] == model and rec["endpoint"] == url
    assert "serving plan 'example-three-models'" in (tmp_path / "router.log").read_text()
