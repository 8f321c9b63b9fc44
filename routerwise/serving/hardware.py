"""GPU catalogue: datasheet figures per GPU type (dense bf16 tensor-core peak, no sparsity).

Labelled constants, not fitted: every figure names its datasheet. Memory is in GiB as the
datasheets state it ("80GB" is 80 GiB); ``GPUSpec.memory_gb`` converts to decimal GB.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError

__all__ = ["GPUSpec", "GPUS", "gpu_spec", "A100_DATASHEET", "H100_DATASHEET",
           "H200_DATASHEET"]

A100_DATASHEET = ("NVIDIA A100 Tensor Core GPU datasheet (nvidia.com, A100 40GB/80GB SXM): "
                  "BF16 312 TFLOPS dense, HBM2 1,555 GB/s (40GB), HBM2e 2,039 GB/s (80GB), "
                  "NVLink 600 GB/s")
H100_DATASHEET = ("NVIDIA H100 Tensor Core GPU datasheet (nvidia.com, H100 SXM): BF16 1,979 "
                  "TFLOPS with sparsity = 989 dense, HBM3 3.35 TB/s, 80GB, NVLink 900 GB/s")
H200_DATASHEET = ("NVIDIA H200 Tensor Core GPU datasheet (nvidia.com, H200 SXM): BF16 1,979 "
                  "TFLOPS with sparsity = 989 dense, HBM3e 4.8 TB/s, 141GB, NVLink 900 GB/s; "
                  "the same GH100 compute die as H100 SXM, so the fitted hopper efficiencies "
                  "are used for it")


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet figures of one GPU type (labelled constants, not fitted)."""

    name: str
    family: str
    peak_bf16_tflops: float
    hbm_gbs: float
    memory_gib: float
    nvlink_gbs: float
    source: str

    @property
    def memory_gb(self) -> float:
        """Capacity in decimal GB (the datasheet's '80GB' is 80 GiB)."""
        return self.memory_gib * 2**30 / 1e9


GPUS: dict[str, GPUSpec] = {
    "A100-80GB": GPUSpec("A100-80GB", "ampere", 312.0, 2039.0, 80.0, 600.0, A100_DATASHEET),
    "A100-40GB": GPUSpec("A100-40GB", "ampere", 312.0, 1555.0, 40.0, 600.0, A100_DATASHEET),
    "H100-80GB": GPUSpec("H100-80GB", "hopper", 989.0, 3350.0, 80.0, 900.0, H100_DATASHEET),
    # "141GB" read as GiB like the other entries ("80GB" is 80 GiB); nvidia-smi shows ~140 GiB
    "H200-141GB": GPUSpec("H200-141GB", "hopper", 989.0, 4800.0, 141.0, 900.0, H200_DATASHEET),
}
def gpu_spec(name: str) -> GPUSpec:
    try:
        return GPUS[name]
    except KeyError:
        raise ValidationError(f"unknown GPU type {name!r}; known: {sorted(GPUS)}. Add its "
                              f"datasheet figures to routerwise.serving.hardware.GPUS") from None
