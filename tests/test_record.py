"""Notebook number recording, provenance, figures and the reproduction summary."""

import hashlib
import json
import math
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from routerwise.errors import ValidationError  # noqa: E402
from routerwise.paper import provenance, record  # noqa: E402
from routerwise.paper.reproduce import format_value, unit_of, write_summary  # noqa: E402


def test_record_writes_clean_json_and_returns_a_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    import numpy as np
    t = record.record("nb", {"a": np.float64(1.5), "b": 3, "c": math.nan, "d": "x"},
                      labels={"a": "simulated"}, default_kind="counted")
    data = json.loads((tmp_path / "numbers" / "nb.json").read_text())
    assert data["numbers"] == {"a": 1.5, "b": 3, "c": None, "d": "x"}
    assert data["labels"] == {"a": "simulated", "b": "counted", "c": "counted", "d": "counted"}
    assert t.loc["a", "kind"] == "simulated" and t.loc["b", "kind"] == "counted"
    assert record.load("nb") == data["numbers"]
    with pytest.raises(ValidationError, match="number"):
        record.record("nb", {"bad": [1, 2]}, default_kind="counted")
    assert json.loads((tmp_path / "numbers" / "nb.json").read_text())["numbers"]["a"] == 1.5
    assert len(pd.read_csv(record.save_table(pd.DataFrame({"x": [1]}), "t"))) == 1


def test_every_number_needs_a_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValidationError, match=r"without a kind: \['b'\]"):
        record.record("nb", {"a": 1.0, "b": 2}, labels={"a": "fitted"})
    with pytest.raises(ValidationError, match="must name one of"):
        record.record("nb", {"a": 1.0}, labels={"a": "computed"})   # names no kind
    with pytest.raises(ValidationError, match="not recorded"):
        record.record("nb", {"a": 1.0}, labels={"a": "fitted", "z": "measured"})
    assert not (tmp_path / "numbers" / "nb.json").exists()          # nothing half-written


def test_record_carries_provenance(tmp_path, monkeypatch):
    from routerwise import __version__
    from routerwise.data.registry import REGISTRY
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))

    class P:
        name = "toy"
        assumptions = ("scores: measured", "latency: simulated")

    record.record("nb", {"a": 1.0}, default_kind="simulated", problem=P(),
                  assumptions=["extra: modelled"])
    prov = record.load_record("nb")["provenance"]
    assert prov["kit_version"] == __version__
    assert prov["problem"] == "toy"
    assert prov["assumptions"] == ["scores: measured", "latency: simulated", "extra: modelled"]
    # the digest, computed independently: sha256 of "key sha256" lines in key order
    lines = sorted(f"{k} {s.sha256}" for k, s in REGISTRY.items())
    assert prov["data_registry_sha256"] == hashlib.sha256(
        ("\n".join(lines) + "\n").encode()).hexdigest()
    assert prov["data_sources"] == len(REGISTRY) > 10


def test_registry_digest_changes_with_any_checksum():
    from dataclasses import replace

    from routerwise.data.registry import REGISTRY
    key = sorted(REGISTRY)[0]
    other = {**REGISTRY, key: replace(REGISTRY[key], sha256="0" * 64)}
    assert provenance.registry_digest(other) != provenance.registry_digest(REGISTRY)
    fewer = {k: v for k, v in REGISTRY.items() if k != key}
    assert provenance.registry_digest(fewer) != provenance.registry_digest(REGISTRY)


def test_git_commit_outside_a_checkout(tmp_path):
    assert provenance.git_commit(tmp_path) == "not a git checkout"


def test_git_commit_of_a_checkout(tmp_path):
    import subprocess
    env = {**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x",
           "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True,  # noqa: E731
                                    capture_output=True, text=True, env=env)
    run("init", "-q")
    (tmp_path / "f").write_text("1")
    run("add", "f")
    run("commit", "-q", "-m", "c")
    head = run("rev-parse", "HEAD").stdout.strip()
    assert provenance.git_commit(tmp_path) == head
    (tmp_path / "f").write_text("2")
    assert provenance.git_commit(tmp_path) == head + "+dirty"


def test_results_dir_is_the_repos_whatever_the_cwd(tmp_path, monkeypatch):
    from routerwise.paper.reproduce import repo_root
    monkeypatch.delenv("ROUTERWISE_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert record.results_dir() == repo_root() / "results"
    monkeypatch.chdir(repo_root() / "notebooks")       # where JupyterLab and papermill run
    assert record.results_dir() == repo_root() / "results"
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "run1"))
    assert record.results_dir() == tmp_path / "run1"


def test_figures_are_pdf_and_png_and_replacing_another_runs_is_said(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = record.save_figure(fig, "f")
    assert png == tmp_path / "figures" / "f.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figures" / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert capsys.readouterr().out == ""                 # a fresh name: nothing to say
    record.save_figure(fig, "f")
    assert capsys.readouterr().out == ""                 # this run's own figure: replaced quietly
    old = time.time() - 3600                             # as if written by an earlier run
    for ext in ("png", "pdf"):
        os.utime(tmp_path / "figures" / f"f.{ext}", (old, old))
    record.save_figure(fig, "f")
    out = capsys.readouterr().out
    assert out.count("replaced") == 2 and "by another run" in out
    with pytest.raises(ValidationError):
        record.save_figure(fig, "f", formats=())
    plt.close(fig)


def test_summary_sets_our_numbers_beside_the_papers(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    record.record("03_score_variation", {"variation_pct_max": 13.26, "score_min": 0.6151234567,
                                         "panels": 9},
                  labels={"panels": "counted"}, default_kind="predicted")
    text = write_summary(tmp_path).read_text()
    assert "| largest score variation across setups | 87% | 13.3% | 03_score_variation |" in text
    assert "n/a" in text            # notebooks that did not run are marked, not invented
    # every number rounded, with its unit and kind; the provenance line names the kit
    assert "| variation_pct_max | 13.26 | % | predicted |" in text
    assert "| score_min | 0.6151 |  | predicted |" in text
    assert "| panels | 9 |  | counted |" in text
    assert "0.6151234567" not in text
    assert "data registry sha256" in text


@pytest.mark.parametrize("key, unit", [("milp_time_s_max", "s"), ("time_s", "s"),
                                       ("median_abs_err_pct_ttft_mean", "%"), ("margin_ttft", ""),
                                       ("replay_predicted_ms", "ms"), ("x_pct", "%"),
                                       ("capacity_rps[llama,tp1]", "req/s"), ("mem_gb", "GB"),
                                       ("panels", "")])
def test_units_come_from_the_key_suffix(key, unit):
    assert unit_of(key) == unit


def test_values_are_rounded_for_reading():
    assert format_value(0.70677647400834) == "0.7068"
    assert format_value(453.13533017319077) == "453.1"
    assert format_value(16660) == "16,660"
    assert format_value(12345.67) == "12,346"
    assert format_value(None) == "n/a" and format_value(True) == "True"
