"""GPU state through NVML: the one module of the kit that talks to the NVIDIA driver.

Readers return frozen :class:`SystemSnapshot` / :class:`GPUSnapshot` records. A field NVML does
not support on a device (``NotSupported``, ``NoPermission``, a function missing from an older
driver) is ``None``; a device that stops answering (``GPU is lost``, ``Unknown Error``, ...) gives
a :class:`GPUSnapshot` whose ``error`` says why and whose other fields are ``None``. When NVML
cannot be used at all (bindings not installed, no ``libnvidia-ml.so.1``, driver not loaded, no
GPU) the snapshot has ``available=False`` and a ``reason`` a notebook can show; no exception
leaves :func:`snapshot` or :class:`NVMLSession`.

The bindings are injectable: every reader takes ``backend``, any object with the ``pynvml``
function names (``nvmlInit``, ``nvmlDeviceGetCount``, ``nvmlDeviceGetMemoryInfo``, ...), an
``NVMLError`` exception class whose instances carry the NVML return code in ``.value``. The
default is the ``pynvml`` module of the ``nvidia-ml-py`` package, imported on first use. Tests
pass the fakes of ``tests/fake_nvml.py``.

NVML enumerates every GPU of the machine in PCI order and ignores ``CUDA_VISIBLE_DEVICES``, so
indices here are NVML indices; CUDA's numbering can differ (``CUDA_DEVICE_ORDER=PCI_BUS_ID``
makes them agree).

Units: memory in MiB, power in W (NVML reports mW), clocks in MHz, temperature in degrees C.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

# NVML C return codes (nvml.h); stable across driver releases.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_NO_DATA = 21
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26

# Codes that mean "this device cannot report this field", as opposed to "the device failed".
_FIELD_UNAVAILABLE = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION,
                                NVML_ERROR_NOT_FOUND, NVML_ERROR_FUNCTION_NOT_FOUND,
                                NVML_ERROR_NO_DATA, NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
                                NVML_ERROR_DEPRECATED})

_CLOCK_SM, _CLOCK_MEM, _TEMPERATURE_GPU = 1, 2, 0  # nvmlClockType_t, nvmlTemperatureSensors_t
_COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
_MIB = 1024 * 1024

NO_GPU = "no GPU visible"


@dataclass(frozen=True)
class ProcessInfo:
    """A process holding a CUDA context on a GPU."""

    pid: int
    used_memory_mib: float | None


@dataclass(frozen=True)
class GPUSnapshot:
    """One GPU at one instant. ``None`` marks a field this device does not report."""

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total_mib: float | None = None
    memory_used_mib: float | None = None
    memory_free_mib: float | None = None
    gpu_util_pct: int | None = None
    memory_util_pct: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    temperature_c: int | None = None
    mig_enabled: bool | None = None
    compute_mode: str | None = None
    processes: tuple[ProcessInfo, ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class SystemSnapshot:
    """The machine's GPUs at one instant (``timestamp`` is Unix time, seconds).

    ``available`` is False when NVML could not be used; ``reason`` then says why and what to
    check, and ``gpus`` is empty.
    """

    available: bool
    reason: str = ""
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    gpus: tuple[GPUSnapshot, ...] = ()
    timestamp: float = field(default_factory=time.time)

    def summary(self) -> str:
        """A short human-readable account, e.g. for a notebook cell or the CLI."""
        if not self.available:
            return self.reason
        lines = [f"driver {self.driver_version}, CUDA driver {self.cuda_driver_version}, "
                 f"{len(self.gpus)} GPU(s)"]
        for g in self.gpus:
            if g.error:
                lines.append(f"  [{g.index}] error: {g.error}")
                continue
            mem = (f"{g.memory_used_mib:.0f}/{g.memory_total_mib:.0f} MiB"
                   if g.memory_total_mib is not None and g.memory_used_mib is not None else "n/a")
            lines.append(f"  [{g.index}] {g.name}  mem {mem}  util {_fmt(g.gpu_util_pct, '%')}  "
                         f"power {_fmt(g.power_draw_w, ' W')}  temp {_fmt(g.temperature_c, ' C')}  "
                         f"mig {_fmt(g.mig_enabled)}  mode {_fmt(g.compute_mode)}  "
                         f"procs {len(g.processes) if g.processes is not None else 'n/a'}")
        return "\n".join(lines)


def _fmt(v, unit: str = "") -> str:
    return "n/a" if v is None else f"{v}{unit}"


def load_backend() -> Any:
    """Import the NVML bindings (``pynvml`` from ``nvidia-ml-py``); ImportError if absent."""
    return importlib.import_module("pynvml")


def _code(err: BaseException) -> int | None:
    v = getattr(err, "value", None)
    return v if isinstance(v, int) else None


def _describe(err: BaseException) -> str:
    code = _code(err)
    try:
        text = str(err)
    except Exception:  # pynvml's __str__ calls into the library, which may itself be gone
        text = type(err).__name__
    return f"{text} (NVML error {code})" if code is not None else text


class _DeviceFailed(Exception):
    """A device query failed in a way that is not 'field unsupported'."""


class NVMLSession:
    """An initialized NVML for repeated snapshots (``nvmlInit`` once, ``nvmlShutdown`` at exit).

    Usable as a context manager. Never raises on a missing library, driver or GPU: the
    snapshots then carry ``available=False`` and the reason.
    """

    def __init__(self, backend: Any | None = None):
        self._backend = backend
        self._nvml: Any | None = None
        self._reason = ""
        self._open = False

    def __enter__(self) -> NVMLSession:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if self._open:
            return
        nvml = self._backend
        if nvml is None:
            try:
                nvml = load_backend()
            except ImportError as e:
                self._reason = (f"{NO_GPU}: the NVML bindings are not installed ({e}); "
                                f"`pip install nvidia-ml-py`")
                return
        try:
            nvml.nvmlInit()
        except Exception as e:  # NVMLError, or OSError from a broken driver install
            self._reason = _init_reason(e)
            return
        self._nvml = nvml
        self._open = True

    def close(self) -> None:
        if self._open and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down a lost device must not mask the caller's result
                pass
        self._open = False

    def snapshot(self, indices: tuple[int, ...] | None = None) -> SystemSnapshot:
        """Read every GPU (or those NVML indices in ``indices``) once."""
        if not self._open:
            return SystemSnapshot(available=False, reason=self._reason or f"{NO_GPU}: NVML "
                                  f"session not open")
        nvml = self._nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as e:
            return SystemSnapshot(available=False,
                                  reason=f"{NO_GPU}: NVML could not count GPUs: {_describe(e)}")
        if count == 0:
            return SystemSnapshot(available=False, reason=f"{NO_GPU}: the driver is loaded but "
                                  f"reports no GPU (check the container's device mounts)")
        try:
            driver = self._soft(nvml.nvmlSystemGetDriverVersion)
            cuda = self._soft(nvml.nvmlSystemGetCudaDriverVersion)
        except _DeviceFailed:  # the versions are labels; a failing device shows in its row
            driver = cuda = None
        wanted = range(count) if indices is None else [i for i in indices if 0 <= i < count]
        gpus = tuple(self._read_gpu(i) for i in wanted)
        return SystemSnapshot(available=True, driver_version=_text(driver),
                              cuda_driver_version=_cuda_version(cuda), gpus=gpus)

    def _soft(self, fn, *args):
        """Call an NVML query; None when the field is unsupported, else re-raise as failure."""
        try:
            return fn(*args)
        except Exception as e:
            if _code(e) in _FIELD_UNAVAILABLE or type(e).__name__ == "NVMLLibraryMismatchError":
                return None
            raise _DeviceFailed(_describe(e)) from e

    def _read_gpu(self, index: int) -> GPUSnapshot:
        nvml, soft = self._nvml, self._soft
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as e:
            return GPUSnapshot(index=index, error=_describe(e))
        try:
            mem = soft(nvml.nvmlDeviceGetMemoryInfo, h)
            util = soft(nvml.nvmlDeviceGetUtilizationRates, h)
            power_mw = soft(nvml.nvmlDeviceGetPowerUsage, h)
            limit_mw = soft(nvml.nvmlDeviceGetEnforcedPowerLimit, h)
            mig = soft(nvml.nvmlDeviceGetMigMode, h)
            mode = soft(nvml.nvmlDeviceGetComputeMode, h)
            procs = soft(nvml.nvmlDeviceGetComputeRunningProcesses, h)
            return GPUSnapshot(
                index=index,
                name=_text(soft(nvml.nvmlDeviceGetName, h)),
                uuid=_text(soft(nvml.nvmlDeviceGetUUID, h)),
                memory_total_mib=None if mem is None else mem.total / _MIB,
                memory_used_mib=None if mem is None else mem.used / _MIB,
                memory_free_mib=None if mem is None else mem.free / _MIB,
                gpu_util_pct=None if util is None else int(util.gpu),
                memory_util_pct=None if util is None else int(util.memory),
                power_draw_w=None if power_mw is None else power_mw / 1000.0,
                power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
                sm_clock_mhz=soft(nvml.nvmlDeviceGetClockInfo, h, _CLOCK_SM),
                memory_clock_mhz=soft(nvml.nvmlDeviceGetClockInfo, h, _CLOCK_MEM),
                temperature_c=soft(nvml.nvmlDeviceGetTemperature, h, _TEMPERATURE_GPU),
                # nvmlDeviceGetMigMode returns [current, pending]; the current mode is what runs.
                mig_enabled=None if mig is None else bool(mig[0]),
                compute_mode=None if mode is None else _COMPUTE_MODES.get(int(mode), str(mode)),
                processes=None if procs is None else tuple(
                    ProcessInfo(int(p.pid), None if p.usedGpuMemory is None
                                else p.usedGpuMemory / _MIB) for p in procs),
            )
        except _DeviceFailed as e:
            return GPUSnapshot(index=index, error=str(e))


def _init_reason(e: BaseException) -> str:
    code = _code(e)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND or isinstance(e, OSError):
        return (f"{NO_GPU}: the NVML library (libnvidia-ml.so.1) was not found; install the "
                f"NVIDIA driver, or in a container run with the NVIDIA container toolkit")
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return (f"{NO_GPU}: the NVIDIA kernel driver is not loaded (NVML: {_describe(e)}); "
                f"check `nvidia-smi` and the driver installation")
    if code == NVML_ERROR_NO_PERMISSION:
        return f"{NO_GPU}: no permission to open the NVIDIA devices ({_describe(e)})"
    return f"{NO_GPU}: NVML failed to initialize: {_describe(e)}"


def _text(v) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _cuda_version(v) -> str | None:
    """NVML encodes the CUDA driver API version as 1000*major + 10*minor (12040 -> '12.4')."""
    if v is None:
        return None
    v = int(v)
    return f"{v // 1000}.{(v % 1000) // 10}"


def snapshot(backend: Any | None = None, indices: tuple[int, ...] | None = None) -> SystemSnapshot:
    """One reading of every GPU (opens and closes NVML). Never raises for a missing GPU."""
    with NVMLSession(backend) as s:
        return s.snapshot(indices)


GPU_COLUMNS = tuple(f for f in GPUSnapshot.__dataclass_fields__ if f != "processes") + (
    "num_processes", "processes_mem_mib")


def gpu_rows(snap: SystemSnapshot) -> list[dict]:
    """Tidy rows, one per GPU, with the system fields repeated; processes are summarized.

    An unavailable snapshot gives one row with ``index=-1`` and its reason in ``error``.
    """
    base = {"timestamp": snap.timestamp, "available": snap.available,
            "driver_version": snap.driver_version, "cuda_driver_version": snap.cuda_driver_version}
    if not snap.available:
        row = dict.fromkeys(GPU_COLUMNS)
        row.update(index=-1, error=snap.reason)
        return [{**base, **row}]
    rows = []
    for g in snap.gpus:
        d = asdict(g)
        procs = d.pop("processes")
        d["num_processes"] = None if procs is None else len(procs)
        d["processes_mem_mib"] = None if procs is None else sum(
            p["used_memory_mib"] or 0.0 for p in procs)
        rows.append({**base, **d})
    return rows


def to_frame(snap: SystemSnapshot) -> pd.DataFrame:
    """The snapshot as a tidy table (see :func:`gpu_rows`)."""
    return pd.DataFrame(gpu_rows(snap), columns=["timestamp", "available", "driver_version",
                                                 "cuda_driver_version", *GPU_COLUMNS])


def gpu_label(snap: SystemSnapshot, index: int = 0) -> str | None:
    """A profile-table GPU label from NVML's name: 'NVIDIA A100-SXM4-80GB' -> 'A100-SXM4-80GB'."""
    for g in snap.gpus:
        if g.index == index and g.name:
            return g.name.removeprefix("NVIDIA ").strip().replace(" ", "-")
    return None
