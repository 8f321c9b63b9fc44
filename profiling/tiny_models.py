"""Tiny random-weight Llama models on disk, for serving a real engine without the hub.

:func:`build_tiny_model` writes a folder a vLLM server loads as it would a downloaded model:
``config.json`` (``LlamaForCausalLM``), ``generation_config.json``, ``model.safetensors``
(bf16 weights drawn from N(0, 0.02) by ``numpy.random.default_rng(seed)``; norms are ones),
``tokenizer.json`` and ``tokenizer_config.json`` (a byte-level BPE trained here, with the
``tokenizers`` library, on a text the kit generates from the same seed), and ``tiny_model.json``
(what was built, from which seed, each file's sha256). The same size and seed give the same
bytes, so tests, benchmarks and notebooks can rebuild a model instead of storing it.

Random weights generate random tokens: requests must ask for their length (``ignore_eos`` and
``min_tokens``) or they stop early. The written ``config.json`` reads back with
:func:`routerwise.serving.architectures.from_hf_config`; :func:`register_tiny_model` adds
that architecture to the kit's registry under the model's name.

Sizes (:data:`TINY_MODELS`) differ in depth and width; all share a 4096-token vocabulary.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from routerwise.errors import ValidationError
from routerwise.io import sha256_file, write_json
from routerwise.serving import architectures

from .errors import ResultExists, ToolUnavailable

__all__ = ["TinyModel", "TINY_MODELS", "build_tiny_model", "register_tiny_model",
           "corpus", "read_safetensors_header"]

MANIFEST = "tiny_model.json"
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
# A plain chat template, so the chat API works too (one message per line).
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


@dataclass(frozen=True)
class TinyModel:
    """The shape of one tiny Llama (grouped-query attention, SwiGLU MLP, untied LM head)."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int = 4096
    max_position_embeddings: int = 2048

    def __post_init__(self):
        for f in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                  "vocab_size", "max_position_embeddings"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValidationError(f"tiny model {self.name!r}: {f} must be a positive "
                                      f"integer, got {v!r}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValidationError(f"tiny model {self.name!r}: hidden_size must be a multiple of "
                                  f"num_heads, and num_heads of num_kv_heads")
        if self.vocab_size < 512:
            raise ValidationError(f"tiny model {self.name!r}: vocab_size must be >= 512 (256 "
                                  f"byte tokens, special tokens and merges)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def config(self) -> dict:
        """The Hugging Face ``config.json`` of this shape."""
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "_name_or_path": self.name, "num_hidden_layers": self.num_layers,
                "hidden_size": self.hidden_size, "num_attention_heads": self.num_heads,
                "num_key_value_heads": self.num_kv_heads, "head_dim": self.head_dim,
                "intermediate_size": self.intermediate_size, "vocab_size": self.vocab_size,
                "max_position_embeddings": self.max_position_embeddings,
                "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
                "initializer_range": 0.02, "torch_dtype": "bfloat16",
                "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every weight of the checkpoint, in the order it is drawn and written."""
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        out = [("model.embed_tokens.weight", (v, h))]
        for n in range(self.num_layers):
            p = f"model.layers.{n}."
            out += [(p + "input_layernorm.weight", (h,)),
                    (p + "self_attn.q_proj.weight", (q, h)),
                    (p + "self_attn.k_proj.weight", (kv, h)),
                    (p + "self_attn.v_proj.weight", (kv, h)),
                    (p + "self_attn.o_proj.weight", (h, q)),
                    (p + "post_attention_layernorm.weight", (h,)),
                    (p + "mlp.gate_proj.weight", (i, h)),
                    (p + "mlp.up_proj.weight", (i, h)),
                    (p + "mlp.down_proj.weight", (h, i))]
        return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


# Two sizes that differ in depth and width. "tiny-llama-s" serves fast on one CPU core.
TINY_MODELS = {m.name: m for m in (
    TinyModel("tiny-llama-s", num_layers=4, hidden_size=256, num_heads=4, num_kv_heads=2,
              intermediate_size=688),
    TinyModel("tiny-llama-m", num_layers=8, hidden_size=512, num_heads=8, num_kv_heads=4,
              intermediate_size=1376),
)}


def _spec(model: str | TinyModel) -> TinyModel:
    if isinstance(model, TinyModel):
        return model
    try:
        return TINY_MODELS[model]
    except KeyError:
        raise ValidationError(f"no tiny model {model!r}; known: {sorted(TINY_MODELS)}, or pass "
                              f"a TinyModel(...)") from None


# ---------------------------------------------------------------------------------------------
# Tokenizer

_ONSETS = ("", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
           "st", "tr", "pl", "gr", "ch", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee")
_CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "st", "ck")


def corpus(seed: int = 0, num_words: int = 60_000) -> str:
    """A deterministic training text: common words, pseudo-words, numbers and punctuation."""
    from .loadgen import _WORDS  # the synthetic prompts' words get their own tokens
    rng = np.random.default_rng(seed)
    syllables = [o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    words = []
    for _ in range(num_words):
        r = rng.random()
        if r < 0.3:
            words.append(_WORDS[rng.integers(len(_WORDS))])
        elif r < 0.95:
            k = int(rng.integers(1, 4))
            words.append("".join(syllables[j] for j in rng.integers(len(syllables), size=k)))
        else:
            words.append(str(int(rng.integers(0, 10_000))))
        if rng.random() < 0.08:
            words[-1] += (".", ",", "?", "!", ":")[int(rng.integers(5))]
    return " ".join(words)


def _train_tokenizer(vocab_size: int, seed: int):
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as e:
        raise ToolUnavailable(f"building a tiny model's tokenizer needs the 'tokenizers' package "
                              f"({e}); `make engine` installs it with the serving engine, or "
                              f"pip install tokenizers") from e
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    text = corpus(seed)
    tok.train_from_iterator([text[i:i + 4096] for i in range(0, len(text), 4096)], trainer)
    return tok


# ---------------------------------------------------------------------------------------------
# Weights


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even), as little-endian uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype("<u2")


def _write_safetensors(path: Path, spec: TinyModel, seed: int) -> int:
    """Draw every weight from ``seed`` and write them as one bf16 safetensors file."""
    rng = np.random.default_rng(seed)
    header, blobs, offset = {}, [], 0
    for name, shape in spec.tensor_shapes():
        if len(shape) == 1:  # RMSNorm scales
            data = _bf16_bits(np.ones(shape, np.float32))
        else:
            data = _bf16_bits(rng.normal(0.0, 0.02, size=shape).astype(np.float32))
        raw = data.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)
    return offset // 2


def read_safetensors_header(path: str | Path) -> dict:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes, offsets)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


# ---------------------------------------------------------------------------------------------
# The model folder


def _manifest(spec: TinyModel, seed: int) -> dict:
    return {"kind": "routerwise tiny model (random weights, not a trained model)",
            "spec": asdict(spec), "seed": seed}


def build_tiny_model(out_dir: str | Path, model: str | TinyModel = "tiny-llama-s", *,
                     seed: int = 0, overwrite: bool = False) -> Path:
    """Write the model folder ``out_dir`` (see the module notes); return its path.

    A folder already built from the same size and seed is reused as it is; one built otherwise
    raises :class:`~profiling.errors.ResultExists` unless ``overwrite``. The folder appears
    whole or not at all (built beside it, then renamed into place).
    """
    spec = _spec(model)
    if not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    want = _manifest(spec, seed)
    if out.exists():
        have = _read_manifest(out)
        if have is not None and {k: have.get(k) for k in want} == want:
            return out
        if not overwrite:
            raise ResultExists(f"{out} exists and is not tiny model {spec.name!r} from seed "
                               f"{seed}; pass overwrite=True (CLI: remove it) or choose another "
                               f"folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        tok = _train_tokenizer(spec.vocab_size, seed)
        if tok.get_vocab_size() > spec.vocab_size:
            raise ValidationError(f"tokenizer has {tok.get_vocab_size()} tokens, more than the "
                                  f"model's vocab_size {spec.vocab_size}")
        tok.save(str(tmp / "tokenizer.json"))
        write_json(tmp / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS,
            "pad_token": PAD, "add_bos_token": False, "clean_up_tokenization_spaces": False,
            "model_max_length": spec.max_position_embeddings, "chat_template": CHAT_TEMPLATE})
        write_json(tmp / "special_tokens_map.json",
                   {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD})
        write_json(tmp / "config.json", spec.config())
        write_json(tmp / "generation_config.json",
                   {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2})
        params = _write_safetensors(tmp / "model.safetensors", spec, seed)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        write_json(tmp / MANIFEST, {**want, "num_params": params,
                                    "tokenizer_vocab_size": tok.get_vocab_size(),
                                    "sha256": files})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def register_tiny_model(folder: str | Path) -> architectures.Architecture:
    """Register the architecture of a built model folder (read from its ``config.json``) under
    the folder's model name, and return it."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    name = manifest["spec"]["name"] if manifest else folder.name
    arch = architectures.from_hf_config(folder / "config.json", name=name)
    return architectures.register(arch, replace_existing=True)
