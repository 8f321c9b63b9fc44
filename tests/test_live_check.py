"""Live check (routerwise.live.check): workload, client and measured record on known inputs.

The upstreams are tests/fake_engine.py servers (loopback, controlled delays, injected failures);
no timing thresholds: only counts, routes, error kinds and record arithmetic are checked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from routerwise.errors import ValidationError
from routerwise.live.check import (
    MEASURED_KIND,
    REQUEST_COLUMNS,
    LivePrompt,
    block_means,
    direct_resolver,
    gap_resolution,
    live_workload,
    measured_record,
    prompts_from_matrix,
    read_plan_record,
    router_overhead,
    router_resolver,
    send_workload,
)
from routerwise.planning.consistency import _record
from tests.fake_engine import FakeEngine

PLAN = {"problem": "live-test", "method": "exact", "status": "optimal", "score": 0.6,
        "latency_ms": 40.0, "arrival_rate_rps": 10.0,
        "slo": {"latency_ms": 50.0, "metric": "ttft_mean", "aggregate": "mean"},
        "models": [{"name": "m-a", "tp": 1, "compute_share": 1.0, "fraction": 0.75,
                    "load_rps": 7.5, "latency_ms": 30.0, "price": 0.0},
                   {"name": "m-b", "tp": 1, "compute_share": 1.0, "fraction": 0.25,
                    "load_rps": 2.5, "latency_ms": 70.0, "price": 0.1}]}


def _requests(models, ttfts, ok=None, kinds=None):
    n = len(models)
    ok = [True] * n if ok is None else ok
    kinds = [""] * n if kinds is None else kinds
    rows = []
    for k in range(n):
        rows.append({"request_id": k, "prompt_id": f"p{k}", "scheduled_s": 0.1 * k,
                     "send_s": 0.1 * k, "first_token_s": np.nan, "end_s": np.nan,
                     "ttft_ms": ttfts[k] if ok[k] else np.nan, "e2e_ms": np.nan,
                     "tpot_ms": np.nan, "prompt_tokens": 10.0, "completion_tokens": 4.0,
                     "http_status": 200 if ok[k] else 502, "ok": ok[k], "error_kind": kinds[k],
                     "error_message": "", "model": models[k], "routed_by": "header"})
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))


def _replay_keys() -> set[str]:
    """The keys of a real replay record (one replay of a one-model plan), to compare shapes."""
    from types import SimpleNamespace

    from routerwise.problem import SLO
    frame = pd.DataFrame([{"model": "m-a", "setup": "tp1/rho1", "fraction": 1.0,
                           "load_rps": 1.0, "predicted_ms": 1.0, "simulated_ms": 1.0,
                           "simulated_p99_ms": 2.0, "saturated": False,
                           "mean_prompt_tokens": 1.0, "mean_output_tokens": 1.0}])
    draw = SimpleNamespace(per_model=frame, simulated_mean_ms=1.0, simulated_p99_ms=2.0)
    setup = SimpleNamespace(tp=1, compute_tenths=10, gpu="")
    sol = SimpleNamespace(setup=SimpleNamespace(per_model=[setup]), latency_ms=1.0)
    problem = SimpleNamespace(slo=SLO(10.0), model_names=("m-a",))
    return set(_record(problem, sol, [draw], [0], None, 1, 0.95))


def test_record_has_the_replay_record_keys_and_known_values():
    # 4 requests to m-a (TTFT 10, 20, 30, 40), 2 to m-b (100, one failed with a 502)
    df = _requests(["m-a"] * 4 + ["m-b"] * 2, [10, 20, 30, 40, 100, 0],
                   ok=[True] * 5 + [False], kinds=[""] * 5 + ["http_status"])
    replay = {"replayed_ms": 45.0, "replayed_mean_ms": 45.0, "replayed_p99_ms": 90.0,
              "slo_met": True, "kind": "simulated",
              "per_model": [{"model": "m-a", "replayed_ms": 31.0, "predicted_p99_ms": 60.0},
                            {"model": "m-b", "replayed_ms": 80.0, "predicted_p99_ms": 150.0}]}
    rec = measured_record(PLAN, df, duration_s=2.0, seed=7, replay=replay)
    assert _replay_keys() <= set(rec)
    assert rec["kind"] == MEASURED_KIND and rec["source"] == "measured"
    assert rec["replayed_ms"] == pytest.approx(40.0)            # mean of 10, 20, 30, 40, 100
    assert rec["rel_gap_pct"] == pytest.approx(0.0)
    assert rec["requests_sent"] == 6 and rec["requests_ok"] == 5 and rec["requests_failed"] == 1
    assert rec["errors"] == {"http_status": 1}
    assert rec["achieved_rate_rps"] == pytest.approx(2.5)
    assert rec["client_send_lag_ms_p50"] == pytest.approx(0.0)   # sent as scheduled
    assert rec["slo_met"] is False                               # a request failed
    a, b = rec["per_model"]
    assert (a["model"], a["requests"], a["failed"]) == ("m-a", 4, 0)
    assert a["replayed_ms"] == pytest.approx(25.0)
    assert a["live_fraction"] == pytest.approx(4 / 6) and b["live_fraction"] == pytest.approx(2 / 6)
    assert rec["routed_fraction_max_abs_err"] == pytest.approx(0.75 - 4 / 6)
    assert (b["requests"], b["failed"], b["replayed_ms"]) == (2, 1, pytest.approx(100.0))
    assert a["kit_replayed_ms"] == 31.0 and rec["predicted_p99_ms"] == 150.0
    assert rec["kit_replay"]["replayed_ms"] == 45.0
    assert a["load_rps"] == pytest.approx(7.5) and a["live_load_rps"] == pytest.approx(2.0)


def test_record_slo_met_only_within_the_slo_without_failures():
    ok = measured_record(PLAN, _requests(["m-a", "m-b"] * 3, [40, 50] * 3), duration_s=1.0)
    assert ok["replayed_ms"] == pytest.approx(45.0) and ok["slo_met"] is True
    slow = measured_record(PLAN, _requests(["m-a", "m-b"] * 3, [40, 70] * 3), duration_s=1.0)
    assert slow["replayed_ms"] == pytest.approx(55.0) and slow["slo_met"] is False
    p99 = {**PLAN, "slo": {"latency_ms": 500.0, "metric": "ttft_p99", "aggregate": "max"}}
    rec = measured_record(p99, _requests(["m-a"] * 3 + ["m-b"] * 3, [1, 2, 3, 100, 200, 300]),
                          duration_s=1.0)
    assert rec["replayed_ms"] == pytest.approx(np.percentile([100, 200, 300], 99))


def test_a_model_whose_latency_grows_through_the_run_is_saturated():
    ttft = list(np.linspace(10, 100, 12))
    rec = measured_record(PLAN, _requests(["m-a"] * 12, ttft), duration_s=1.0)
    assert rec["per_model"][0]["saturated"] is True and rec["slo_met"] is False
    steady = measured_record(PLAN, _requests(["m-a"] * 12, [20.0] * 12), duration_s=1.0)
    assert steady["per_model"][0]["saturated"] is False


def test_workload_is_seeded_poisson_over_the_prompts():
    prompts = [LivePrompt(f"p{k}", f"text {k}", 4) for k in range(5)]
    w = live_workload(prompts, 50.0, 20.0, seed=3)
    again = live_workload(prompts, 50.0, 20.0, seed=3)
    assert [(r.scheduled_s, r.prompt) for r in w] == [(r.scheduled_s, r.prompt) for r in again]
    times = np.array([r.scheduled_s for r in w])
    assert np.all(np.diff(times) >= 0) and times[-1] <= 20.0
    assert abs(len(w) - 1000) < 4 * np.sqrt(1000)                # Poisson count at 50 req/s
    counts = pd.Series([r.prompt.prompt_id for r in w]).value_counts()
    assert set(counts.index) == {p.prompt_id for p in prompts}
    assert counts.max() - counts.min() <= 1                      # every prompt equally often
    first = [r.prompt.prompt_id for r in w[:5]]
    assert sorted(first) == sorted(p.prompt_id for p in prompts)   # a round is a permutation
    assert first != [p.prompt_id for p in prompts] or \
        [r.prompt.prompt_id for r in w[5:10]] != first             # in a random order
    with pytest.raises(ValidationError, match="rate"):
        live_workload(prompts, 0.0, 1.0)


def test_direct_calls_to_fake_engines_count_routes_and_errors():
    prompts = [LivePrompt("a1", "alpha one", 3), LivePrompt("b1", "beta one", 3),
               LivePrompt("bx", "FAKE:http_500 beta", 3), LivePrompt("ax", "FAKE:malformed a", 3)]
    work = live_workload(prompts, 40.0, 1.0, seed=1)
    def route(text):
        return "m-b" if "beta" in text else "m-a"
    with FakeEngine(model="m-a", ttft_s=0.01) as ea, FakeEngine(model="m-b", ttft_s=0.01) as eb:
        df = send_workload(work, direct_resolver(route, {"m-a": [ea.url], "m-b": [eb.url]}))
    want = pd.Series([route(r.prompt.text) for r in work])
    assert list(df["model"]) == list(want)
    assert set(df["routed_by"]) == {"client"}
    bad = df["prompt_id"].isin(["bx", "ax"])
    assert not df.loc[bad, "ok"].any() and df.loc[~bad, "ok"].all()
    kinds = df.loc[bad].set_index("prompt_id")["error_kind"].to_dict()
    assert set(kinds.values()) <= {"http_status", "malformed_stream"}
    assert (df.loc[df["prompt_id"] == "bx", "http_status"] == 500).all()
    assert (df.loc[~bad, "completion_tokens"] == 3).all()
    rec = measured_record(PLAN, df, duration_s=1.0)
    assert rec["requests_failed"] == int(bad.sum())
    assert rec["errors"] == df.loc[bad, "error_kind"].value_counts().to_dict()
    live = {r["model"]: r["requests"] for r in rec["per_model"]}
    assert live == want.value_counts().to_dict()


def test_router_mode_reads_the_served_model_from_the_stream():
    prompts = [LivePrompt("p", "hello there", 2)]
    work = live_workload(prompts, 20.0, 0.5, seed=0)
    with FakeEngine(model="m-b") as eng:
        df = send_workload(work, router_resolver(eng.url))
    assert df["ok"].all() and set(df["model"]) == {"m-b"} and set(df["routed_by"]) == {"stream"}


def test_unreachable_upstream_is_a_connect_error_row():
    from profiling.launcher import free_port
    work = live_workload([LivePrompt("p", "x", 2)], 10.0, 0.3, seed=0)
    df = send_workload(work, router_resolver(f"http://127.0.0.1:{free_port()}"), timeout_s=5.0)
    assert len(df) == len(work) and not df["ok"].any()
    assert set(df["error_kind"]) == {"connect_error"}


def test_router_overhead_is_the_quantile_difference():
    a = _requests(["m-a"] * 3, [12.0, 14.0, 16.0])
    b = _requests(["m-a"] * 3, [10.0, 11.0, 12.0])
    out = router_overhead(a, b)
    assert out["router_overhead_ms_p50"] == pytest.approx(3.0)
    assert out["router_overhead_ms_p99"] == pytest.approx(np.percentile([12, 14, 16], 99)
                                                           - np.percentile([10, 11, 12], 99))


def test_block_means_and_the_gaps_interval_on_known_blocks():
    # requests 0.1 s apart: blocks of 1 s hold requests 0-9, 10-19, 20-23
    ttft = [10.0] * 10 + [20.0] * 10 + [30.0] * 4
    live = _requests(["m-a"] * 24, ttft)
    assert block_means(live, 1.0).tolist() == [10.0, 20.0, 30.0]
    failed = _requests(["m-a"] * 24, ttft, ok=[True] * 20 + [False] * 4)
    assert block_means(failed, 1.0).tolist() == [10.0, 20.0]  # no finished request: no block
    direct = _requests(["m-a"] * 24, [8.0] * 10 + [12.0] * 14)
    out = gap_resolution(live, direct, block_s=1.0)
    half = 4.302652729911275 * 10.0 / np.sqrt(3)  # t(0.975, 2) x sd / sqrt(n), sd = 10
    assert out["blocks"] == 3 and out["live_ttft_mean_ci95_ms"] == pytest.approx(half)
    assert out["rel_gap_ci95_pct"] == pytest.approx(100 * half / 20.0)
    assert out["direct_block_spread_pct"] == pytest.approx(100 * (12 - 8) / np.mean([8, 12, 12]))
    steady = gap_resolution(_requests(["m-a"] * 24, [15.0] * 24), direct, block_s=1.0)
    assert steady["rel_gap_ci95_pct"] == 0.0
    one = gap_resolution(_requests(["m-a"] * 5, [15.0] * 5), direct, block_s=1.0)
    assert one["blocks"] == 1 and np.isnan(one["rel_gap_ci95_pct"])
    with pytest.raises(ValidationError, match="block_s"):
        block_means(live, 0.0)


def test_plan_file_checks(tmp_path):
    good = tmp_path / "plan.json"
    good.write_text(json.dumps(PLAN))
    assert read_plan_record(good)["models"][0]["name"] == "m-a"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"status": "infeasible", "latency_ms": None}))
    with pytest.raises(ValidationError, match="routes nothing"):
        read_plan_record(bad)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValidationError, match="not JSON"):
        read_plan_record(tmp_path / "x.json")


def _routed_plan(tmp_path):
    """A plan file over a 12-prompt score table with texts: m-a wins prompts 0-5, m-b 6-11
    (after the plan's prices), so every prompt's route is known."""
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    rows, want = [], {}
    for j in range(12):
        text = f"{words[j % 6]} {words[(j + 1) % 6]} question {j} about {words[(j + 2) % 6]}"
        a, b = (0.9, 0.2) if j < 6 else (0.2, 0.9)
        want[text] = "m-a" if j < 6 else "m-b"
        rows += [{"prompt_id": f"q{j}", "model": "m-a", "score": a, "prompt_tokens": 8,
                  "output_tokens": 3, "prompt": text},
                 {"prompt_id": f"q{j}", "model": "m-b", "score": b, "prompt_tokens": 8,
                  "output_tokens": 3, "prompt": text}]
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    plan = {**PLAN, "models": [{**m, "fraction": 0.5, "price": 0.0} for m in PLAN["models"]],
            "problem_file": None, "score_table": {"path": str(tmp_path / "scores.csv")},
            "replay": {"replayed_ms": 33.0, "replayed_mean_ms": 33.0, "replayed_p99_ms": 60.0,
                       "slo_met": True, "kind": "simulated",
                       "per_model": [{"model": "m-a", "replayed_ms": 20.0},
                                     {"model": "m-b", "replayed_ms": 46.0}]}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return tmp_path / "plan.json", want


def test_cli_live_check_through_the_router_counts_each_route(tmp_path, capsys):
    from routerwise.cli import main
    from routerwise.live.fake_upstream import FakeUpstream
    from routerwise.live.server import RouterServer
    plan, want = _routed_plan(tmp_path)
    out = tmp_path / "live.json"
    fa, fb = FakeUpstream("m-a"), FakeUpstream("m-b")
    with RouterServer(fa) as ua, RouterServer(fb) as ub:
        rc = main(["live-check", str(plan), "--endpoint", f"m-a={ua.url}", "--endpoint",
                   f"m-b={ub.url}", "--rate", "30", "--duration", "1.5", "--seed", "4",
                   "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    df = pd.read_csv(str(out) + ".requests.csv")
    texts = {p.prompt_id: p.text for p in prompts_from_matrix(_qm(tmp_path / "scores.csv"))}
    expected = df["prompt_id"].map(lambda pid: want[texts[pid]])
    assert list(df["model"]) == list(expected)                   # every route as the table says
    assert set(df["routed_by"]) == {"header"}
    counts = {r["model"]: r["requests"] for r in rec["per_model"]}
    assert counts == expected.value_counts().to_dict()
    assert len(fa.requests) == counts.get("m-a", 0) and len(fb.requests) == counts.get("m-b", 0)
    assert rec["requests_failed"] == 0 and rec["source"] == "measured"
    assert rec["kit_replay"]["replayed_ms"] == 33.0
    assert rec["per_model"][1]["kit_replayed_ms"] == 46.0
    assert "live" in capsys.readouterr().out


def _qm(path):
    from routerwise.data.scores import load_score_table
    return load_score_table(path)


def test_cli_live_check_refuses_missing_endpoints(tmp_path, capsys):
    from routerwise.cli import main
    plan, _ = _routed_plan(tmp_path)
    assert main(["live-check", str(plan), "--duration", "1"]) == 2
    assert "--endpoint" in capsys.readouterr().err


def test_prompts_from_a_table_without_texts_are_filler_of_the_token_count():
    from routerwise.data.scores import load_score_table
    df = pd.DataFrame([{"prompt_id": "x1", "model": "m", "score": 0.5, "prompt_tokens": 5,
                        "output_tokens": 7}])
    (p,) = prompts_from_matrix(load_score_table(df))
    assert (p.prompt_id, p.text, p.max_tokens) == ("x1", "word word word word word", 7)


@pytest.mark.notebooks
@pytest.mark.timeout(900)
def test_notebook_13_runs_on_fake_upstreams(tmp_path):
    pytest.importorskip("papermill")
    from conftest import needs_mirror  # noqa: F401 (the notebook solves a problem file only)
    from test_notebooks import run
    n = run("13_live_check", tmp_path)
    assert n["mode"] == "fake" and n["requests_failed"] == 0
    # fake upstreams: flat curves of 20 and 50 ms, so the plan predicts between them
    assert 20.0 <= n["predicted_ttft_mean_ms"] <= 50.0
    assert "replayed_ttft_mean_ms" not in n                     # nothing to replay for fakes
    # the seeded schedule of the notebook's rate and duration (seed 0), every request sent
    want = live_workload([LivePrompt("p", "x", 1)], n["rate_rps"], n["duration_s"], seed=0)
    assert n["requests_sent"] == len(want) > 0
    assert (tmp_path / "figures" / "live_check.png").stat().st_size > 5_000


def test_cli_live_check_through_a_running_router(tmp_path):
    from routerwise.cli import main
    from routerwise.live.app import create_app
    from routerwise.live.fake_upstream import FakeUpstream
    from routerwise.live.plan import LivePlan
    from routerwise.live.server import RouterServer
    plan, want = _routed_plan(tmp_path)
    out = tmp_path / "live.json"
    fa, fb = FakeUpstream("m-a"), FakeUpstream("m-b")
    with RouterServer(fa) as ua, RouterServer(fb) as ub:
        app = create_app(LivePlan.from_json(plan), {"m-a": [ua.url], "m-b": [ub.url]})
        with RouterServer(app) as router:
            rc = main(["live-check", str(plan), "--router", router.url, "--duration", "1",
                       "--rate", "20", "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["requests_sent"] == len(fa.requests) + len(fb.requests) > 0
    assert rec["routed_by"] == ["header"] and rec["requests_failed"] == 0
