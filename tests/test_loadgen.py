"""profiling.loadgen against the loopback fake engine: timings, error rows, schedules, summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fake_engine import FakeEngine

from profiling import loadgen as lg
from routerwise.data import latency_table as profiles
from routerwise.errors import DataError, ValidationError

# On a busy 2-core machine the client and the in-process engine compete for the CPU, and the
# client may say it fell behind its schedule. No assertion here depends on how fast the machine
# is: bounds on measured times are the ones causality gives (a token cannot arrive before the
# engine sends it), and the lag warning is checked on given times (test_a_client_behind_...).
pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]


def one_prompt(text="hello there", max_tokens=6) -> lg.PromptSet:
    return lg.PromptSet("test", (lg.Prompt(text, max_tokens, "p0"),))


def at_once(n: int) -> lg.Schedule:
    return lg.trace_schedule([0.0] * n)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_ttft_and_tpot_match_the_engine_delays(api):
    ttft_ms, tpot_ms, n_tok = 80.0, 20.0, 6
    with FakeEngine(ttft_s=ttft_ms / 1000, tpot_s=tpot_ms / 1000) as eng:
        res = lg.run_load(lg.poisson_schedule(20, num_requests=6, seed=3),
                          one_prompt(max_tokens=n_tok), lg.Endpoint(eng.url, "fake-model", api=api),
                          progress=False)
    df = res.requests
    assert len(df) == 6 and df["ok"].all() and (df["error_kind"] == "").all()
    # sleeps overshoot, never undershoot: the first token cannot come before the engine's TTFT,
    # nor the last before all its token delays (a busy client only makes them later, and may
    # read tokens bunched, so TPOT alone has no lower bound)
    assert (df["ttft_ms"] >= ttft_ms - 1).all()
    assert (df["e2e_ms"] >= ttft_ms + (n_tok - 1) * tpot_ms - 2).all()
    # each latency is the difference of the recorded times it is defined by
    assert np.allclose(df["ttft_ms"], 1000 * (df["first_token_s"] - df["send_s"]))
    assert np.allclose(df["e2e_ms"], 1000 * (df["end_s"] - df["send_s"]))
    assert (df["tpot_ms"] > 0).all()
    assert (df["ttft_ms"] + (n_tok - 1) * df["tpot_ms"] <= df["e2e_ms"] + 1e-6).all()
    assert (df["completion_tokens"] == n_tok).all() and df["tokens_from_usage"].all()
    assert (df["num_chunks"] == n_tok).all()  # the chat role delta carries no text
    assert (df["prompt_tokens"] == 2).all() and (df["http_status"] == 200).all()
    assert (df["send_s"] >= df["scheduled_s"]).all()
    assert (df["first_token_s"] > df["send_s"]).all() and (df["end_s"] > df["first_token_s"]).all()
    assert eng.requests == 6


@pytest.mark.parametrize("mode,kind", [
    ("http_500", "http_status"),
    ("die_mid_stream", "stream_broken"),
    ("malformed", "malformed_stream"),
    ("no_done", "stream_incomplete"),
    ("error_event", "server_error"),
])
def test_failures_are_recorded_rows(mode, kind):
    with FakeEngine(ttft_s=0.01, tpot_s=0.002) as eng:
        res = lg.run_load(at_once(2), one_prompt(f"FAKE:{mode} please"),
                          lg.Endpoint(eng.url, "fake-model"), progress=False)
    df = res.requests
    assert len(df) == 2 and not df["ok"].any()
    assert (df["error_kind"] == kind).all() and (df["error_message"] != "").all()
    assert df["e2e_ms"].isna().all() and df["end_s"].notna().all()
    if mode == "http_500":
        assert (df["http_status"] == 500).all() and df["error_message"].str.contains("500").all()
    if mode == "die_mid_stream":
        assert (df["num_chunks"] == 2).all() and df["ttft_ms"].notna().all()


def test_a_hanging_server_gives_read_timeout_rows_not_a_hang():
    with FakeEngine(hang_s=5.0) as eng:
        res = lg.run_load(at_once(2), one_prompt("FAKE:hang"),
                          lg.Endpoint(eng.url, "fake-model", read_timeout_s=0.3), progress=False)
    assert (res.requests["error_kind"] == "read_timeout").all()


def test_total_request_timeout():
    with FakeEngine(ttft_s=0.01, tpot_s=0.2) as eng:
        res = lg.run_load(at_once(1), one_prompt(max_tokens=20),
                          lg.Endpoint(eng.url, "fake-model", request_timeout_s=0.4),
                          progress=False)
    row = res.requests.iloc[0]
    assert row["error_kind"] == "request_timeout" and row["num_chunks"] >= 1


def test_nothing_listening_gives_connect_errors():
    from profiling.launcher import free_port
    url = f"http://127.0.0.1:{free_port()}"
    res = lg.run_load(at_once(3), one_prompt(), lg.Endpoint(url, "m"), progress=False)
    assert len(res.requests) == 3 and (res.requests["error_kind"] == "connect_error").all()


def test_mixed_failures_lose_no_row():
    modes = ["ok", "http_500", "die_mid_stream", "malformed", "no_done", "error_event", "hang"]
    prompts = lg.PromptSet("mixed", tuple(
        lg.Prompt("plain prompt" if m == "ok" else f"FAKE:{m}", 5, m) for m in modes))
    with FakeEngine(ttft_s=0.01, tpot_s=0.002, hang_s=5.0) as eng:
        res = lg.run_load(lg.poisson_schedule(50, num_requests=14, seed=1), prompts,
                          lg.Endpoint(eng.url, "fake-model", read_timeout_s=0.5), progress=False)
    df = res.requests
    assert list(df["request_id"]) == list(range(14))
    assert list(df["prompt_id"]) == modes * 2
    kinds = dict(zip(df["prompt_id"], df["error_kind"], strict=True))
    assert kinds == {"ok": "", "http_500": "http_status", "die_mid_stream": "stream_broken",
                     "malformed": "malformed_stream", "no_done": "stream_incomplete",
                     "error_event": "server_error", "hang": "read_timeout"}
    assert set(df["error_kind"]) <= set(lg.ERROR_KINDS) | {""}


def test_wall_limit_cancels_and_records_the_rest():
    sched = lg.trace_schedule([0.0, 0.0, 0.05, 3.0, 4.0])
    with FakeEngine(ttft_s=0.01, tpot_s=0.1) as eng:
        res = lg.run_load(sched, one_prompt(max_tokens=30), lg.Endpoint(eng.url, "fake-model"),
                          max_wall_s=0.5, progress=False)
    df = res.requests
    # the limit stopped the run before the last two were due (they were never sent)
    assert res.hit_wall_limit and len(df) == 5
    assert list(df["error_kind"]) == ["cancelled"] * 3 + ["not_sent"] * 2
    assert df["error_message"].str.contains("max_wall_s").all()
    assert df["send_s"].iloc[:3].notna().all() and df["send_s"].iloc[3:].isna().all()


def test_concurrency_cap_is_recorded_when_hit():
    with FakeEngine(ttft_s=0.02, tpot_s=0.002) as eng:
        res = lg.run_load(at_once(4), one_prompt(max_tokens=3),
                          lg.Endpoint(eng.url, "fake-model", max_concurrency=1), progress=False)
    df = res.requests
    assert df["ok"].all() and res.max_in_flight == 1
    assert res.cap_hits == 3 and df["waited_for_cap"].sum() == 3
    assert df["send_lag_ms"].max() > 30  # the last one waited for three others


def test_run_load_works_inside_a_running_event_loop():
    import asyncio

    async def notebook_cell():
        with FakeEngine() as eng:
            return lg.run_load(at_once(2), one_prompt(), lg.Endpoint(eng.url, "fake-model"),
                               progress=False)
    res = asyncio.run(notebook_cell())
    assert res.requests["ok"].all()


# -- schedules ----------------------------------------------------------------------------


def test_poisson_schedule_is_seeded_with_the_right_mean_rate():
    a = lg.poisson_schedule(50.0, num_requests=4000, seed=7)
    b = lg.poisson_schedule(50.0, num_requests=4000, seed=7)
    c = lg.poisson_schedule(50.0, num_requests=4000, seed=8)
    assert a.times_s == b.times_s and a.times_s != c.times_s
    gaps = np.diff((0.0,) + a.times_s)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 50.0, rel=0.08)  # exponential: std == mean
    assert a.rate_rps == 50.0 and "seed=7" in a.kind


def test_poisson_schedule_bounds():
    d = lg.poisson_schedule(10.0, duration_s=30.0, seed=0)
    assert max(d.times_s) <= 30.0 and 240 < len(d) < 360
    both = lg.poisson_schedule(10.0, num_requests=5, duration_s=30.0, seed=0)
    assert len(both) == 5
    with pytest.raises(ValidationError):
        lg.poisson_schedule(10.0)
    with pytest.raises(ValidationError):
        lg.poisson_schedule(0.0, num_requests=3)


def test_trace_schedule():
    s = lg.trace_schedule([10.0, 12.0, 11.0], time_scale=0.5)
    assert s.times_s == (0.0, 0.5, 1.0) and s.rate_rps == pytest.approx(2.0)
    with pytest.raises(ValidationError):
        lg.trace_schedule([])
    with pytest.raises(ValidationError):
        lg.Schedule((1.0, 0.5), 1.0, "bad")


# -- prompts and tables -------------------------------------------------------------------


def test_prompts_from_file_and_synthetic(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "a b", "max_tokens": 3}\n\n{"prompt": "c", "id": "x"}\n')
    ps = lg.read_prompts(p, default_max_tokens=9)
    assert [(q.text, q.max_tokens, q.prompt_id) for q in ps.prompts] == [("a b", 3, "1"),
                                                                          ("c", 9, "x")]
    p.write_text('{"text": "no prompt key"}\n')
    with pytest.raises(DataError, match="p.jsonl:1"):
        lg.read_prompts(p)
    s1 = lg.synthetic_prompts(4, prompt_words=5, seed=1)
    s2 = lg.synthetic_prompts(4, prompt_words=5, seed=1)
    assert s1.sha256 == s2.sha256 and len(s1.prompts[0].text.split()) == 5
    assert s1.sha256 != lg.synthetic_prompts(4, prompt_words=5, seed=2).sha256


def test_request_table_roundtrip(tmp_path):
    with FakeEngine() as eng:
        res = lg.run_load(at_once(2), one_prompt("FAKE:http_500"),
                          lg.Endpoint(eng.url, "fake-model"), progress=False)
    path = res.write_requests(tmp_path / "r.csv")
    back = lg.read_requests(path)
    assert list(back.columns) == list(lg.REQUEST_COLUMNS)
    assert (back["error_kind"] == "http_status").all() and len(back) == 2


# -- saturation and the summary row -------------------------------------------------------


def _table(sched, first, end, ok=None):
    n = len(sched)
    return pd.DataFrame({"scheduled_s": sched, "send_s": sched, "first_token_s": first,
                         "end_s": end, "ok": [True] * n if ok is None else ok,
                         "error_kind": ["" if o else "http_status" for o in (ok or [True] * n)]})


def test_saturation_criteria_one_by_one():
    t = np.arange(30) / 10.0  # 10 rps for 3 s
    healthy = lg.detect_saturation(_table(t, t + 0.05, t + 0.2))
    assert not healthy.saturated and healthy.completion_ratio == pytest.approx(1.0)
    slow = lg.detect_saturation(_table(t, t + 0.05, 0.2 + np.arange(30) / 5.0))  # 5 rps out
    assert slow.saturated and "completion rate" in slow.reasons[0]
    growing = lg.detect_saturation(_table(t, t + 0.05 + t / 3, t + 0.2 + t / 3 + 0.0))
    assert growing.saturated and any("TTFT rose" in r for r in growing.reasons)
    errors = lg.detect_saturation(_table(t, t + 0.05, t + 0.2, ok=[i % 5 != 0 for i in range(30)]))
    assert errors.saturated and errors.error_rate == pytest.approx(0.2)
    assert "http_status: 6" in errors.reasons[0]
    tiny = lg.detect_saturation(_table(t[:3], t[:3] + 0.05, t[:3] + 5.0))
    assert not tiny.saturated  # too few requests for the rate and trend tests
    none = lg.detect_saturation(_table(t[:3], t[:3], t[:3], ok=[False] * 3))
    assert none.saturated


def test_jitter_at_small_ttft_is_not_saturation():
    t = np.arange(30) / 10.0
    jitter = lg.detect_saturation(_table(t, t + np.where(t > 2, 0.006, 0.002), t + 0.1))
    assert jitter.ttft_growth == pytest.approx(3.0) and not jitter.saturated


def _run_at(rate, n, eng):
    return lg.run_load(lg.poisson_schedule(rate, num_requests=n, seed=0),
                       lg.synthetic_prompts(8, prompt_words=10, max_tokens=4),
                       lg.Endpoint(eng.url, "fake-model"), progress=False)


def test_summary_is_a_valid_profile_row_and_flags_saturation_only_under_overload():
    import dataclasses
    # One request at a time, ~32 ms each: capacity ~30 rps.
    with FakeEngine(ttft_s=0.02, tpot_s=0.004, max_concurrency=1) as eng:
        light, heavy = _run_at(6, 12, eng), _run_at(200, 40, eng)
    # How a light load is summarized is checked on given times (each request sent on time, first
    # token 25 ms later, then 3 more at 4 ms): what this machine's load did to the real run is
    # not the summary's business. Overload saturates however slow the machine is.
    t = np.arange(12) / 6.0
    light = dataclasses.replace(light, requests=light.requests.assign(
        scheduled_s=t, send_s=t, first_token_s=t + 0.025, end_s=t + 0.037, ttft_ms=25.0,
        tpot_ms=4.0, e2e_ms=37.0, ok=True, error_kind="", waited_for_cap=False))
    rows = [lg.summarize(r, model="fake", gpu="loopback", tp=1, compute_share=0.5,
                         provenance={"engine": "tests/fake_engine.py"}) for r in (light, heavy)]
    table = profiles.normalize(pd.concat(rows, ignore_index=True))
    assert list(table.columns) == list(profiles.COLUMNS) and len(table) == 2
    lo, hi = table.iloc[0], table.iloc[1]
    assert (lo["load_rps"], hi["load_rps"]) == (6.0, 200.0)
    assert not lo["saturated"] and hi["saturated"]
    assert lo["num_requests"] == 12 and lo["source"] == "measured"
    assert lo["ttft_p50_ms"] == pytest.approx(25.0) and lo["ttft_p99_ms"] == pytest.approx(25.0)
    assert lo["tpot_mean_ms"] == pytest.approx(4.0) and lo["e2e_mean_ms"] == pytest.approx(37.0)
    assert lo["duration_s"] == pytest.approx(11 / 6.0 + 0.037)
    # 40 requests arriving within ~0.2 s, served one at a time for 32 ms or more each: most
    # wait behind many others, on any machine, so the mean TTFT is far above 25 ms
    assert hi["ttft_mean_ms"] > 5 * lo["ttft_mean_ms"]
    prov = json.loads(hi["provenance"])
    for key in ("endpoint", "served_model", "date", "prompt_set", "prompt_set_sha256",
                "arrivals", "tools", "saturation", "errors", "engine"):
        assert key in prov
    assert prov["endpoint"].endswith("/v1/completions") and prov["saturation"]
    assert prov["tools"]["httpx"]


def test_summary_of_a_failed_run_has_nan_latencies():
    with FakeEngine() as eng:
        res = lg.run_load(at_once(3), one_prompt("FAKE:http_500"),
                          lg.Endpoint(eng.url, "fake-model"), progress=False)
    row = lg.summarize(res, 1.0, model="m", gpu="g").iloc[0]
    assert row["num_requests"] == 0 and np.isnan(row["ttft_mean_ms"]) and row["saturated"]
    assert json.loads(row["provenance"])["errors"] == {"http_status": 3}


def test_a_client_behind_schedule_is_flagged():
    import dataclasses
    with FakeEngine() as eng:
        res = lg.run_load(at_once(3), one_prompt(), lg.Endpoint(eng.url, "fake-model"),
                          progress=False)

    def summarize_sent_at(send_s, **kw):
        # the verdict comes from the recorded send times: given here, not this machine's load
        reqs = res.requests.assign(scheduled_s=0.0, send_s=send_s, **kw)
        row = lg.summarize(dataclasses.replace(res, requests=reqs), 1.0, model="m", gpu="g")
        return json.loads(row.iloc[0]["provenance"])

    prov = summarize_sent_at([0.001, 0.002, 0.003])
    assert prov["warnings"] == [] and prov["client"]["send_lag_p50_ms"] == pytest.approx(2.0)
    assert summarize_sent_at([0.005] * 3)["warnings"] == []       # at the limit is within it
    with pytest.warns(UserWarning, match="fell behind its schedule"):
        prov = summarize_sent_at([0.040, 0.060, 0.080])
    assert prov["client"]["send_lag_p50_ms"] == pytest.approx(60.0)
    assert "median send lag 60.0 ms > 5 ms" in prov["warnings"][0]
    with pytest.warns(UserWarning, match="fell behind"):            # never rounded to the limit
        prov = summarize_sent_at([0.005, 0.0050004, 0.006])
    assert "median send lag 5.0004 ms > 5 ms" in prov["warnings"][0]
    capped = res.requests.assign(scheduled_s=0.0, send_s=0.080, waited_for_cap=True)
    assert np.isnan(lg.client_lag(capped)["send_lag_p50_ms"])   # the cap's wait, not the client's


def test_endpoint_validation_and_payload():
    with pytest.raises(ValidationError):
        lg.Endpoint("http://x", "m", api="embeddings")
    ep = lg.Endpoint("http://x", "m", api="chat", ignore_eos=False, extra_body={"top_p": 0.9})
    body = ep.payload(lg.Prompt("hi", 7))
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["max_tokens"] == 7
    assert body["stream"] is True and "ignore_eos" not in body and body["top_p"] == 0.9
    assert ep.path == "/v1/chat/completions"
