"""Every notebook runs with small parameters; its recorded numbers are checked.

Each notebook is executed by papermill with the overrides below into a temporary results
folder. The checks are invariants (exact counts, orderings, feasibility) and, for the numbers
that depend on the fitted and simulated pipeline, reference values with tolerances
(``notebook_reference.json``). After an intended change of those numbers, regenerate the
reference with ``ROUTERWISE_UPDATE_REFERENCE=1 make unit`` and review the diff.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import in_ci, needs_mirror

pm = pytest.importorskip("papermill")
REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(900), needs_mirror]

SMALL = {
    "00_bring_your_own": {"replay_requests": 1000},
    "01_setup_space": {"num_gpus": [4, 8]},
    "02_latency_profiles": {"models": ["llama-3.1-8b-instruct"], "tp_degrees": [1, 2]},
    "03_score_variation": {"num_gpus": [4], "load_percent": [60], "slos_ms": [800],
                           "space": "ours", "four_model_panel": False, "workers": 1},
    "04_exact_vs_dual": {"num_models": [3], "num_gpus": [4], "space": "ours",
                         "milp_time_limit_s": 120.0},
    "05_beyond_the_paper": {"replay_requests": 1000, "mix_shifts": 4,
                            "rate_factors": [1.0, 1.2]},
    "06_gpu_inventory": {"sample_seconds": 0.5},
    "07_measure_latencies": {"loads_rps": [1.0], "tp_degrees": [1], "shares": [1.0]},
    "08_latency_validation": {"max_nfev": 8},
    "10_scale": {"max_models": 6},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


REFERENCE = Path(__file__).with_name("notebook_reference.json")
# Numbers compared with the reference, and their relative tolerance.
CHECKED = {
    "02_latency_profiles": {"capacity_rps[llama-3.1-8b-instruct,tp1]": 1e-3,
                            "unloaded_ms[llama-3.1-8b-instruct,tp1]": 1e-3},
    "03_score_variation": {"score_min": 1e-4, "score_max": 1e-4, "variation_pct_max": 1e-3},
    # the paper's method's gap to the MILP optimum (a changed dual plan moves it by far more)
    "04_exact_vs_dual": {"dual_gap_pct_max": 5e-2},
    "05_beyond_the_paper": {"predicted_score_opt": 1e-4, "realized_score_opt": 1e-3,
                            "replay_predicted_ms": 1e-3, "replay_simulated_mean_ms": 2e-2,
                            "max_rate_factor_meeting_slo": 0.0, "mix_shift_slo_violations": 0.0},
}


def run(name: str, results: Path) -> dict:
    os.environ["ROUTERWISE_RESULTS_DIR"] = str(results)
    pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"),
                        str(results / f"{name}.ipynb"), parameters=SMALL[name],
                        cwd=str(results), progress_bar=False, kernel_name="python3")
    numbers = json.loads((results / "numbers" / f"{name}.json").read_text())["numbers"]
    check_reference(name, numbers)
    return numbers


def check_reference(name: str, numbers: dict) -> None:
    keys = CHECKED.get(name, {})
    if not keys:
        return
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    if os.environ.get("ROUTERWISE_UPDATE_REFERENCE") == "1":
        # Updating never passes: the run that writes the reference cannot also check it.
        assert not in_ci(), "ROUTERWISE_UPDATE_REFERENCE is refused in CI"
        old = ref.get(name)
        ref[name] = {k: numbers[k] for k in keys}
        REFERENCE.write_text(json.dumps(ref, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"reference for {name} rewritten ({old} -> {ref[name]}); review the diff "
                    f"and rerun without ROUTERWISE_UPDATE_REFERENCE", pytrace=False)
    assert name in ref, f"no reference for {name}: run with ROUTERWISE_UPDATE_REFERENCE=1"
    for k, rtol in keys.items():
        assert numbers[k] == pytest.approx(ref[name][k], rel=rtol), k


def test_bring_your_own(results):
    n = run("00_bring_your_own", results)
    assert n["router_max_share_error"] < 0.02
    assert n["plan_score"] >= n["consistent_score"] - 1e-9     # consistency costs score
    assert n["consistent_verified"] and n["consistent_replayed_ms"] <= n["slo_ms"]


def test_every_notebook_has_small_parameters():
    names = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert names == sorted(SMALL)


def test_setup_space(results):
    n = run("01_setup_space", results)
    assert (n["utilization_3m_G4"], n["utilization_4m_G4"]) == (669, 16_660)
    assert (n["utilization_3m_G8"], n["utilization_4m_G8"]) == (141, 7_764)
    for m in (3, 4):
        for g in (4, 8):
            assert 0 < n[f"ours_retained_{m}m_G{g}"] <= n[f"paper_retained_{m}m_G{g}"]
    assert (results / "figures" / "setup_space.png").stat().st_size > 10_000


def test_latency_profiles(results):
    n = run("02_latency_profiles", results)
    assert n["curves"] == 110              # 4 models x 3 tp x 10 shares, minus 70B at tp 1
    cap1 = n["capacity_rps[llama-3.1-8b-instruct,tp1]"]
    cap2 = n["capacity_rps[llama-3.1-8b-instruct,tp2]"]
    assert cap2 > cap1 > 5.0               # more GPUs carry more load
    assert n["unloaded_ms[llama-3.1-8b-instruct,tp2]"] < n["unloaded_ms[llama-3.1-8b-instruct,tp1]"]


def test_score_variation(results):
    n = run("03_score_variation", results)
    assert n["panels"] == 1
    assert 0 < n["score_min"] <= n["score_max"] <= 1
    assert n["variation_pct_max"] == pytest.approx(100 * (n["score_max"] - n["score_min"]) / n["score_min"])
    for b in ("equal-split", "size-proportional"):
        assert n[f"{b}_gap_pct_max"] >= -1e-6      # no baseline beats the optimum


def test_exact_vs_dual(results):
    n = run("04_exact_vs_dual", results)
    assert n["milp_all_optimal"] is True
    assert abs(n["default_gap_pct_max"]) < 1e-3            # the default solver is exact
    assert n["dual_gap_pct_max"] >= -1e-2                  # the heuristic never beats the MILP
    assert n["milp_time_s_max"] < 120.0


def test_beyond_the_paper(results):
    n = run("05_beyond_the_paper", results)
    assert 0 < n["realized_score_opt"] <= 1 and 0 < n["predicted_score_opt"] <= 1
    assert n["replay_simulated_mean_ms"] > 0 and n["replay_simulated_p99_ms"] >= n["replay_simulated_mean_ms"]
    assert n["max_rate_factor_meeting_slo"] >= 1.0         # the plan meets the SLO at its own rate
    # one row per shift drawn (not the parameter echoed back: counted from the saved table)
    shifts = pd.read_csv(results / "tables" / "mix_shift.csv")
    assert len(shifts) == 4 and n["mix_shift_slo_violations"] == int((~shifts["meets_slo"]).sum())


def test_gpu_inventory_without_gpu(results):
    from profiling import nvml
    n = run("06_gpu_inventory", results)
    snap = nvml.snapshot()  # what this machine shows, read here, outside the notebook's kernel
    assert n["gpu_visible"] is snap.available and n["num_gpus"] == len(snap.gpus)
    assert n["gpu_name"] == (snap.gpus[0].name if snap.gpus else "none")
    if snap.available:  # 0.5 s at the notebook's 0.5 s interval: at least one sample per GPU
        assert n["samples"] >= len(snap.gpus)
    else:
        assert n["samples"] == 0


def test_measure_latencies_falls_back_to_simulation(results):
    n = run("07_measure_latencies", results)
    assert n["mode"] == "simulated" and n["sources"] == "simulated" and n["rows"] > 0


def test_the_reference_check_can_fail_and_updating_never_passes(tmp_path, monkeypatch):
    import sys
    mod = sys.modules[__name__]
    ref = tmp_path / "reference.json"
    ref.write_text(json.dumps({"02_latency_profiles": {
        "capacity_rps[llama-3.1-8b-instruct,tp1]": 16.782,
        "unloaded_ms[llama-3.1-8b-instruct,tp1]": 21.62}}))
    monkeypatch.setattr(mod, "REFERENCE", ref)
    monkeypatch.delenv("ROUTERWISE_UPDATE_REFERENCE", raising=False)
    good = {"capacity_rps[llama-3.1-8b-instruct,tp1]": 16.7825,
            "unloaded_ms[llama-3.1-8b-instruct,tp1]": 21.62}
    check_reference("02_latency_profiles", good)  # within 1e-3
    with pytest.raises(AssertionError, match="capacity_rps"):
        check_reference("02_latency_profiles", {**good,
                                                "capacity_rps[llama-3.1-8b-instruct,tp1]": 17.5})
    with pytest.raises(AssertionError, match="no reference for 04_exact_vs_dual"):
        check_reference("04_exact_vs_dual", {"dual_gap_pct_max": 0.1})
    monkeypatch.setenv("ROUTERWISE_UPDATE_REFERENCE", "1")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match="rewritten"):
        check_reference("02_latency_profiles", {**good,
                                                "capacity_rps[llama-3.1-8b-instruct,tp1]": 17.5})
    assert json.loads(ref.read_text())["02_latency_profiles"][
        "capacity_rps[llama-3.1-8b-instruct,tp1]"] == 17.5


def test_latency_validation(results):
    n = run("08_latency_validation", results)
    assert n["runs"] == 5 and n["runs_scored"] >= 3
    # the margin never makes planning curves optimistic on the held-out levels
    assert n["signed_err_pct_tpot_mean_with_margin"] >= -1e-6
    assert n["signed_err_pct_ttft_mean_with_margin"] >= -1e-6
    assert n["margin_ttft"] >= 1.0 and n["margin_tpot"] >= 1.0


def test_scale(results):
    n = run("10_scale", results)
    # 4x4 (about 11,000 candidate setups) stays with the exact search, 6x8 (about 8 million)
    # goes to the decomposition; both end proven optimal.
    assert n["methods"] == "exact decomposition"
    assert (n["largest_models"], n["largest_gpus"]) == (6, 8)
    assert n["all_optimal"] and n["gap_pct_max"] <= 1e-4
