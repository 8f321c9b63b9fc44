"""Per-shard GPU memory need m_i(tp) and the KV-cache capacity a memory share buys.

The memory MODEL, in one place (all numbers modelled, decimal GB = 1e9 bytes):

* weights: bf16, ``Architecture.weight_bytes(2) / tp`` per shard (embeddings and LM head
  sharded too, as vLLM does);
* KV-cache reserve: ``kv_reserve_tokens`` tokens per replica, split evenly over the tp shards
  (latent attention's cache is held whole by every shard: ``Architecture.kv_shards``).
  65,536 tokens hold about 64 concurrent requests of 1,024 tokens (prompt + output), above
  the concurrency the RouteProfile length mix reaches at the knee of a replica's latency
  curve;
* runtime overhead per GPU: ``overhead_gb`` (CUDA context, NCCL buffers, captured CUDA graphs)
  plus ``activation_headroom_gb`` (peak activations of a prefill at the batched-token budget).
  Their sum, 3 GB, matches where the LLM-Inference-Bench vLLM runs on 4 x A100-40GB start to
  preempt Llama-2-70B (between 8k and 16k cached tokens).

``shard_memory_gb`` is the need of one shard (the paper's m_i(tp)); ``kv_capacity_tokens``
inverts it: the KV tokens a replica holds when each of its tp GPUs gives it ``mem_share`` of
its memory. GPU capacities come from :data:`routerwise.serving.hardware.GPUS` (datasheet GiB).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError
from .architectures import Architecture
from .hardware import GPUSpec, gpu_spec

__all__ = ["GB", "MemoryAssumptions", "DEFAULT", "weights_gb_per_shard", "shard_memory_gb",
           "shard_memory_table", "fits", "kv_capacity_tokens"]

GB = 1e9


@dataclass(frozen=True)
class MemoryAssumptions:
    """The modelled memory budget of one replica (see the module docstring)."""

    kv_reserve_tokens: int = 65536
    overhead_gb: float = 2.0
    activation_headroom_gb: float = 1.0
    dtype_bytes: int = 2

    def __post_init__(self):
        if self.kv_reserve_tokens < 0 or self.overhead_gb < 0 or self.activation_headroom_gb < 0:
            raise ValidationError("memory assumptions must be non-negative")
        if self.dtype_bytes not in (1, 2, 4):
            raise ValidationError(f"dtype_bytes must be 1, 2 or 4, got {self.dtype_bytes}")

    @property
    def per_gpu_overhead_gb(self) -> float:
        return self.overhead_gb + self.activation_headroom_gb

    def label(self) -> str:
        return (f"memory model (modelled): bf16 weights/tp + KV reserve "
                f"{self.kv_reserve_tokens} tokens/tp + {self.per_gpu_overhead_gb:g} GB/GPU")


DEFAULT = MemoryAssumptions()


def weights_gb_per_shard(arch: Architecture, tp: int, mem: MemoryAssumptions = DEFAULT) -> float:
    _check_tp(tp)
    return arch.weight_bytes(mem.dtype_bytes) / tp / GB


def shard_memory_gb(arch: Architecture, tp: int, mem: MemoryAssumptions = DEFAULT) -> float:
    """m_i(tp): GB one shard needs = weights/tp + KV reserve/tp + per-GPU overhead."""
    kv = mem.kv_reserve_tokens * arch.kv_bytes_per_token(mem.dtype_bytes) / arch.kv_shards(tp) / GB
    return weights_gb_per_shard(arch, tp, mem) + kv + mem.per_gpu_overhead_gb


def shard_memory_table(arch: Architecture, tp_degrees=(1, 2, 4),
                       mem: MemoryAssumptions = DEFAULT) -> dict[int, float]:
    """{tp: m_i(tp) in GB} for every tp in ``tp_degrees``."""
    return {int(tp): shard_memory_gb(arch, int(tp), mem) for tp in tp_degrees}


def fits(arch: Architecture, tp: int, gpu: str | GPUSpec,
         mem: MemoryAssumptions = DEFAULT) -> bool:
    """True when one shard's need fits a whole GPU of type ``gpu``."""
    spec = gpu if isinstance(gpu, GPUSpec) else gpu_spec(gpu)
    return shard_memory_gb(arch, tp, mem) <= spec.memory_gb


def kv_capacity_tokens(arch: Architecture, tp: int, gpu: str | GPUSpec, mem_share: float = 1.0,
                       mem: MemoryAssumptions = DEFAULT) -> int:
    """KV tokens a replica holds with ``mem_share`` of each of its tp GPUs (0 if none fit).

    ``(mem_share * capacity - weights/tp - overhead) * tp / kv_bytes_per_token``; for vLLM's
    ``gpu_memory_utilization`` pass that fraction as ``mem_share``.
    """
    _check_tp(tp)
    if not 0 < mem_share <= 1:
        raise ValidationError(f"mem_share must be in (0, 1], got {mem_share}")
    spec = gpu if isinstance(gpu, GPUSpec) else gpu_spec(gpu)
    free_gb = mem_share * spec.memory_gb - weights_gb_per_shard(arch, tp, mem) \
        - mem.per_gpu_overhead_gb
    if free_gb <= 0:
        return 0
    return int(free_gb * GB * arch.kv_shards(tp) // arch.kv_bytes_per_token(mem.dtype_bytes))


def _check_tp(tp: int) -> None:
    if int(tp) != tp or tp < 1:
        raise ValidationError(f"tp must be a positive integer, got {tp}")
