"""Quality-score loaders: shapes and contents of the real files, parsing rules on tiny files,
typed errors for corrupt, missing and malformed data."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mirror

from routerwise.data import registry as datasets
from routerwise.data.scores import QualityMatrix, load_llmrouter, load_routeprofile
from routerwise.errors import ChecksumMismatch, DataError, MissingDataFile, ValidationError

LLMROUTER_MODELS = ("codegemma-7b", "gemma-2-9b-it", "llama-3.1-8b-instruct",
                    "llama-3.1-nemotron-51b-instruct", "llama-3.3-nemotron-super-49b-v1",
                    "llama3-chatqa-1.5-70b", "llama3-chatqa-1.5-8b", "mistral-7b-instruct-v0.3",
                    "qwen2.5-7b-instruct")


@pytest.fixture
def tiny_mirror(tmp_path, monkeypatch):
    """A private mirror: ``put(key, content)`` writes a file for registry ``key`` and registers
    its checksum for this test only, so small hand-made files pass verification."""
    mirror = tmp_path / "mirror"
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(mirror))

    def put(key: str, content) -> Path:
        src = datasets.source(key)
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        path = mirror / src.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        monkeypatch.setitem(datasets.REGISTRY, key,
                            replace(src, sha256=hashlib.sha256(data).hexdigest()))
        return path

    return put


# ---- real files --------------------------------------------------------------------------

@needs_mirror
def test_routeprofile_default_excludes_artifact_tasks():
    qm = load_routeprofile()
    assert qm.scores.shape == (500, 8) and qm.num_prompts == 500 and qm.num_models == 8
    assert "human_eval" not in qm.tasks and "mbpp" not in qm.tasks
    assert len(set(qm.tasks)) == 10
    assert any("human_eval" in n and "mbpp" in n for n in qm.notes)
    assert ((qm.scores >= 0) & (qm.scores <= 1)).all()
    assert qm.prompt_tokens.shape == qm.completion_tokens.shape == (500, 8)
    assert (qm.prompt_tokens > 0).all() and (qm.completion_tokens > 0).all()
    assert len(set(qm.prompt_ids)) == 500
    assert qm.prompt_ids[0] == "agentverse-logicgrid/0"
    assert all(p.strip() for p in qm.prompts)
    with pytest.raises(ValueError):
        qm.scores[0, 0] = 0.5  # read-only


@needs_mirror
def test_routeprofile_params_match_card_and_order_models_by_size():
    qm = load_routeprofile()
    card = json.loads(datasets.fetch("routeprofile.candidate_models").read_text())
    assert qm.params_b == {m: card[m]["parameters"] for m in qm.model_names}
    sizes = [qm.params_b[m] for m in qm.model_names]
    assert sizes == sorted(sizes)
    assert qm.model_names[0] == "llama-3.2-3b-instruct"
    assert qm.params_b["mixtral-8x7b-instruct-v0.1"] == pytest.approx(46.703)


@needs_mirror
def test_routeprofile_without_exclusion_has_twelve_tasks_of_fifty():
    qm = load_routeprofile(exclude_tasks=())
    assert qm.scores.shape == (600, 8)
    counts = {t: qm.tasks.count(t) for t in set(qm.tasks)}
    assert len(counts) == 12 and set(counts.values()) == {50}
    # The artifact the default exclusion removes: code tasks score about 0 for every model.
    code = np.isin(qm.tasks, ["human_eval", "mbpp"])
    assert qm.scores[code].mean() < 0.1 < qm.scores[~code].mean()


@needs_mirror
@pytest.mark.parametrize("split, n", [("train", 5608), ("test", 500), ("all", 6108)])
def test_llmrouter_shapes(split, n):
    qm = load_llmrouter(split)
    assert qm.scores.shape == (n, 9)
    assert qm.model_names == LLMROUTER_MODELS  # sorted, whatever each file's key order
    assert ((qm.scores >= 0) & (qm.scores <= 1)).all()
    assert qm.prompt_tokens is None and qm.completion_tokens is None and qm.params_b is None
    assert set(qm.tasks) == {""}
    assert qm.prompt_ids[0] == f"{'test' if split == 'test' else 'train'}/0"


@needs_mirror
def test_llmrouter_all_is_train_then_test_and_notes_repeats():
    train, test, both = load_llmrouter("train"), load_llmrouter("test"), load_llmrouter("all")
    np.testing.assert_array_equal(both.scores, np.vstack([train.scores, test.scores]))
    assert both.prompt_ids[5608] == "test/0"
    assert any("occur more than once" in n for n in both.notes)


def test_llmrouter_rejects_unknown_split():
    with pytest.raises(ValidationError, match="split"):
        load_llmrouter("validation")


# ---- QualityMatrix methods ---------------------------------------------------------------

def _qm(n=6, models=("a", "b", "c")) -> QualityMatrix:
    rng = np.random.default_rng(0)
    return QualityMatrix(
        source=("test",), model_names=models, prompt_ids=[f"p{j}" for j in range(n)],
        tasks=["x", "y"] * (n // 2), prompts=[f"prompt {j}" for j in range(n)],
        scores=rng.random((n, len(models))),
        prompt_tokens=np.full((n, len(models)), 10), completion_tokens=None,
        params_b={m: float(i + 1) for i, m in enumerate(models)})


def test_select_models_reorders_every_per_model_field():
    qm = _qm()
    sel = qm.select_models(["c", "a"])
    assert sel.model_names == ("c", "a")
    np.testing.assert_array_equal(sel.scores, qm.scores[:, [2, 0]])
    assert sel.prompt_tokens.shape == (6, 2)
    assert sel.params_b == {"c": 3.0, "a": 1.0}
    assert sel.notes[-1].startswith("selected models")


def test_select_models_unknown_name_lists_known_names():
    with pytest.raises(ValidationError, match=r"unknown: \['z'\].*known: \['a', 'b', 'c'\]"):
        _qm().select_models(["a", "z"])
    with pytest.raises(ValidationError):
        _qm().select_models(["a", "a"])


def test_exclude_tasks_and_subset():
    qm = _qm()
    ex = qm.exclude_tasks(["y"])
    assert ex.tasks == ("x",) * 3 and ex.prompt_ids == ("p0", "p2", "p4")
    with pytest.raises(ValidationError, match="unknown tasks"):
        qm.exclude_tasks(["nope"])
    with pytest.raises(ValidationError, match="no prompts"):
        qm.exclude_tasks(["x", "y"])
    sub = qm.subset([3, 1])
    assert sub.prompt_ids == ("p3", "p1")
    np.testing.assert_array_equal(sub.scores, qm.scores[[3, 1]])
    mask = np.array([True, False] * 3)
    assert qm.subset(mask).prompt_ids == ("p0", "p2", "p4")
    with pytest.raises(ValidationError):
        qm.subset([6])


def test_to_frame_is_tidy():
    df = _qm().to_frame()
    assert len(df) == 18
    assert list(df.columns) == ["prompt_id", "task", "model", "score", "prompt_tokens",
                                "params_b"]
    assert df.loc[df.model == "b", "params_b"].eq(2.0).all()
    pivot = df.pivot(index="prompt_id", columns="model", values="score")
    np.testing.assert_allclose(pivot.loc[["p0", "p1"], ["a", "b", "c"]].to_numpy(),
                               _qm().scores[:2])


def test_quality_matrix_validates():
    qm = _qm()
    with pytest.raises(ValidationError, match="in \\[0, 1\\]"):
        replace(qm, scores=qm.scores * 2)
    with pytest.raises(ValidationError, match="unique"):
        replace(qm, prompt_ids=["p0"] * 6)
    with pytest.raises(ValidationError, match="prompt_tokens"):
        replace(qm, prompt_tokens=-np.ones((6, 3), dtype=int))


# ---- parsing rules on tiny files ---------------------------------------------------------

def test_llmrouter_parses_dict_literal_strings(tiny_mirror):
    tiny_mirror("llmrouter.train", [
        {"question": "what is 2+2", "scores": "{'m2': 1.0, 'm1': 0.25}"},
        {"question": "name a colour", "scores": {"m1": 0.5, "m2": 0}},
    ])
    qm = load_llmrouter("train")
    assert qm.model_names == ("m1", "m2")
    np.testing.assert_array_equal(qm.scores, [[0.25, 1.0], [0.5, 0.0]])
    assert qm.prompt_ids == ("train/0", "train/1")
    assert any("on 1 rows" in n for n in qm.notes)


@pytest.mark.parametrize("bad, match", [
    ("{'m1': 0.5, ", "not a Python dict literal"),
    ("__import__('os').getcwd()", "not a Python dict literal"),  # literal_eval never runs it
    ("[0.5, 0.5]", "not a non-empty dict"),
    ({"m1": 1.5, "m2": 0.0}, "not a number in \\[0, 1\\]"),
    ({"m1": "high", "m2": 0.0}, "not a number in \\[0, 1\\]"),
    ({"m1": 0.5}, "differ from the first row"),
    ("{1: 0.5, 2: 0.5}", "keyed by model name"),
])
def test_llmrouter_malformed_row_names_file_and_row(tiny_mirror, bad, match):
    path = tiny_mirror("llmrouter.test", [
        {"question": "ok", "scores": {"m1": 0.5, "m2": 0.5}},
        {"question": "bad", "scores": bad},
    ])
    with pytest.raises(DataError, match=match) as e:
        load_llmrouter("test")
    assert str(path) in str(e.value) and "row 1" in str(e.value)


def test_invalid_json_names_the_file(tiny_mirror):
    path = tiny_mirror("llmrouter.test", b'[{"question": "x", "scores": ')
    with pytest.raises(DataError, match="not valid UTF-8 JSON") as e:
        load_llmrouter("test")
    assert str(path) in str(e.value)


def _rp_row(task, score=0.5, success=True, **override):
    perf = {m: {"success": success, "task_performance": score, "prompt_tokens": 12,
                "completion_tokens": 3} for m in ("big", "small")}
    rec = {"task_name": task, "query": f"a {task} question", "metric": "em_mc",
           "model_performance": perf}
    rec.update(override)
    return rec


def test_routeprofile_records_failed_calls_and_orders_by_card(tiny_mirror):
    tiny_mirror("routeprofile.routing_test", [
        _rp_row("qa"), _rp_row("qa", score=None, success=False), _rp_row("math", score=1.0)])
    tiny_mirror("routeprofile.candidate_models",
                {"big": {"parameters": 70.0}, "small": {"parameters": 3.0}})
    qm = load_routeprofile(exclude_tasks=())
    assert qm.model_names == ("small", "big")
    assert qm.prompt_ids == ("qa/0", "qa/1", "math/0")
    np.testing.assert_array_equal(qm.scores[:, 0], [0.5, 0.0, 1.0])
    assert any("success=false" in n and "'big': 1" in n for n in qm.notes)
    assert load_routeprofile(exclude_tasks=("math",)).num_prompts == 2


@pytest.mark.parametrize("row, match", [
    (_rp_row("qa", query=None), "'query'"),
    (_rp_row("qa", model_performance={}), "model_performance"),
    (_rp_row("qa", score=-0.1), "not a number in \\[0, 1\\]"),
    (_rp_row("qa", success="yes"), "'success'"),
])
def test_routeprofile_malformed_row_names_file_and_row(tiny_mirror, row, match):
    path = tiny_mirror("routeprofile.routing_test", [_rp_row("qa"), row])
    tiny_mirror("routeprofile.candidate_models",
                {"big": {"parameters": 70.0}, "small": {"parameters": 3.0}})
    with pytest.raises(DataError, match=match) as e:
        load_routeprofile(exclude_tasks=())
    assert str(path) in str(e.value) and "row 1" in str(e.value)


def test_routeprofile_card_without_model_is_a_data_error(tiny_mirror):
    tiny_mirror("routeprofile.routing_test", [_rp_row("qa")])
    card = tiny_mirror("routeprofile.candidate_models", {"big": {"parameters": 70.0}})
    with pytest.raises(DataError, match="'small'") as e:
        load_routeprofile(exclude_tasks=())
    assert str(card) in str(e.value)


# ---- verification and missing files (through routerwise.data.registry.fetch) ------------------

@needs_mirror
def test_corrupted_copy_fails_checksum_naming_the_file(tmp_path, monkeypatch):
    real = Path(datasets.fetch("routeprofile.routing_test"))
    src = datasets.source("routeprofile.routing_test")
    copy = tmp_path / src.relpath
    copy.parent.mkdir(parents=True)
    shutil.copyfile(real, copy)
    with open(copy, "r+b") as f:  # flip one byte of the private copy
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(tmp_path))
    with pytest.raises(ChecksumMismatch) as e:
        load_routeprofile()
    assert str(copy) in str(e.value)


def test_missing_file_is_a_typed_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(tmp_path))
    with pytest.raises(MissingDataFile, match="llmrouter.test") as e:
        load_llmrouter("test")
    assert "dcrouter_preprocessed/test.json" in str(e.value)
    with pytest.raises(MissingDataFile, match="routeprofile.routing_test"):
        load_routeprofile()
