"""A newcomer's first contact: notebook 00 on an own problem, CLI progress and cached curves,
measured times in the summary, the offline mirror outside make, and the small things (reprs,
-0.0, parameters as text, parameters recorded, readable frontier, help texts, missing extra)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routerwise import cli, errors
from routerwise.errors import ValidationError
from routerwise.paper import params, record, reproduce

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    return tmp_path


def kernel_namespace(monkeypatch, **values):
    """A notebook kernel's ``__main__`` after its parameters cell (and papermill's)."""
    import types
    main = types.ModuleType("__main__")
    main.__dict__.update(values)
    monkeypatch.setitem(sys.modules, "__main__", main)


# ----------------------------------------------------------------------------- item 9

def test_each_notebook_shows_its_conclusion_once():
    # notebook 11 displayed the same conclusion before and after recording its numbers
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        src = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        shown = len(re.findall(r"display\(Markdown\((?:conclusions\.text_for|byo\.conclusion)",
                               src))
        assert shown <= 1, f"{path.name} displays its conclusion {shown} times"
        outs = [o for c in nb["cells"] for o in c.get("outputs", [])
                if "What the numbers say" in "".join(o.get("data", {}).get("text/markdown", ""))]
        assert len(outs) <= 1, f"{path.name}'s committed outputs hold the conclusion twice"


def test_a_zero_is_never_recorded_or_summarized_as_minus_zero(results):
    record.record("nb", {"gain_min_pts": 100 * -0.0}, default_kind="derived")
    raw = (results / "numbers" / "nb.json").read_text()
    assert '"gain_min_pts": 0.0' in raw and "-0.0" not in raw
    assert reproduce.format_value(-0.0) == "0"
    assert reproduce.format_value(-0.5) == "-0.5"


def test_papermill_text_parameters_are_parsed_like_reproduce_literals():
    # papermill -p slos_ms "[500]" hands the notebook the text "[500]"
    ns = {"__annotations__": {"slos_ms": "list[float]", "flag": "bool", "name": "str"},
          "slos_ms": "[500]", "flag": "true", "name": "[x]"}
    out = params.check(ns, slos_ms=params.Range(0, lo_open=True))
    assert out == {"slos_ms": [500], "flag": True, "name": "[x]"}
    assert ns["slos_ms"] == [500] and ns["flag"] is True      # the notebook sees the value
    with pytest.raises(ValidationError, match="list"):
        params.check({"__annotations__": {"slos_ms": "list[float]"}, "slos_ms": "oops"})
    # and reproduce -p takes YAML's true/false for a bool parameter
    nb = next(n for n in reproduce.NOTEBOOKS
              if any(isinstance(v, bool) for v in reproduce.notebook_parameters(n).values()))
    key = next(k for k, v in reproduce.notebook_parameters(nb).items() if isinstance(v, bool))
    _, got = reproduce.check_request([nb], [(key, "false")])
    assert got == {key: False}


def test_parameters_are_recorded_and_non_default_ones_marked_in_the_summary(results,
                                                                            monkeypatch):
    defaults = reproduce.notebook_parameters("11_cost_frontier")
    kernel_namespace(monkeypatch, **{**defaults, "max_gpus": 6, "arrival_rate_rps": 25})
    record.record("11_cost_frontier", {"best_score": 0.7}, default_kind="predicted")
    rec = record.load_record("11_cost_frontier")
    assert rec["parameters"] == {**defaults, "max_gpus": 6, "arrival_rate_rps": 25}
    assert rec["non_default_parameters"] == {"max_gpus": 6}      # 25 == the default 25.0
    text = reproduce.write_summary(results).read_text()
    assert "parameters: **not the defaults**: max_gpus=6; others default (" in text
    kernel_namespace(monkeypatch, **defaults)
    record.record("11_cost_frontier", {"best_score": 0.7}, default_kind="predicted")
    assert "parameters: the notebook's defaults" in reproduce.write_summary(results).read_text()


def test_summary_marks_a_headline_number_of_a_non_default_run(results, monkeypatch):
    defaults = reproduce.notebook_parameters("03_score_variation")
    key = next(k for k, v in defaults.items() if isinstance(v, list))
    one = defaults[key][:1]
    kernel_namespace(monkeypatch, **{**defaults, key: one})
    record.record("03_score_variation", {"variation_pct_max": 7.3}, default_kind="predicted")
    text = reproduce.write_summary(results).read_text()
    assert f"| 87% | 7.3% (run with {key}={one!r}) | 03_score_variation |" in text


def test_summary_states_each_notebooks_measured_wall_time(results):
    record.record("03_score_variation", {"variation_pct_max": 7.3}, default_kind="predicted")
    (results / "notebooks").mkdir()
    (results / "notebooks" / "03_score_variation.run.json").write_text(json.dumps(
        {"notebook": "03_score_variation", "status": "ok", "files": [], "error": None,
         "finished": "2026-05-01 10:00:00", "wall_s": 41.26, "cpu_count": 2,
         "load_avg_1min": 1.5}))
    text = reproduce.write_summary(results).read_text()
    assert "measured wall time 41 s (finished 2026-05-01 10:00:00, 2 CPUs, load average 1.5)" \
        in text
    assert "Measured wall time of the runs that produced these numbers: 41 s" in text


def test_short_reprs_for_solution_and_consistent_plan():
    from routerwise.optimize.solution import Solution
    from routerwise.planning.consistency import ConsistentPlan
    from routerwise.problem import ModelSetup, SystemSetup
    setup = SystemSetup((ModelSetup(1, 5), ModelSetup(2, 10)), ((0,), (1, 2)))
    sol = Solution(setup, np.array([0.25, 0.75]), np.zeros(2), 0.71234, 123.456, "exact",
                   "optimal", bound=0.71234, solve_time_s=0.5,
                   history=pd.DataFrame({"x": range(10_000)}), notes=("a", "b"))
    text = repr(sol)
    assert len(text) < 300 and "score=0.7123" in text and "tp1/rho0.5 | tp2/rho1.0" in text
    assert "fractions=[0.250, 0.750]" in text and "history" not in text
    cp = ConsistentPlan(sol, None, {"replayed_ms": 99.94}, True,
                        pd.DataFrame({"round": range(5000)}), 1.0, "verified")
    assert len(repr(cp)) < 500 and "replayed_ms=99.9" in repr(cp) and "rounds=5000" in repr(cp)


def test_cost_frontier_rows_are_rounded_with_units():
    df = pd.DataFrame({"num_gpus": [1, 4], "gpus": ["1 x A", "4 x A"], "cost": [1.0, 4.0],
                       "status": ["undeployable", "optimal"], "binding": ["memory", ""],
                       "score": [np.nan, 0.7195851], "bound": [np.nan, 0.7195851],
                       "gap": [np.nan, 8.3e-15], "latency_ms": [np.nan, 80.273796],
                       "setup": [None, "tp4/rho0.1 | tp4/rho0.5"],
                       "pareto_optimal": [False, True],
                       "equal-split_score": [np.nan, 0.707483],
                       "gain_vs_equal-split": [np.nan, 0.012102]})
    text = cli.frontier_view(df).to_string(index=False)
    assert "e-15" not in text and "0.00" in text and "0.7196" in text and "80.3" in text
    assert "gap %" in text and "latency ms" in text and "0.7075 (+1.21)" in text
    assert "undeployable (memory)" in text
    assert max(map(len, text.splitlines())) < 160
    assert "$/hour" in cli.frontier_view(df, priced=True).to_string(index=False)


def test_solve_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["solve", "--help"])
    out = capsys.readouterr().out
    for opt in ("--models", "--gpus", "--metric", "--gpu", "--aggregate"):
        block = out.split(opt, 1)[1].split("\n  --", 1)[0]
        assert len(block.split()) > 3, f"{opt} has no help text"
    assert "ttft_p99" in out and "H100-80GB" in out


def test_reproduce_on_a_core_install_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "papermill", None)       # as if not installed
    assert cli.main(["reproduce", "--only", "00_bring_your_own"]) == 2
    err = capsys.readouterr().err
    assert "papermill" in err and '.[paper]' in err and "Traceback" not in err
    with pytest.raises(getattr(errors, "MissingDependency", ())):
        reproduce.run(Path("unused"))


# ----------------------------------------------------------------------------- item 1

EXAMPLES = REPO / "data" / "examples"


def _own_problem(tmp_path, scores_kind: str, curve_source: str, true_table: bool):
    """The worked example copied as a user's own problem, declaring other sources."""
    import shutil
    for f in EXAMPLES.iterdir():
        shutil.copy(f, tmp_path / f.name)
    curves = pd.read_csv(tmp_path / "curves.csv")
    curves["source"] = curve_source
    curves.to_csv(tmp_path / "curves.csv", index=False)
    text = (tmp_path / "problem.toml").read_text().replace('kind = "predicted"',
                                                           f'kind = "{scores_kind}"')
    if not true_table:
        text = text.replace('true_table = "true_scores.csv"', "")
    (tmp_path / "problem.toml").write_text(text)
    from routerwise.planning.problem_file import read_problem_file
    return read_problem_file(tmp_path / "problem.toml").problem


def test_own_problems_kinds_come_from_its_inputs(tmp_path):
    from routerwise.paper import bring_your_own as byo
    from routerwise.paper.provenance import check_kinds
    p = _own_problem(tmp_path, "measured", "measured", true_table=False)
    k = byo.kinds(p)
    assert k["plan_score"] == k["consistent_score"] == \
        "derived from the measured scores in scores.csv"
    assert k["plan_latency_ms"] == "modelled on the measured curves"
    assert "not available" in k["plan_realized_score"]
    assert not any("synthetic" in v or "example" in v for v in k.values())
    # the notebook's numbers all get a valid kind from these labels
    keys = ["plan_score", "plan_realized_score", "plan_latency_ms", "plan_replayed_ms",
            "plan_replay_slo_met", "router_max_share_error", "consistent_verified",
            "consistent_score", "consistent_replayed_ms", "slo_ms"]
    check_kinds("00_bring_your_own", keys, k, "simulated")
    ex = byo.kinds(_own_problem(tmp_path, "predicted", "simulated", true_table=True))
    assert ex["plan_score"] == "predicted (predicted scores in scores.csv)"
    assert ex["plan_latency_ms"] == "modelled on the simulated curves"
    assert "true_table" in ex["plan_realized_score"] and "not" not in ex["plan_realized_score"]


def test_notebook_00_labels_its_record_from_the_problem():
    nb = json.loads((REPO / "notebooks" / "00_bring_your_own.ipynb").read_text())
    src = "".join("".join(c["source"]) for c in nb["cells"])
    assert "labels=byo.kinds(problem)" in src


def test_a_table_written_by_another_run_is_replaced_with_a_line(results, capsys):
    import os
    import time
    record.save_table(pd.DataFrame({"x": [1]}), "byo_plan")
    record.save_table(pd.DataFrame({"x": [2]}), "byo_plan")
    assert capsys.readouterr().out == ""                 # this run's own table: quietly
    old = time.time() - 3600
    os.utime(results / "tables" / "byo_plan.csv", (old, old))
    record.save_table(pd.DataFrame({"x": [3]}), "byo_plan")
    out = capsys.readouterr().out
    assert out.startswith(f"replaced {results / 'tables' / 'byo_plan.csv'} (written ")
    assert "by another run" in out


# ----------------------------------------------------------------------------- item 5

def test_solve_shows_progress_while_simulating_curves(tmp_path, monkeypatch, capsys):
    import shutil

    from routerwise.planning.problem_file import read_problem_file
    from routerwise.serving import curve_grid
    for f in EXAMPLES.iterdir():
        shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / "problem.toml").read_text().replace('table = "curves.csv"',
                                                           "simulate = true")
    (tmp_path / "problem.toml").write_text(text)
    seen = []

    def fake_build(*a, progress=True, **kw):
        seen.append(progress)
        raise ValidationError("stop here: no simulation in a unit test")

    monkeypatch.setattr(curve_grid, "build_profile_table", fake_build)
    assert cli.main(["solve", str(tmp_path / "problem.toml")]) == 2
    assert cli.main(["cost", str(tmp_path / "problem.toml"), "--quality-floor", "0.5"]) == 2
    assert seen == [True, True]                       # the CLI shows the first, long build
    with pytest.raises(ValidationError, match="stop here"):
        read_problem_file(tmp_path / "problem.toml")
    assert seen[-1] is False                          # notebooks and library calls stay quiet


def _fake_grid(cache, key="abc123def4560000"):
    """A cached profile grid as build_profile_table leaves it, from the example's curves."""
    from routerwise.io import sha256_file
    from routerwise.serving.curve_grid import GRID_VERSION
    root = cache / "profiles" / key
    root.mkdir(parents=True)
    table = pd.read_csv(EXAMPLES / "curves.csv")
    table.to_csv(root / "table.csv", index=False)
    (root / "manifest.json").write_text(json.dumps(
        {"version": GRID_VERSION, "key": key, "models": sorted(set(table["model"])),
         "gpu": "A100-80GB", "tp_degrees": [1, 2], "compute_tenths": [5, 10],
         "curves": int(table.groupby(["model", "tp", "compute_share"]).ngroups),
         "table_sha256": sha256_file(root / "table.csv"), "table_rows": len(table)}))
    return table


def test_profiles_list_show_and_export_the_cached_curves(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(cache))
    assert cli.main(["profiles", "list"]) == 0
    assert "no cached profile grids" in capsys.readouterr().out
    table = _fake_grid(cache)
    (cache / "profiles" / "ffff000011112222" / "chunks").mkdir(parents=True)
    (cache / "profiles" / "ffff000011112222" / "chunks" / "m__tp1__r10.csv").write_text("x\n")
    assert cli.main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert "abc123def4560000" in out and "complete" in out and "A100-80GB" in out
    assert "ffff000011112222" in out and "partial" in out
    assert cli.main(["profiles", "show", "abc1", "--model", "chat-8b"]) == 0
    out = capsys.readouterr().out
    assert "capacity_rps" in out and "chat-8b" in out and "chat-70b" not in out
    dest = tmp_path / "out" / "curves.csv"
    assert cli.main(["profiles", "export", "abc1", str(dest)]) == 0
    assert len(pd.read_csv(dest)) == len(table)
    assert cli.main(["profiles", "show", "ffff"]) == 2
    assert "partial" in capsys.readouterr().err
    assert cli.main(["profiles", "show", "zz"]) == 2
    assert "abc123def4560000" in capsys.readouterr().err


# ----------------------------------------------------------------------------- item 6

def test_a_bar_written_to_a_log_prints_lines_not_redraws(monkeypatch):
    import io

    from routerwise.settings import progress_bar
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "text")
    log = io.StringIO()                                    # not a terminal, as in CI
    assert list(progress_bar(range(3), desc="latency profiles", unit="curve", file=log)) == \
        [0, 1, 2]
    text = log.getvalue()
    assert "\r" not in text and "latency profiles: 3/3 curve (100%)" in text
    assert all(line.startswith("latency profiles:") for line in text.splitlines())


def test_reproduce_kernels_do_not_log_the_tcp_warning(tmp_path, monkeypatch, capfd):
    nb = {"cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
                     "source": "x: int = 1", "outputs": [], "execution_count": None},
                    {"cell_type": "code", "id": "c", "metadata": {}, "source": "print(x)",
                     "outputs": [],
                     "execution_count": None}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "00_bring_your_own.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(reproduce, "notebooks_dir", lambda: tmp_path / "nbs")
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    reproduce.run(tmp_path / "out", ["00_bring_your_own"], progress=False)
    assert (tmp_path / "out" / "notebooks" / "00_bring_your_own.ipynb").is_file()
    assert "without encryption" not in capfd.readouterr().err


# ----------------------------------------------------------------------------- item 7

def _test_source():
    import hashlib

    from routerwise.data import registry
    payload = b"model,score\na,0.5\n"
    return payload, registry.DataSource(
        "newcomer.file", registry.Repo("owner", "repo", "c0ffee" * 6 + "abcd", "MIT", "test"),
        "data/file.csv", hashlib.sha256(payload).hexdigest(), "a test file")


def test_a_config_file_points_plain_jupyter_and_papermill_runs_at_the_mirror(tmp_path,
                                                                             monkeypatch):
    from routerwise import settings
    from routerwise.data import registry
    payload, src = _test_source()
    monkeypatch.setitem(registry.REGISTRY, src.key, src)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ROUTERWISE_DATA_MIRROR", raising=False)   # no make, no environment
    monkeypatch.delenv("ROUTERWISE_OFFLINE", raising=False)
    mirror = tmp_path / "cfg" / "routerwise" / "mirror"
    (mirror / src.relpath).parent.mkdir(parents=True)
    (mirror / src.relpath).write_bytes(payload)
    cfg = tmp_path / "cfg" / "routerwise" / "config.toml"
    assert settings.config_path() == cfg
    cfg.write_text('data_mirror = "mirror"   # relative to this file\noffline = true\n')
    assert settings.data_mirror() == mirror.resolve() and settings.offline() is True
    assert registry.fetch(src.key) == mirror.resolve() / src.relpath
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", "")               # the environment wins
    assert settings.data_mirror() is None
    cfg.write_text('data_mirrror = "mirror"\n')
    with pytest.raises(ValidationError, match=r"unknown setting\(s\) \['data_mirrror'\]"):
        settings.config()


def test_missing_data_says_how_to_set_the_mirror_outside_make(tmp_path, monkeypatch):
    from routerwise.data import registry
    from routerwise.errors import MissingDataFile
    _, src = _test_source()
    monkeypatch.setitem(registry.REGISTRY, src.key, src)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ROUTERWISE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("ROUTERWISE_OFFLINE", "1")
    with pytest.raises(MissingDataFile) as e:
        registry.fetch(src.key)
    msg = str(e.value)
    assert "ROUTERWISE_DATA_MIRROR" in msg and "JupyterLab" in msg
    assert str(tmp_path / "cfg" / "routerwise" / "config.toml") in msg
