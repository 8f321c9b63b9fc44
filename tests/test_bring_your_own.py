"""The one door for your own models, scores, curves and solvers: data/examples end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import routerwise as rw
from routerwise.cli import main as cli_main
from routerwise.data.scores import load_score_table
from routerwise.errors import DataError, ValidationError
from routerwise.planning.problem_file import load_problem, read_problem_file
from routerwise.serving import architectures

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


# --- architectures ---------------------------------------------------------------------------
def test_hf_config_matches_the_transcribed_entry():
    arch = architectures.from_hf_config(EXAMPLES / "chat-8b.config.json", name="chat-8b")
    ref = architectures.get("llama-3.1-8b-instruct")
    for f in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
              "intermediate_size", "vocab_size", "gated_mlp", "num_experts"):
        assert getattr(arch, f) == getattr(ref, f), f
    # No published count given: derived from the config, within 0.5% of the model card's 8.03B.
    assert arch.params_b == pytest.approx(8.03, rel=5e-3)
    assert "derived" in arch.notes


def test_hf_config_errors(tmp_path):
    with pytest.raises(DataError, match="no config file"):
        architectures.from_hf_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not a readable JSON"):
        architectures.from_hf_config(tmp_path / "bad.json")
    cfg = json.loads((EXAMPLES / "chat-8b.config.json").read_text())
    (tmp_path / "odd.json").write_text(json.dumps({**cfg, "model_type": "mystery"}))
    with pytest.raises(ValidationError, match="gated_mlp"):
        architectures.from_hf_config(tmp_path / "odd.json")
    assert architectures.from_hf_config(tmp_path / "odd.json", gated_mlp=True).gated_mlp
    del cfg["num_hidden_layers"]
    (tmp_path / "short.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="num_hidden_layers"):
        architectures.from_hf_config(tmp_path / "short.json")


def test_register_refuses_a_silent_replacement():
    arch = architectures.from_hf_config(EXAMPLES / "chat-8b.config.json", name="byo-test-8b")
    try:
        assert architectures.register(arch) is arch
        assert architectures.get("byo-test-8b") is arch
        assert architectures.resolve("byo-test-8b") is arch and architectures.resolve(arch) is arch
        other = architectures.from_hf_config(EXAMPLES / "chat-8b.config.json",
                                             name="byo-test-8b", params_b=9.0)
        with pytest.raises(ValidationError, match="registered already"):
            architectures.register(other)
        architectures.register(other, replace_existing=True)
        assert architectures.get("byo-test-8b").params_b == 9.0
    finally:
        architectures.REGISTRY.pop("byo-test-8b", None)


# --- scores ----------------------------------------------------------------------------------
def test_score_table_round_trip():
    qm = load_score_table(EXAMPLES / "scores.csv")
    raw = pd.read_csv(EXAMPLES / "scores.csv")
    assert qm.model_names == ("chat-8b", "chat-24b", "chat-70b")
    assert qm.scores.shape == (raw["prompt_id"].nunique(), 3)
    j, i = qm.prompt_ids.index("p0007"), qm.model_names.index("chat-24b")
    row = raw[(raw.prompt_id == "p0007") & (raw.model == "chat-24b")].iloc[0]
    assert qm.scores[j, i] == row.score and qm.completion_tokens[j, i] == row.output_tokens
    picked = load_score_table(EXAMPLES / "scores.csv", ["chat-70b", "chat-8b"])
    assert picked.model_names == ("chat-70b", "chat-8b")
    np.testing.assert_array_equal(picked.scores[:, 0], qm.scores[:, 2])


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.assign(score=d.score.where(d.index != 5, np.nan)), "missing or not a number"),
    (lambda d: d.drop(index=4), "pair\\(s\\) have no row"),
    (lambda d: pd.concat([d, d.iloc[[0]]]), "repeat a \\(prompt_id, model\\) pair"),
    (lambda d: d.drop(columns="score"), "missing column"),
    (lambda d: d.assign(score=d.score.where(d.index != 3, 1.5)), "in \\[0, 1\\]"),
    (lambda d: d.assign(output_tokens=d.output_tokens.astype(float).where(d.index != 2, 1.5)),
     "whole number"),
])
def test_score_table_errors(tmp_path, mutate, match):
    df = mutate(pd.read_csv(EXAMPLES / "scores.csv"))
    df.to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises((DataError, ValidationError), match=match):
        load_score_table(tmp_path / "s.csv")


def test_score_table_unknown_model():
    with pytest.raises(DataError, match="no scores for model"):
        load_score_table(EXAMPLES / "scores.csv", ["chat-8b", "chat-9000b"])


# --- the problem file ------------------------------------------------------------------------
def test_problem_file_solves_and_cli_json_matches(tmp_path):
    problem = load_problem(EXAMPLES / "problem.toml")
    assert problem.model_names == ("chat-8b", "chat-24b", "chat-70b")
    assert problem.workload.true_scores is not None
    plan = rw.solve(problem)
    assert plan.status == "optimal" and plan.latency_ms <= problem.slo.latency_ms * (1 + 1e-6)
    # The exact solver and the MILP agree on it.
    milp = rw.solve(problem, "milp")
    assert milp.score == pytest.approx(plan.score, abs=1e-5)
    # The command line plans with the default headroom; from Python that is
    # rw.solve(rw.with_headroom(problem)), and --headroom 1 is rw.solve(problem).
    for flags, expected in (([], rw.solve(rw.with_headroom(problem))),
                            (["--headroom", "1"], plan)):
        out = tmp_path / "plan.json"
        assert cli_main(["solve", str(EXAMPLES / "problem.toml"), "--json", str(out)] + flags) == 0
        rec = json.loads(out.read_text())
        assert rec["score"] == pytest.approx(expected.score, abs=1e-12)
        assert [m["fraction"] for m in rec["models"]] == pytest.approx(list(expected.fractions),
                                                                       abs=1e-12)
        assert rec["setup"] == expected.setup.label()
        assert rec["replay"]["per_model"] and "slo_met" in rec["replay"]


def _edit_problem(tmp_path, old: str, new: str) -> Path:
    """The worked example copied into ``tmp_path`` with one edit to problem.toml."""
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    p = tmp_path / "problem.toml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))
    return p


@pytest.mark.parametrize("old, new, err, match", [
    ("num_gpus = 4", "num_gpu = 4", ValidationError, "unknown key\\(s\\) \\['num_gpu'\\]"),
    ('gpu = "A100-80GB"', 'gpu = "Z9000"', ValidationError, "not in the catalogue"),
    ('kind = "predicted"', 'kind = "guessed"', ValidationError, "'measured' or 'predicted'"),
    ('table = "curves.csv"', 'table = "nope.csv"', DataError, "nope.csv"),
    ('architecture = "llama-3.3-70b-instruct"', 'architecture = "llama-99b"', ValidationError,
     "no architecture 'llama-99b'"),
    ("[slo]", "[slo\n", DataError, "not valid TOML"),
    ('table = "curves.csv"', 'table = "curves.csv"\nsimulate = true', ValidationError,
     "needs exactly one of table"),
    ('table = "curves.csv"', 'simulate = false', ValidationError, "needs exactly one of table"),
])
def test_problem_file_errors(tmp_path, old, new, err, match):
    with pytest.raises(err, match=match):
        load_problem(_edit_problem(tmp_path, old, new))


def test_infeasible_problem_file_is_explained_not_crashed(tmp_path, capsys):
    p = _edit_problem(tmp_path, "latency_ms = 150.0", "latency_ms = 5.0")
    assert cli_main(["solve", str(p), "--json", str(tmp_path / "plan.json")]) == 1
    rec = json.loads((tmp_path / "plan.json").read_text())
    assert rec["status"] == "infeasible" and rec["infeasibility"]["binding"] == "latency"
    assert "infeasible (latency)" in capsys.readouterr().out


# --- solvers ---------------------------------------------------------------------------------
def test_a_registered_solver_is_dispatched_and_verified():
    from routerwise.optimize.baselines import nearest_setup_baseline
    from routerwise.planning.solve import _REGISTRY, register_solver

    problem = load_problem(EXAMPLES / "problem.toml")
    register_solver("equal-split-test", lambda p: nearest_setup_baseline(p, "equal-split"),
                    "Equal-Split with exact routing")
    try:
        plan = rw.solve(problem, "equal-split-test")
        assert plan.score <= rw.solve(problem).score + 1e-9
        with pytest.raises(ValidationError, match="registered already"):
            register_solver("equal-split-test", lambda p: None)
    finally:
        _REGISTRY.pop("equal-split-test")
    with pytest.raises(ValidationError, match="unknown method"):
        rw.solve(problem, "equal-split-test")
    with pytest.raises(ValidationError, match="unknown option"):
        rw.solve(problem, "exact", time_limit=3)


# --- simulated curves for your own architectures ------------------------------------------------
def test_grid_workers_started_with_spawn_simulate_an_unregistered_architecture(tmp_path):
    """Workers get the Architecture object, not a registry name: a model made at run time
    (and registered nowhere) is simulated by spawn-started worker processes too."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from routerwise.serving import curve_grid as pg

    arch = architectures.from_hf_config(EXAMPLES / "chat-8b.config.json", name="byo-spawn-8b")
    assert "byo-spawn-8b" not in architectures.REGISTRY
    lengths = pg.LengthSample(np.full(40, 200), np.full(40, 50), "fixed lengths")
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        table = pg.build_profile_table([arch], "A100-80GB", (1,), (5, 10), lengths,
                                       options=pg.GridOptions(num_requests=60),
                                       executor=pool, progress=False, cache_dir=tmp_path)
    assert set(table["model"]) == {"byo-spawn-8b"}
    assert sorted(set(table["compute_share"])) == [0.5, 1.0]
    # the full share carries more load than half of it (a real simulation ran for each)
    cap = table[~table["saturated"]].groupby("compute_share")["load_rps"].max()
    assert cap[1.0] > cap[0.5]


def test_problem_file_can_simulate_its_curves(tmp_path):
    p = _edit_problem(tmp_path, 'table = "curves.csv"                 # the kit\'s latency-table schema',
                      "simulate = true\nnum_requests = 60")
    text = p.read_text().replace("compute_tenths = [5, 10]", "compute_tenths = [10]")
    p.write_text(text)
    inputs = read_problem_file(p)
    prof = inputs.problem.profiles
    assert prof.models == {"chat-8b", "chat-24b", "chat-70b"}
    assert {c.source for c in prof.curves} == {"simulated"}
    assert any("simulated" in a for a in inputs.problem.assumptions)
    # The simulated curves admit a plan: the exact solver finds it and the MILP, a second
    # method, reaches the same setups, fractions and score.
    plan, milp = rw.solve(inputs.problem), rw.solve(inputs.problem, "milp")
    assert plan.status == milp.status == "optimal"
    assert plan.setup.label() == milp.setup.label() == "tp1/rho1.0 | tp1/rho1.0 | tp2/rho1.0"
    assert plan.fractions == pytest.approx(milp.fractions, abs=1e-6)
    assert plan.score == pytest.approx(milp.score, abs=1e-6)
    assert plan.latency_ms <= inputs.problem.slo.latency_ms * (1 + 1e-6)
    plan.verify(inputs.problem)
