"""A fake of the ``pynvml`` module with named scenarios, for tests without a GPU.

``scenario(name)`` returns an object with the pynvml function names that
:mod:`profiling.nvml` calls. Values follow NVML's units (bytes, mW, MHz, C) and error codes.

Scenarios
    no_library          nvmlInit fails: libnvidia-ml.so.1 not found (what pynvml raises)
    no_driver           nvmlInit fails: driver not loaded
    no_gpu              NVML works, zero devices
    two_a100            two A100-SXM4-80GB, idle, one with a process
    h100                one H100 80GB HBM3 in exclusive-process mode with two processes
    unsupported_fields  one GPU whose power, clock and temperature queries are NotSupported
    gpu_lost_mid_run    two GPUs; every device query fails with GPU_IS_LOST after ``lost_after``
    mig_on              one A100 with MIG enabled (utilization NotSupported, as under MIG)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

NOT_SUPPORTED, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, GPU_IS_LOST = 3, 9, 12, 15
_STRINGS = {NOT_SUPPORTED: "Not Supported", DRIVER_NOT_LOADED: "Driver Not Loaded",
            LIBRARY_NOT_FOUND: "NVML Shared Library Not Found", GPU_IS_LOST: "GPU is lost"}
MIB = 1024 * 1024

SCENARIOS = ("no_library", "no_driver", "no_gpu", "two_a100", "h100", "unsupported_fields",
             "gpu_lost_mid_run", "mig_on")


class NVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGPU:
    name: str
    uuid: str
    total_mib: int
    used_mib: int
    util_pct: int = 0
    mem_util_pct: int = 0
    power_mw: int = 60_000
    power_limit_mw: int = 400_000
    sm_clock_mhz: int = 1410
    mem_clock_mhz: int = 1593
    temperature_c: int = 35
    mig: int = 0
    compute_mode: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    unsupported: frozenset[str] = frozenset()


class FakeNVML:
    """pynvml look-alike. ``calls`` counts device queries; ``init_calls``/``shutdown_calls`` too."""

    NVMLError = NVMLError

    def __init__(self, gpus=(), *, init_error: int | None = None, lost_after: int | None = None,
                 driver: str = "550.54.15", cuda: int = 12040):
        self.gpus = list(gpus)
        self.init_error = init_error
        self.lost_after = lost_after
        self.driver, self.cuda = driver, cuda
        self.calls = self.init_calls = self.shutdown_calls = 0

    # -- library --------------------------------------------------------------------------
    def nvmlInit(self):
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self):
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    # -- devices --------------------------------------------------------------------------
    def _gpu(self, handle, what: str) -> FakeGPU:
        self.calls += 1
        if self.lost_after is not None and self.calls > self.lost_after:
            raise NVMLError(GPU_IS_LOST)
        g = self.gpus[handle]
        if what in g.unsupported:
            raise NVMLError(NOT_SUPPORTED)
        return g

    def nvmlDeviceGetHandleByIndex(self, index):
        self._gpu(index, "handle")
        return index

    def nvmlDeviceGetName(self, h):
        return self._gpu(h, "name").name

    def nvmlDeviceGetUUID(self, h):
        return self._gpu(h, "uuid").uuid

    def nvmlDeviceGetMemoryInfo(self, h):
        g = self._gpu(h, "memory")
        return SimpleNamespace(total=g.total_mib * MIB, used=g.used_mib * MIB,
                               free=(g.total_mib - g.used_mib) * MIB)

    def nvmlDeviceGetUtilizationRates(self, h):
        g = self._gpu(h, "utilization")
        return SimpleNamespace(gpu=g.util_pct, memory=g.mem_util_pct)

    def nvmlDeviceGetPowerUsage(self, h):
        return self._gpu(h, "power").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._gpu(h, "power").power_limit_mw

    def nvmlDeviceGetClockInfo(self, h, clock_type):
        g = self._gpu(h, "clock")
        return {1: g.sm_clock_mhz, 2: g.mem_clock_mhz}[clock_type]

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._gpu(h, "temperature").temperature_c

    def nvmlDeviceGetMigMode(self, h):
        g = self._gpu(h, "mig")
        return [g.mig, g.mig]

    def nvmlDeviceGetComputeMode(self, h):
        return self._gpu(h, "compute_mode").compute_mode

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        g = self._gpu(h, "processes")
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in g.processes]


def _a100(i: int, **kw) -> FakeGPU:
    return FakeGPU("NVIDIA A100-SXM4-80GB", f"GPU-a100-{i:04d}", total_mib=81920,
                   used_mib=kw.pop("used_mib", 4), **kw)


def scenario(name: str, *, lost_after: int = 30) -> FakeNVML:
    """A fresh fake for one named scenario (see the module docstring)."""
    if name == "no_library":
        return FakeNVML(init_error=LIBRARY_NOT_FOUND)
    if name == "no_driver":
        return FakeNVML(init_error=DRIVER_NOT_LOADED)
    if name == "no_gpu":
        return FakeNVML([])
    if name == "two_a100":
        return FakeNVML([_a100(0), _a100(1, used_mib=40964, util_pct=87, mem_util_pct=41,
                                         power_mw=312_500, processes=[(4242, 40960 * MIB)])])
    if name == "h100":
        return FakeNVML([FakeGPU("NVIDIA H100 80GB HBM3", "GPU-h100-0000", total_mib=81559,
                                 used_mib=70000, util_pct=99, mem_util_pct=60, power_mw=650_250,
                                 power_limit_mw=700_000, sm_clock_mhz=1980, mem_clock_mhz=2619,
                                 temperature_c=61, compute_mode=3,
                                 processes=[(100, 60000 * MIB), (101, None)])],
                        driver="560.35.03", cuda=12060)
    if name == "unsupported_fields":
        return FakeNVML([_a100(0, unsupported=frozenset({"power", "clock", "temperature"}))])
    if name == "gpu_lost_mid_run":
        return FakeNVML([_a100(0), _a100(1)], lost_after=lost_after)
    if name == "mig_on":
        return FakeNVML([_a100(0, mig=1, unsupported=frozenset({"utilization"}))])
    raise KeyError(f"unknown fake NVML scenario {name!r}; known: {SCENARIOS}")
