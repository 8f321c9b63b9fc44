"""Transformer architectures: the facts the step-cost and memory models need.

Every entry is transcribed from the model's public ``config.json`` on Hugging Face (the URL is
kept in ``source``); ``params_b`` is the published parameter count (model card / safetensors
metadata), kept so that :meth:`Architecture.param_count` can be checked against it. Where a
config names a field differently the entry says so in ``notes`` (e.g. Qwen-72B's config gives
``intermediate_size`` as twice the width of one MLP projection).

Derived quantities (all per full model, before tensor-parallel sharding):

* ``param_count()``: embeddings (+ learned positions, + the projections in and out of a narrower
  embedding, + untied LM head) + layers x (attention + MLP x experts + router) + norms. Biases
  are ignored (under 0.1% for every entry here).
* ``weight_bytes(dtype_bytes)``: ``param_count() * dtype_bytes``.
* ``kv_bytes_per_token(dtype_bytes)``: ``2 * num_layers * num_kv_heads * head_dim * dtype_bytes``
  (one key and one value vector per layer and KV head).
* ``flops_per_token(context)``: ``2 * active_params`` (matrix multiplies, LM head included,
  embedding lookup excluded) ``+ 4 * num_layers * num_heads * head_dim * context`` (QK^T and
  PV against ``context`` cached tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..errors import DataError, ValidationError

__all__ = ["Architecture", "REGISTRY", "ALIASES", "get", "resolve", "register",
           "from_hf_config"]

_HF = "https://huggingface.co/{}/blob/main/config.json"


# Fields that most architectures leave at their default; repr() omits them there (see __repr__).
_OPTIONAL_FIELDS = ("embed_proj_dim", "learned_positions", "shared_experts", "dense_layers",
                    "dense_intermediate_size", "kv_lora_rank", "q_lora_rank",
                    "qk_rope_head_dim", "v_head_dim")


@dataclass(frozen=True, repr=False)
class Architecture:
    """One decoder-only transformer, as its public config describes it.

    ``embed_proj_dim``: width of the token embeddings (and of a tied LM head) when it differs
    from ``hidden_size``, with projections in and out (OPT-350m's ``word_embed_proj_dim``);
    0 when they are ``hidden_size`` wide. ``learned_positions``: rows of a learned position
    embedding (OPT, GPT-2); 0 for rotary or ALiBi positions.
    """

    name: str
    hf_id: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # width of one MLP projection (per expert for MoE)
    vocab_size: int
    gated_mlp: bool
    num_experts: int = 1
    experts_per_token: int = 1
    params_b: float = 0.0  # published parameter count, billions
    source: str = ""
    notes: str = ""
    tied_embeddings: bool = False
    max_position_embeddings: int = 4096
    embed_proj_dim: int = 0
    learned_positions: int = 0
    shared_experts: int = 0
    dense_layers: int = 0
    dense_intermediate_size: int = 0
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    def __repr__(self) -> str:
        # cache keys hash this text (routerwise.serving.curve_grid): optional fields at their
        # defaults are left out, so entries that do not use them keep their cached curves
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in _OPTIONAL_FIELDS or getattr(self, f.name) != f.default]
        return f"Architecture({', '.join(parts)})"

    def __post_init__(self):
        ints = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                "intermediate_size", "vocab_size", "num_experts", "experts_per_token",
                "max_position_embeddings")
        for f in ints:
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValidationError(f"architecture {self.name!r}: {f} must be a positive "
                                      f"integer, got {v!r}")
        for f in _OPTIONAL_FIELDS:
            v = getattr(self, f)
            if not isinstance(v, int) or v < 0:
                raise ValidationError(f"architecture {self.name!r}: {f} must be an integer "
                                      f">= 0 (0: not used), got {v!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValidationError(f"architecture {self.name!r}: num_heads {self.num_heads} is "
                                  f"not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.experts_per_token > self.num_experts:
            raise ValidationError(f"architecture {self.name!r}: experts_per_token exceeds "
                                  f"num_experts")
        if self.dense_layers > self.num_layers:
            raise ValidationError(f"architecture {self.name!r}: dense_layers "
                                  f"{self.dense_layers} exceeds num_layers {self.num_layers}")
        if self.kv_lora_rank and not (self.qk_rope_head_dim and self.v_head_dim):
            raise ValidationError(f"architecture {self.name!r}: latent attention (kv_lora_rank "
                                  f"> 0) needs qk_rope_head_dim and v_head_dim")
        if not self.params_b > 0:
            raise ValidationError(f"architecture {self.name!r}: give the published parameter "
                                  f"count params_b (billions)")

    # --- per-layer pieces (full model, unsharded) -------------------------------------------
    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (a compressed KV latent shared by all heads)."""
        return self.kv_lora_rank > 0

    @property
    def attn_params_per_layer(self) -> int:
        """Q, K, V and output projections (latent attention: its down/up projections)."""
        h, nh = self.hidden_size, self.num_heads
        if self.is_mla:
            nope = self.head_dim - self.qk_rope_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank * nh * self.head_dim
                 if self.q_lora_rank else h * nh * self.head_dim)
            kv = (h * (self.kv_lora_rank + self.qk_rope_head_dim)
                  + self.kv_lora_rank * nh * (nope + self.v_head_dim))
            return q + kv + nh * self.v_head_dim * h
        q = h * nh * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        return 2 * q + kv

    @property
    def expert_params(self) -> int:
        """One MLP (one expert for MoE): up (+ gate) and down projections."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is the (routed + shared) experts."""
        return self.num_layers - self.dense_layers

    @property
    def dense_mlp_params(self) -> int:
        """The MLP of one dense layer of a MoE model (``dense_layers``)."""
        width = self.dense_intermediate_size or self.intermediate_size
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    @property
    def mlp_params_per_layer(self) -> int:
        """MLP parameters of one expert layer (routed and shared experts, router)."""
        router = self.hidden_size * self.num_experts if self.num_experts > 1 else 0
        return (self.num_experts + self.shared_experts) * self.expert_params + router

    @property
    def always_active_mlp_params(self) -> float:
        """Per layer, averaged over layers: MLP weights every token uses whatever the router
        picks (shared experts, dense layers' MLPs); 0 for a plain dense or MoE model."""
        return (self.moe_layers * self.shared_experts * self.expert_params
                + self.dense_layers * self.dense_mlp_params) / self.num_layers

    @property
    def layer_params(self) -> int:
        return self.attn_params_per_layer + self.mlp_params_per_layer + 2 * self.hidden_size

    @property
    def embed_width(self) -> int:
        return self.embed_proj_dim or self.hidden_size

    @property
    def embedding_params(self) -> int:
        """Token embeddings, plus learned position embeddings."""
        return self.vocab_size * self.embed_width + self.learned_positions * self.hidden_size

    @property
    def embed_proj_params(self) -> int:
        """Projections between a narrower embedding and the hidden width (in and out)."""
        return 2 * self.embed_proj_dim * self.hidden_size if self.embed_proj_dim else 0

    @property
    def lm_head_params(self) -> int:
        return self.vocab_size * self.embed_width

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    def param_count(self) -> int:
        """Parameters derived from the config (biases ignored)."""
        head = 0 if self.tied_embeddings else self.lm_head_params
        dense = self.dense_layers * (self.attn_params_per_layer + self.dense_mlp_params
                                     + 2 * self.hidden_size)
        return (self.embedding_params + head + self.embed_proj_params
                + self.moe_layers * self.layer_params + dense + self.hidden_size)

    def active_params(self) -> int:
        """Parameters touched per token (MoE: ``experts_per_token`` routed experts plus the
        shared ones; dense layers' MLPs), LM head included."""
        per_layer = (self.attn_params_per_layer
                     + (self.experts_per_token + self.shared_experts) * self.expert_params
                     + 2 * self.hidden_size)
        dense = self.dense_layers * (self.attn_params_per_layer + self.dense_mlp_params
                                     + 2 * self.hidden_size)
        return (self.moe_layers * per_layer + dense + self.lm_head_params
                + self.embed_proj_params)

    def weight_bytes(self, dtype_bytes: int = 2) -> int:
        return self.param_count() * dtype_bytes

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV cache per token, whole model (latent attention: the latent and the rope key)."""
        if self.is_mla:
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * dtype_bytes
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes

    def kv_shards(self, tp: int) -> int:
        """Ranks the KV cache is split over at tensor parallelism ``tp``: latent attention's
        cache has no head dimension to split, so every rank holds all of it."""
        return 1 if self.is_mla else tp

    def flops_per_token(self, context: float = 0.0) -> float:
        attn = 4.0 * self.num_layers * self.num_heads * self.head_dim * float(context)
        return 2.0 * self.active_params() + attn

    def param_error(self) -> float:
        """Relative difference of the derived parameter count from the published one."""
        return self.param_count() / (self.params_b * 1e9) - 1.0


def _a(name, hf_id, L, h, nh, nkv, hd, inter, vocab, *, params_b, gated=True, experts=1,
       topk=1, tied=False, max_pos=4096, notes="") -> Architecture:
    return Architecture(name=name, hf_id=hf_id, num_layers=L, hidden_size=h, num_heads=nh,
                        num_kv_heads=nkv, head_dim=hd, intermediate_size=inter,
                        vocab_size=vocab, gated_mlp=gated, num_experts=experts,
                        experts_per_token=topk, params_b=params_b, source=_HF.format(hf_id),
                        notes=notes, tied_embeddings=tied, max_position_embeddings=max_pos)


_ENTRIES = (
    # --- the RouteProfile models (names as in the quality data) ------------------------------
    _a("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", 28, 3072, 24, 8, 128, 8192,
       128256, params_b=3.213, tied=True, max_pos=131072),
    _a("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", 32, 4096, 32, 8, 128, 14336,
       128256, params_b=8.030, max_pos=131072),
    _a("mistral-small-24b-instruct-2501-bf16", "mistralai/Mistral-Small-24B-Instruct-2501", 40,
       5120, 32, 8, 128, 32768, 131072, params_b=23.572, max_pos=32768),
    _a("llama-3.3-70b-instruct", "meta-llama/Llama-3.3-70B-Instruct", 80, 8192, 64, 8, 128,
       28672, 128256, params_b=70.554, max_pos=131072),
    _a("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", 28, 3584, 28, 4, 128, 18944, 152064,
       params_b=7.616, max_pos=32768, notes="QKV projections carry biases (ignored)"),
    _a("gemma-2-9b-it", "google/gemma-2-9b-it", 42, 3584, 16, 8, 256, 14336, 256000,
       params_b=9.242, tied=True, max_pos=8192,
       notes="head_dim 256 (num_heads * head_dim = 4096 != hidden_size); sliding-window "
             "attention on alternate layers is not modelled"),
    _a("mixtral-8x7b-instruct-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1", 32, 4096, 32, 8,
       128, 14336, 32000, params_b=46.703, experts=8, topk=2, max_pos=32768),
    _a("mixtral-8x22b-instruct-v0.1", "mistralai/Mixtral-8x22B-Instruct-v0.1", 56, 6144, 48, 8,
       128, 16384, 32768, params_b=140.621, experts=8, topk=2, max_pos=65536),
    # --- architectures behind the measured rows the step-cost model is fitted to ---------------
    _a("Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf", 32, 4096, 32, 32, 128, 11008, 32000,
       params_b=6.738),
    _a("Llama-2-70b-hf", "meta-llama/Llama-2-70b-hf", 80, 8192, 64, 8, 128, 28672, 32000,
       params_b=68.977),
    _a("Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B", 32, 4096, 32, 8, 128, 14336, 128256,
       params_b=8.030, max_pos=8192),
    _a("Meta-Llama-3-70B", "meta-llama/Meta-Llama-3-70B", 80, 8192, 64, 8, 128, 28672, 128256,
       params_b=70.554, max_pos=8192),
    _a("Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", 32, 4096, 32, 8, 128, 14336, 32000,
       params_b=7.242, max_pos=32768,
       notes="sliding window 4096 tokens: inactive at the context lengths measured"),
    _a("Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-v0.1", 32, 4096, 32, 8, 128, 14336, 32000,
       params_b=46.703, experts=8, topk=2, max_pos=32768),
    _a("Qwen2-7B", "Qwen/Qwen2-7B", 28, 3584, 28, 4, 128, 18944, 152064, params_b=7.616,
       max_pos=131072, notes="QKV projections carry biases (ignored)"),
    _a("Qwen2-72B", "Qwen/Qwen2-72B", 80, 8192, 64, 8, 128, 29568, 152064, params_b=72.706,
       max_pos=131072, notes="QKV projections carry biases (ignored)"),
    _a("CodeLlama-34b-Instruct-hf", "codellama/CodeLlama-34b-Instruct-hf", 48, 8192, 64, 8, 128,
       22016, 32000, params_b=33.744, max_pos=16384),
    _a("internlm-20b", "internlm/internlm-20b", 60, 5120, 40, 40, 128, 13824, 103168,
       params_b=20.0, max_pos=4096, notes="published as '20B' (no exact count on the card)"),
    _a("phi-2", "microsoft/phi-2", 32, 2560, 32, 32, 80, 10240, 51200, params_b=2.780,
       gated=False, max_pos=2048,
       notes="GELU MLP (not gated), parallel attention/MLP block, biases everywhere (ignored)"),
    _a("Qwen-72B", "Qwen/Qwen-72B", 80, 8192, 64, 64, 128, 24576, 152064, params_b=72.3,
       max_pos=32768,
       notes="config.json gives intermediate_size 49152, twice the width of one MLP "
             "projection (the code halves it); published as '72B'"),
    _a("bloom", "bigscience/bloom", 70, 14336, 112, 112, 128, 57344, 250880, params_b=176.247,
       gated=False, tied=True, max_pos=2048,
       notes="BLOOM-176B; GELU MLP of width 4 x hidden, ALiBi positions, biases (ignored)"),
)

REGISTRY: dict[str, Architecture] = {a.name: a for a in _ENTRIES}

# Names under which measurement files refer to registry entries.
ALIASES: dict[str, str] = {
    "meta-llama/Llama-3.2-3B-Instruct": "llama-3.2-3b-instruct",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b-instruct",
    "mistralai/Mistral-Small-24B-Instruct-2501": "mistral-small-24b-instruct-2501-bf16",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.3-70b-instruct",
    "meta-llama/Llama-2-7b-hf": "Llama-2-7b-hf",
    "meta-llama/Llama-2-70b-hf": "Llama-2-70b-hf",
    "llama2-70b": "Llama-2-70b-hf",
    "meta-llama/Meta-Llama-3-8B": "Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-70B": "Meta-Llama-3-70B",
    "mistralai/Mistral-7B-v0.1": "Mistral-7B-v0.1",
    "mistralai/Mixtral-8x7B-v0.1": "Mixtral-8x7B-v0.1",
    "Qwen/Qwen2-7B": "Qwen2-7B",
    "Qwen/Qwen2-72B": "Qwen2-72B",
    "codellama/CodeLlama-34b-Instruct-hf": "CodeLlama-34b-Instruct-hf",
    "internlm/internlm-20b": "internlm-20b",
    "microsoft/phi-2": "phi-2",
    "Qwen/Qwen-72B": "Qwen-72B",
    "bloom-176b": "bloom",
    "bigscience/bloom": "bloom",
}


def resolve(arch: Architecture | str) -> Architecture:
    """An :class:`Architecture` as given, or the registered one of that name.

    Functions that hand work to other processes resolve names here, in the calling process,
    and pass the objects on: an architecture registered at run time is then known to workers
    started with "spawn" too.
    """
    return arch if isinstance(arch, Architecture) else get(arch)


def register(arch: Architecture, *, replace_existing: bool = False) -> Architecture:
    """Make ``get(arch.name)`` return ``arch`` in this process (e.g. for the default panels)."""
    if not isinstance(arch, Architecture):
        raise ValidationError(f"register() takes an Architecture, got {type(arch).__name__}")
    old = REGISTRY.get(arch.name)
    if old is not None and old != arch and not replace_existing:
        raise ValidationError(f"an architecture named {arch.name!r} is registered already with "
                              f"other fields; pick another name or pass replace_existing=True")
    REGISTRY[arch.name] = arch
    return arch


# Hugging Face model types whose MLP is gated (SwiGLU/GeGLU: gate, up and down projections).
_GATED_TYPES = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
                "gemma", "gemma2", "gemma3_text", "granite", "olmo2", "phi3", "deepseek_v2",
                "deepseek_v3", "llama4", "llama4_text", "gpt_oss"}
_UNGATED_TYPES = {"gpt2", "gpt_neox", "bloom", "phi", "falcon", "opt", "gptj", "starcoder2"}


# Hugging Face keys from_hf_config reads, first name first (aliases of other model types after).
_HF_KEYS = {"num_layers": ("num_hidden_layers", "n_layer"),
            "hidden_size": ("hidden_size", "n_embd"),
            "num_heads": ("num_attention_heads", "n_head"),
            "intermediate_size": ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim"),
            "vocab_size": ("vocab_size",)}
_OVERRIDES = ("name", "params_b", "gated_mlp")  # from_hf_config's keyword overrides


def from_hf_config(path: str | Path, *, name: str | None = None, params_b: float | None = None,
                   gated_mlp: bool | None = None) -> Architecture:
    """Read a Hugging Face ``config.json`` on disk (no network) into an :class:`Architecture`.

    ``params_b`` is the published parameter count in billions; without it the count derived
    from the config is used and ``notes`` says so. ``gated_mlp`` is needed only for model types
    this function does not know. Multimodal configs are read from their ``text_config``. A
    missing or malformed value (a count that is not a positive whole number) is a DataError
    naming the file and the key. A config without ``tie_word_embeddings`` has tied embeddings
    (the Hugging Face default), and ``notes`` says so. OPT configs are read too (``ffn_dim``,
    ``word_embed_proj_dim``, learned positions; ``do_layer_norm_before`` false is noted).
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no config file at {path}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON config ({e})") from e
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: a config.json holds one JSON object")
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "_name_or_path": cfg.get("_name_or_path", "")}
    mtype = str(cfg.get("model_type", ""))

    def count(keys, *, default=None, minimum=1) -> int:
        """The first of ``keys`` the config gives, checked to be a whole number >= minimum."""
        key = next((k for k in keys if cfg.get(k) is not None), None)
        if key is None:
            if default is not None:
                return default
            raise DataError(f"{path}: config has no {' / '.join(keys)} (model_type "
                            f"{mtype or 'unknown'}); is this a decoder-only transformer config?")
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
            raise DataError(f"{path}: {key} = {json.dumps(v)} is not a whole number; a Hugging "
                            f"Face config gives it as a JSON integer")
        if v < minimum:
            raise DataError(f"{path}: {key} = {json.dumps(v)} must be at least {minimum}")
        return int(v)

    if gated_mlp is None:
        if mtype in _GATED_TYPES:
            gated_mlp = True
        elif mtype in _UNGATED_TYPES:
            gated_mlp = False
        else:
            raise ValidationError(
                f"{path}: unknown model_type {mtype!r}, so the MLP kind is unknown (gated "
                f"types: {sorted(_GATED_TYPES)}; not gated: {sorted(_UNGATED_TYPES)}). Call "
                f"from_hf_config(path, gated_mlp=True) for a gate+up+down MLP (e.g. SwiGLU) or "
                f"gated_mlp=False for up+down; its overrides are {', '.join(_OVERRIDES)}. In a "
                f"problem file, put gated_mlp = true or false in the [[models]] entry beside "
                f"config = ...")
    notes = []
    heads = count(_HF_KEYS["num_heads"])
    hidden = count(_HF_KEYS["hidden_size"])
    kv_heads = count(("num_key_value_heads",), default=heads)
    if cfg.get("head_dim") is None and hidden % heads:
        raise DataError(f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads "
                        f"{heads} and the config gives no head_dim")
    head_dim = count(("head_dim",), default=hidden // heads)
    experts = max(1, count(("num_local_experts", "num_experts", "n_routed_experts"), default=1,
                           minimum=0))
    inter = (count(("moe_intermediate_size",)) if experts > 1 and cfg.get(
        "moe_intermediate_size") is not None else count(_HF_KEYS["intermediate_size"]))
    moe = _moe_layout(cfg, mtype, experts, count, notes) if experts > 1 else {}
    if cfg.get("kv_lora_rank") is not None:  # multi-head latent attention (DeepSeek V2/V3)
        rope = count(("qk_rope_head_dim",))
        moe.update(kv_lora_rank=count(("kv_lora_rank",)), qk_rope_head_dim=rope,
                   q_lora_rank=count(("q_lora_rank",), default=0, minimum=0),
                   v_head_dim=count(("v_head_dim",)))
        head_dim = count(("qk_nope_head_dim",)) + rope
    _note_unmodelled(cfg, notes)
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = True
        notes.append("tie_word_embeddings absent: tied (the Hugging Face default)")
    elif not isinstance(tied, bool):
        raise DataError(f"{path}: tie_word_embeddings = {json.dumps(tied)} is not true or false")
    max_pos = count(("max_position_embeddings",), default=4096)
    proj = positions = 0
    if mtype == "opt":
        proj = count(("word_embed_proj_dim",), default=hidden)
        proj = 0 if proj == hidden else proj
        positions = max_pos + 2  # OPT's learned positions are offset by 2 rows
        if cfg.get("do_layer_norm_before") is False:
            notes.append("post-LayerNorm blocks (do_layer_norm_before false): same parameters "
                         "and step costs as pre-LayerNorm, no final norm (ignored)")
    hf_id = str(cfg.get("_name_or_path") or "")
    arch = Architecture(
        name=name or (hf_id.rsplit("/", 1)[-1] if hf_id else path.parent.name),
        hf_id=hf_id, num_layers=count(_HF_KEYS["num_layers"]), hidden_size=hidden,
        num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, intermediate_size=inter,
        vocab_size=count(_HF_KEYS["vocab_size"]), gated_mlp=bool(gated_mlp),
        num_experts=experts,
        experts_per_token=max(1, count(("num_experts_per_tok", "experts_per_token"), default=1,
                                       minimum=0)),
        params_b=float(params_b) if params_b is not None else 1.0, source=str(path),
        tied_embeddings=tied, max_position_embeddings=max_pos, embed_proj_dim=proj,
        learned_positions=positions, **moe)
    if params_b is None:
        arch = replace(arch, params_b=arch.param_count() / 1e9)
        notes.insert(0, "params_b derived from the config (no published count given)")
    return replace(arch, notes="; ".join(notes))


def _moe_layout(cfg: dict, mtype: str, experts: int, count, notes: list) -> dict:
    """Shared experts and dense (expert-free) layers of a MoE config, as Architecture fields."""
    layers = count(_HF_KEYS["num_layers"])
    if mtype.startswith("llama4"):
        # Llama 4: every MoE layer also runs one shared expert of the routed experts' width;
        # the other layers hold a dense MLP of width intermediate_size_mlp
        moe_layers = cfg.get("moe_layers")
        if not isinstance(moe_layers, list):
            step = count(("interleave_moe_layer_step",), default=1)
            moe_layers = list(range(step - 1, layers, step))
        return {"shared_experts": 1, "dense_layers": layers - len(moe_layers),
                "dense_intermediate_size": count(("intermediate_size_mlp",),
                                                 default=count(("intermediate_size",)))}
    if cfg.get("n_shared_experts") is not None or cfg.get("first_k_dense_replace") is not None:
        # DeepSeek V2/V3: layers from first_k_dense_replace on (every moe_layer_freq-th) are
        # MoE with n_shared_experts shared experts; the rest are dense of intermediate_size
        first = count(("first_k_dense_replace",), default=0, minimum=0)
        freq = count(("moe_layer_freq",), default=1)
        moe_layers = sum(1 for i in range(first, layers) if i % freq == 0)
        return {"shared_experts": count(("n_shared_experts",), default=0, minimum=0),
                "dense_layers": layers - moe_layers,
                "dense_intermediate_size": count(_HF_KEYS["intermediate_size"])}
    if cfg.get("shared_expert_intermediate_size"):
        notes.append("shared_expert_intermediate_size: the shared expert is not modelled")
    return {}


def _note_unmodelled(cfg: dict, notes: list) -> None:
    """Config features the step-cost and memory models leave out, said in ``notes``."""
    kinds = cfg.get("layer_types")
    if isinstance(kinds, list) and "sliding_attention" in kinds:
        notes.append(f"sliding-window attention ({cfg.get('sliding_window')} tokens) on "
                     f"{kinds.count('sliding_attention')} of {len(kinds)} layers is not "
                     f"modelled: KV cache and attention are counted on every layer "
                     f"(conservative)")
    if isinstance(cfg.get("quantization_config"), dict):
        method = cfg["quantization_config"].get("quant_method", "a quantization_config")
        notes.append(f"checkpoint quantized ({method}); weights are counted in bf16, as "
                     f"served unquantized")
    if cfg.get("num_nextn_predict_layers"):
        notes.append(f"{cfg['num_nextn_predict_layers']} multi-token-prediction layer(s) not "
                     f"counted (unused when serving without speculative decoding)")


def get(name: str) -> Architecture:
    """The architecture registered under ``name`` (or one of its aliases, e.g. an HF id)."""
    key = ALIASES.get(name, name)
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValidationError(f"no architecture {name!r} in routerwise.serving.architectures; known: "
                              f"{sorted(REGISTRY)}. Add an entry transcribed from the model's "
                              f"config.json") from None
