"""The ``routerwise`` command: argument handling of reproduce / solve / profiles, checked before
any expensive work (no notebook runs here, no data is built), and ``python -m routerwise``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from routerwise import cli
from routerwise.paper import instances, reproduce

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(monkeypatch):
    """Replace the notebook runner: record what would run."""
    calls = []
    monkeypatch.setattr(reproduce, "run",
                        lambda out, only=None, parameters=None, progress=True:
                        calls.append((Path(out), list(only), dict(parameters))) or [])
    return calls


def test_reproduce_accepts_the_documented_options(runs, tmp_path):
    rc = cli.main(["reproduce", "--out", str(tmp_path / "r"), "--only", "04_exact_vs_dual",
                   "01_setup_space", "-p", "slo_ms", "500", "-p", "num_gpus", "[4]",
                   "-p", "gpu", "H100-80GB"])
    assert rc == 0
    (out, only, params), = runs
    assert out == tmp_path / "r" and only == ["01_setup_space", "04_exact_vs_dual"]
    assert params == {"slo_ms": 500, "num_gpus": [4], "gpu": "H100-80GB"}


def test_reproduce_defaults_run_every_notebook(runs):
    assert cli.main(["reproduce"]) == 0
    (out, only, params), = runs
    assert out == Path("results") and only == list(reproduce.NOTEBOOKS) and params == {}


@pytest.mark.parametrize("argv, message", [
    (["--only"], "--only needs at least one notebook name"),
    (["--only", "04_exact_vs_duel"], "unknown notebooks ['04_exact_vs_duel']"),
    (["-p", "slos_ms", "[500"], "-p slos_ms '[500' is not a Python literal"),
    (["-p", "slo_mss", "500", "--only", "04_exact_vs_dual"],
     "no selected notebook has a parameter 'slo_mss'. Parameters by notebook: "
     "04_exact_vs_dual: num_models, num_gpus, load_percent, slo_ms"),
    (["-p", "slo_ms", "'fast'", "--only", "04_exact_vs_dual"], "gives a str; the notebook "
                                                               "default is 600.0"),
    (["-p", "slo_ms", "fast", "--only", "04_exact_vs_dual"], "is not a Python literal"),
])
def test_reproduce_rejects_bad_requests_before_running(runs, capsys, argv, message):
    assert cli.main(["reproduce", *argv]) == 2
    assert message in capsys.readouterr().err
    assert runs == []


def test_notebook_parameters_are_read_from_the_tagged_cell():
    p = reproduce.notebook_parameters("04_exact_vs_dual")
    assert p["slo_ms"] == 600.0 and p["num_gpus"] == [4, 8] and p["space"] == "paper"
    # papermill's typed form (name: type = literal) is read too
    typed = reproduce.notebook_parameters("10_scale")
    assert typed["max_models"] == 6 and typed["time_limit_s"] == 600.0 and typed["seed"] == 0


def test_solve_rejects_bad_arguments_before_building_data(monkeypatch, capsys):
    def never(*a, **kw):
        raise AssertionError("data were built before the arguments were checked")

    monkeypatch.setattr(instances, "profile_table", never)
    monkeypatch.setattr(instances, "predicted_scores", never)
    for argv, message in ((["--rate", "-5", "--slo", "600"], "--rate must be a positive"),
                          (["--rate", "nan", "--slo", "600"], "--rate must be a positive"),
                          (["--rate", "5", "--slo", "0"], "--slo must be a positive"),
                          (["--rate", "5", "--slo", "600", "--gpus", "0"], "--gpus must be"),
                          (["--rate", "5", "--slo", "600", "--metric", "ttft_p42"],
                           "--metric 'ttft_p42' is unknown")):
        assert cli.main(["solve", *argv]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(instances.ValidationError, match="arrival rate"):
        instances.default_problem(3, 4, -5.0)


def test_profiles_command(monkeypatch, capsys):
    seen = []
    table = pd.DataFrame({"model": ["m"] * 3 + ["n"] * 2, "tp": [1, 1, 1, 2, 2],
                          "compute_share": [1.0] * 5})
    monkeypatch.setattr(instances, "profile_table",
                        lambda gpu, progress=False: seen.append(gpu) or table)
    assert cli.main(["profiles", "--gpu", "H100-80GB"]) == 0
    assert seen == ["H100-80GB"] and "5 load points, 2 curves" in capsys.readouterr().out
    monkeypatch.undo()
    assert cli.main(["profiles", "--gpu", "Z80"]) == 2
    assert "unknown GPU type 'Z80'" in capsys.readouterr().err


def test_python_dash_m_routerwise_is_the_command():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "routerwise", "reproduce", "--only"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--only needs at least one notebook name" in r.stderr
    r = subprocess.run([sys.executable, "-m", "routerwise", "--help"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "reproduce" in r.stdout and "profiles" in r.stdout
