"""Input validation: every malformed record raises a typed error that says what to fix."""

import numpy as np
import pandas as pd
import pytest

from routerwise.data import latency_table as profiles
from routerwise.errors import ValidationError
from routerwise.paper.synthetic import synthetic_problem
from routerwise.problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSetup,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
)


def curve(**kw):
    base = dict(model="m", tp=1, compute_tenths=10, load_rps=(0.0, 1.0, 2.0),
                latency_ms=(10.0, 20.0, 40.0))
    base.update(kw)
    return LatencyCurve(**base)


def test_curve_rejects_empty_nonmonotone_nan_and_bad_loads():
    with pytest.raises(ValidationError, match="empty"):
        curve(load_rps=(), latency_ms=())
    with pytest.raises(ValidationError, match="not monotone"):
        curve(latency_ms=(10.0, 30.0, 20.0))
    with pytest.raises(ValidationError, match="NaN"):
        curve(latency_ms=(10.0, float("nan"), 20.0))
    with pytest.raises(ValidationError, match="strictly increasing"):
        curve(load_rps=(0.0, 2.0, 1.0))
    with pytest.raises(ValidationError, match="metric"):
        curve(metric="ttft_p42")


def test_curve_never_extrapolates_beyond_profiled_load():
    c = curve()
    assert c.latency_at(1.5) == pytest.approx(30.0)
    assert c.latency_at(2.0) == pytest.approx(40.0)
    assert np.isinf(c.latency_at(2.01))          # infeasible, not extrapolated
    assert c.latency_at(0.0) == 10.0
    assert c.slope_at(0.5) == pytest.approx(10.0) and c.slope_at(1.5) == pytest.approx(20.0)
    assert c.is_convex() and not curve(latency_ms=(10.0, 30.0, 35.0)).is_convex()


def test_workload_rejects_nan_out_of_range_and_bad_rates():
    names = ("a", "b")
    with pytest.raises(ValidationError, match="NaN"):
        Workload(np.array([[0.1, np.nan]]), 1.0, names)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        Workload(np.array([[0.1, 1.5]]), 1.0, names)
    with pytest.raises(ValidationError, match="columns"):
        Workload(np.array([[0.1, 0.2, 0.3]]), 1.0, names)
    for rate in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValidationError, match="arrival_rate_rps"):
            Workload(np.array([[0.1, 0.2]]), rate, names)


def test_problem_rejects_unknown_models_and_impossible_clusters():
    p = synthetic_problem(3, 4)
    other = Workload(p.workload.scores, 10.0, ("x",) + p.model_names[1:])
    with pytest.raises(ValidationError, match="unknown models in the workload"):
        Problem(p.models, p.cluster, other, p.profiles, p.slo)
    # The 70B-like model needs 146 GB at tp=1 and cannot use tp>1 on a single GPU.
    with pytest.raises(ValidationError, match="cannot be deployed"):
        p.with_cluster(1)
    with pytest.raises(ValidationError, match="num_gpus"):
        Cluster(GPUType("x", 80.0), 0)
    with pytest.raises(ValidationError, match="SLO"):
        p.with_slo(SLO(300.0, metric="e2e_mean"))
    with pytest.raises(ValidationError):
        SLO(-5.0)
    with pytest.raises(ValidationError, match="params_b"):
        ModelSpec("m", -1.0, ((1, 10.0),))
    with pytest.raises(ValidationError, match="rho_min"):
        SetupSpace(rho_min=1.5)


def test_profile_table_round_trip_and_saturation_cut(tmp_path):
    rows = []
    for x, y, sat in [(0.0, 10.0, False), (1.0, 12.0, False), (2.0, 30.0, False),
                      (3.0, 500.0, True), (4.0, 20.0, False)]:
        rows.append(dict(model="m", gpu="A100-80GB", tp=1, compute_share=0.5, load_rps=x,
                         ttft_mean_ms=y, saturated=sat, source="simulated", provenance="test"))
    df = profiles.normalize(pd.DataFrame(rows))
    path = profiles.write_table(df, tmp_path / "p.csv")
    back = profiles.read_table(path)
    pd.testing.assert_frame_equal(back, df)
    prof = profiles.to_profiles(back)
    c = prof.get("m", 1, 5)
    assert c.load_rps == (0.0, 1.0, 2.0)        # cut at the first saturated point
    with pytest.raises(ValidationError, match="repeats"):
        profiles.normalize(pd.concat([df, df]))
    with pytest.raises(ValidationError, match="lacks columns"):
        profiles.normalize(df.drop(columns=["source"]))
    noisy = df.copy()
    noisy.loc[1, "ttft_mean_ms"] = 5.0
    with pytest.raises(ValidationError, match="not monotone"):
        profiles.to_profiles(noisy)
    env = profiles.to_profiles(noisy, monotone="envelope").get("m", 1, 5)
    assert env.latency_ms == (10.0, 10.0, 30.0) and "envelope" in env.provenance


def test_profiles_reject_duplicates_and_mixed_metrics():
    c = curve()
    with pytest.raises(ValidationError, match="two curves"):
        LatencyProfiles((c, c))
    with pytest.raises(ValidationError, match="metric"):
        LatencyProfiles((c, curve(tp=2, metric="e2e_mean")))


# --- numpy scalars, malformed specs, unknown options, empty setup spaces ---------------------

def test_numpy_scalars_are_numbers():
    from tiny import two_model_problem

    from routerwise import solve
    args = dict(scores=[[0.9, 0.2], [0.3, 0.8]],
                curves={"a": ((0, 20), (100, 300)), "b": ((0, 20), (150, 250))})
    p = two_model_problem(**args, rate=10.0, tau=220.0)
    q = two_model_problem(**args, rate=np.int64(10), tau=np.float32(220.0))
    assert q.arrival_rate_rps == 10.0 and type(q.arrival_rate_rps) is float
    assert q.slo.latency_ms == 220.0 and type(q.slo.latency_ms) is float
    a, b = solve(p), solve(q)
    assert a.score == b.score and np.array_equal(a.fractions, b.fractions)
    m = ModelSpec("x", np.float32(7.0), ((np.int64(1), np.float64(20.0)),))
    assert m.params_b == 7.0 and m.mem_gb(1) == 20.0
    assert Cluster(GPUType("g", np.float32(80)), np.int64(2)).num_gpus == 2
    assert SetupSpace(tp_degrees=np.array([1, 2]), compute_tenths=(np.int64(5),)).tp_degrees \
        == (1, 2)


def test_malformed_specs_are_validation_errors():
    with pytest.raises(ValidationError, match="tp key must be an integer, got nan"):
        ModelSpec("x", 7.0, ((float("nan"), 20.0),))
    with pytest.raises(ValidationError, match="tp key must be an integer, got 1.5"):
        ModelSpec("x", 7.0, {1.5: 20.0})
    with pytest.raises(ValidationError, match=r"lists tp \[1\] more than once"):
        ModelSpec("x", 7.0, ((1, 20.0), (1, 30.0)))
    with pytest.raises(ValidationError, match="not a number of GB"):
        ModelSpec("x", 7.0, ((1, "20"),))
    with pytest.raises(ValidationError, match="params_b"):
        ModelSpec("x", True, ((1, 20.0),))
    with pytest.raises(ValidationError, match="tp_degrees entry must be an integer, got 1.5"):
        SetupSpace(tp_degrees=(1.5,))
    with pytest.raises(ValidationError, match="compute_tenths entry must be an integer"):
        SetupSpace(compute_tenths=(5, 5.5))
    with pytest.raises(ValidationError, match="sequence of integers"):
        SetupSpace(tp_degrees=2)
    with pytest.raises(ValidationError, match="ModelSetup.tp"):
        ModelSetup(float("nan"), 5)


def test_unknown_solve_options_are_validation_errors():
    from tiny import two_model_problem

    from routerwise import solve
    p = two_model_problem([[0.9, 0.2]], {"a": ((0, 20), (100, 300)), "b": ((0, 20), (150, 250))})
    with pytest.raises(ValidationError, match=r"unknown option\(s\) \['rtoll'\].*'rtol'"):
        solve(p, "exact", rtoll=1e-6)
    with pytest.raises(ValidationError, match="accepts.*'config'"):
        solve(p, "dual-price", time_limit=3)
    with pytest.raises(ValidationError, match="needs a routerwise.Problem"):
        solve("problem")


@pytest.mark.parametrize("case", ["utilization", "memory", "placement"])
def test_an_empty_setup_space_names_the_filter_that_emptied_it(case):
    from tiny import two_model_problem

    from routerwise import solve
    curves = {"a": ((0, 20), (100, 300)), "b": ((0, 20), (150, 250))}
    if case == "utilization":  # 2 models x tp1 x 0.2 GPU can never use a whole GPU
        p = two_model_problem([[0.9, 0.2]], curves, tenths=(2,))
    elif case == "memory":  # two 50 GB shards on one 80 GB GPU
        p = two_model_problem([[0.9, 0.2]], curves, tenths=(5,))
        p = p.__class__(tuple(ModelSpec(m.name, 1.0, ((1, 50.0),)) for m in p.models),
                        p.cluster, p.workload, p.profiles, p.slo, p.space)
    else:  # three 0.6-GPU shards pass utilization (1.8 <= 2 GPUs) but two share a GPU
        curves["c"] = curves["a"]
        p = two_model_problem([[0.9, 0.2, 0.5]], curves, tenths=(6,), num_gpus=2,
                              rho_min=0.0)
    sol = solve(p)
    inf = sol.infeasibility
    assert sol.status == "infeasible" and inf.binding == "setup_space" and inf.stage == case
    assert {"utilization": "utilization filter", "memory": "fits GPU memory",
            "placement": "100% memory and compute"}[case] in inf.message
