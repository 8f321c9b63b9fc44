"""Fitted step-cost model: prefill and decode iteration times of one engine replica.

The model (per forward pass; every term per GPU of a ``tp``-way tensor-parallel shard)
-------------------------------------------------------------------------------------
For a pass over ``n`` new tokens (prompt tokens of the prefills plus one per decoding
sequence), ``S = sum_i L_i^2`` over its prefilled prompts, ``C`` cached context tokens read by
its decoding sequences, ``m`` sequences sampling a token and ``r`` prompts prefilled::

    t = t_step + (tp - 1) t_tp + m t_seq + r t_prompt + lm_head
        + N_layers (t_lin + t_elem + t_attn + x_ar t_ar + t_layer)

    t_lin   = smax( 2 n P_act / tp / (F e_c),   W(n) / tp / (B e_b) )       projections, MLP
    t_elem  = 2 n (10 h + 3 k I / tp) / (B e_b)                              norms, adds, act.
    t_attn  = 2 h_q d S / tp / (F e_a)                                       causal prefill
            + smax( 4 h_q d C / tp / (F e_c),  4 h_kv d C / tp / (B e_kv) ) decode (paged)
    t_ar    = 2 (alpha_tp + 2 n h / beta_tp)                                 two all-reduces
    lm_head = smax( 2 m V h / tp / (F e_c),  2 V h / tp / (B e_b) )

with ``smax(x, y) = (x^q + y^q)^(1/q)`` a smooth roofline (compute leg vs memory leg),
``F``/``B`` the GPU's peak bf16 FLOP/s and HBM bandwidth (datasheet), ``P_act`` the active
parameters of one layer, ``W(n)`` its weight bytes touched by ``n`` tokens (MoE: the expected
number of distinct experts, ``E (1 - (1 - k/E)^n)``), ``h``, ``d``, ``h_q``, ``h_kv``, ``I``,
``V`` the hidden size, head dim, query/KV heads, MLP width and vocabulary (``h_kv / tp`` is at
least 1: KV heads are replicated when tp exceeds them). Under an MPS compute share every
compute leg is multiplied by the compute slowdown and every memory leg by the memory slowdown
of :mod:`routerwise.serving.compute_share`; the overhead terms are not scaled.

Parameters and where they come from
-----------------------------------
* **fitted per GPU family** (``ampere``: A100-40GB and A100-80GB, the same GA100 chip with
  different HBM; ``hopper``: H100-80GB): ``e_c`` GEMM efficiency, ``e_b`` streaming-read
  efficiency, ``e_a`` prefill-attention efficiency, ``e_kv`` decode-attention efficiency;
  ``q`` (roofline smoothness) is shared;
* **fitted per (engine, family)**: ``t_step`` (ms per pass: scheduling, sampling, host
  work), ``t_tp`` (ms per pass and extra shard: worker synchronisation), ``t_seq`` (us per
  sequence per pass), ``t_prompt`` (us per prefilled prompt), ``t_layer`` (us per layer:
  launches, small kernels), ``x_ar`` (the engine's all-reduce time relative to NCCL's
  measured one; key ``ar_x``). Engines: ``vllm`` (LLM-Inference-Bench runs), ``splitwise``
  (the Splitwise profiling engine), ``kernel`` (vidur's per-operator kernel times: only
  ``t_layer``, no host overhead). The simulator uses ``vllm``;
* **fitted to measured collectives**: ``alpha_tp``, ``beta_tp`` from vidur's all-reduce
  tables (DGX A100 / DGX H100, one node);
* **datasheet**: GPU peaks in :data:`GPUS`.

Measured rows (``load_measurements``)
-------------------------------------
* LLM-Inference-Bench vLLM static batches (input = output = L tokens, batch B): on A100 (ALCF
  Polaris, 4 x A100-SXM4-40GB per node, per the repository's PBS run scripts) and H100
  (assumed H100-SXM-80GB). Latency = prefill passes (vLLM without chunked prefill admits whole
  prompts up to max(max_model_len, 2048) tokens per pass) + (L - 1) decode steps whose context
  grows from L to 2L (decode time is linear in context, so the mean context is exact).
* Splitwise ``prompt_time`` (one prefill pass of B prompts) and ``token_time`` (mean decode
  step, context P..P+T) of Llama-2-70B and BLOOM-176B on DGX-A100/H100 (80 GB); 5 repeats
  reduced to their median.
* vidur per-layer operator times (projections, MLP, norms, rope, adds; no attention, no
  all-reduce) at TP 1/2/4/8: 24 log-spaced token counts per (GPU, model, tp).

Excluded rows keep their reason in ``rows["excluded"]``: architectures outside the registry
(DeciLM's irregular GQA, models measured in one row); LLM-Inference-Bench runs whose KV demand
``B * 2L`` exceeds the modelled capacity at vLLM's 90% memory setting (vLLM preempts and
recomputes); H100 Mistral-7B runs more than 1.3x slower than Meta-Llama-3-8B (same layer
shapes) at the same point (the engine's sliding-window path); Splitwise's power-capped H100
rows, and batch-64 rows found memory-capped (prompt time falling from batch 32 to 64, or KV
demand above the modelled capacity); vidur's A40 rows (no target GPU).

Fitting is a weighted, robust (soft-L1) least-squares fit of log(predicted / measured) with
scipy (deterministic: fixed start, no randomness), each (source, GPU, model) group weighted
equally. The fitted parameters are cached as JSON under the cache dir, keyed by the sha256 of
the input files and this model's version; :func:`fit` returns the cached fit when present.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import settings
from ..data.registry import REGISTRY as DATA_REGISTRY
from ..data.registry import fetch, provenance, source
from ..errors import DataError, ValidationError
from ..io import blank, cache_write, write_json
from . import architectures
from .architectures import Architecture
from .compute_share import DEFAULT as DEFAULT_SHARE
from .compute_share import ComputeShareModel
from .hardware import GPUSpec, gpu_spec

__all__ = ["MODEL_VERSION", "DTYPE_BYTES", "FAMILIES", "ENGINES", "E_A_PRIOR", "StepCostParams",
           "fit_allreduce", "Passes", "forward_ms", "IB_GPU", "SW_GPU", "VIDUR_GPU", "VIDUR_OPS",
           "VIDUR_POINTS", "IB_GPU_MEMORY_UTILIZATION", "Measurements", "TWIN_SLOWDOWN_LIMIT",
           "measurement_keys", "load_measurements", "predict_rows", "fit_params", "fit",
           "leave_one_model_out", "in_sample_errors", "StepTimes", "replica_step_times",
           "MEASURED_COLUMNS", "measured_step_times", "fit_provenance"]

MODEL_VERSION = "stepcost-v2"  # v2: fitted values rounded (deterministic across machines)
DTYPE_BYTES = 2

FAMILIES = ("ampere", "hopper")
ENGINES = ("vllm", "splitwise", "kernel")
_AR_NODE = {"ampere": "a100_dgx", "hopper": "h100_dgx"}


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
_FAMILY_KEYS = ("e_c", "e_b", "e_a", "e_kv")
_ENGINE_KEYS = ("t_step_ms", "t_tp_ms", "t_seq_us", "t_prompt_us", "t_layer_us", "ar_x")
_ENGINE_USES = {"vllm": _ENGINE_KEYS, "splitwise": _ENGINE_KEYS, "kernel": ("t_layer_us",)}
_START = {"e_c": 0.7, "e_b": 0.7, "e_a": 0.5, "e_kv": 0.5, "t_step_ms": 3.0, "t_tp_ms": 1.0,
          "t_seq_us": 20.0,
          "t_prompt_us": 100.0, "t_layer_us": 20.0, "ar_x": 1.0, "q": 3.0}
_BOUNDS = {"family": (0.02, 1.0), "q": (1.0, 16.0), "ar_x": (0.1, 30.0)}
_OVERHEAD_BOUNDS = (1e-3, 1e5)
# Prefill attention is a small share of every measured latency, so e_a is weakly identified: a
# prior centred on FlashAttention-2's forward pass reaching about half of peak (one factor of
# 2 = one unit of residual) keeps it physical.
E_A_PRIOR = 0.5


@dataclass(frozen=True)
class StepCostParams:
    """Fitted parameters (see the module docstring) plus the fit's provenance."""

    family: dict[str, dict[str, float]]
    engine: dict[str, dict[str, dict[str, float]]]  # engine -> family -> {key: value}
    allreduce: dict[str, dict[int, tuple[float, float]]]  # family -> tp -> (alpha_ms, beta_gbs)
    q: float
    inputs: tuple[str, ...] = ()
    excluded_models: tuple[str, ...] = ()
    source: str = "fitted"

    def to_json(self) -> dict:
        return {"version": MODEL_VERSION, "family": self.family, "engine": self.engine,
                "allreduce": {f: {str(t): list(v) for t, v in d.items()}
                              for f, d in self.allreduce.items()},
                "q": self.q, "inputs": list(self.inputs),
                "excluded_models": list(self.excluded_models), "source": self.source}

    @classmethod
    def from_json(cls, d: dict) -> StepCostParams:
        if d.get("version") != MODEL_VERSION:
            raise DataError(f"step-cost parameters are version {d.get('version')!r}, this code "
                            f"expects {MODEL_VERSION!r}: refit with routerwise.serving.stepcost.fit()")
        return cls(family=d["family"], engine=d["engine"],
                   allreduce={f: {int(t): tuple(v) for t, v in m.items()}
                              for f, m in d["allreduce"].items()},
                   q=float(d["q"]), inputs=tuple(d.get("inputs", ())),
                   excluded_models=tuple(d.get("excluded_models", ())),
                   source=d.get("source", "fitted"))

    def label(self) -> str:
        held = f", without {list(self.excluded_models)}" if self.excluded_models else ""
        return f"step-cost {MODEL_VERSION} ({self.source}{held}; {len(self.inputs)} input files)"


# --------------------------------------------------------------------------------------------
# All-reduce: alpha + bytes / beta, fitted to vidur's measured collectives
# --------------------------------------------------------------------------------------------
def fit_allreduce() -> dict[str, dict[int, tuple[float, float]]]:
    """Per family and tp: (alpha_ms, beta_gbs) from vidur's one-node all-reduce tables.

    alpha is the median time of messages up to 256 KiB; beta the median of
    size / (time - alpha) over messages of 16 MiB and more.
    """
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for fam, node in _AR_NODE.items():
        df = pd.read_csv(fetch(f"vidur.all_reduce.{node}"))
        df = df[df["devices_per_node"] == df["num_workers"]]
        per_tp = {}
        for tp, g in df.groupby("num_workers"):
            t = g["time_stats.all_reduce.median"].to_numpy(float)
            size = g["size"].to_numpy(float)
            alpha = float(np.median(t[size <= 256 * 1024]))
            big = size >= 16 * 2**20
            beta = float(np.median(size[big] / np.maximum(t[big] - alpha, 1e-6))) / 1e6
            per_tp[int(tp)] = (round(alpha, 6), float(f"{beta:.6g}"))  # ms, GB/s; see _fit_rows
        out[fam] = per_tp
    return out


def _allreduce_ms(ar: dict[int, tuple[float, float]], tp: int, nbytes):
    if tp <= 1:
        return np.zeros_like(np.asarray(nbytes, dtype=float))
    if tp not in ar:
        raise ValidationError(f"no all-reduce measurement for tp={tp}; measured: {sorted(ar)}")
    alpha, beta = ar[tp]
    return alpha + np.asarray(nbytes, dtype=float) / (beta * 1e6)


# --------------------------------------------------------------------------------------------
# Forward passes, vectorized
# --------------------------------------------------------------------------------------------
@dataclass
class Passes:
    """Column arrays describing forward passes (one entry per pass)."""

    arch: list  # Architecture per pass
    gpu: list  # GPUSpec per pass
    engine: list  # engine name per pass
    tp: np.ndarray
    n_tok: np.ndarray
    sq: np.ndarray
    ctx: np.ndarray
    m: np.ndarray
    n_pre: np.ndarray  # prompts prefilled in the pass
    layer_only: np.ndarray  # vidur rows: one layer's projections/MLP/elementwise, nothing else
    share_c: np.ndarray = field(default=None)  # compute-leg slowdown (MPS share)
    share_m: np.ndarray = field(default=None)  # memory-leg slowdown

    def __post_init__(self):
        n = len(self.arch)
        if self.share_c is None:
            self.share_c = np.ones(n)
        if self.share_m is None:
            self.share_m = np.ones(n)
        self._static: dict | None = None

    def static(self) -> dict:
        """Parameter-free columns (architecture, GPU peaks, groupings), computed once."""
        if self._static is None:
            st = _arch_columns(self.arch)
            st["F"] = np.array([g.peak_bf16_tflops for g in self.gpu]) * 1e9  # FLOP per ms
            st["B"] = np.array([g.hbm_gbs for g in self.gpu]) * 1e6  # bytes per ms
            st["fams"] = [g.family for g in self.gpu]
            st["keys"] = list(zip(self.engine, st["fams"]))
            # each distinct family / (engine, family) once, and which one each pass has: the
            # parameters are looked up per distinct key, then gathered (the fit calls
            # forward_ms hundreds of times over thousands of passes)
            st["fam_list"] = list(dict.fromkeys(st["fams"]))
            st["fam_of"] = np.array([st["fam_list"].index(f) for f in st["fams"]], dtype=np.intp)
            st["key_list"] = list(dict.fromkeys(st["keys"]))
            pos = {k: i for i, k in enumerate(st["key_list"])}
            st["key_of"] = np.array([pos[k] for k in st["keys"]], dtype=np.intp)
            full = ~self.layer_only
            st["ar_groups"] = [(f, int(t), np.flatnonzero(
                np.array([x == f for x in st["fams"]]) & (self.tp == t) & full))
                for f in set(st["fams"]) for t in set(self.tp.tolist()) if t > 1]
            self._static = st
        return self._static


def _arch_columns(archs: list) -> dict[str, np.ndarray]:
    cache = {}
    # moe_f: share of layers holding experts; always: always-active MLP params per layer
    # (shared experts, dense layers); act: MLP activation width per layer and token; mla: the
    # latent KV width (0: per-head KV), mla_fl: the per-head width decode attends over with
    # absorbed projections (QK over latent + rope, PV over the latent); dv: value head width.
    # Plain dense and MoE models get moe_f 1, always 0, act k*I, mla 0, dv d, so their costs
    # are unchanged by these columns.
    cols = {k: [] for k in ("L", "h", "hq", "hkv", "d", "I", "V", "E", "k", "attn", "expert",
                            "gated", "moe_f", "always", "act", "mla", "mla_fl", "dv")}
    for a in archs:
        if a.name not in cache:
            dense_w = a.dense_intermediate_size or a.intermediate_size
            act = ((a.moe_layers * (a.experts_per_token + a.shared_experts) * a.intermediate_size
                    + a.dense_layers * dense_w) / a.num_layers)
            cache[a.name] = (a.num_layers, a.hidden_size, a.num_heads, a.num_kv_heads,
                             a.head_dim, a.intermediate_size, a.vocab_size, a.num_experts,
                             a.experts_per_token, a.attn_params_per_layer, a.expert_params,
                             1.0 if a.gated_mlp else 0.0, a.moe_layers / a.num_layers,
                             a.always_active_mlp_params, act,
                             a.kv_lora_rank + a.qk_rope_head_dim if a.is_mla else 0,
                             2 * a.kv_lora_rank + a.qk_rope_head_dim if a.is_mla else 0,
                             a.v_head_dim if a.is_mla else a.head_dim)
        for key, v in zip(cols, cache[a.name]):
            cols[key].append(v)
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


def _smax(x, y, q):
    m = np.maximum(x, y)
    m_safe = np.where(m > 0, m, 1.0)
    return np.where(m > 0, m_safe * ((x / m_safe) ** q + (y / m_safe) ** q) ** (1.0 / q), 0.0)


def forward_ms(params: StepCostParams, p: Passes) -> np.ndarray:
    """Predicted time (ms) of every pass in ``p``."""
    a = st = p.static()
    F, B = st["F"], st["B"]
    fp = {k: np.array([params.family[f][k] for f in st["fam_list"]], dtype=float)[st["fam_of"]]
          for k in _FAMILY_KEYS}
    ep = {k: np.array([params.engine[e][f].get(k, 1.0 if k == "ar_x" else 0.0)
                       for e, f in st["key_list"]], dtype=float)[st["key_of"]]
          for k in _ENGINE_KEYS}
    q = params.q
    tp = p.tp.astype(float)
    n, sq, ctx, m = p.n_tok, p.sq, p.ctx, p.m
    sc, sm = p.share_c, p.share_m
    by = DTYPE_BYTES

    # projections + MLP (MoE: k experts per token, distinct experts touched by n tokens)
    touched = np.where(a["E"] > 1, a["E"] * (1.0 - (1.0 - a["k"] / a["E"]) ** n), 1.0)
    p_act = a["attn"] + a["moe_f"] * a["k"] * a["expert"] + a["always"]
    w_bytes = by * (a["attn"] + a["moe_f"] * touched * a["expert"] + a["always"])
    t_lin = _smax(2.0 * n * p_act / tp / (F * fp["e_c"]) * sc,
                  w_bytes / tp / (B * fp["e_b"]) * sm, q)
    t_elem = by * n * (10.0 * a["h"] + 3.0 * a["act"] / tp) / (B * fp["e_b"]) * sm
    per_layer = t_lin + t_elem + ep["t_layer_us"] * 1e-3
    full = ~p.layer_only
    if full.any():
        hkv = np.maximum(a["hkv"] / tp, 1.0)
        mla = a["mla"] > 0
        # latent attention: prefill attends with the q/k width d and value width dv; decode
        # attends over the latent (absorbed projections) that every rank holds whole
        t_pre = np.where(mla, a["hq"] * (a["d"] + a["dv"]), 2.0 * a["hq"] * a["d"]) \
            * sq / tp / (F * fp["e_a"]) * sc
        dec_fl = np.where(mla, 2.0 * a["hq"] * a["mla_fl"],
                          4.0 * a["hq"] * a["d"])
        dec_by = np.where(mla, by * a["mla"], 4.0 * hkv * a["d"])
        t_dec = _smax(dec_fl * ctx / tp / (F * fp["e_c"]) * sc,
                      dec_by * ctx / (B * fp["e_kv"]) * sm, q)
        t_ar = np.zeros_like(n)
        for f, t, sel in st["ar_groups"]:
            if sel.size:
                t_ar[sel] = 2.0 * _allreduce_ms(params.allreduce[f], t, by * n[sel] * a["h"][sel])
        lm = _smax(2.0 * m * a["V"] * a["h"] / tp / (F * fp["e_c"]) * sc,
                   by * a["V"] * a["h"] / tp / (B * fp["e_b"]) * sm, q)
        whole = (ep["t_step_ms"] + ep["t_tp_ms"] * (tp - 1.0)
                 + (m * ep["t_seq_us"] + p.n_pre * ep["t_prompt_us"]) * 1e-3
                 + lm + a["L"] * (per_layer + t_pre + t_dec + ep["ar_x"] * t_ar))
        return np.where(full, whole, per_layer)
    return per_layer


# --------------------------------------------------------------------------------------------
# Measured rows
# --------------------------------------------------------------------------------------------
IB_GPU = {"Nvidia A100 GPU": "A100-40GB", "Nvidia H100 GPU": "H100-80GB"}
SW_GPU = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-80GB"}
VIDUR_GPU = {"a100": "A100-80GB", "h100": "H100-80GB"}
VIDUR_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
             "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
VIDUR_POINTS = 24  # token counts kept per (gpu, model, tp): log-spaced, deterministic
IB_GPU_MEMORY_UTILIZATION = 0.9  # vLLM default, used by the LLM-Inference-Bench scripts


@dataclass
class Measurements:
    """Measured rows in one table plus the forward passes each row is made of.

    ``rows``: source, gpu, model, tp, kind, batch, in_len, out_len, num_tokens, measured_ms,
    excluded (reason, '' when used). ``pass_row``/``pass_mult`` map passes to rows: a row's
    prediction is ``sum(mult * forward_ms)`` over its passes.
    """

    rows: pd.DataFrame
    passes: Passes
    pass_row: np.ndarray
    pass_mult: np.ndarray
    inputs: tuple[str, ...]

    def used(self) -> pd.DataFrame:
        return self.rows[self.rows["excluded"] == ""]


def _ib_rows() -> list[dict]:
    from .memory import kv_capacity_tokens  # memory.py builds on this module's GPU specs

    key = "inference_bench.all_results"
    df = pd.read_csv(fetch(key))
    df = df[(df["Framework"] == "vLLM") & df["Hardware"].isin(list(IB_GPU))]
    keys = ["Hardware", "Num of Hardware", "Model", "Input Output Length", "Batch Size"]
    df = df.groupby(keys, as_index=False)["Latency"].median()  # a few points were run twice
    rows = []
    for r in df.itertuples(index=False):
        hw, tp, model, L, bs, lat = r
        row = dict(source="inference_bench", gpu=IB_GPU[hw], model=model, tp=int(tp),
                   kind="static_batch", batch=int(bs), in_len=int(L), out_len=int(L),
                   num_tokens=0, measured_ms=float(lat) * 1e3, excluded="")
        name = architectures.ALIASES.get(model, model)
        if name not in architectures.REGISTRY:
            row["excluded"] = "architecture not in the registry (irregular or single-row model)"
        else:
            arch = architectures.get(model)
            cap = kv_capacity_tokens(arch, int(tp), IB_GPU[hw], IB_GPU_MEMORY_UTILIZATION)
            need = int(bs) * 2 * int(L)
            if need > cap:
                row["excluded"] = (f"KV demand {need} tokens exceeds the modelled capacity "
                                   f"{cap} of {tp} x {IB_GPU[hw]} at 90% memory: vLLM preempts "
                                   f"and recomputes, outside the static-batch formula")
        rows.append(row)
    _flag_sliding_window_rows(rows)
    return rows


# Mistral-7B-v0.1 has the layer shapes of Llama-3-8B (smaller vocabulary): a row slower than its
# Llama-3-8B twin by more than this factor measures the engine's sliding-window path.
TWIN_SLOWDOWN_LIMIT = 1.3


def _flag_sliding_window_rows(rows: list[dict]) -> None:
    twin = {(r["gpu"], r["tp"], r["batch"], r["in_len"]): r["measured_ms"] for r in rows
            if r["model"] == "meta-llama/Meta-Llama-3-8B"}
    for r in rows:
        ref = twin.get((r["gpu"], r["tp"], r["batch"], r["in_len"]))
        if (r["model"] == "mistralai/Mistral-7B-v0.1" and not r["excluded"] and ref
                and r["measured_ms"] > TWIN_SLOWDOWN_LIMIT * ref):
            r["excluded"] = (f"{r['measured_ms'] / ref:.2f}x slower than Meta-Llama-3-8B (same "
                             f"layer shapes) at the same gpu, tp, batch and length: an engine "
                             f"effect of Mistral's sliding-window attention path")


def _sw_rows() -> list[dict]:
    from .memory import kv_capacity_tokens  # memory.py builds on this module's GPU specs

    df = pd.read_csv(fetch("splitwise.perf_model"))
    keys = ["hardware", "model", "tensor_parallel", "batch_size", "prompt_size", "token_size"]
    g = df.groupby(keys, as_index=False)[["prompt_time", "token_time"]].median()
    prompt_time = {tuple(r[:6]): r[6] for r in g.itertuples(index=False)}
    rows = []
    for r in g.itertuples(index=False):
        hw, model, tp, bs, P, T, pt, tt = r
        excluded = ""
        half = prompt_time.get((hw, model, tp, bs // 2, P, T))
        if hw not in SW_GPU:
            excluded = "power-capped H100 variant: the step model has no power term"
        elif half is not None and bs % 2 == 0 and pt < half:
            excluded = (f"memory-capped: prompt_time falls from {half:.0f} ms at batch {bs // 2} "
                        f"to {pt:.0f} ms at batch {bs}, so the batch did not run whole")
        else:
            cap = kv_capacity_tokens(architectures.get(model), int(tp), SW_GPU[hw], 0.9)
            if bs * (P + T) > cap:
                excluded = (f"memory-capped: KV demand {bs * (P + T)} tokens exceeds the "
                            f"modelled capacity {cap} of {tp} x {SW_GPU[hw]} at 90% memory")
        base = dict(source="splitwise", gpu=SW_GPU.get(hw, hw), model=model, tp=int(tp),
                    batch=int(bs), in_len=int(P), out_len=int(T), num_tokens=0, excluded=excluded)
        rows.append(dict(base, kind="prefill", measured_ms=float(pt)))
        rows.append(dict(base, kind="decode", measured_ms=float(tt)))
    # prompt_time does not depend on the output length: keep one row per prompt shape
    out = pd.DataFrame(rows)
    pre = out[out["kind"] == "prefill"].drop_duplicates(
        ["gpu", "model", "tp", "batch", "in_len"], keep="first")
    return pd.concat([pre, out[out["kind"] == "decode"]]).to_dict("records")


_VIDUR_COLUMNS = frozenset({"num_tokens", "num_tensor_parallel_workers",
                            *(f"time_stats.{o}.median" for o in VIDUR_OPS)})


def _vidur_rows() -> list[dict]:
    rows = []
    for key in sorted(k for k in DATA_REGISTRY if k.startswith("vidur.mlp.")):
        _, _, gpu, model = key.split(".", 3)
        # only the columns used below: the files hold hundreds of statistics per operation
        df = pd.read_csv(fetch(key), usecols=lambda c: c in _VIDUR_COLUMNS)
        cols = [f"time_stats.{o}.median" for o in VIDUR_OPS if f"time_stats.{o}.median" in df]
        df["t"] = df[cols].fillna(0.0).sum(axis=1)
        excluded = "" if gpu in VIDUR_GPU else f"{gpu}: not a target GPU type (no datasheet entry)"
        for tp, g in df.groupby("num_tensor_parallel_workers"):
            g = g.sort_values("num_tokens")
            tok = g["num_tokens"].to_numpy()
            want = np.unique(np.geomspace(tok.min(), tok.max(), VIDUR_POINTS).round())
            idx = np.unique(np.clip(np.searchsorted(tok, want), 0, len(tok) - 1))
            for _, r in g.iloc[idx].iterrows():
                rows.append(dict(source="vidur", gpu=VIDUR_GPU.get(gpu, gpu), model=model,
                                 tp=int(tp), kind="layer", batch=0, in_len=0, out_len=0,
                                 num_tokens=int(r["num_tokens"]), measured_ms=float(r["t"]),
                                 excluded=excluded))
    return rows


def measurement_keys() -> tuple[str, ...]:
    """Registry keys of every file the fit reads."""
    keys = ["inference_bench.all_results", "splitwise.perf_model"]
    keys += sorted(k for k in DATA_REGISTRY if k.startswith("vidur.mlp."))
    keys += [f"vidur.all_reduce.{n}" for n in _AR_NODE.values()]
    return tuple(keys)


def load_measurements() -> Measurements:
    """Every measured row, with exclusions marked, and the passes that predict each row."""
    rows = pd.DataFrame(_ib_rows() + _sw_rows() + _vidur_rows())
    rows["model"] = [architectures.ALIASES.get(m, m).split("/")[-1] for m in rows["model"]]
    unknown = ~rows["model"].isin(list(architectures.REGISTRY))
    rows.loc[unknown & (rows["excluded"] == ""), "excluded"] = "architecture not in the registry"
    rows = rows.reset_index(drop=True)
    return Measurements(rows, *_passes_for(rows), inputs=measurement_keys())


def _passes_for(rows: pd.DataFrame):
    P: dict[str, list] = {k: [] for k in ("arch", "gpu", "engine", "tp", "n", "sq", "ctx", "m",
                                          "r", "lo", "row", "mult")}

    def add(i, arch, gpu, engine, tp, n, sq, ctx, m, r, lo, mult):
        for k, v in zip(P, (arch, gpu, engine, tp, n, sq, ctx, m, r, lo, i, mult)):
            P[k].append(v)

    for i, r in enumerate(rows.itertuples(index=False)):
        if r.excluded:
            continue
        arch, gpu = architectures.get(r.model), gpu_spec(r.gpu)
        if r.kind == "layer":
            add(i, arch, gpu, "kernel", r.tp, float(r.num_tokens), 0.0, 0.0, 0.0, 0.0, True, 1.0)
        elif r.kind == "prefill":  # one pass over the whole prompt batch
            n = r.batch * r.in_len
            add(i, arch, gpu, "splitwise", r.tp, n, r.batch * r.in_len ** 2, 0.0, r.batch,
                r.batch, False, 1.0)
        elif r.kind == "decode":  # mean step: contexts grow from P to P + T (linear in C)
            ctx = r.batch * (r.in_len + r.out_len / 2.0)
            add(i, arch, gpu, "splitwise", r.tp, r.batch, 0.0, ctx, r.batch, 0.0, False, 1.0)
        else:  # static batch: vLLM prefills whole prompts up to its token budget, then decodes
            L, bs = r.in_len, r.batch
            budget = max(arch.max_position_embeddings, 2048)
            per = max(1, budget // L)
            full, rest = divmod(bs, per)
            if full:
                add(i, arch, gpu, "vllm", r.tp, per * L, per * L ** 2, 0.0, per, per, False, full)
            if rest:
                add(i, arch, gpu, "vllm", r.tp, rest * L, rest * L ** 2, 0.0, rest, rest, False,
                    1.0)
            # L - 1 decode steps; step j reads bs * (L + j) cached tokens (mean: L + L/2)
            add(i, arch, gpu, "vllm", r.tp, bs, 0.0, bs * (1.5 * L), bs, 0.0, False, L - 1)
    passes = Passes(P["arch"], P["gpu"], P["engine"], np.array(P["tp"]), np.array(P["n"], float),
                    np.array(P["sq"], float), np.array(P["ctx"], float),
                    np.array(P["m"], float), np.array(P["r"], float), np.array(P["lo"], bool))
    return passes, np.array(P["row"], int), np.array(P["mult"], float)


def predict_rows(params: StepCostParams, meas: Measurements) -> np.ndarray:
    """Predicted ms for every row of ``meas.rows`` (NaN for excluded rows)."""
    t = forward_ms(params, meas.passes) * meas.pass_mult
    out = np.bincount(meas.pass_row, weights=t, minlength=len(meas.rows))
    out[(meas.rows["excluded"] != "").to_numpy()] = np.nan
    return out


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
def _layout(meas: Measurements, rows_mask: np.ndarray):
    """Which parameters the selected rows inform: [(kind, a, b, key)] in vector order."""
    sel = np.isin(meas.pass_row, np.flatnonzero(rows_mask))
    fams = sorted({g.family for g, s in zip(meas.passes.gpu, sel) if s})
    engs = sorted({(e, g.family) for e, g, s in zip(meas.passes.engine, meas.passes.gpu, sel)
                   if s})
    lay = [("family", f, None, k) for f in fams for k in _FAMILY_KEYS]
    lay += [("engine", e, f, k) for e, f in engs for k in _ENGINE_USES[e]]
    lay.append(("q", None, None, "q"))
    return lay


def _unpack(x: np.ndarray, lay, ar) -> StepCostParams:
    fam = {f: {k: _START[k] for k in _FAMILY_KEYS} for f in FAMILIES}
    eng = {e: {f: {k: (1.0 if k == "ar_x" else 0.0) for k in _ENGINE_USES[e]}
               for f in FAMILIES} for e in ENGINES}
    q = _START["q"]
    for v, (kind, a, b, k) in zip(np.exp(x), lay):
        if kind == "family":
            fam[a][k] = float(v)
        elif kind == "engine":
            eng[a][b][k] = float(v)
        else:
            q = float(v)
    return StepCostParams(fam, eng, ar, q)


def _fit_rows(meas: Measurements, rows_mask: np.ndarray, ar) -> StepCostParams:
    from scipy.optimize import least_squares

    lay = _layout(meas, rows_mask)
    x0 = np.log([_START[k] for *_, k in lay])
    bounds = [_BOUNDS.get(kind if kind != "engine" else key, _OVERHEAD_BOUNDS)
              for kind, _, _, key in lay]
    lo, hi = np.log(np.array(bounds)).T
    sel = np.isin(meas.pass_row, np.flatnonzero(rows_mask))
    sub = Passes(*[[v for v, s in zip(lst, sel) if s] for lst in
                   (meas.passes.arch, meas.passes.gpu, meas.passes.engine)],
                 *[arr[sel] for arr in (meas.passes.tp, meas.passes.n_tok, meas.passes.sq,
                                        meas.passes.ctx, meas.passes.m, meas.passes.n_pre,
                                        meas.passes.layer_only)])
    rows_idx = np.flatnonzero(rows_mask)
    remap = np.full(len(meas.rows), -1)
    remap[rows_idx] = np.arange(len(rows_idx))
    prow, pmult = remap[meas.pass_row[sel]], meas.pass_mult[sel]
    r = meas.rows.iloc[rows_idx]
    y = np.log(r["measured_ms"].to_numpy(float))
    group = r["source"] + "|" + r["gpu"] + "|" + r["model"] + "|" + r["kind"]
    w = 1.0 / np.sqrt(group.map(group.value_counts()).to_numpy(float))

    prior = [i for i, (kind, _, _, k) in enumerate(lay) if kind == "family" and k == "e_a"]

    def resid(x):
        p = _unpack(x, lay, ar)
        t = np.bincount(prow, weights=forward_ms(p, sub) * pmult, minlength=len(rows_idx))
        fit_r = w * (np.log(np.maximum(t, 1e-9)) - y)
        return np.concatenate([fit_r, (x[prior] - math.log(E_A_PRIOR)) / math.log(2.0)])

    sol = least_squares(resid, np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                        loss="soft_l1", f_scale=0.1, x_scale=1.0, max_nfev=400)
    # Rounded to 1e-6 in log space (relative 1e-6 in each parameter): least squares ends with
    # last-bit differences between BLAS builds and thread counts, which would otherwise move
    # discrete events in the simulator and so every simulated latency downstream.
    return _unpack(np.round(sol.x, 6), lay, ar)


def fit_params(meas: Measurements | None = None, exclude_models: Iterable[str] = ()) \
        -> StepCostParams:
    """Fit the parameters to the measured rows (optionally without some models); no caching."""
    meas = meas if meas is not None else load_measurements()
    excl = tuple(sorted(set(exclude_models)))
    mask = ((meas.rows["excluded"] == "") & ~meas.rows["model"].isin(excl)).to_numpy()
    if not mask.any():
        raise DataError("no measured rows left to fit the step-cost model to")
    p = _fit_rows(meas, mask, fit_allreduce())
    return StepCostParams(p.family, p.engine, p.allreduce, p.q, inputs=meas.inputs,
                          excluded_models=excl)


def _cache_key() -> str:
    h = hashlib.sha256(MODEL_VERSION.encode())
    for k in measurement_keys():
        h.update(f"{k}:{source(k).sha256}".encode())
    return h.hexdigest()[:16]


# Fits the cache could not take (read-only or full): kept for this process, not refitted per call.
_UNCACHED_FITS: dict[Path, StepCostParams] = {}


def fit(*, refit: bool = False) -> StepCostParams:
    """The fitted parameters, read from the cache when an identical fit was saved before."""
    path = settings.cache_dir() / "stepcost" / f"params-{_cache_key()}.json"
    if path in _UNCACHED_FITS and not refit:
        return _UNCACHED_FITS[path]
    if path.is_file() and not refit:
        try:
            return StepCostParams.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, DataError):
            pass  # unreadable or stale cache: refit below and overwrite it
    params = fit_params()
    if not cache_write(settings.cache_dir(), lambda: write_json(path, params.to_json())):
        _UNCACHED_FITS[path] = params
    return params


def leave_one_model_out(meas: Measurements | None = None, models: Iterable[str] | None = None) \
        -> pd.DataFrame:
    """Fit without each model in turn and predict its rows.

    Returns one row per (source, gpu, model) with the median and mean absolute percentage
    error of the held-out prediction and the number of rows.
    """
    meas = meas if meas is not None else load_measurements()
    used = meas.used()
    models = sorted(used["model"].unique()) if models is None else list(models)
    out = []
    for model in models:
        params = fit_params(meas, exclude_models=[model])
        pred = predict_rows(params, meas)
        sel = (meas.rows["excluded"] == "") & (meas.rows["model"] == model)
        r = meas.rows[sel].assign(pred=pred[sel.to_numpy()])
        r["ape"] = (r["pred"] / r["measured_ms"] - 1.0).abs() * 100.0
        for (src, gpu), g in r.groupby(["source", "gpu"]):
            out.append(dict(source=src, gpu=gpu, model=model, rows=len(g),
                            median_ape_pct=float(g["ape"].median()),
                            mean_ape_pct=float(g["ape"].mean())))
    return pd.DataFrame(out)


def in_sample_errors(params: StepCostParams, meas: Measurements) -> pd.DataFrame:
    """Per (source, gpu, model): median / max absolute percentage error of the fit itself."""
    pred = predict_rows(params, meas)
    r = meas.rows.assign(pred=pred)
    r = r[r["excluded"] == ""]
    r = r.assign(ape=(r["pred"] / r["measured_ms"] - 1.0).abs() * 100.0)
    return (r.groupby(["source", "gpu", "model"])["ape"]
            .agg(rows="size", median_ape_pct="median", max_ape_pct="max").reset_index())


# --------------------------------------------------------------------------------------------
# Step times of one replica, as the simulator consumes them
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepTimes:
    """Iteration times of one replica, linear where the simulator needs closed forms.

    prefill(n tokens, S = sum of squared prompt lengths, m sequences) =
        ``prefill_by_tokens_ms[n] + prefill_ms_per_sq_token * S + prefill_ms_per_seq * m``
    decode(B sequences, C cached tokens) = ``decode_base_ms[B] + decode_ms_per_context_token * C``
    """

    prefill_by_tokens_ms: np.ndarray
    prefill_ms_per_sq_token: float
    prefill_ms_per_seq: float
    decode_base_ms: np.ndarray
    decode_ms_per_context_token: float
    label: str = ""
    source: str = "fitted"

    def __post_init__(self):
        for name in ("prefill_by_tokens_ms", "decode_base_ms"):
            a = np.asarray(getattr(self, name), dtype=float)
            if a.ndim != 1 or a.size < 2 or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValidationError(f"StepTimes.{name} must be a finite, non-negative 1-D "
                                      f"array indexed by count (length >= 2)")
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if min(self.prefill_ms_per_sq_token, self.prefill_ms_per_seq,
               self.decode_ms_per_context_token) < 0:
            raise ValidationError("StepTimes coefficients must be non-negative")

    @property
    def max_batched_tokens(self) -> int:
        return self.prefill_by_tokens_ms.size - 1

    @property
    def max_seqs(self) -> int:
        return self.decode_base_ms.size - 1

    def prefill_ms(self, num_tokens: int, sum_sq_tokens: float, num_seqs: int) -> float:
        return float(self.prefill_by_tokens_ms[num_tokens] + self.prefill_ms_per_sq_token
                     * sum_sq_tokens + self.prefill_ms_per_seq * num_seqs)

    def decode_ms(self, batch: int, context_tokens: float) -> float:
        return float(self.decode_base_ms[batch] + self.decode_ms_per_context_token
                     * context_tokens)

    @classmethod
    def constant(cls, prefill_ms: float, decode_ms: float, max_batched_tokens: int = 8192,
                 max_seqs: int = 256) -> StepTimes:
        """Every prefill takes ``prefill_ms`` and every decode step ``decode_ms`` (modelled)."""
        pre = np.full(max_batched_tokens + 1, float(prefill_ms))
        dec = np.full(max_seqs + 1, float(decode_ms))
        return cls(pre, 0.0, 0.0, dec, 0.0, label=f"constant {prefill_ms:g}/{decode_ms:g} ms",
                   source="modelled")


def replica_step_times(arch: Architecture | str, gpu: str | GPUSpec, tp: int, compute_share: float = 1.0,
                       *, params: StepCostParams | None = None, engine: str = "vllm",
                       share_model: ComputeShareModel = DEFAULT_SHARE,
                       max_batched_tokens: int = 8192, max_seqs: int = 256) -> StepTimes:
    """Tabulate the fitted model for one (architecture, GPU, tp, compute share) replica.

    Prefill: the token-dependent part (projections, MLP, elementwise, all-reduce, LM-head
    weight read, per-pass overhead) is tabulated per batched token count; causal attention is
    linear in ``S``; per-sequence cost (LM-head row, host work) linear in ``m``. Decode is
    exactly linear in the cached context in this model, tabulated per batch size.
    """
    arch = architectures.get(arch) if isinstance(arch, str) else arch
    spec = gpu_spec(gpu)
    params = params if params is not None else fit()
    if engine not in params.engine:
        raise ValidationError(f"unknown engine {engine!r}; fitted: {sorted(params.engine)}")
    if tp > 1 and tp not in params.allreduce[spec.family]:
        raise ValidationError(f"no all-reduce measurement for tp={tp} on {spec.family}")
    sc = share_model.slowdown(compute_share, "compute")
    sm = share_model.slowdown(compute_share, "memory")

    def passes(n, sq, ctx, m, r):
        k = len(n)
        col = [np.asarray(v, float) for v in (n, sq, ctx, m, r)]
        return Passes([arch] * k, [spec] * k, [engine] * k, np.full(k, tp), *col,
                      np.zeros(k, bool), np.full(k, sc), np.full(k, sm))

    def one(n, sq=0.0, ctx=0.0, m=0.0, r=0.0) -> float:
        return float(forward_ms(params, passes([n], [sq], [ctx], [m], [r]))[0])

    ntok = np.arange(max_batched_tokens + 1, dtype=float)
    zeros = np.zeros_like(ntok)
    # no sequences here: the per-sequence part is added linearly below
    pre = forward_ms(params, passes(ntok, zeros, zeros, zeros, zeros))
    L = 1 << 12
    per_sq = (one(L, sq=L * L) - one(L)) / (L * L)
    per_seq = (one(L, m=64.0, r=64.0) - one(L)) / 64.0
    bs = np.arange(max_seqs + 1, dtype=float)
    base = forward_ms(params, passes(bs, np.zeros_like(bs), np.zeros_like(bs), bs,
                                     np.zeros_like(bs)))
    c_ref = 1e6
    per_ctx = (one(1.0, ctx=c_ref, m=1.0) - base[1]) / c_ref
    pre[0], base[0] = 0.0, 0.0
    label = (f"{arch.name} on {tp} x {spec.name} at rho={compute_share:g}: {params.label()}; "
             f"engine {engine}; {share_model.label()}")
    return StepTimes(pre, max(per_sq, 0.0), max(per_seq, 0.0), base, max(per_ctx, 0.0),
                     label=label, source="fitted")


# --------------------------------------------------------------------------------------------
# A measured step-time table replaces the fit
# --------------------------------------------------------------------------------------------
MEASURED_COLUMNS = ("model", "phase", "batch_size", "context_len", "compute_share",
                    "step_ms_median")


def measured_step_times(table: pd.DataFrame, model: str, compute_share: float = 1.0, *,
                        gpu_name: str | None = None, tp: int = 1, max_batched_tokens: int = 8192,
                        max_seqs: int = 256) -> StepTimes:
    """StepTimes from measured iteration times (no fitted physics), e.g. the step table of
    ``profiling.gpu_steps`` (columns :data:`MEASURED_COLUMNS`; rows with an ``error`` are
    dropped; ``gpu_name`` filters by substring, ``tp`` by a ``tp`` column when present).

    ``phase = prefill``: one pass over ``batch_size`` prompts of ``context_len`` tokens;
    ``decode``: ``batch_size`` sequences at ``context_len`` cached tokens each. Least squares:
    prefill = a + b n + c S + e m (n = B L tokens, S = B L^2, m = B); decode = a + b B + c B L.
    """
    missing = [c for c in MEASURED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"measured step table lacks columns {missing}; need {MEASURED_COLUMNS}")
    t = table[(table["model"] == model)
              & np.isclose(table["compute_share"].astype(float), compute_share)]
    if "error" in t.columns:
        t = t[blank(t["error"])]
    if gpu_name is not None and "gpu_name" in t.columns:
        t = t[t["gpu_name"].astype(str).str.contains(gpu_name, regex=False)]
    if "tp" in t.columns:
        t = t[t["tp"] == tp]
    pre, dec = t[t["phase"] == "prefill"], t[t["phase"] == "decode"]
    if len(pre) < 4 or len(dec) < 3:
        raise DataError(f"measured step table has {len(pre)} prefill and {len(dec)} decode rows "
                        f"for {model} at rho={compute_share}; need >= 4 and >= 3")
    b, L = pre["batch_size"].to_numpy(float), pre["context_len"].to_numpy(float)
    A = np.column_stack([np.ones_like(b), b * L, b * L * L, b])
    cp = _nonneg_lstsq(A, pre["step_ms_median"].to_numpy(float))
    b, L = dec["batch_size"].to_numpy(float), dec["context_len"].to_numpy(float)
    D = np.column_stack([np.ones_like(b), b, b * L])
    cd = _nonneg_lstsq(D, dec["step_ms_median"].to_numpy(float))
    ntok = np.arange(max_batched_tokens + 1, dtype=float)
    bs = np.arange(max_seqs + 1, dtype=float)
    pre_tab, dec_tab = cp[0] + cp[1] * ntok, cd[0] + cd[1] * bs
    pre_tab[0] = dec_tab[0] = 0.0
    return StepTimes(pre_tab, float(cp[2]), float(cp[3]), dec_tab, float(cd[2]),
                     label=f"measured step table: {model} (tp {tp}) at rho={compute_share}",
                     source="measured")


def _nonneg_lstsq(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(A).max(axis=0), 1e-30)
    x, _ = nnls(A / scale, y)
    return x / scale


def fit_provenance() -> str:
    """The measured inputs of the fit, one per line (repo@commit:path (licence))."""
    return "\n".join(provenance(k) for k in measurement_keys())
