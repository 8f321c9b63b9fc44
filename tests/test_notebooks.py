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
    # the real engine where installed (CI: always), one light load twice; else simulated
    "07_measure_latencies": {"loads_rps": [4.0], "repeats": 2, "num_requests": 12,
                             "tp_degrees": [1], "shares": [1.0]},
    "08_latency_validation": {"max_nfev": 8},
    "09_headline_explained": {"num_gpus": [4], "load_percent": [80], "slos_ms": [800],
                              "spread_factors": [1.0, 4.0], "workers": 1},
    "10_scale": {"max_models": 6},
    "11_cost_frontier": {"max_gpus": 6},
    "12_calibrate": {"plan_num_requests": 60},
    # fake upstreams: the router, the live check and the record in seconds, no engine
    "13_live_check": {"mode": "fake", "duration_s": 3.0},
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
    os.environ.setdefault("ROUTERWISE_PROGRESS", "off")
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


NOTEBOOK_PATHS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _parameters_index(cells):
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    return tagged[0]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_kernelspec_is_the_one_jupyterlab_writes(path):
    # any other display name makes JupyterLab mark the notebook modified on opening
    assert json.loads(path.read_text())["metadata"]["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter_with_its_type(path):
    from routerwise.paper.params import TYPES
    from routerwise.paper.reproduce import notebook_parameters
    seen = pm.inspect_notebook(str(path))          # what `papermill --help-notebook` lists
    declared = notebook_parameters(path.stem)      # every assignment in the parameters cell
    assert declared and set(seen) == set(declared), "papermill misses a parameter (an '=' in its comment?)"
    for name, p in seen.items():
        assert p["inferred_type_name"] in TYPES, f"{name}: type {p['inferred_type_name']!r}"
        assert p["help"], f"{name}: no help text"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_parameters_are_checked_right_after_the_cell_and_defaults_pass(path):
    cells = _cells(path)
    i = _parameters_index(cells)
    nxt = next(c for c in cells[i + 1:] if c["cell_type"] == "code")
    assert "params.check(globals()" in _src(nxt)
    # the imports, the parameters and the check, run as a kernel would (magics aside)
    code = "\n".join(_src(c) for c in cells[:cells.index(nxt) + 1] if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("%"))
    namespace: dict = {}
    exec(compile(code, path.name, "exec"), namespace)
    from routerwise.paper.reproduce import notebook_parameters
    assert set(namespace["__annotations__"]) == set(notebook_parameters(path.stem))


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_a_bad_parameter_stops_the_notebook_with_a_clear_error(path):
    from routerwise.errors import ValidationError
    cells = _cells(path)
    i = _parameters_index(cells)
    nxt = next(c for c in cells[i + 1:] if c["cell_type"] == "code")
    code = "\n".join(_src(c) for c in cells[:cells.index(nxt)] if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("%"))
    namespace: dict = {}
    exec(compile(code, path.name, "exec"), namespace)
    name = next(iter(namespace["__annotations__"]))
    namespace[name] = object()               # no declared type accepts this
    with pytest.raises(ValidationError, match=f"parameter {name!r}"):
        exec(compile(_src(nxt), path.name, "exec"), namespace)


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_the_last_cell_records_the_numbers(path):
    last = [c for c in _cells(path) if c["cell_type"] == "code"][-1]
    assert "record.record(" in _src(last)


def test_setup_space(results):
    n = run("01_setup_space", results)
    assert (n["utilization_3m_G4"], n["utilization_4m_G4"]) == (669, 16_660)
    assert (n["utilization_3m_G8"], n["utilization_4m_G8"]) == (141, 7_764)
    for m in (3, 4):
        for g in (4, 8):
            assert 0 < n[f"ours_retained_{m}m_G{g}"] <= n[f"paper_retained_{m}m_G{g}"]
    assert (results / "figures" / "setup_space.png").stat().st_size > 10_000
    assert (results / "figures" / "setup_space.pdf").read_bytes()[:5] == b"%PDF-"
    prov = json.loads((results / "numbers" / "01_setup_space.json").read_text())["provenance"]
    assert prov["kit_version"] and prov["data_registry_sha256"] and prov["assumptions"]


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


@pytest.mark.alone
def test_measure_latencies_on_the_engine_or_simulated(results):
    from profiling.vllm_server import engine_installed
    n = run("07_measure_latencies", results)
    if engine_installed() is None or in_ci():  # CI installs the engine: a fallback there fails
        assert n["mode"] == "measured" and n["sources"] == "measured" and n["rows"] == 2
        assert n["engine"].startswith("vllm") and n["ttft_mean_ms[4rps]"] > 0
        assert n["ttft_mean_ms_spread_pct[4rps]"] >= 0 and n["repeat_noise_pct"] >= 0
    else:
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


def test_cost_frontier(results):
    n = run("11_cost_frontier", results)
    assert n["max_gpus"] == 6 and n["pareto_points"] >= 1
    assert n["fewest_gpus_any_plan"] <= n["fewest_gpus_best_score"] <= 6
    assert n["best_score"] <= n["unlimited_capacity_score"] + 1e-9
    for b in ("equal-split", "size-proportional", "isolated"):
        assert n[f"gain_vs_{b}_min_pts"] >= -1e-6        # the optimum never trails a baseline
        if n[f"gpus_to_floor_{b}"] is not None:           # nor needs more GPUs for the floor
            assert n["gpus_to_floor_optimum"] <= n[f"gpus_to_floor_{b}"]
    if n["cheapest_gpus"] is not None:
        assert n["cheapest_gpus"] == n["gpus_to_floor_optimum"]
        assert n["cheapest_score"] >= n["quality_floor"] - 1e-9
    assert (results / "figures" / "cost_frontier.png").stat().st_size > 10_000


def test_headline_explained(results):
    n = run("09_headline_explained", results)
    for ladder in ("routeprofile", "llmrouter"):
        assert n[f"{ladder}_panels"] == 1
        assert n[f"{ladder}_lower_bound"] < n[f"{ladder}_upper_bound"]
        # no setup can vary more than its scores allow (headline's bounds)
        assert 0 < n[f"{ladder}_measured_max_pct"] <= n[f"{ladder}_max_variation_allowed_pct"]
    assert (results / "figures" / "headline_sensitivity.png").stat().st_size > 10_000


def test_scale(results):
    n = run("10_scale", results)
    # 4x4 (about 11,000 candidate setups) stays with the exact search, 6x8 (about 8 million)
    # goes to the decomposition; both end proven optimal.
    assert n["methods"] == "exact decomposition"
    assert (n["largest_models"], n["largest_gpus"]) == (6, 8)
    assert n["all_optimal"] and n["gap_pct_max"] <= 1e-4
