"""Measured online vLLM runs (requests arriving over time), loaded into one schema.

Every run is a :class:`MeasuredRun`: a typed :class:`RunMeta` record plus a per-request
DataFrame with the columns :data:`REQUEST_COLUMNS` (times in ms from the first arrival of the
run, latencies in ms; NaN where a source does not record a quantity):

``run_id, replay, segment, rate_rps, arrival_s, prompt_tokens, output_tokens, ttft_ms, e2e_ms,
tpot_ms, queue_ms, prefill_ms, decode_ms``

``replay`` numbers independent executions inside a run (requests of one replay share one
engine and one clock and are simulated together); ``segment`` numbers the load levels (one
offered rate each) and ``rate_rps`` is that level's rate. TPOT = (E2E - TTFT) / (output - 1),
NaN for one-token outputs. All latencies are **measured**.

Sources (registered in :mod:`routerwise.data.registry`, read through ``fetch``)
--------------------------------------------------------------------------
* ``llmd_bench.exp-0``: llm-d-benchmark @ 8eb9ac18, LMBench ShareGPT replays against ONE vLLM
  replica (``vllm/vllm-openai:latest`` pulled for runs dated 2025-05-02, i.e. vLLM 0.8.x, V1
  engine by default), Llama-3.1-70B-Instruct, tp 2, A100-SXM4-80GB (the deployment's node
  selector), ``--gpu-memory-utilization 0.95``. Six rates (file names), each its own replay of
  ~252 requests with evenly spaced arrivals. Client-side timing (includes HTTP/tokenization).
* ``llmd_bench.exp-4``: the same harness on Llama-4-Scout-17B-16E FP8, tp 4: loadable, but its
  architecture is not in :mod:`routerwise.serving.architectures` (FP8 MoE), so
  :func:`routerwise.serving.latency_validation.architecture_of` raises ``UnknownArchitecture``;
  the validation excludes it for that reason.
* The 2-replica llm-d-benchmark experiments (exp-2, exp-3) are NOT loaded: a router split each
  request stream over two replicas and the per-request replica is not recorded, so a replica's
  own arrival stream cannot be replayed (``rate / 2`` would assume a perfectly even split).
* ``inference_sim.<exp>``: inference-sim @ e7a4aa37, GuideLLM sweeps on vLLM 0.11.0 (V1,
  chunked prefill on), tp 1, one 80 GB GPU whose model the logs do not name (the validation
  substitutes H100-80GB and says so). Engine settings from ``exp-config.yaml``; NOTE the folder
  ``jan20-prefill-llama7b-tp1-1`` ran CodeLlama-34B (its config says so; the config wins). One
  replay per experiment (the sweep's phases run back to back on one engine); segments are the
  sweep's phases, split where two arrivals are more than :data:`ISIM_SEGMENT_GAP_S` apart. A
  segment's rate is (count - 1) / span of its arrivals. Server-side timing (the span starts
  when the engine receives the request).
* ``llmservingsim.<gpu>.<model>``: LLMServingSim @ 5daddb21, vLLM 0.19.0, one Poisson run of
  300 ShareGPT requests at ~10 req/s on RTX 4090 / RTX PRO 6000 (engine-side timestamps: the
  clock starts when the engine queues the request). Loaded; the validation excludes them (no
  fitted step costs for consumer Ada/Blackwell GPUs, and every run is overloaded).
* llm-d-latency-predictor @ 1808b5b1 is NOT loaded: its rows are TTFT/TPOT samples with the
  engine state but no arrival times or rates, so no run can be replayed.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import yaml

from ..errors import DataError, ValidationError
from .registry import REGISTRY, fetch, provenance

__all__ = ["REQUEST_COLUMNS", "RunMeta", "MeasuredRun", "RunMetadataError", "EmptyRateError",
           "ARCH_SUBSTITUTES", "check_meta", "load_llmd_benchmark",
           "load_inference_sim", "load_llmservingsim", "load_all", "LLMD_EXPERIMENTS",
           "ISIM_EXPERIMENTS", "LLMSERVINGSIM_RUNS", "ISIM_SEGMENT_GAP_S", "EXCLUDED_SOURCES"]

REQUEST_COLUMNS = ("run_id", "replay", "segment", "rate_rps", "arrival_s", "prompt_tokens",
                   "output_tokens", "ttft_ms", "e2e_ms", "tpot_ms", "queue_ms", "prefill_ms",
                   "decode_ms")
ISIM_SEGMENT_GAP_S = 2.5
EXCLUDED_SOURCES = {
    "llm-d-benchmark exp-2, exp-3 (2 replicas)":
        "a router split the stream over two replicas and the per-request replica is not "
        "recorded: a replica's arrivals cannot be replayed",
    "llm-d-latency-predictor @ 1808b5b1":
        "TTFT/TPOT samples with engine state, no arrival times or rates: nothing to replay",
}


class RunMetadataError(DataError):
    """A run's metadata lacks a field the simulator needs (GPU, model, tp, ...)."""


class EmptyRateError(DataError):
    """A load level (rate) of a run has no completed request."""


@dataclass(frozen=True)
class RunMeta:
    """What a measured run ran on (every field measured/recorded by the source unless noted)."""

    run_id: str
    source_keys: tuple[str, ...]
    engine: str
    engine_version: str
    model: str
    gpu: str
    tp: int
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    chunked_prefill: bool | None = None
    rate_rps: float | None = None  # a single offered rate; None when the run sweeps rates
    arrival_process: str = ""
    timing: str = ""  # "client" (includes HTTP/tokenization) or "engine"
    hf_architecture: str | None = None  # architecture registry name, when it differs from model
    kv_capacity_tokens: int | None = None  # as the engine logged it, when it did
    gpu_note: str = ""
    notes: tuple[str, ...] = ()

    def provenance(self) -> str:
        return "; ".join(provenance(k) for k in self.source_keys)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeasuredRun:
    meta: RunMeta
    requests: pd.DataFrame = field(repr=False)

    def rates(self) -> pd.DataFrame:
        """One row per segment: rate, count and measured mean/p50/p90/p99 TTFT and TPOT (ms)."""
        rows = []
        for seg, g in self.requests.groupby("segment"):
            row = {"run_id": self.meta.run_id, "segment": int(seg),
                   "replay": int(g["replay"].iloc[0]),
                   "rate_rps": float(g["rate_rps"].iloc[0]), "requests": len(g)}
            for name in ("ttft", "tpot"):
                v = g[f"{name}_ms"].dropna().to_numpy()
                q = np.percentile(v, [50, 90, 99]) if v.size else [np.nan] * 3
                row.update({f"{name}_mean_ms": float(v.mean()) if v.size else np.nan,
                            f"{name}_p50_ms": q[0], f"{name}_p90_ms": q[1],
                            f"{name}_p99_ms": q[2]})
            rows.append(row)
        return pd.DataFrame(rows)


def check_meta(meta: RunMeta) -> RunMeta:
    """Raise :class:`RunMetadataError` naming every missing field the simulator needs."""
    missing = [f for f in ("gpu", "model") if not getattr(meta, f)]
    if not isinstance(meta.tp, (int, np.integer)) or meta.tp < 1:
        missing.append("tp")
    if missing:
        raise RunMetadataError(f"run {meta.run_id!r} lacks {missing}: record the GPU type, the "
                               f"model and the tensor-parallel degree of the engine")
    return meta


# Models whose config.json shapes equal a registry entry's (named substitution).
ARCH_SUBSTITUTES = {
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.3-70b-instruct",  # identical config shapes
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b-instruct",  # base model: same shapes
}


def _finish(meta: RunMeta, df: pd.DataFrame) -> MeasuredRun:
    check_meta(meta)
    if meta.hf_architecture is None and meta.model in ARCH_SUBSTITUTES:
        meta = RunMeta(**{**asdict(meta), "source_keys": tuple(meta.source_keys),
                          "notes": tuple(meta.notes),
                          "hf_architecture": ARCH_SUBSTITUTES[meta.model]})
    for seg, g in df.groupby("segment"):
        if not np.isfinite(g["ttft_ms"].to_numpy(float)).any():
            raise EmptyRateError(f"run {meta.run_id!r}: the load level at "
                                 f"{g['rate_rps'].iloc[0]:g} req/s (segment {seg}) has no "
                                 f"completed request; drop it or re-run it")
    df = df.assign(run_id=meta.run_id)
    multi = df["output_tokens"] > 1
    df["tpot_ms"] = np.where(multi, (df["e2e_ms"] - df["ttft_ms"]) /
                             (df["output_tokens"] - 1).clip(lower=1), np.nan)
    for c in REQUEST_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    df = df[list(REQUEST_COLUMNS)].sort_values(["replay", "arrival_s"], kind="stable")
    return MeasuredRun(meta, df.reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# llm-d-benchmark (LMBench csv files)
# --------------------------------------------------------------------------------------------
LLMD_EXPERIMENTS = {
    "exp-0": dict(model="meta-llama/Llama-3.1-70B-Instruct", gpu="A100-80GB", tp=2,
                  gpu_memory_utilization=0.95, engine_version="vllm-openai:latest (2025-05-02)"),
    "exp-4": dict(model="RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", gpu="H100-80GB",
                  tp=4, gpu_memory_utilization=0.95,
                  engine_version="vllm-openai (deployment yaml)"),
}
_RATE = re.compile(r"sharegpt_output_([0-9.]+)$")


def _llmd_keys(exp: str) -> list[tuple[float, str]]:
    out = []
    for k in REGISTRY:
        if k.startswith(f"llmd_bench.{exp}."):
            m = _RATE.search(k)
            if m:
                out.append((float(m.group(1)), k))
    return sorted(out)


def _llmd_deployment(exp: str) -> dict:
    text = fetch(f"llmd_bench.{exp}.deployment").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    found = {}
    blob = json.dumps(docs)
    m = re.search(r"NVIDIA-([A-Z0-9-]+)", blob)
    if m:
        found["gpu_product"] = m.group(1)
    for flag, name, conv in (("--tensor-parallel-size", "tp", int),
                             ("--gpu-memory-utilization", "gpu_memory_utilization", float),
                             ("--max-num-seqs", "max_num_seqs", int),
                             ("--max-num-batched-tokens", "max_num_batched_tokens", int)):
        m = re.search(re.escape(flag) + r"[\s\\n\"',]+([0-9.]+)", blob)
        if m:
            found[name] = conv(m.group(1))
    return found


def load_llmd_benchmark(exp: str = "exp-0") -> MeasuredRun:
    """One llm-d-benchmark experiment: every rate file is its own replay and segment."""
    if exp not in LLMD_EXPERIMENTS:
        raise ValidationError(f"unknown llm-d-benchmark experiment {exp!r}; loaded ones: "
                              f"{sorted(LLMD_EXPERIMENTS)} (2-replica experiments are "
                              f"excluded: see routerwise.data.measured_runs.EXCLUDED_SOURCES)")
    info = dict(LLMD_EXPERIMENTS[exp])
    dep = _llmd_deployment(exp)
    if dep.get("tp") is not None and dep["tp"] != info["tp"]:
        raise DataError(f"llm-d {exp}: deployment tp {dep['tp']} != recorded {info['tp']}")
    keys = _llmd_keys(exp)
    frames = []
    for seg, (rate, key) in enumerate(keys):
        d = pd.read_csv(fetch(key))
        need = {"prompt_tokens", "generation_tokens", "ttft", "generation_time", "launch_time",
                "finish_time"}
        if not need <= set(d.columns):
            raise DataError(f"{provenance(key)} lacks columns {sorted(need - set(d.columns))}")
        d = d[np.isfinite(d["ttft"]) & (d["generation_tokens"] > 0)]
        d = d.sort_values("launch_time", kind="stable")
        t0 = d["launch_time"].min() if len(d) else 0.0
        frames.append(pd.DataFrame({
            "replay": seg, "segment": seg, "rate_rps": rate,
            "arrival_s": d["launch_time"] - t0, "prompt_tokens": d["prompt_tokens"],
            "output_tokens": d["generation_tokens"], "ttft_ms": d["ttft"] * 1e3,
            "e2e_ms": (d["finish_time"] - d["launch_time"]) * 1e3}))
    df = pd.concat(frames, ignore_index=True)
    gpu_note = (f"deployment node selector: NVIDIA-{dep['gpu_product']}"
                if "gpu_product" in dep else "GPU from the data README")
    meta = RunMeta(
        run_id=f"llmd-{exp}", source_keys=tuple(k for _, k in keys)
        + (f"llmd_bench.{exp}.deployment",), engine="vllm",
        engine_version=info["engine_version"], model=info["model"], gpu=info["gpu"],
        tp=info["tp"], max_num_seqs=dep.get("max_num_seqs"),
        max_num_batched_tokens=dep.get("max_num_batched_tokens"),
        gpu_memory_utilization=dep.get("gpu_memory_utilization",
                                       info["gpu_memory_utilization"]),
        chunked_prefill=None, rate_rps=None,
        arrival_process="evenly spaced (LMBench ShareGPT replay), one replay per rate",
        timing="client", gpu_note=gpu_note,
        notes=("engine scheduler settings not set: vLLM defaults apply",))
    return _finish(meta, df)


# --------------------------------------------------------------------------------------------
# inference-sim ground truth (OTLP spans)
# --------------------------------------------------------------------------------------------
ISIM_EXPERIMENTS = ("jan20-codellama-prefill-1", "jan20-codellama-train-1",
                    "jan20-prefill-llama7b-tp1-1", "jan21-llama7b-train-1")
_SPAN_ATTR = {"gen_ai.latency.time_to_first_token": "ttft", "gen_ai.latency.e2e": "e2e",
              "gen_ai.latency.time_in_queue": "queue",
              "gen_ai.latency.time_in_model_prefill": "prefill",
              "gen_ai.latency.time_in_model_decode": "decode",
              "gen_ai.usage.prompt_tokens": "prompt", "gen_ai.usage.completion_tokens": "output"}


def _otlp_spans(path) -> pd.DataFrame:
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        row = {"start_s": int(s["startTimeUnixNano"]) / 1e9}
                        for a in s.get("attributes", []):
                            if a["key"] in _SPAN_ATTR:
                                v = next(iter(a["value"].values()))
                                row[_SPAN_ATTR[a["key"]]] = float(v)
                        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no OTLP spans")
    return pd.DataFrame(rows)


def _sweep_segments(t: np.ndarray) -> np.ndarray:
    """Segment ids of a GuideLLM sweep's arrivals (sorted, s).

    Split where consecutive arrivals are more than :data:`ISIM_SEGMENT_GAP_S` apart; then join
    neighbours of the same phase: consecutive one-request pieces (the synchronous phase, one
    request at a time) form one segment, and neighbouring pieces whose rates agree within 30%
    and whose separating gap is under 3 mean gaps (a constant-rate phase interrupted by one long
    gap) form one segment.
    """
    raw = np.concatenate([[0], np.cumsum(np.diff(t) > ISIM_SEGMENT_GAP_S)])
    pieces = [np.flatnonzero(raw == s) for s in np.unique(raw)]

    def rate(idx):
        span = t[idx[-1]] - t[idx[0]]
        return (len(idx) - 1) / span if len(idx) > 1 and span > 0 else np.nan

    merged = [pieces[0]]
    for idx in pieces[1:]:
        cur = merged[-1]
        gap = t[idx[0]] - t[cur[-1]]
        r1, r2 = rate(cur), rate(idx)
        singles = len(idx) == 1 and (len(cur) == 1 or np.all(np.diff(t[cur]) >
                                                              ISIM_SEGMENT_GAP_S))
        same_rate = (np.isfinite(r1) and np.isfinite(r2) and max(r1, r2) / min(r1, r2) < 1.3
                     and gap < 3.0 / r1)
        if singles or same_rate:
            merged[-1] = np.concatenate([cur, idx])
        else:
            merged.append(idx)
    seg = np.empty(t.size, dtype=int)
    for k, idx in enumerate(merged):
        seg[idx] = k
    return seg


def load_inference_sim(exp: str) -> MeasuredRun:
    """One inference-sim GuideLLM sweep: one replay, segments split at long arrival gaps."""
    if exp not in ISIM_EXPERIMENTS:
        raise ValidationError(f"unknown inference-sim experiment {exp!r}; known "
                              f"{ISIM_EXPERIMENTS}")
    cfg_key, tr_key = f"inference_sim.{exp}.exp_config", f"inference_sim.{exp}.traces"
    cfg = yaml.safe_load(fetch(cfg_key).read_text()) or {}
    sp = _otlp_spans(fetch(tr_key))
    sp = sp[np.isfinite(sp.get("ttft", np.nan)) & (sp["output"] > 0)]
    sp = sp.sort_values("start_s", kind="stable").reset_index(drop=True)
    t = sp["start_s"].to_numpy()
    seg = _sweep_segments(t)
    rate = np.empty(len(t))
    for s in np.unique(seg):
        idx = seg == s
        span = t[idx][-1] - t[idx][0]
        rate[idx] = (idx.sum() - 1) / span if span > 0 else np.nan
    df = pd.DataFrame({
        "replay": 0, "segment": seg, "rate_rps": rate, "arrival_s": t - t[0],
        "prompt_tokens": sp["prompt"].astype(int), "output_tokens": sp["output"].astype(int),
        "ttft_ms": sp["ttft"] * 1e3, "e2e_ms": sp["e2e"] * 1e3, "queue_ms": sp["queue"] * 1e3,
        "prefill_ms": sp["prefill"] * 1e3, "decode_ms": sp["decode"] * 1e3})
    notes = ["GuideLLM sweep: synchronous, throughput burst, then constant rates, back to back"]
    if exp == "jan20-prefill-llama7b-tp1-1":
        notes.append("folder name says llama7b but exp-config.yaml names CodeLlama-34B: the "
                     "config is used")
    meta = RunMeta(
        run_id=f"isim-{exp}", source_keys=(tr_key, cfg_key), engine="vllm",
        engine_version="0.11.0 (V1)", model=cfg.get("model", ""), gpu="H100-80GB",
        tp=cfg.get("tensor_parallelism", 0),
        max_num_seqs=cfg.get("max_num_seqs"),
        max_num_batched_tokens=cfg.get("max_num_batched_tokens"),
        gpu_memory_utilization=0.9, chunked_prefill=True, rate_rps=None,
        arrival_process="GuideLLM sweep (synchronous, burst, constant rates)", timing="engine",
        gpu_note="an 80 GB GPU not named in the logs: H100-80GB assumed (substitution); "
                 "gpu_memory_utilization 0.9 is vLLM's default (not set in exp-config)",
        notes=tuple(notes))
    return _finish(meta, df)


# --------------------------------------------------------------------------------------------
# LLMServingSim vLLM reference runs
# --------------------------------------------------------------------------------------------
LLMSERVINGSIM_RUNS = (("RTX4090", "Llama-3.1-8B"), ("RTXPRO6000", "Llama-3.1-8B"),
                      ("RTXPRO6000", "Qwen3-30B-A3B-Instruct-2507"), ("RTXPRO6000", "Qwen3-32B"))


def load_llmservingsim(gpu: str, model: str) -> MeasuredRun:
    """One LLMServingSim reference run (engine-side timestamps, one Poisson rate)."""
    if (gpu, model) not in LLMSERVINGSIM_RUNS:
        raise ValidationError(f"unknown LLMServingSim run {(gpu, model)}; known "
                              f"{LLMSERVINGSIM_RUNS}")
    mk, rk = f"llmservingsim.{gpu}.{model}.meta", f"llmservingsim.{gpu}.{model}.requests"
    m = json.loads(fetch(mk).read_text())
    ek = m.get("engine_kwargs", {})
    d = pd.read_json(fetch(rk), lines=True)
    d = d[d["first_token_ts"].notna() & (d["output_toks"] > 0)].sort_values("queued_ts")
    q0 = d["queued_ts"].min()
    df = pd.DataFrame({
        "replay": 0, "segment": 0, "arrival_s": d["queued_ts"] - q0,
        "prompt_tokens": d["input_toks"], "output_tokens": d["output_toks"],
        "ttft_ms": (d["first_token_ts"] - d["queued_ts"]) * 1e3,
        "e2e_ms": (d["last_token_ts"] - d["queued_ts"]) * 1e3,
        "queue_ms": (d["scheduled_ts"] - d["queued_ts"]) * 1e3})
    span = df["arrival_s"].max()
    df["rate_rps"] = (len(df) - 1) / span if span > 0 else np.nan
    sps = re.search(r"sps(\d+)", m.get("dataset_path", ""))
    kv = m.get("kv_cache", {})
    meta = RunMeta(
        run_id=f"lss-{gpu}-{model}", source_keys=(rk, mk), engine="vllm",
        engine_version=str(m.get("vllm_version", "")), model=m.get("model", ""),
        gpu=m.get("hardware", {}).get("device_name") or gpu,
        gpu_note="" if m.get("hardware", {}).get("device_name") else
        "meta.json names no device: GPU from the example folder name",
        tp=ek.get("tensor_parallel_size", 0),
        max_num_seqs=ek.get("max_num_seqs"),
        max_num_batched_tokens=ek.get("max_num_batched_tokens"),
        gpu_memory_utilization=kv.get("gpu_memory_utilization"), chunked_prefill=True,
        rate_rps=float(sps.group(1)) if sps else None,
        arrival_process="Poisson (dataset timestamps)", timing="engine",
        kv_capacity_tokens=kv.get("num_kv_tokens"),
        notes=("prefix caching on",))
    return _finish(meta, df)


def load_all(*, strict: bool = False) -> tuple[list[MeasuredRun], dict[str, str]]:
    """Every loadable run, and {source: reason} for those skipped (plus EXCLUDED_SOURCES).

    ``strict`` re-raises the first loading error instead of recording it.
    """
    runs, skipped = [], dict(EXCLUDED_SOURCES)
    loaders = [(f"llmd-{e}", load_llmd_benchmark, (e,)) for e in LLMD_EXPERIMENTS]
    loaders += [(f"isim-{e}", load_inference_sim, (e,)) for e in ISIM_EXPERIMENTS]
    loaders += [(f"lss-{g}-{mdl}", load_llmservingsim, (g, mdl)) for g, mdl in
                LLMSERVINGSIM_RUNS]
    for name, fn, args in loaders:
        try:
            runs.append(fn(*args))
        except (DataError, ValidationError) as e:
            if strict:
                raise
            skipped[name] = str(e)
    return runs, skipped

