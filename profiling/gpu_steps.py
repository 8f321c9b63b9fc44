"""Prefill and decode step times of Llama-architecture models on one GPU (tp 1), measured.

A minimal Llama forward in plain PyTorch, built from a model's public shape (layers, hidden
size, heads, KV heads, MLP size, vocabulary) with RANDOM weights: step latency depends on
shapes, not on weight values. Per layer: RMSNorm, fused QKV projection, rotary embeddings,
grouped-query attention through ``torch.nn.functional.scaled_dot_product_attention``, output
projection, RMSNorm, fused gate/up projection, SiLU gating, down projection; then a final
RMSNorm and the LM head on each sequence's last position (as serving engines do).

Phases, for a batch of ``B`` sequences with context ``C``:

* ``prefill``: one forward over ``B x C`` new tokens (causal attention), filling the KV cache.
* ``decode``: one forward over ``B`` new tokens at position ``C``, attending to a static KV
  cache of ``C + 1`` positions. On CUDA the step is captured in a CUDA graph (as vLLM does for
  decode) unless ``cuda_graphs=False``; the ``cuda_graph`` column says which ran.

Timing: ``warmup`` untimed steps, then ``repeats`` steps each timed with CUDA events (wall
clock on CPU); the table keeps the median and the 10th/90th percentiles in ms. A point that
does not fit in memory is a row with ``error`` set, not a crash.

Under MPS compute shares, :func:`measure_steps_under_mps` runs one subprocess per share with
``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` set, against a private MPS daemon; when MPS cannot run
(no binary, daemon failure, a child that fails) the rows say why.

PyTorch is not a dependency of the kit: it is imported when a measurement starts, and a
missing install raises :class:`~profiling.errors.ToolUnavailable`. Shapes, tables and the MPS
bookkeeping work without it. On CPU, float32 and tiny shapes serve tests, not measurements.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routerwise.errors import DataError, ValidationError
from routerwise.io import atomic_write_with, read_csv_checked
from routerwise.redact import redact_text

from . import nvml
from .errors import MPSError, ToolUnavailable
from .launcher import MPSDaemon, tail

PHASES = ("prefill", "decode")
DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class LlamaShape:
    """The facts of a Llama-architecture model that decide its step cost.

    ``head_dim`` 0 means ``hidden_size // num_heads`` (most Llama-family configs); some models
    (e.g. Mistral-Small-24B) give it explicitly.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    head_dim: int = 0

    def __post_init__(self):
        if self.head_dim == 0:
            if self.hidden_size % self.num_heads:
                raise ValidationError(f"shape {self.name!r}: hidden_size {self.hidden_size} is "
                                      f"not a multiple of num_heads {self.num_heads}; give "
                                      f"head_dim")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        for f in fields(self):
            if f.name != "name" and (int(getattr(self, f.name)) != getattr(self, f.name)
                                     or getattr(self, f.name) < 1):
                raise ValidationError(f"shape {self.name!r}: {f.name} must be a positive "
                                      f"integer, got {getattr(self, f.name)!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValidationError(f"shape {self.name!r}: num_heads {self.num_heads} is not a "
                                  f"multiple of num_kv_heads {self.num_kv_heads}")

    @property
    def num_params(self) -> int:
        """Parameters of this forward (untied embedding and LM head, no biases)."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, \
            self.num_kv_heads * self.head_dim
        layer = h * (q + 2 * kv) + q * h + 3 * h * self.intermediate_size + 2 * h
        return self.num_layers * layer + 2 * self.vocab_size * h + h


# Attribute names under which other records (Hugging Face config.json, routerwise
# architectures) carry the same facts.
_ALIASES = {
    "num_layers": ("num_layers", "num_hidden_layers", "n_layers", "layers"),
    "hidden_size": ("hidden_size", "hidden_dim", "d_model", "dim"),
    "num_heads": ("num_heads", "num_attention_heads", "n_heads", "heads"),
    "num_kv_heads": ("num_kv_heads", "num_key_value_heads", "n_kv_heads", "kv_heads"),
    "intermediate_size": ("intermediate_size", "mlp_size", "ffn_hidden_size", "ffn_dim"),
    "vocab_size": ("vocab_size", "vocab", "n_vocab"),
    "head_dim": ("head_dim",),
}

# From each model's public Hugging Face config.json.
PRESETS = {
    "mistral-7b": LlamaShape("mistral-7b", 32, 4096, 32, 8, 14336, 32000),
    "llama-2-13b": LlamaShape("llama-2-13b", 40, 5120, 40, 40, 13824, 32000),
    "yi-34b": LlamaShape("yi-34b", 60, 7168, 56, 8, 20480, 64000),
    "llama-3-8b": LlamaShape("llama-3-8b", 32, 4096, 32, 8, 14336, 128256),
    "tiny": LlamaShape("tiny", 2, 64, 4, 2, 128, 256),
}


def llama_shape(obj: Any, name: str | None = None) -> LlamaShape:
    """A :class:`LlamaShape` from a preset name, a mapping (e.g. a parsed config.json) or any
    object with the attributes under one of their usual names (see ``_ALIASES``).

    A record without a KV-head count has plain multi-head attention (KV heads = heads).
    Records that say they are not dense gated-MLP models (``num_experts > 1``,
    ``gated_mlp=False``) are refused: this forward would time the wrong computation.
    """
    if isinstance(obj, LlamaShape):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValidationError(f"unknown model shape {obj!r}; presets: {sorted(PRESETS)}, or "
                                  f"pass a config.json mapping / an object with the fields")
        return PRESETS[obj]
    get = obj.get if isinstance(obj, Mapping) else (lambda k, d=None: getattr(obj, k, d))
    label = name or get("name", None) or get("_name_or_path", None) or "custom"
    experts = get("num_experts", None) or get("num_local_experts", None) or 1
    if int(experts) > 1 or get("gated_mlp", True) is False:
        raise ValidationError(f"{label!r} is not a dense Llama-architecture model (experts="
                              f"{experts}, gated_mlp={get('gated_mlp', True)}); step timing "
                              f"covers dense models with a gated SiLU MLP only")
    found: dict[str, Any] = {}
    for field_name, names in _ALIASES.items():
        for n in names:
            if get(n, None) is not None:
                found[field_name] = int(get(n))
                break
    found.setdefault("num_kv_heads", found.get("num_heads"))
    missing = [k for k in _ALIASES if k != "head_dim" and found.get(k) is None]
    if missing:
        raise ValidationError(f"cannot read a Llama shape: no value for {missing} (accepted "
                              f"names: {[_ALIASES[m] for m in missing]})")
    return LlamaShape(str(label), **found)


def read_shape(path: str | Path) -> LlamaShape:
    """A shape from a Hugging Face ``config.json`` file."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read a model config from {path}: {e}") from e
    return llama_shape(cfg, name=cfg.get("_name_or_path") or path.parent.name or path.stem)


@dataclass(frozen=True)
class StepPoint:
    phase: str
    batch_size: int
    context_len: int


def plan(batch_sizes: Sequence[int], context_lens: Sequence[int],
         phases: Sequence[str] = PHASES) -> tuple[StepPoint, ...]:
    """The measurement grid, smallest work first (so an out-of-memory point ends a row late)."""
    bad = [p for p in phases if p not in PHASES]
    if bad:
        raise ValidationError(f"unknown phases {bad}; use {PHASES}")
    for name, vals in (("batch_sizes", batch_sizes), ("context_lens", context_lens)):
        if not vals or any(int(v) != v or v < 1 for v in vals):
            raise ValidationError(f"{name} must be positive integers, got {list(vals)}")
    return tuple(StepPoint(p, int(b), int(c)) for p in phases
                 for b in sorted(set(batch_sizes)) for c in sorted(set(context_lens)))


STEP_COLUMNS = (
    "model", "num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
    "intermediate_size", "vocab_size", "phase", "batch_size", "context_len", "compute_share", "mps",
    "step_ms_median", "step_ms_p10", "step_ms_p90", "repeats", "warmup", "cuda_graph",
    "device", "dtype", "gpu_name", "driver_version", "cuda_driver_version", "torch_version",
    "torch_cuda_version", "date", "command", "weights", "source", "error",
)


def step_row(shape: LlamaShape, point: StepPoint, times_ms: Sequence[float] | None, *,
             env: Mapping[str, Any], warmup: int, cuda_graph: bool = False,
             compute_share: float = 1.0, mps: bool = False, error: str = "") -> dict:
    """One row of the step table; ``times_ms`` None (with ``error``) for a failed point."""
    t = np.asarray(times_ms if times_ms is not None else [], dtype=float)
    stat = (lambda q: float(np.percentile(t, q))) if t.size else (lambda q: float("nan"))
    return {**{k: v for k, v in asdict(shape).items() if k != "name"}, "model": shape.name,
            "phase": point.phase, "batch_size": point.batch_size,
            "context_len": point.context_len, "compute_share": float(compute_share),
            "mps": bool(mps), "step_ms_median": stat(50), "step_ms_p10": stat(10),
            "step_ms_p90": stat(90), "repeats": int(t.size), "warmup": int(warmup),
            "cuda_graph": bool(cuda_graph), **{k: env.get(k) for k in (
                "device", "dtype", "gpu_name", "driver_version", "cuda_driver_version",
                "torch_version", "torch_cuda_version", "date", "command")},
            "weights": "random", "source": "measured", "error": error}


def steps_frame(rows: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(STEP_COLUMNS))


def write_steps(df: pd.DataFrame, path: str | Path) -> Path:
    missing = [c for c in STEP_COLUMNS if c not in df.columns]
    if missing:
        raise ValidationError(f"not a step table: it lacks {missing}")
    out = df[list(STEP_COLUMNS)].copy()
    for c in ("command", "error"):  # a command line or a child's log may carry credentials
        out[c] = out[c].map(lambda v: redact_text(v) if isinstance(v, str) else v)
    return atomic_write_with(path, lambda tmp: out.to_csv(tmp, index=False))


def read_steps(path: str | Path) -> pd.DataFrame:
    return read_csv_checked(path, STEP_COLUMNS, "step table")


STEP_KEY = ("model", "phase", "batch_size", "context_len", "compute_share", "mps")


def median_steps(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One step table from several probes of the same points (e.g. repeated through a run,
    so the table sees the machine as the run's load points did): per point the median over
    the probes of their medians and percentiles, their repeats summed; the first table's
    other columns. Every table must have the same points."""
    if not tables:
        raise ValidationError("median_steps needs at least one step table")
    key = list(STEP_KEY)
    first = tables[0].set_index(key)
    for i, t in enumerate(tables[1:], 1):
        if set(t.set_index(key).index) != set(first.index):
            raise ValidationError(f"step table {i} probes other points than table 0: the "
                                  f"probes to combine must be of one model and grid")
    if len(tables) == 1:
        return tables[0].copy()
    stacked = pd.concat([t.set_index(key) for t in tables])
    out = first.copy()
    grouped = stacked.groupby(level=key)
    for c in ("step_ms_median", "step_ms_p10", "step_ms_p90"):
        out[c] = grouped[c].median().reindex(out.index)
    out["repeats"] = grouped["repeats"].sum().reindex(out.index).astype(int)
    out["command"] = out["command"].astype(str) + f" [median of {len(tables)} probes]"
    return out.reset_index()[list(STEP_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# The torch part


def require_torch():
    try:
        import torch
    except ImportError as e:
        raise ToolUnavailable("step timing needs PyTorch, which the kit does not install: "
                              "`pip install torch` (a CUDA build for GPU timings)") from e
    return torch


class RandomLlama:
    """Random-weight Llama forward with a static KV cache; tensors live on ``device``."""

    def __init__(self, torch, shape: LlamaShape, device, dtype, seed: int):
        self.t, self.s, self.device, self.dtype = torch, shape, device, dtype
        g = torch.Generator(device=device).manual_seed(seed)
        h, hd = shape.hidden_size, shape.head_dim
        qkv = (shape.num_heads + 2 * shape.num_kv_heads) * hd

        def w(*size):
            return (torch.randn(*size, generator=g, device=device, dtype=dtype)
                    * (1.0 / math.sqrt(size[-1])))

        self.embed = w(shape.vocab_size, h)
        self.layers = [dict(norm1=torch.ones(h, device=device, dtype=dtype), wqkv=w(qkv, h),
                            wo=w(h, shape.num_heads * hd),
                            norm2=torch.ones(h, device=device, dtype=dtype),
                            wgu=w(2 * shape.intermediate_size, h),
                            wdown=w(h, shape.intermediate_size))
                       for _ in range(shape.num_layers)]
        self.norm = torch.ones(h, device=device, dtype=dtype)
        self.lm_head = w(shape.vocab_size, h)
        # The rotary base changes values, not cost; Llama-3's is used for every shape.
        self.inv_freq = 1.0 / (500000.0 ** (torch.arange(0, hd, 2, device=device,
                                                          dtype=torch.float32) / hd))

    def _rms(self, x, weight):
        t = self.t
        v = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * t.rsqrt(v + 1e-5)).to(self.dtype) * weight

    def _rope(self, x, cos, sin):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return x * cos + self.t.cat((-x2, x1), dim=-1) * sin

    def cache(self, batch: int, length: int):
        t, s = self.t, self.s
        shape = (batch, s.num_kv_heads, length, s.head_dim)
        return [(t.zeros(shape, device=self.device, dtype=self.dtype),
                 t.zeros(shape, device=self.device, dtype=self.dtype))
                for _ in range(s.num_layers)]

    def forward(self, tokens, start: int, cache):
        """Logits at the last position of each sequence; writes K/V at ``start..start+T``."""
        t, s = self.t, self.s
        F = t.nn.functional
        b, n = tokens.shape
        nh, nkv, hd = s.num_heads, s.num_kv_heads, s.head_dim
        pos = t.arange(start, start + n, device=self.device, dtype=t.float32)
        ang = t.outer(pos, self.inv_freq)
        cos = t.cat((ang.cos(), ang.cos()), -1).to(self.dtype)[None, None]
        sin = t.cat((ang.sin(), ang.sin()), -1).to(self.dtype)[None, None]
        x = self.embed[tokens]
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):
            q, k, v = (self._rms(x, layer["norm1"]) @ layer["wqkv"].T).split(
                [nh * hd, nkv * hd, nkv * hd], dim=-1)
            q = self._rope(q.view(b, n, nh, hd).transpose(1, 2), cos, sin)
            k = self._rope(k.view(b, n, nkv, hd).transpose(1, 2), cos, sin)
            kc[:, :, start:start + n] = k
            vc[:, :, start:start + n] = v.view(b, n, nkv, hd).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, kc[:, :, : start + n], vc[:, :, : start + n],
                                               is_causal=n > 1, enable_gqa=nkv != nh)
            x = x + a.transpose(1, 2).reshape(b, n, nh * hd) @ layer["wo"].T
            gate, up = (self._rms(x, layer["norm2"]) @ layer["wgu"].T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ layer["wdown"].T
        return self._rms(x[:, -1], self.norm) @ self.lm_head.T


def _timed(torch, fn, device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize(device)
        return [a.elapsed_time(b) for a, b in ev]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def _graphed(torch, fn):
    """Capture ``fn`` (static shapes and buffers) in a CUDA graph; return its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def environment(torch, device, nvml_backend=None) -> dict[str, Any]:
    """GPU name and driver from NVML (matched to the CUDA device by UUID), torch versions.

    ``gpu_name`` is None on CPU; on CUDA it falls back to torch's device name when NVML cannot
    tell which GPU the device is.
    """
    env: dict[str, Any] = {"device": str(device), "torch_version": torch.__version__,
                           "torch_cuda_version": torch.version.cuda,
                           "date": datetime.now(UTC).isoformat(timespec="seconds")}
    snap = nvml.snapshot(nvml_backend)
    env["driver_version"] = snap.driver_version
    env["cuda_driver_version"] = snap.cuda_driver_version
    name = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        uuid = str(getattr(props, "uuid", "") or "")
        for g in snap.gpus:
            if uuid and g.uuid and g.uuid.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                name = g.name
        name = name or (snap.gpus[0].name if len(snap.gpus) == 1 else None) or props.name
    env["gpu_name"] = name
    return env


def measure_steps(shape: Any, *, batch_sizes: Sequence[int] = (1,),
                  context_lens: Sequence[int] = (512,), phases: Sequence[str] = PHASES,
                  device: str = "cuda", dtype: str = "bfloat16", warmup: int = 3,
                  repeats: int = 10, cuda_graphs: bool = True, seed: int = 0,
                  compute_share: float = 1.0, nvml_backend: Any | None = None,
                  command: str | None = None) -> pd.DataFrame:
    """Time prefill and decode steps over the grid; one row per point (see module docstring).

    ``compute_share`` only labels the rows: the share itself is set by the environment of the
    process (see :func:`measure_steps_under_mps`), and ``mps`` records whether this process was
    pointed at an MPS daemon.
    """
    shape = llama_shape(shape)
    points = plan(batch_sizes, context_lens, phases)
    if dtype not in DTYPES:
        raise ValidationError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if warmup < 0 or repeats < 1:
        raise ValidationError("warmup must be >= 0 and repeats >= 1")
    torch = require_torch()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ToolUnavailable(f"device {device!r} asked for, but this PyTorch sees no CUDA GPU "
                              f"(torch {torch.__version__}, built for CUDA "
                              f"{torch.version.cuda}); use device='cpu' for a functional run")
    env = environment(torch, dev, nvml_backend)
    env.update(dtype=dtype, command=command or " ".join(shlex.quote(a) for a in sys.argv))
    under_mps = bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY"))
    model = RandomLlama(torch, shape, dev, getattr(torch, dtype), seed)
    rows = []
    with torch.inference_mode():
        for p in points:
            graph_used, err, times = False, "", None
            try:
                if p.phase == "prefill":
                    cache = model.cache(p.batch_size, p.context_len)
                    tokens = torch.randint(0, shape.vocab_size, (p.batch_size, p.context_len),
                                           device=dev)

                    def fn(tokens=tokens, cache=cache):
                        return model.forward(tokens, 0, cache)
                else:
                    cache = model.cache(p.batch_size, p.context_len + 1)
                    tokens = torch.randint(0, shape.vocab_size, (p.batch_size, 1), device=dev)

                    def fn(tokens=tokens, cache=cache, start=p.context_len):
                        return model.forward(tokens, start, cache)
                    if dev.type == "cuda" and cuda_graphs:
                        try:
                            fn, graph_used = _graphed(torch, fn), True
                        except torch.cuda.OutOfMemoryError:
                            raise
                        except RuntimeError as e:
                            raise RuntimeError(
                                f"CUDA graph capture failed ({str(e).splitlines()[0]}); rerun "
                                f"with cuda_graphs=False (CLI --no-cuda-graphs) to time the "
                                f"step eagerly") from e
                times = _timed(torch, fn, dev, warmup, repeats)
            except torch.cuda.OutOfMemoryError as e:
                err = f"out of memory: {str(e).splitlines()[0]}"
            except RuntimeError as e:
                err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            finally:
                cache = tokens = fn = None
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(step_row(shape, p, times, env=env, warmup=warmup, cuda_graph=graph_used,
                                 compute_share=compute_share, mps=under_mps, error=err))
    return steps_frame(rows)


# ---------------------------------------------------------------------------------------------
# Under MPS shares


def _share_percent(share: float) -> int:
    tenths = round(share * 10)
    if abs(share * 10 - tenths) > 1e-9 or not 1 <= tenths <= 10:
        raise ValidationError(f"compute shares are multiples of 0.1 in [0.1, 1.0], got {share}")
    return tenths * 10


def measure_steps_under_mps(shape: Any, shares: Sequence[float], *,
                            batch_sizes: Sequence[int] = (1,), context_lens: Sequence[int] = (512,),
                            phases: Sequence[str] = PHASES, dtype: str = "bfloat16",
                            warmup: int = 3, repeats: int = 10, cuda_graphs: bool = True,
                            gpu: int = 0, mps_binary: str = "nvidia-cuda-mps-control",
                            timeout_s: float = 3600.0) -> pd.DataFrame:
    """One subprocess per compute share under a private MPS daemon on CUDA device ``gpu``.

    Each child runs ``python -m profiling steps`` with ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``
    set. If MPS cannot run, or a child fails, the affected rows carry the reason in ``error``.
    """
    shape = llama_shape(shape)
    points = plan(batch_sizes, context_lens, phases)
    percents = [_share_percent(s) for s in shares]
    env0 = {"device": f"cuda ({gpu})", "dtype": dtype, "date":
            datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(a) for a in sys.argv)}

    def failed(pct: int, why: str) -> list[dict]:
        return [step_row(shape, p, None, env=env0, warmup=warmup, compute_share=pct / 100,
                         mps=False, error=why) for p in points]

    rows: list[dict] = []
    try:
        daemon = MPSDaemon(gpus=(gpu,), binary=mps_binary).start()
    except (ToolUnavailable, MPSError) as e:
        for pct in percents:
            rows += failed(pct, f"MPS unavailable: {e}")
        return steps_frame(rows)
    try:
        with tempfile.TemporaryDirectory(prefix="rw-steps-") as tmp:
            for pct in percents:
                out = Path(tmp) / f"share{pct}.csv"
                argv = [sys.executable, "-m", "profiling", "steps", "--shape-json",
                        json.dumps(asdict(shape)), "--batch", *map(str, batch_sizes),
                        "--context", *map(str, context_lens), "--phase", *phases,
                        "--dtype", dtype, "--warmup", str(warmup), "--repeats", str(repeats),
                        "--compute-share", f"{pct / 100:g}", "--out", str(out)]
                if not cuda_graphs:
                    argv.append("--no-cuda-graphs")
                env = {**os.environ, **daemon.client_env(), "CUDA_VISIBLE_DEVICES": str(gpu),
                       "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(pct)}
                log = Path(tmp) / f"share{pct}.log"
                try:
                    with open(log, "wb") as f:
                        rc = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, timeout=timeout_s).returncode
                except subprocess.TimeoutExpired:
                    rc = f"timeout after {timeout_s:g} s"
                if rc == 0 and out.is_file():
                    rows += read_steps(out).to_dict("records")
                else:
                    rows += failed(pct, f"child for share {pct}% failed ({rc}): "
                                        f"{tail(log, 5)}")
    finally:
        daemon.stop()
    return steps_frame(rows)
