"""Record GPU state at a fixed interval during a run, as a tidy table.

:class:`GPUSampler` runs :meth:`profiling.nvml.NVMLSession.snapshot` in a background thread and
keeps one row per GPU per sample (columns of :func:`profiling.nvml.gpu_rows` plus ``sample`` and
``elapsed_s``, seconds since the sampler started). The table is written atomically to ``path``
every ``flush_every_s`` and once more when the sampler stops, so an interrupted run keeps what it
had recorded: a hard kill (``kill -9``) loses at most the last ``flush_every_s``, and inside
:func:`terminate_gracefully` (as ``python -m profiling sample`` runs) SIGTERM stops the sampler
like Ctrl-C, with a final write.

Failures are rows, not exceptions: a GPU that stops answering gives rows whose ``error`` says why
(the sampler keeps going, or stops after that sample with ``stop_on_error=True``); a machine
without NVML gives rows with ``index=-1`` and the reason. If an NVML call blocks (a lost GPU
can hang the driver), :meth:`GPUSampler.stop` gives up waiting after ``join_timeout_s``, writes
the rows it has and sets ``hung``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from routerwise.errors import ValidationError
from routerwise.io import atomic_write_with

from .nvml import GPU_COLUMNS, NVMLSession, gpu_rows

__all__ = ["COLUMNS", "GPUSampler", "terminate_gracefully"]

COLUMNS = ("sample", "elapsed_s", "timestamp", "available", "driver_version",
           "cuda_driver_version", *GPU_COLUMNS)


class GPUSampler:
    """Context manager: ``with GPUSampler("gpu.csv", interval_s=0.5): run_load(...)``."""

    def __init__(self, path: str | Path | None = None, interval_s: float = 1.0, *,
                 backend: Any | None = None, indices: tuple[int, ...] | None = None,
                 flush_every_s: float = 30.0, stop_on_error: bool = False,
                 join_timeout_s: float | None = None):
        if not interval_s > 0:
            raise ValidationError(f"interval_s must be > 0 seconds, got {interval_s}")
        if not flush_every_s > 0:
            raise ValidationError(f"flush_every_s must be > 0 seconds, got {flush_every_s}")
        if path is not None and Path(path).is_dir():
            raise ValidationError(f"sampler path {path} is a folder; give the CSV file to write")
        self.path = None if path is None else Path(path)
        self.interval_s = float(interval_s)
        self.flush_every_s = float(flush_every_s)
        self.stop_on_error = stop_on_error
        self.join_timeout_s = (max(5.0, 3 * self.interval_s) if join_timeout_s is None
                               else float(join_timeout_s))
        self._backend, self._indices = backend, indices
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.samples = 0
        self.hung = False

    def __enter__(self) -> GPUSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise ValidationError("this GPUSampler was already started; make a new one")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> pd.DataFrame:
        """Stop sampling, write the table (if a path was given) and return it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.join_timeout_s)
            self.hung = self._thread.is_alive()
        return self.flush()

    def frame(self) -> pd.DataFrame:
        """The rows recorded so far."""
        with self._lock:
            rows = list(self._rows)
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def flush(self) -> pd.DataFrame:
        df = self.frame()
        if self.path is not None:
            with self._write_lock:
                atomic_write_with(self.path, lambda tmp: df.to_csv(tmp, index=False))
        return df

    def _record(self, rows: list[dict]) -> None:
        elapsed = time.monotonic() - self._t0
        with self._lock:
            for r in rows:
                self._rows.append({"sample": self.samples, "elapsed_s": elapsed, **r})
            self.samples += 1

    def _run(self) -> None:
        last_flush = time.monotonic()
        try:
            with NVMLSession(self._backend) as session:
                while not self._stop.is_set():
                    t = time.monotonic()
                    rows = gpu_rows(session.snapshot(self._indices))
                    self._record(rows)
                    if self.stop_on_error and any(r.get("error") for r in rows):
                        break
                    due = time.monotonic() - last_flush >= self.flush_every_s
                    if self.path is not None and due:
                        self.flush()
                        last_flush = time.monotonic()
                    self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t)))
        except Exception as e:  # a sampler must never take the measured run down with it
            self._record([{"timestamp": time.time(), "available": False, "index": -1,
                           "error": f"sampler stopped: {type(e).__name__}: {e}"}])


@contextlib.contextmanager
def terminate_gracefully():
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` in the main thread (as
    Ctrl-C does), so ``with`` blocks unwind and a :class:`GPUSampler` writes its table.

    The previous handler is restored on exit. Outside the main thread (where Python cannot set
    signal handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the write
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
