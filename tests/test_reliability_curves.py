"""Curve tables, architecture configs and engine profiles: bad inputs are typed errors that
name the file, row and column (or key); an envelope that changes a curve is said in the plan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import routerwise as rw
from routerwise.data import latency_table as lt
from routerwise.errors import DataError, ValidationError
from routerwise.planning.problem_file import read_problem_file
from routerwise.serving import architectures
from routerwise.serving import engine as eng
from routerwise.serving.stepcost import StepTimes

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def _table(**cells) -> pd.DataFrame:
    """One curve of five loads (rows 1-5), as read from a CSV of strings; ``cells`` sets
    ``{column: {row: value}}`` (1-based rows)."""
    df = pd.DataFrame({"model": "m", "gpu": "A100-80GB", "tp": "1", "compute_share": "1.0",
                       "load_rps": ["1", "2", "3", "4", "5"],
                       "ttft_mean_ms": ["10", "12", "15", "19", "30"],
                       "saturated": "false", "source": "measured", "provenance": "test"})
    for col, rows in cells.items():
        for r, v in rows.items():
            df.loc[r - 1, col] = v
    return df


def _csv(tmp_path, df) -> Path:
    p = tmp_path / "curves.csv"
    df.to_csv(p, index=False)
    return p


# --- invalid latencies ------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-10", "0", "inf", "-inf"])
def test_a_latency_that_is_not_positive_and_finite_is_rejected_with_row_and_column(tmp_path,
                                                                                    value):
    p = _csv(tmp_path, _table(ttft_mean_ms={3: value}))
    with pytest.raises(ValidationError, match=r"curves\.csv: row 3, column ttft_mean_ms"):
        lt.read_table(p)
    with pytest.raises(ValidationError, match=r"row 3, column ttft_mean_ms"):
        lt.to_profiles(_table(ttft_mean_ms={3: value}), monotone="envelope")


def test_a_latency_missing_mid_curve_is_rejected_not_interpolated(tmp_path):
    p = _csv(tmp_path, _table(ttft_mean_ms={3: ""}))
    with pytest.raises(ValidationError, match=r"curves\.csv: row 3, column ttft_mean_ms: missing"):
        lt.read_table(p)
    with pytest.raises(ValidationError, match=r"row 3, column ttft_mean_ms: missing"):
        lt.to_profiles(_table(ttft_mean_ms={3: np.nan}))
    # beyond the first saturated load a missing value is fine: that part is not used
    ok = lt.read_table(_csv(tmp_path, _table(saturated={4: "true"}, ttft_mean_ms={5: ""})))
    assert lt.to_profiles(ok).curves[0].load_rps == (1.0, 2.0, 3.0)


def _example(tmp_path) -> Path:
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / "problem.toml"


def test_an_envelope_that_changes_a_curve_is_said_in_the_plan_notes(tmp_path):
    toml = _example(tmp_path)
    df = pd.read_csv(tmp_path / "curves.csv", dtype=str, keep_default_na=False)
    rows = df.index[(df["model"] == "chat-8b") & (df["tp"] == "2") & (df["compute_share"] == "0.5")]
    before = float(df.loc[rows[1], "ttft_mean_ms"])
    df.loc[rows[2], "ttft_mean_ms"] = "1"  # a dip mid-curve: the envelope raises it to rows[1]
    df.to_csv(tmp_path / "curves.csv", index=False)
    inputs = read_problem_file(toml)
    curve = inputs.problem.profiles.get("chat-8b", 2, 5, "")
    assert lt.envelope_change(curve.provenance) == (1, curve.x.size, pytest.approx(before - 1,
                                                                                   abs=1e-3))
    sol = rw.solve(inputs.problem)
    notes = [n for n in sol.notes if "envelope" in n]
    assert notes, sol.notes
    assert any("chat-8b tp2/rho0.5" in n and "raised 1 of" in n and f"{before - 1:.4g} ms" in n
               for n in notes), notes


# --- unreadable tables, bad types -------------------------------------------------------------
def test_an_empty_or_binary_curves_file_is_a_data_error_naming_it(tmp_path):
    p = tmp_path / "curves.csv"
    p.write_text("")
    with pytest.raises(DataError, match=r"curves\.csv: the profile table is empty"):
        lt.read_table(p)
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"curves\.csv: a binary file"):
        lt.read_table(p)


@pytest.mark.parametrize("value, what", [("two", "is not a number"),
                                         ("2.7", "is not a whole number"),
                                         ("", "is missing")])
def test_tp_must_be_a_whole_number(tmp_path, value, what):
    p = _csv(tmp_path, _table(tp={2: value}))
    with pytest.raises(ValidationError, match=rf"curves\.csv: row 2, column tp: .*{what}"):
        lt.read_table(p)


# --- the saturated column ---------------------------------------------------------------------
def test_saturated_reads_yes_no_and_one_zero_in_any_case(tmp_path):
    for flags in (["no", "No", "NO", "yes", "YES"], ["0", "0", "0", "1", "1"],
                  ["False", "false", "FALSE", "True", "true"]):
        df = lt.read_table(_csv(tmp_path, _table(saturated=dict(enumerate(flags, 1)))))
        assert df["saturated"].tolist() == [False, False, False, True, True], flags
        assert lt.to_profiles(df).curves[0].load_rps == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("value", ["maybe", "", "2"])
def test_a_saturated_value_that_is_no_flag_is_rejected_with_its_row(tmp_path, value):
    p = _csv(tmp_path, _table(saturated={4: value}))
    with pytest.raises(ValidationError, match=r"curves\.csv: row 4, column saturated"):
        lt.read_table(p)


# --- Hugging Face configs ---------------------------------------------------------------------
def _config(tmp_path, **changes) -> Path:
    cfg = json.loads((EXAMPLES / "chat-8b.config.json").read_text())
    cfg.update(changes)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


@pytest.mark.parametrize("key, value", [("hidden_size", "big"), ("hidden_size", [4096]),
                                        ("hidden_size", 4096.5), ("num_attention_heads", 0),
                                        ("num_key_value_heads", 0), ("num_hidden_layers", -2),
                                        ("vocab_size", True)])
def test_a_malformed_config_value_is_a_data_error_naming_file_and_key(tmp_path, key, value):
    with pytest.raises(DataError, match=rf"config\.json: {key} = "):
        architectures.from_hf_config(_config(tmp_path, **{key: value}))


OPT_125M = {"_name_or_path": "facebook/opt-125m", "activation_function": "relu",
            "architectures": ["OPTForCausalLM"], "do_layer_norm_before": True, "ffn_dim": 3072,
            "hidden_size": 768, "max_position_embeddings": 2048, "model_type": "opt",
            "num_attention_heads": 12, "num_hidden_layers": 12, "vocab_size": 50272,
            "word_embed_proj_dim": 768, "torch_dtype": "float16"}
OPT_350M = {**OPT_125M, "_name_or_path": "facebook/opt-350m", "do_layer_norm_before": False,
            "ffn_dim": 4096, "hidden_size": 1024, "num_attention_heads": 16,
            "num_hidden_layers": 24, "word_embed_proj_dim": 512}


@pytest.mark.parametrize("cfg, published", [(OPT_125M, 125.24e6), (OPT_350M, 331.20e6)])
def test_opt_configs_are_read(tmp_path, cfg, published):
    """OPT: ffn_dim, ReLU (not gated), learned positions, tied embeddings by default, and
    OPT-350m's 512-wide embeddings projected to 1024; within 0.2% of the published counts
    (biases ignored)."""
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    a = architectures.from_hf_config(p)
    assert a.intermediate_size == cfg["ffn_dim"] and not a.gated_mlp and a.tied_embeddings
    assert a.param_count() == pytest.approx(published, rel=2e-3)
    assert ("post-LayerNorm" in a.notes) == (not cfg["do_layer_norm_before"])
    # cached simulated curves are keyed by repr(architecture): the new fields show only when set
    assert ("embed_proj_dim=512" in repr(a)) == (cfg is OPT_350M)
    assert "embed_proj_dim" not in repr(architectures.get("llama-3.1-8b-instruct"))


def test_a_missing_tie_word_embeddings_means_tied(tmp_path):
    cfg = json.loads((EXAMPLES / "chat-8b.config.json").read_text())
    del cfg["tie_word_embeddings"]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    a = architectures.from_hf_config(p)
    assert a.tied_embeddings and "tie_word_embeddings absent" in a.notes
    untied = architectures.from_hf_config(EXAMPLES / "chat-8b.config.json")
    assert untied.param_count() - a.param_count() == a.vocab_size * a.hidden_size


def test_an_unknown_model_type_names_the_accepted_overrides(tmp_path):
    with pytest.raises(ValidationError) as e:
        architectures.from_hf_config(_config(tmp_path, model_type="mystery"))
    msg = str(e.value)
    assert "gated_mlp=False" in msg and "name, params_b, gated_mlp" in msg
    assert "[[models]]" in msg and "gated_mlp = true or false" in msg


# --- the legacy engine profile ----------------------------------------------------------------
def _steps(max_tokens=4096, max_seqs=64) -> StepTimes:
    n = np.arange(max_tokens + 1, dtype=float)
    b = np.arange(max_seqs + 1, dtype=float)
    pre, dec = 4.0 + 0.02 * n, 6.0 + 0.15 * b
    pre[0] = dec[0] = 0.0
    return StepTimes(pre, 2e-6, 0.1, dec, 3e-4, label="test", source="modelled")


@pytest.mark.parametrize("knob", [{"max_num_batched_tokens": 512},
                                  {"request_overhead_ms": 5.0},
                                  {"iteration_overhead_ms": 1.0}])
def test_legacy_profile_refuses_what_it_would_ignore(knob):
    steps = _steps()
    with pytest.raises(ValidationError, match=r"'legacy'.*ignores.*vllm-v0"):
        eng.setup_for("legacy", steps, kv_capacity_tokens=10**6, **knob)
    # the paged profiles honour the same knob
    assert eng.setup_for("vllm-v0", steps, kv_capacity_tokens=10**6, **knob)
