"""Fast first contact: the first simulated solve builds only usable curves (the same plan),
curves are shared across problems, reproduce runs notebooks in parallel with the same
numbers, panels are shared through the cache, and `make install` keys its stamp on content."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import routerwise as rw
from routerwise.errors import ValidationError
from routerwise.paper import experiments as ex
from routerwise.paper import record, reproduce
from routerwise.paper.synthetic import synthetic_problem
from routerwise.planning.problem_file import read_problem_file
from routerwise.serving import curve_grid

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "data" / "examples"


def _simulated_example(folder: Path, *, num_requests: int = 50, drop_model: str | None = None) -> Path:
    """The worked example with simulate = true (few requests a point: quick) and the default
    setup space (no [space] table)."""
    shutil.copytree(EXAMPLE, folder)
    path = folder / "problem.toml"
    text = path.read_text()
    text = re.sub(r'(?m)^table = "curves\.csv".*$',
                  f"simulate = true\nnum_requests = {num_requests}", text)
    text = re.split(r"(?m)^\[space\]", text)[0]
    if drop_model:
        text = re.sub(r'\[\[models\]\]\nname = "' + drop_model + r'"\n(?:[^\[\n].*\n)*', "",
                      text)
    assert "simulate = true" in text and "[space]" not in text
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def example_reads(tmp_path_factory):
    """The simulated example read with every curve and with the usable ones only, each in
    an empty cache of its own."""
    root = tmp_path_factory.mktemp("first-contact")
    problem = _simulated_example(root / "example")
    out = {}
    for usable in (False, True):
        cache = root / f"cache-{usable}"
        old = os.environ.get("ROUTERWISE_CACHE_DIR")
        os.environ["ROUTERWISE_CACHE_DIR"] = str(cache)
        try:
            out[usable] = (read_problem_file(problem, usable_curves_only=usable), cache)
        finally:
            if old is None:
                os.environ.pop("ROUTERWISE_CACHE_DIR")
            else:
                os.environ["ROUTERWISE_CACHE_DIR"] = old
    out["problem_file"] = problem
    return out


def test_usable_curves_only_builds_fewer_curves_and_finds_the_same_plan(example_reads):
    full, _ = example_reads[False]
    pruned, cache = example_reads[True]
    n_full, n_pruned = len(full.problem.profiles.curves), len(pruned.problem.profiles.curves)
    # 3 models x tp {1, 2, 4} x 10 shares, less the 70B at tp 1 (does not fit): 80 curves; a
    # deployable setup of 4 GPUs uses 46 of them
    assert (n_full, n_pruned) == (80, 46)
    assert len(list((cache / "curves").glob("*.csv"))) == n_pruned
    # every built curve is the full grid's curve, value for value
    for c in pruned.problem.profiles.curves:
        ref = full.problem.profiles.get(c.model, c.tp, c.compute_tenths)
        assert (c.load_rps, c.latency_ms) == (ref.load_rps, ref.latency_ms)
    a = rw.solve(rw.with_headroom(full.problem))
    b = rw.solve(rw.with_headroom(pruned.problem))
    assert a.feasible and b.feasible
    assert b.setup.label() == a.setup.label()
    assert b.score == a.score
    assert list(b.fractions) == list(a.fractions)
    assert any("only the 46 curves" in note for note in pruned.problem.assumptions)


def test_the_setups_a_pruned_problem_keeps_are_every_deployable_setup(example_reads):
    from routerwise.optimize.setup_space import enumerate_setups
    full = enumerate_setups(example_reads[False][0].problem)
    pruned = enumerate_setups(example_reads[True][0].problem)
    labels = {full.setup(s).label() for s in range(len(full))}
    assert len(full) > 0
    assert {pruned.setup(s).label() for s in range(len(pruned))} == labels


def test_curves_are_reused_by_another_problem_with_the_same_models(example_reads, tmp_path,
                                                                  monkeypatch):
    _, cache = example_reads[True]
    before = {p.name: p.stat().st_mtime_ns for p in (cache / "curves").glob("*.csv")}
    problem = _simulated_example(tmp_path / "two", drop_model="chat-24b")
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(cache))
    two = read_problem_file(problem, usable_curves_only=True).problem
    assert two.model_names == ("chat-8b", "chat-70b")
    after = {p.name: p.stat().st_mtime_ns for p in (cache / "curves").glob("*.csv")}
    # the curves the first problem built are read, not simulated again
    assert {k: after[k] for k in before} == before
    def files_of(c):
        stem = curve_grid._Curve(c.model, c.tp, c.compute_tenths).chunk_name[:-len(".csv")]
        return [n for n in after if n.startswith(stem + "__")]

    assert all(len(files_of(c)) == 1 for c in two.profiles.curves)
    reused = {(c.model, c.tp, c.compute_tenths) for c in two.profiles.curves
              if files_of(c)[0] in before}
    # both models' curves are reused, chat-8b's too though its config.json sits in another
    # folder (a curve is keyed on the architecture's figures, not the file's path)
    assert {m for m, _, _ in reused} == {"chat-8b", "chat-70b"}
    assert all(c.model != "chat-24b" for c in two.profiles.curves)


def test_a_subset_build_simulates_only_missing_curves_and_matches_the_grid(tmp_path, monkeypatch):
    calls = []
    real = curve_grid._build_curve
    monkeypatch.setattr(curve_grid, "_build_curve", lambda task: calls.append(task[0]) or real(task))
    opts = curve_grid.GridOptions(num_requests=50)
    model = "llama-3.1-8b-instruct"
    lengths = curve_grid.routeprofile_lengths([model])
    kw = dict(options=opts, workers=1, progress=False, cache_dir=tmp_path / "c")
    some = curve_grid.build_profile_table([model], "A100-80GB", (1, 2), (5, 10), lengths,
                                          only=[(model, 1, 5), (model, 2, 10)], **kw)
    assert len(calls) == 2
    more = curve_grid.build_profile_table([model], "A100-80GB", (1, 2), (5, 10), lengths,
                                          only=[(model, 1, 5), (model, 2, 5)], **kw)
    assert [(c.tp, c.tenths) for c in calls] == [(1, 5), (2, 10), (2, 5)]
    grid = curve_grid.build_profile_table([model], "A100-80GB", (1, 2), (5, 10), lengths,
                                          options=opts, workers=1, progress=False,
                                          cache_dir=tmp_path / "grid")
    key = ["tp", "compute_share", "load_rps"]
    for part in (some, more):
        pick = grid.merge(part[["tp", "compute_share"]].drop_duplicates())
        pd.testing.assert_frame_equal(part.sort_values(key).reset_index(drop=True),
                                      pick.sort_values(key).reset_index(drop=True))


def test_panels_are_shared_through_the_cache_only_by_the_same_code(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(ex.SHARE_PANELS_ENV, "1")
    calls = []
    real = ex.score_variation
    monkeypatch.setattr(ex, "score_variation",
                        lambda p, **kw: calls.append(p.name) or real(p, **kw))
    base = synthetic_problem(3, 4, 40.0, 400.0, num_prompts=60)
    first = list(ex.panels(base, [4], [30.0], [300.0, 400.0], workers=1))
    assert len(calls) == 2
    again = list(ex.panels(base, [4], [30.0], [300.0, 400.0], workers=1))
    assert len(calls) == 2                      # read from the cache
    for (_, a), (_, b) in zip(first, again):
        assert pd.Series(a["summary"]).equals(pd.Series(b["summary"]))
        pd.testing.assert_frame_equal(a["setups"], b["setups"])
    monkeypatch.setattr(ex, "_kit_source_digest", lambda: "other-code")
    list(ex.panels(base, [4], [30.0], [300.0, 400.0], workers=1))
    assert len(calls) == 4                      # other code: solved again
    monkeypatch.setenv(ex.SHARE_PANELS_ENV, "0")
    list(ex.panels(base, [4], [30.0], [300.0, 400.0], workers=1))
    assert len(calls) == 6                      # sharing off: solved again


def test_record_lists_every_file_it_writes_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path / "R"))
    log = tmp_path / "written.txt"
    monkeypatch.setenv(record.WRITTEN_LOG_ENV, str(log))
    record.save_table(pd.DataFrame({"a": [1]}), "t1")
    record.record("nb_x", {"n": 1}, default_kind="counted")
    assert log.read_text().split() == ["tables/t1.csv", "numbers/nb_x.json"]


FAST = ["00_bring_your_own", "06_gpu_inventory"]


def test_parallel_reproduce_writes_the_same_numbers_and_run_records(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    params = {"replay_requests": 200}
    reproduce.run(tmp_path / "one", FAST, params, progress=False, jobs=1)
    reproduce.run(tmp_path / "two", FAST, params, progress=False, jobs=2)
    for name in FAST:
        a = json.loads((tmp_path / "one" / "numbers" / f"{name}.json").read_text())
        b = json.loads((tmp_path / "two" / "numbers" / f"{name}.json").read_text())
        assert a["numbers"] == b["numbers"] and a["labels"] == b["labels"]
        ra = json.loads((tmp_path / "one" / "notebooks" / f"{name}.run.json").read_text())
        rb = json.loads((tmp_path / "two" / "notebooks" / f"{name}.run.json").read_text())
        assert ra["status"] == rb["status"] == "ok"
        assert ra["files"] == rb["files"] and f"notebooks/{name}.ipynb" in rb["files"]
        assert rb["cpu_s"] >= 0
    assert not list((tmp_path / "two" / "notebooks").glob("*.written"))
    assert (tmp_path / "two" / "summary.md").is_file()


def test_jobs_must_be_a_positive_whole_number(tmp_path):
    with pytest.raises(ValidationError, match="jobs must be"):
        reproduce.run(tmp_path, FAST, progress=False, jobs=0)


def _make(folder: Path, *args) -> str:
    return subprocess.run(["make", "-n", "-C", str(folder), *args], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_stamp_is_keyed_on_the_lock_and_pyproject_contents(tmp_path):
    for name in ("Makefile", "pyproject.toml", "requirements-lock.txt", "engine-lock.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    plan = _make(tmp_path, "install")
    assert "pip install" in plan
    stamp = re.search(r"touch (\S*\.installed-[0-9a-f]{16})", plan).group(1)
    (tmp_path / stamp).parent.mkdir(parents=True)
    (tmp_path / stamp).touch()
    assert "pip install" not in _make(tmp_path, "install")
    os.utime(tmp_path / "requirements-lock.txt")          # newer, same content: nothing to do
    assert "pip install" not in _make(tmp_path, "install")
    with open(tmp_path / "requirements-lock.txt", "a") as fh:
        fh.write("# changed\n")
    changed = _make(tmp_path, "install")
    assert "pip install" in changed and stamp not in changed


def test_a_notebook_failing_in_a_parallel_run_is_named_and_the_others_are_recorded(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    out = tmp_path / "R"
    with pytest.raises(reproduce.NotebookFailed, match="notebook 00_bring_your_own failed") as e:
        reproduce.run(out, FAST, {"problem_file": str(tmp_path / "missing.toml")},
                      progress=False, jobs=2)
    assert e.value.notebook == "00_bring_your_own" and e.value.not_run == ()
    bad = json.loads((out / "notebooks" / "00_bring_your_own.run.json").read_text())
    ok = json.loads((out / "notebooks" / "06_gpu_inventory.run.json").read_text())
    assert bad["status"] == "failed" and "missing.toml" in bad["error"]
    assert ok["status"] == "ok" and "numbers/06_gpu_inventory.json" in ok["files"]
    assert "**FAILED: 00_bring_your_own**" in (out / "summary.md").read_text()
