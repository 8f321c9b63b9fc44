"""reproduce and notebook 00 when something goes wrong: a failed notebook leaves nothing of an
earlier run looking current; notebook 00 explains an infeasible SLO and a missing true_table;
-p values are checked against the notebook's own type and range before any kernel starts."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mirror
from test_bring_your_own import _edit_problem

from routerwise import cli
from routerwise.errors import ValidationError
from routerwise.paper import params, reproduce

NB = "00_bring_your_own"


# --- case 1: a failed notebook -------------------------------------------------------------------
class FakePapermill:
    """Stands in for papermill.execute_notebook: writes what notebook 00 writes, or fails in
    cell 6 the way an infeasible problem made it fail."""

    def __init__(self):
        self.fail = False
        self.score = 0.0

    def __call__(self, src, dst, parameters=None, cwd=None, **kw):
        from papermill.exceptions import PapermillExecutionError
        out = Path(os.environ["ROUTERWISE_RESULTS_DIR"])
        Path(dst).write_text(json.dumps({"cells": [], "run": "fake"}))
        if self.fail:
            raise PapermillExecutionError(
                4, 6, "plan.setup.per_model", "AttributeError",
                "'NoneType' object has no attribute 'per_model'",
                ["Traceback (most recent call last)", "  Cell In[6], line 4", "AttributeError"])
        (out / "tables").mkdir(exist_ok=True)
        (out / "tables" / "byo_plan.csv").write_text(f"score\n{self.score}\n")
        (out / "numbers").mkdir(exist_ok=True)
        (out / "numbers" / f"{NB}.json").write_text(json.dumps(
            {"notebook": NB, "numbers": {"plan_score": self.score},
             "labels": {"plan_score": "predicted"}, "provenance": {}}))


def test_a_failed_notebook_moves_the_previous_run_aside_and_is_marked_failed(
        tmp_path, monkeypatch, capsys):
    import papermill
    fake = FakePapermill()
    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "unused"))
    out = tmp_path / "R"
    argv = ["reproduce", "--only", NB, "--out", str(out)]

    fake.score = 0.123
    assert cli.main(argv) == 0
    assert "| plan_score | 0.123 |" in (out / "summary.md").read_text()

    fake.fail = True
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("error:"))
    assert f"notebook {NB} failed in cell [6]: AttributeError: 'NoneType' object has no " \
           f"attribute 'per_model'" in line
    assert str(out / "notebooks" / f"{NB}.ipynb") in line      # the traceback is there
    assert "Traceback" not in err and "PapermillExecutionError" not in err
    # nothing of the earlier run is left looking current ...
    assert not (out / "numbers" / f"{NB}.json").exists()
    assert not (out / "tables" / "byo_plan.csv").exists()
    summary = (out / "summary.md").read_text()
    assert f"FAILED: {NB}" in summary and "0.123" not in summary
    # ... and nothing is lost: it is kept aside, and the message says where
    prev = out / "previous" / NB
    assert (prev / "tables" / "byo_plan.csv").read_text() == "score\n0.123\n"
    assert json.loads((prev / "numbers" / f"{NB}.json").read_text())["numbers"] == {
        "plan_score": 0.123}
    assert str(prev) in line

    # a later success replaces the failure: no FAILED mark, nothing kept aside
    fake.fail, fake.score = False, 0.456
    assert cli.main(argv) == 0
    summary = (out / "summary.md").read_text()
    assert "FAILED" not in summary and "| plan_score | 0.456 |" in summary
    assert not prev.exists()


def test_run_raises_a_typed_error_naming_the_notebook(tmp_path, monkeypatch):
    import papermill
    fake = FakePapermill()
    fake.fail = True
    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "unused"))
    with pytest.raises(reproduce.NotebookFailed) as info:
        reproduce.run(tmp_path / "R", [NB, "01_setup_space"], progress=False)
    e = info.value
    assert e.notebook == NB and e.executed == (tmp_path / "R" / "notebooks" / f"{NB}.ipynb")
    assert e.not_run == ("01_setup_space",) and e.previous is None
    assert "not run: 01_setup_space" in str(e)


# --- case 3: -p values checked up front --------------------------------------------------------
@pytest.fixture
def runs(monkeypatch):
    """Replace papermill: record every notebook a run would start."""
    import papermill
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: calls.append(a))
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", "unused")   # run() sets it: restored after
    return calls


@pytest.mark.parametrize("text, message", [
    ("50", "-p replay_requests '50': parameter 'replay_requests' (int) must be in "
           "[100, 1000000]; got 50 (notebook 00_bring_your_own)"),
    ("2.5", "parameter 'replay_requests' must be an int in [100, 1000000]; got 2.5 (float)"),
    ("1e9", "parameter 'replay_requests' must be an int in [100, 1000000]; got 1000000000.0"),
])
def test_a_value_the_notebook_refuses_is_refused_before_any_kernel(runs, tmp_path, capsys,
                                                                   text, message):
    rc = cli.main(["reproduce", "--only", NB, "--out", str(tmp_path / "R"),
                   "-p", "replay_requests", text])
    assert rc == 2 and message in capsys.readouterr().err
    assert runs == [] and not (tmp_path / "R").exists()


def test_python_callers_of_run_get_the_same_check(runs, tmp_path):
    with pytest.raises(ValidationError, match=r"'num_gpus' \(list\[int\]\) must be in \[1, 64\]"):
        reproduce.run(tmp_path / "R", ["01_setup_space"], {"num_gpus": [0]}, progress=False)
    assert runs == []
    reproduce.run(tmp_path / "R", [NB], {"replay_requests": 100}, progress=False)  # in range
    assert len(runs) == 1


@pytest.mark.parametrize("name", reproduce.NOTEBOOKS)
def test_every_notebooks_check_is_read_without_running_it(name):
    checks = reproduce.notebook_checks(name)
    assert set(checks) == set(reproduce.notebook_parameters(name))
    for key, (type_name, constraint) in checks.items():
        assert type_name in params.TYPES, key
        assert constraint is None or isinstance(constraint, (params.Range, params.OneOf)), key


def test_a_check_that_needs_more_than_imports_is_a_clear_error():
    from routerwise.errors import DataError
    cells = [{"cell_type": "code", "metadata": {}, "source": "import math\nLIMIT = 3\n"},
             {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "n: int = 2\n"},
             {"cell_type": "code", "metadata": {},
              "source": "_ = params.check(globals(), n=params.Range(1, LIMIT))\n"}]
    with pytest.raises(DataError, match=r"notebook x: the constraint n=params.Range\(1, LIMIT\)"):
        params.declared_checks(cells, "notebook x")
    cells[2]["source"] = "_ = params.check(globals(), n=params.Range(1, math.inf))\n"
    cells[0]["source"] = "import math\nfrom routerwise.paper import params\n"
    assert params.declared_checks(cells) == {"n": ("int", params.Range(1, math.inf))}


def test_whole_range_bounds_print_in_full():
    assert params.Range(100, 1_000_000).describe() == "in [100, 1000000]"
    assert params.Range(0.01, 60).describe() == "in [0.01, 60]"


# --- case 2: notebook 00 with an infeasible problem, or without true scores ---------------------


INFEASIBLE = ("latency_ms = 150.0", "latency_ms = 1.0")
NO_TRUTH = ('true_table = "true_scores.csv"', "")


@needs_mirror
def test_an_infeasible_problem_is_explained_and_every_step_says_why_it_has_nothing(
        tmp_path, monkeypatch, capsys):
    import routerwise as rw
    from routerwise.paper import bring_your_own as byo
    from routerwise.planning.problem_file import read_problem_file
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "R"))
    inputs = read_problem_file(_edit_problem(tmp_path, *INFEASIBLE))
    problem = inputs.problem
    plan = rw.solve(problem)
    assert not plan.feasible
    assert byo.show_plan(problem, plan) is None
    assert byo.route(problem, plan) is None
    assert byo.replay(problem, plan, inputs, 1000) == (None, None)
    assert byo.consistent(problem, plan, inputs, 1000) == (None, None)
    out = capsys.readouterr().out
    assert "infeasible (the latency limit binds): The SLO of 1 ms" in out
    assert "lowest latency any retained setup reaches" in out and "Raise the SLO" in out
    assert out.count("no plan meets the SLO") == 3
    n = byo.numbers(problem, plan, None, None, None)
    assert n["slo_ms"] == 1.0 and all(v is None for k, v in n.items() if k != "slo_ms")
    assert "No plan meets the 1 ms SLO" in byo.conclusion(n, plan)


@needs_mirror
def test_without_true_scores_the_realized_score_is_not_available_and_says_why(
        tmp_path, monkeypatch, capsys):
    import routerwise as rw
    from routerwise.paper import bring_your_own as byo
    from routerwise.planning.problem_file import read_problem_file
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "R"))
    problem = read_problem_file(_edit_problem(tmp_path, *NO_TRUTH)).problem
    plan = rw.solve(problem)
    table = byo.show_plan(problem, plan)
    assert list(table["model"]) == list(problem.model_names)
    line = capsys.readouterr().out
    assert line.startswith("optimal: predicted score ")
    assert "realized score not available: the problem has no true scores (add true_table" in line


@needs_mirror
@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("edit, expect", [
    (INFEASIBLE, "No plan meets the 1 ms SLO"),
    (NO_TRUTH, "The exact plan predicts a score of"),
])
def test_notebook_00_finishes_on_an_infeasible_problem_and_without_true_scores(
        tmp_path, monkeypatch, edit, expect):
    monkeypatch.delenv("ROUTERWISE_RESULTS_DIR", raising=False)
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    problem_file = _edit_problem(tmp_path, *edit)
    out = tmp_path / "R"
    reproduce.run(out, [NB], {"problem_file": str(problem_file), "replay_requests": 1000},
                  progress=False)
    rec = json.loads((out / "numbers" / f"{NB}.json").read_text())["numbers"]
    assert rec["plan_realized_score"] is None
    assert (rec["plan_score"] is None) == (edit is INFEASIBLE)
    nb = json.loads((out / "notebooks" / f"{NB}.ipynb").read_text())
    shown = json.dumps([o for c in nb["cells"] for o in c.get("outputs", [])])
    assert expect in shown and '"output_type": "error"' not in shown


@needs_mirror
@pytest.mark.notebooks
@pytest.mark.timeout(900)
def test_a_notebook_failing_in_its_kernel_is_one_line_and_marked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ROUTERWISE_RESULTS_DIR", raising=False)
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    out = tmp_path / "R"
    base = ["reproduce", "--only", NB, "--out", str(out), "-p", "replay_requests", "1000"]
    assert cli.main(base) == 0
    assert cli.main(base + ["-p", "problem_file", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert f"error: notebook {NB} failed in cell [" in err and "missing.toml" in err
    assert "Traceback" not in err
    assert not (out / "numbers" / f"{NB}.json").exists()
    assert f"FAILED: {NB}" in (out / "summary.md").read_text()
    assert (out / "previous" / NB / "numbers" / f"{NB}.json").is_file()


# --- case 4: the load generator's lag check, on given times ---------------------------------------
def test_send_lag_is_computed_from_given_times_exactly():
    from profiling import loadgen as lg
    # binary fractions: every lag below is exact in floating point
    sched = [0.0, 0.25, 0.5, 0.75, 1.0]
    sent = [0.0078125, 0.25, 0.515625, 0.8125, float("nan")]      # 7.8125, 0, 15.625, 62.5 ms
    lag = lg.send_lag(sched, sent)
    assert lag["send_lag_p50_ms"] == 11.71875                     # the never-sent one is left out
    assert lag["send_lag_p99_ms"] == float(np.percentile([7.8125, 0.0, 15.625, 62.5], 99))
    waited = [False, False, False, True, False]                   # the cap's wait, not the client's
    assert lg.send_lag(sched, sent, waited)["send_lag_p50_ms"] == 7.8125
    assert math.isnan(lg.send_lag([0.0], [float("nan")])["send_lag_p50_ms"])


@pytest.mark.parametrize("p50, limit, expected", [
    (5.0, 5.0, None),                        # at the limit is within it
    (4.999, 5.0, None),
    (float("nan"), 5.0, None),               # nothing sent on its own: no verdict
    (5.0004, 5.0, "median send lag 5.0004 ms > 5 ms"),
    (5.4, 5.0, "median send lag 5.4 ms > 5 ms"),
    (60.0, 5.0, "median send lag 60.0 ms > 5 ms"),
    (2.51, 2.5, "median send lag 2.51 ms > 2.5 ms"),
])
def test_the_lag_warning_never_rounds_across_its_limit(p50, limit, expected):
    from profiling import loadgen as lg
    got = lg.lag_warning({"send_lag_p50_ms": p50, "send_lag_p99_ms": p50}, limit)
    if expected is None:
        assert got is None
    else:
        assert expected in got and "fell behind its schedule" in got
