"""GPU catalogue: datasheet figures per GPU type (dense bf16 tensor-core peak, no sparsity).

Labelled constants, not fitted: every figure names its datasheet. Memory is in GiB as the
datasheets state it ("80GB" is 80 GiB); ``GPUSpec.memory_gb`` converts to decimal GB.

A GPU outside the catalogue (e.g. an L40S) can be described by its user: :func:`described_gpu`
builds its spec from memory, bandwidth and dense bf16 peak, borrowing the fitted step-cost
efficiencies of a catalogued family, and :func:`register_gpu` makes ``gpu_spec(name)`` find
it in this process (a problem file's ``[cluster]`` does both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ValidationError

__all__ = ["GPUSpec", "GPUS", "gpu_spec", "A100_DATASHEET", "H100_DATASHEET",
           "H200_DATASHEET", "SIMULATION_FIGURES", "described_gpu", "register_gpu",
           "is_catalogued"]

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

    def __post_init__(self):
        for f in ("peak_bf16_tflops", "hbm_gbs", "memory_gib"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    math.isfinite(v) and v > 0):
                raise ValidationError(f"GPU {self.name!r}: {f} must be a positive finite "
                                      f"number, got {v!r}")

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
_CATALOGUE = dict(GPUS)  # the datasheet entries above, before any user-described GPU

# What simulating an uncatalogued GPU needs: (problem-file key, described_gpu argument, meaning)
SIMULATION_FIGURES = (
    ("mem_gb", "memory_gb", "memory per GPU, decimal GB"),
    ("hbm_gbs", "hbm_gbs", "memory bandwidth, GB/s"),
    ("bf16_tflops", "bf16_tflops", "dense bf16 tensor-core peak, TFLOP/s, without sparsity"),
)


def is_catalogued(spec: GPUSpec) -> bool:
    """True for a datasheet entry of the shipped catalogue (not a user-described GPU)."""
    return _CATALOGUE.get(spec.name) == spec


def described_gpu(name: str, *, memory_gb: float, hbm_gbs: float, bf16_tflops: float,
                  interconnect_gbs: float = 0.0, family: str = "ampere") -> GPUSpec:
    """A GPU the catalogue lacks, from its user's figures (decimal GB, GB/s, dense TFLOP/s).

    The serving model's efficiencies and all-reduce costs are fitted per family; ``family``
    names the fitted family whose ones are borrowed ("ampere" or "hopper"), and the spec's
    ``source`` says so. ``interconnect_gbs`` (e.g. NVLink or PCIe) is recorded; all-reduce
    times come from the borrowed family's measurements.
    """
    if name in _CATALOGUE:
        raise ValidationError(f"GPU {name!r} is in the catalogue already (datasheet figures); "
                              f"give a GPU you describe another name")
    known = sorted({g.family for g in _CATALOGUE.values()})
    if family not in known:
        raise ValidationError(f"GPU {name!r}: family {family!r} has no fitted step costs; "
                              f"borrow one of {known}")
    if interconnect_gbs is None or isinstance(interconnect_gbs, bool) or not isinstance(
            interconnect_gbs, (int, float)) or not (math.isfinite(interconnect_gbs)
                                                     and interconnect_gbs >= 0):
        raise ValidationError(f"GPU {name!r}: interconnect_gbs must be a finite number >= 0 "
                              f"(0: unknown), got {interconnect_gbs!r}")
    if isinstance(memory_gb, bool) or not isinstance(memory_gb, (int, float)):
        raise ValidationError(f"GPU {name!r}: memory_gb must be a number, got {memory_gb!r}")
    src = (f"user-described: {memory_gb:g} GB, {hbm_gbs:g} GB/s, {bf16_tflops:g} dense bf16 "
           f"TFLOP/s, interconnect {interconnect_gbs:g} GB/s; step-cost efficiencies and "
           f"all-reduce costs borrowed from the fitted {family} family (modelled)")
    return GPUSpec(name, family, bf16_tflops, hbm_gbs, memory_gb * 1e9 / 2**30,
                   float(interconnect_gbs), src)


def register_gpu(spec: GPUSpec, *, replace_existing: bool = False) -> GPUSpec:
    """Make ``gpu_spec(spec.name)`` return ``spec`` in this process (a catalogue entry cannot
    be replaced). Functions that hand work to other processes pass the spec itself."""
    if not isinstance(spec, GPUSpec):
        raise ValidationError(f"register_gpu() takes a GPUSpec, got {type(spec).__name__}")
    old = GPUS.get(spec.name)
    if old is not None and old != spec and (spec.name in _CATALOGUE or not replace_existing):
        raise ValidationError(f"a GPU named {spec.name!r} is known already with other "
                              f"figures; pick another name"
                              + ("" if spec.name in _CATALOGUE else
                                 " or pass replace_existing=True"))
    GPUS[spec.name] = spec
    return spec


def gpu_spec(name: str | GPUSpec) -> GPUSpec:
    """The spec of GPU type ``name`` (a spec is returned as given)."""
    if isinstance(name, GPUSpec):
        return name
    try:
        return GPUS[name]
    except KeyError:
        need = ", ".join(f"{k} ({what})" for k, _, what in SIMULATION_FIGURES)
        raise ValidationError(
            f"unknown GPU type {name!r}; known (routerwise.serving.hardware.GPUS): "
            f"{sorted(GPUS)}. Describe it: in a problem file's [cluster], give {need} "
            f"(optionally interconnect_gbs and family); from Python, "
            f"routerwise.serving.hardware.register_gpu(described_gpu({name!r}, ...))"
        ) from None
