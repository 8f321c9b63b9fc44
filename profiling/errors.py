"""Typed errors of the profiling package, in the kit's :class:`~routerwise.errors.RouterWiseError`
family. Each message says what failed and what to do about it."""

from __future__ import annotations

from routerwise.errors import RouterWiseError


class ProfilingError(RouterWiseError):
    """Base class of the errors :mod:`profiling` raises on purpose."""


class ToolUnavailable(ProfilingError, RuntimeError):
    """A program or package a step needs is not installed (nvidia-cuda-mps-control, torch)."""


class EngineStartError(ProfilingError, RuntimeError):
    """A serving engine exited or never became healthy; the message carries its log tail.

    ``kind`` says why, when known: ``"port_busy"``, ``"bad_model"``, ``"out_of_memory"``,
    ``"timeout"``, ``"affinity"`` (a process to pin to CPU cores was not found) or
    ``"exited"`` (any other exit)."""

    def __init__(self, message: str, kind: str = "exited"):
        super().__init__(message)
        self.kind = kind


class MPSError(ProfilingError, RuntimeError):
    """The NVIDIA MPS control daemon failed to start or stop."""


class ResultExists(ProfilingError, FileExistsError):
    """A finished measurement is already on disk and would be overwritten."""


class PointFailed(ProfilingError, RuntimeError):
    """Load points measured a failing endpoint (nothing completed, connection or protocol
    faults); they were kept apart and not recorded as profile points. ``table`` is the
    profile table of the points that did finish."""

    def __init__(self, message: str, table=None):
        super().__init__(message)
        self.table = table
