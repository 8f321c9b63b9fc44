"""Tiny random-weight models on disk (profiling.tiny_models): deterministic, two sizes, a local
tokenizer, and architectures the kit reads back from their config.json.

Building the tokenizer needs the ``tokenizers`` package, which `make engine` installs; without
it these tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import in_ci

from profiling.errors import ResultExists
from routerwise.serving import architectures


@pytest.fixture(scope="module", autouse=True)  # module scope: before the module's model fixtures
def _need_tokenizers():
    try:
        import tokenizers  # noqa: F401
    except ImportError as e:
        why = f"the tokenizers package is not installed ({e}); run `make engine`"
        if in_ci():
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from profiling.tiny_models import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama-s", "tiny-llama-s")


def _manifest(folder):
    return json.loads((folder / "tiny_model.json").read_text())


def test_same_seed_same_bytes_other_seed_other_weights(small, tmp_path):
    from profiling.tiny_models import build_tiny_model
    again = build_tiny_model(tmp_path / "again", "tiny-llama-s", seed=0)
    other = build_tiny_model(tmp_path / "other", "tiny-llama-s", seed=1)
    a, b, c = _manifest(small)["sha256"], _manifest(again)["sha256"], _manifest(other)["sha256"]
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert set(a) >= {"config.json", "model.safetensors", "tokenizer.json",
                      "tokenizer_config.json", "generation_config.json"}


def test_two_sizes_differ_in_depth_and_width():
    from profiling.tiny_models import TINY_MODELS
    shapes = {(m.num_layers, m.hidden_size) for m in TINY_MODELS.values()}
    assert len(TINY_MODELS) >= 2
    assert len({d for d, _ in shapes}) >= 2 and len({w for _, w in shapes}) >= 2


def test_architecture_registers_and_counts_the_written_parameters(small):
    from profiling.tiny_models import read_safetensors_header, register_tiny_model
    arch = register_tiny_model(small)
    assert architectures.get("tiny-llama-s") == arch
    assert arch == architectures.from_hf_config(small / "config.json", name="tiny-llama-s")
    assert (arch.num_layers, arch.hidden_size, arch.vocab_size) == (4, 256, 4096)
    header = read_safetensors_header(small / "model.safetensors")
    written = sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    assert arch.param_count() == written == _manifest(small)["num_params"]
    assert {t["dtype"] for k, t in header.items() if k != "__metadata__"} == {"BF16"}


def test_weights_are_bf16_draws_of_the_stated_spread(small):
    from profiling.tiny_models import read_safetensors_header
    header = read_safetensors_header(small / "model.safetensors")
    raw = (small / "model.safetensors").read_bytes()
    start = 8 + int.from_bytes(raw[:8], "little")
    lo, hi = header["lm_head.weight"]["data_offsets"]
    bits = np.frombuffer(raw[start + lo:start + hi], dtype="<u2").astype(np.uint32) << 16
    w = bits.view(np.float32)
    assert w.size == 4096 * 256
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001


def test_tokenizer_is_local_and_encodes_any_text(small):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(small / "tokenizer.json"))
    assert 512 <= tok.get_vocab_size() <= 4096
    text = "the model serves a request under load, with ümlauts and 123 digits!"
    ids = tok.encode(text).ids
    assert max(ids) < 4096 and tok.decode(ids) == text
    cfg = json.loads((small / "tokenizer_config.json").read_text())
    assert cfg["eos_token"] in tok.get_vocab() and "chat_template" in cfg


def test_rebuild_reuses_and_a_foreign_folder_is_not_overwritten(small, tmp_path):
    from profiling.tiny_models import build_tiny_model
    before = (small / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(small, "tiny-llama-s") == small
    assert (small / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ResultExists):
        build_tiny_model(small, "tiny-llama-m")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ResultExists):
        build_tiny_model(foreign)
    assert (foreign / "notes.txt").read_text() == "keep"
