"""profiling.live_plan's co-located curves, on fake upstreams (fixed first-token delays)."""

from __future__ import annotations

import json

import pytest

from profiling import live_plan
from routerwise.errors import ValidationError

RATE = 20.0
SHARES = (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def colocated(tmp_path_factory):
    out = tmp_path_factory.mktemp("colocated")
    points = live_plan.measure_colocated(out, rate_rps=RATE, shares=SHARES, duration_s=3.0,
                                         mode="fake", log=lambda *_: None)
    return out, points


def test_each_model_is_measured_at_its_share_of_the_rate_with_the_neighbour_at_the_rest(colocated):
    _, points = colocated
    first, second = live_plan.MODELS
    assert sorted(p.rate_rps for p in points[first]) == [10.0, 20.0]   # shares 0.5 and 1
    assert sorted(p.rate_rps for p in points[second]) == [10.0, 20.0]  # shares 0.5 and 0
    for model, pts in points.items():
        for p in pts:
            assert set(p.requests["model"]) == {model}
            assert p.requests["ok"].all()
            # a fake upstream answers after its fixed delay: the time is its model's
            assert p.requests["ttft_ms"].min() >= 1000 * live_plan.FAKE_TTFT_S[model] - 1.0
    curves = live_plan.colocated_curves(points, RATE)
    assert set(curves["source"]) == {"measured"}
    for _, row in curves.iterrows():
        where = json.loads(row["provenance"])["colocated"]
        assert where["neighbour_rps"] == pytest.approx(RATE - row["load_rps"])
        assert where["neighbours"] == [m for m in live_plan.MODELS if m != row["model"]]


def test_a_split_sends_both_models_their_share_of_one_poisson_stream(colocated):
    out, _ = colocated
    import pandas as pd
    half = pd.read_csv(out / "measure" / f"colocated-{RATE:g}rps" / "share-0.500.csv")
    counts = half["model"].value_counts()
    n = len(half)
    assert set(counts.index) == set(live_plan.MODELS)
    # binomial(n, 1/2): within 4 standard deviations
    assert abs(counts[live_plan.MODELS[0]] - n / 2) <= 4 * (n / 4) ** 0.5
    alone = pd.read_csv(out / "measure" / f"colocated-{RATE:g}rps" / "share-1.000.csv")
    assert set(alone["model"]) == {live_plan.MODELS[0]}


def test_a_rerun_reads_the_measured_shares_without_starting_upstreams(colocated, monkeypatch):
    out, points = colocated

    def no_engines(*_a, **_k):
        raise AssertionError("every share was measured: nothing to start")
    monkeypatch.setattr(live_plan, "_engines", no_engines)
    again = live_plan.measure_colocated(out, rate_rps=RATE, shares=SHARES, mode="fake")
    assert {m: [len(p.requests) for p in v] for m, v in again.items()} == \
        {m: [len(p.requests) for p in v] for m, v in points.items()}


@pytest.mark.parametrize("shares", [(0.0, 1.5), (0.5, 0.5), (-0.1,)])
def test_shares_outside_zero_to_one_or_repeated_are_refused(tmp_path, shares):
    with pytest.raises(ValidationError, match="shares"):
        live_plan.measure_colocated(tmp_path, rate_rps=RATE, shares=shares, mode="fake")


def test_an_unknown_curve_kind_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValidationError, match="colocated"):
        live_plan.run(tmp_path, mode="fake", curves="together")
    assert not any(tmp_path.iterdir())


def test_each_share_records_every_upstream_process_cpu_and_wait(colocated):
    out, _ = colocated
    import pandas as pd
    half = pd.read_csv(out / "measure" / f"colocated-{RATE:g}rps" / "share-0.500.csv")
    waits = live_plan.cpu_wait_shares(half)
    # fake upstreams are one process each: a "server" role per model, no engine core
    assert set(waits) == {f"{m}:server" for m in live_plan.MODELS}
    for key, wait in waits.items():
        run = float(half[f"cpu_share_{key}"].iloc[0])
        assert 0.0 <= wait <= 2.0 and 0.0 < run <= 2.0  # at most both cores per second
    assert live_plan.cpu_wait_shares(half.drop(columns=[c for c in half if "cpu_" in c])) == {}


def _point(model, rate, ttfts, block_s=live_plan.BLOCK_S):
    """A curve point whose requests fall one per second, ``ttfts`` in order."""
    import pandas as pd

    from profiling.engine_check import Point
    n = len(ttfts)
    df = pd.DataFrame({"scheduled_s": [float(k) for k in range(n)], "ttft_ms": ttfts,
                       "ok": [True] * n})
    return Point(model, rate, 0, df)


def test_the_curve_margin_is_one_plus_the_median_half_width_of_its_points():
    import numpy as np
    from scipy import stats
    # 1 s per request, blocks of 10 s: block means 90 and 110 (s), 100/100/100 (steady), and
    # one block only (too short to say): left out
    s = _point("tiny-llama-s", 4.0, [90.0] * 10 + [110.0] * 10)
    steady = _point("tiny-llama-s", 6.0, [100.0] * 30)
    short = _point("tiny-llama-m", 2.0, [50.0] * 5)
    wide = _point("tiny-llama-m", 4.0, [50.0] * 10 + [150.0] * 10)
    margin, detail = live_plan.curve_margin({"tiny-llama-s": [s, steady],
                                             "tiny-llama-m": [short, wide]})
    t = stats.t.ppf(0.975, 1)
    half_s = 100 * t * np.std([90, 110], ddof=1) / np.sqrt(2) / 100.0
    half_wide = 100 * t * np.std([50, 150], ddof=1) / np.sqrt(2) / 100.0
    assert detail["half_width_pct"] == pytest.approx(
        {"tiny-llama-s@4rps": half_s, "tiny-llama-s@6rps": 0.0, "tiny-llama-m@4rps": half_wide})
    assert margin == pytest.approx(1.0 + half_s / 100.0)  # the median of the three
    assert live_plan.curve_margin({"tiny-llama-m": [short]})[0] == 1.0


@pytest.mark.parametrize("margin", [0.5, float("nan")])
def test_a_margin_below_one_is_refused(tmp_path, margin):
    with pytest.raises(ValidationError, match="margin"):
        live_plan.write_problem(tmp_path, live_plan.fake_curves(), rate_rps=8.0, slo_ms=100.0,
                                margin=margin)


def test_a_margin_plans_for_the_tightened_slo_and_judges_the_live_run_on_the_slo(tmp_path):
    res = live_plan.run(tmp_path, mode="fake", rate_rps=8.0, slo_ms=45.0, duration_s=4.0,
                        margin=1.25, log=lambda *_: None)
    s = res.summary
    assert s["planning_margin"] == 1.25 and s["planned_slo_ms"] == pytest.approx(36.0)
    assert res.plan["latency_ms"] <= 36.0 + 1e-6   # the plan meets the tightened SLO
    assert s["slo_ms"] == 45.0   # the live run is judged on the SLO itself
    assert "36.0" in (tmp_path / "problem" / "problem.toml").read_text()
    assert s["curve_margin_measured"] == 1.0   # fake upstreams' curves are synthetic
    # every process on the request path is accounted for, in both live runs
    for run_name in ("router", "direct"):
        assert set(s["cpu_wait_share"][run_name]) == {
            "router:server", *(f"{m}:server" for m in live_plan.MODELS)}
    with pytest.raises(ValidationError, match="margin"):
        live_plan.run(tmp_path, mode="fake", margin="large")


def test_a_margin_no_plan_can_meet_is_explained_by_the_solver(tmp_path):
    from routerwise.errors import InfeasibleSLO
    # the fake curves' fastest model takes 20 ms: 45 ms / 3 = 15 ms is out of reach
    with pytest.raises(InfeasibleSLO, match=r"found no plan .*infeasible \(latency\).*15"):
        live_plan.run(tmp_path, mode="fake", rate_rps=8.0, slo_ms=45.0, duration_s=4.0,
                      margin=3.0, log=lambda *_: None)
