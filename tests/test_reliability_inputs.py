"""Problem files, problem records and score tables: wrong types, bad names and odd ids are
typed errors with a message that says what to fix, never coerced or silently misread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routerwise.data.scores import load_score_table
from routerwise.errors import DataError, ValidationError
from routerwise.planning.problem_file import load_problem, read_problem_file
from routerwise.problem import LatencyCurve, ModelSpec, SetupSpace, check_model_name

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
CURVES_LINE = 'table = "curves.csv"                 # the kit\'s latency-table schema'


def _example(tmp_path, *edits: tuple[str, str]) -> Path:
    """A copy of data/examples with ``(old, new)`` text replacements in problem.toml."""
    for f in EXAMPLES.iterdir():
        shutil.copy(f, tmp_path / f.name)
    p = tmp_path / "problem.toml"
    text = p.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    p.write_text(text)
    return p


# --- typed keys of a problem file ------------------------------------------------------------
@pytest.mark.parametrize("old, new, match", [
    # a non-empty string is truthy: "no" simulated, and kept the memory filter on
    (CURVES_LINE, 'simulate = "no"',
     r"\[latency\] simulate must be a boolean \(true or false, unquoted\), got 'no' \(a string\)"),
    ("compute_tenths = [5, 10]", 'compute_tenths = [5, 10]\ncheck_memory = "no"',
     r"\[space\] check_memory must be a boolean .*got 'no'"),
    # integers are integers: 60.7 requests was read as 60
    (CURVES_LINE, CURVES_LINE + "\nnum_requests = 60.7",
     r"\[latency\] num_requests must be an integer, got 60.7 \(a float\)"),
    ("num_gpus = 4", "num_gpus = 4.0", r"\[cluster\] num_gpus must be an integer, got 4.0"),
    ("tp_degrees = [1, 2]", "tp_degrees = [1, 2.7]",
     r"\[space\] tp_degrees must be an array of integers"),
    # numbers are finite numbers, not strings
    ("latency_ms = 150.0", "latency_ms = nan",
     r"\[slo\] latency_ms must be a finite number, got nan"),
    ("arrival_rate_rps = 12.0", 'arrival_rate_rps = "12"',
     r"\[workload\] arrival_rate_rps must be a finite number, got '12' \(a string\)"),
    ("params_b = 8.03", 'params_b = "8"', r"\[models\[0\]\] params_b must be a finite number"),
    ("compute_tenths = [5, 10]", 'compute_tenths = [5, 10]\nrho_min = "1"',
     r"\[space\] rho_min must be a finite number, got '1'"),
    ('aggregate = "mean"', "aggregate = 1", r"\[slo\] aggregate must be a string, got 1"),
    ('name = "example-three-models"', "name = 3", r"\[top level\] name must be a string"),
])
def test_problem_file_keys_take_only_their_type(tmp_path, old, new, match):
    with pytest.raises(ValidationError, match=match):
        load_problem(_example(tmp_path, (old, new)))


@pytest.mark.parametrize("old, new, match", [
    # two [[models]] with one name crashed inside pandas ("duplicate values ... stack")
    ('name = "chat-24b"', 'name = "chat-70b"',
     r"\[models\[1\]\] and \[models\[2\]\] are both named 'chat-70b'"),
    ('gpu = "A100-80GB"\nnum_gpus = 4', 'gpus = {"A100-80GB" = 4}\nmem_gb = {"A100-80GB" = "lots"}',
     r"\[cluster\] mem_gb\['A100-80GB'\] must be a finite number \(GB per GPU\), got 'lots'"),
    ('gpu = "A100-80GB"', 'gpu = "A100-80GB"\nmem_gb = "lots"',
     r"\[cluster\] mem_gb must be a finite number"),
    ('gpu = "A100-80GB"\nnum_gpus = 4', 'gpus = {"A100-80GB" = 4.0}',
     r"\[cluster\] gpus\['A100-80GB'\] must be an integer"),
    # true was read as 1 GB
    ('architecture = "llama-3.3-70b-instruct"', 'params_b = 70.0\nshard_mem_gb = {1 = true, 2 = 80.5}',
     "shard_mem_gb keys are tp degrees \\(integers\\) and values GB \\(finite numbers\\)"),
])
def test_problem_file_malformed_values_are_validation_errors(tmp_path, old, new, match):
    with pytest.raises(ValidationError, match=match):
        load_problem(_example(tmp_path, (old, new)))


def test_problem_file_passes_gated_mlp_to_the_config_reader(tmp_path):
    p = _example(tmp_path, ("params_b = 8.03", "params_b = 8.03\ngated_mlp = true"))
    cfg = json.loads((tmp_path / "chat-8b.config.json").read_text())
    # a model_type the reader does not know: it asks for gated_mlp, and the file can give it
    (tmp_path / "chat-8b.config.json").write_text(json.dumps({**cfg, "model_type": "my-llama"}))
    arch = read_problem_file(p).architectures["chat-8b"]
    assert arch.gated_mlp is True
    # the same architecture as the known model_type gives
    assert arch.param_count() == read_problem_file(EXAMPLES / "problem.toml").architectures[
        "chat-8b"].param_count()


def test_gated_mlp_goes_with_config(tmp_path):
    with pytest.raises(ValidationError, match="gated_mlp .* goes with config"):
        load_problem(_example(tmp_path, ('architecture = "llama-3.3-70b-instruct"',
                                         'architecture = "llama-3.3-70b-instruct"\n'
                                         'gated_mlp = true')))


# --- model names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "v1..2", "a\nb", "tab\there", "nul\x00",
                                  ""])
def test_model_names_that_could_leave_a_folder_are_rejected(name):
    with pytest.raises(ValidationError, match="printable characters .* without path separators"):
        ModelSpec(name, 8.0, {1: 20.0})


@pytest.mark.parametrize("name", ["llama-3.1-8b-instruct", "mixtral-8x7b-instruct-v0.1",
                                  "Qwen2.5 7B (int4)", "org:model@v2"])
def test_ordinary_model_names_pass(name):
    assert ModelSpec(name, 8.0, {1: 20.0}).name == check_model_name(name) == name


def test_problem_file_model_name_is_checked_before_the_tables(tmp_path):
    # was a DataError about the score table not having '../chat-24b'
    with pytest.raises(ValidationError, match=r"\[models\[1\]\] model name '../chat-24b' holds "
                                              r"characters \['/'\]"):
        load_problem(_example(tmp_path, ('name = "chat-24b"', 'name = "../chat-24b"')))


# --- records ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tp, tenths, loads, match", [
    (2.7, 10, (1.0, 2.0), "tp .* must be an integer, got 2.7"),        # was kept as 2.7
    ("x", 10, (1.0, 2.0), "tp .* must be an integer, got 'x'"),
    (float("nan"), 10, (1.0, 2.0), "tp .* must be an integer, got nan"),
    (1, "10", (1.0, 2.0), "compute_tenths .* must be an integer"),     # was a TypeError
    (1, 0, (1.0, 2.0), "compute_tenths in 1..10"),
    (1, 10, ("a", 2.0), "load_rps and latency_ms must be sequences of numbers"),  # ValueError
])
def test_latency_curve_checks_its_setup_and_points(tp, tenths, loads, match):
    with pytest.raises(ValidationError, match=match):
        LatencyCurve("m", tp, tenths, loads, (5.0, 6.0))


def test_latency_curve_stores_an_integral_tp_as_int():
    c = LatencyCurve("m", 2.0, np.int64(5), (1.0, 2.0), (5.0, 6.0))
    assert (c.tp, c.compute_tenths) == (2, 5) and type(c.tp) is int


@pytest.mark.parametrize("latencies", [(0.0, 6.0), (-1.0, 6.0), (5.0, 6.0, -2.0)])
def test_latency_curve_rejects_latencies_that_are_not_positive(latencies):
    # guards the latency > 0 check: a zero or negative latency would make any load look free
    loads = tuple(float(i + 1) for i in range(len(latencies)))
    with pytest.raises(ValidationError, match="latencies > 0"):
        LatencyCurve("m", 1, 10, loads, latencies)


@pytest.mark.parametrize("flag", ["check_memory", "check_compute"])
def test_setup_space_filters_take_booleans(flag):
    with pytest.raises(ValidationError, match=f"SetupSpace.{flag} must be True or False, got 'no'"):
        SetupSpace(**{flag: "no"})
    assert getattr(SetupSpace(**{flag: np.bool_(False)}), flag) is False


# --- the true table must score the same prompts in the same order ----------------------------
def test_a_reordered_true_table_is_an_error_not_a_different_score(tmp_path):
    # Read row by row against the routed table, a reversed true table changes the realized
    # score of the same plan (about 0.70 -> 0.64 on the example) without any message.
    p = _example(tmp_path)
    true = pd.read_csv(tmp_path / "true_scores.csv")
    true.iloc[::-1].to_csv(tmp_path / "true_scores.csv", index=False)
    with pytest.raises(DataError, match="true_table must score the same prompts in the same "
                                        "order as table"):
        read_problem_file(p)


# --- score tables ----------------------------------------------------------------------------
def _scores(tmp_path, edit) -> Path:
    df = pd.read_csv(EXAMPLES / "scores.csv")
    edit(df)
    df.to_csv(tmp_path / "s.csv", index=False)
    return tmp_path / "s.csv"


def test_score_table_ids_that_look_missing_are_ids(tmp_path):
    def edit(df):
        df.loc[df.prompt_id == "p0003", "prompt_id"] = "NA"
        df.loc[df.prompt_id == "p0004", "prompt_id"] = "null"
        df.loc[df.model == "chat-8b", "model"] = "None"
    qm = load_score_table(_scores(tmp_path, edit))
    assert qm.prompt_ids[3:5] == ("NA", "null")
    assert qm.model_names == ("None", "chat-24b", "chat-70b")
    np.testing.assert_array_equal(qm.scores, load_score_table(EXAMPLES / "scores.csv").scores)


def test_score_table_empty_prompt_id_names_its_line(tmp_path):
    def edit(df):
        df.loc[5, "prompt_id"] = ""
    with pytest.raises(DataError, match="prompt_id is empty in 1 row\\(s\\), first at line 7"):
        load_score_table(_scores(tmp_path, edit))


def test_score_table_huge_token_count_names_row_and_range(tmp_path):
    def edit(df):
        df["prompt_tokens"] = df["prompt_tokens"].astype(float)
        df.loc[5, "prompt_tokens"] = 1e20
    with pytest.raises(DataError, match=r"prompt_tokens must be a whole number from 0 to "
                                        r"9223372036854775807 .* line 7 \(prompt 'p0005', model "
                                        r"'chat-8b'\) has 1e\+20"):
        load_score_table(_scores(tmp_path, edit))


def test_score_table_notes_columns_it_does_not_use(tmp_path):
    def edit(df):
        df["split"] = "train"
    qm = load_score_table(_scores(tmp_path, edit))
    assert any("columns not used: ['split']" in n for n in qm.notes)
    np.testing.assert_array_equal(qm.scores, load_score_table(EXAMPLES / "scores.csv").scores)


def test_score_table_models_named_twice_is_a_validation_error():
    with pytest.raises(ValidationError, match=r"models lists \['chat-8b'\] more than once"):
        load_score_table(EXAMPLES / "scores.csv", ["chat-8b", "chat-70b", "chat-8b"])
