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
