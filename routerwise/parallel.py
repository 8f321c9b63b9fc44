"""Sweeps on any :class:`concurrent.futures.Executor`: local processes, threads, Dask, Ray.

Every sweep of the kit (experiment panels, profile grids, latency validation runs) maps one
picklable function over independent work items with :func:`map_tasks`. Where they run is the
caller's choice:

``executor=None, workers=1``
    inline, in this process, in task order;
``executor=None, workers=N``
    a local :class:`~concurrent.futures.ProcessPoolExecutor` of ``min(N, cores, tasks)``
    processes, made and shut down here (started with ``start_method``; the solver sweeps use
    ``"spawn"`` because HiGHS keeps a global thread pool that a forked child inherits broken);
``executor=<any Executor>``
    e.g. a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a Dask cluster's
    ``client.get_executor()`` (a :class:`distributed.cfexecutor.ClientExecutor`: ``submit``
    sends the task to the cluster and returns a :class:`concurrent.futures.Future`), or
    :class:`RayExecutor`. The caller owns it: it is never shut down here.

Results come back in TASK order, never completion order, and each task is a pure function of
its inputs, so a sweep returns the same results whatever runs it.

Failures: the first task that raises stops the sweep: tasks not yet started are cancelled,
tasks already running are waited for and kept, and :class:`~routerwise.errors.SweepFailed`
names the failed task and carries every finished result (``completed``), the failures
(``failed``) and what never ran (``not_run``). ``KeyboardInterrupt`` is not wrapped.

Resuming: with ``checkpoint=<folder>`` each finished result is written atomically, as it
arrives, to ``<folder>/<key>.pkl``, where ``key = task_key((salt, fn, task))`` is a digest of
the task's content (:func:`task_key`). A rerun with the same folder reuses every intact
result and computes only the missing ones, so a sweep interrupted by a failed executor
finishes with nothing lost and nothing computed twice. The checkpoint resumes one sweep; it
is not a cache across code changes: pass a new ``salt`` (or a new folder) when the code
that computes the results changes. Sweeps that keep their own per-item files (the profile
grid's checksummed curve chunks) use ``on_result`` instead.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import enum
import functools
import hashlib
import math
import os
import pickle
import warnings
from pathlib import Path, PurePath
from typing import Any
from collections.abc import Callable, Sequence

from .errors import SweepFailed, ValidationError
from .io import atomic_write

__all__ = ["map_tasks", "task_key", "RayExecutor", "CHECKPOINT_SUFFIX"]

CHECKPOINT_SUFFIX = ".pkl"
_MAGIC = b"routerwise-checkpoint-v1\n"


# ----------------------------------------------------------------------------- task keys

def task_key(obj: Any) -> str:
    """A sha256 hex digest of ``obj``'s content, the same in every process and session.

    Covers None, bool, int, float (exact, via ``float.hex``), complex, str, bytes, paths,
    enums, tuples and lists (ordered), dicts, sets and frozensets (unordered), dataclass
    instances (their type and declared fields only: cached properties are left out), numpy
    arrays and scalars (dtype, shape, bytes), pandas DataFrames and Series (columns, dtypes,
    index and values), and functions (module and qualified name; partials with their
    arguments). Anything else raises :class:`ValidationError`: a checkpoint key must not
    depend on object identity or on ``PYTHONHASHSEED`` (which ``pickle`` bytes of a set do).
    """
    h = hashlib.sha256()
    _feed(h, obj, depth=0)
    return h.hexdigest()


def _feed(h, obj, depth: int) -> None:  # noqa: C901 - one branch per supported kind
    if depth > 64:
        raise ValidationError("task_key: object nested more than 64 levels deep (a cycle?)")
    d = depth + 1

    def tag(t: str, payload: bytes = b"") -> None:
        h.update(f"{t}:{len(payload)}:".encode())
        h.update(payload)

    if obj is None or isinstance(obj, bool):
        tag("c", repr(obj).encode())
    elif isinstance(obj, enum.Enum):
        tag("enum", f"{type(obj).__module__}.{type(obj).__qualname__}.{obj.name}".encode())
    elif isinstance(obj, int):
        tag("i", str(int(obj)).encode())
    elif isinstance(obj, float):
        tag("f", (float(obj).hex() if math.isfinite(obj) else repr(float(obj))).encode())
    elif isinstance(obj, complex):
        tag("z", f"{obj.real.hex()},{obj.imag.hex()}".encode())
    elif isinstance(obj, str):
        tag("s", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (bytes, bytearray)):
        tag("b", bytes(obj))
    elif isinstance(obj, PurePath):
        tag("path", str(obj).encode())
    elif isinstance(obj, (tuple, list)):
        tag("seq" if isinstance(obj, tuple) else "list", str(len(obj)).encode())
        for x in obj:
            _feed(h, x, d)
    elif isinstance(obj, dict):
        items = sorted((_key_part(k, d), _key_part(v, d)) for k, v in obj.items())
        tag("dict", "".join(k + v for k, v in items).encode())
    elif isinstance(obj, (set, frozenset)):
        tag("set", "".join(sorted(_key_part(x, d) for x in obj)).encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        tag("dc", f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
        for f in dataclasses.fields(obj):
            tag("field", f.name.encode())
            _feed(h, getattr(obj, f.name), d)
    elif isinstance(obj, functools.partial):
        tag("partial")
        _feed(h, (obj.func, obj.args, obj.keywords), d)
    elif callable(obj) and hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
        tag("fn", f"{obj.__module__}.{obj.__qualname__}".encode())
    elif _is_numpy(obj):
        import numpy as np
        a = np.ascontiguousarray(obj)
        if a.dtype.hasobject:
            tag("ndarray-object", f"{a.shape}".encode())
            for x in a.ravel().tolist():
                _feed(h, x, d)
        else:
            tag("ndarray", f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    elif _is_pandas(obj):
        import pandas as pd
        frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
        tag("pandas", type(obj).__name__.encode())
        _feed(h, [str(c) for c in frame.columns], d)
        _feed(h, [str(t) for t in frame.dtypes], d)
        _feed(h, pd.util.hash_pandas_object(frame, index=True).to_numpy(), d)
    else:
        raise ValidationError(
            f"task_key cannot digest a {type(obj).__module__}.{type(obj).__qualname__}: give "
            f"the task plain values (numbers, strings, tuples, dicts, dataclasses, numpy or "
            f"pandas data), or run the sweep without a checkpoint")


def _key_part(obj, depth: int) -> str:
    h = hashlib.sha256()
    _feed(h, obj, depth)
    return h.hexdigest()


def _is_numpy(obj) -> bool:
    mod = type(obj).__module__
    return mod == "numpy" or mod.startswith("numpy.")


def _is_pandas(obj) -> bool:
    mod = type(obj).__module__
    return (mod == "pandas" or mod.startswith("pandas.")) and type(obj).__name__ in (
        "DataFrame", "Series")


# ----------------------------------------------------------------------------- checkpoint files

def _write_checkpoint(path: Path, key: str, result) -> None:
    payload = pickle.dumps((key, result), protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(path, _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def _read_checkpoint(path: Path, key: str):
    """(True, result) for an intact checkpoint of ``key``; (False, None) when absent. A file
    that fails its checksum or does not unpickle is reported and computed again."""
    if not path.is_file():
        return False, None
    blob = path.read_bytes()
    head = len(_MAGIC) + 65
    ok = blob.startswith(_MAGIC) and len(blob) > head
    if ok:
        digest, payload = blob[len(_MAGIC):head - 1].decode("ascii", "replace"), blob[head:]
        ok = hashlib.sha256(payload).hexdigest() == digest
    if ok:
        try:
            got_key, result = pickle.loads(payload)
            ok = got_key == key
        except Exception:  # noqa: BLE001 - any unpickling failure means "compute it again"
            ok = False
    if not ok:
        warnings.warn(f"checkpoint {path} fails its integrity check; computing it again",
                      RuntimeWarning, stacklevel=4)
        return False, None
    return True, result


# ----------------------------------------------------------------------------- the sweep

def map_tasks(fn: Callable, tasks: Sequence, *, executor: cf.Executor | None = None,
              workers: int | None = 1, start_method: str | None = None,
              progress: bool = False, desc: str = "tasks",
              on_result: Callable[[int, Any], None] | None = None,
              checkpoint: str | os.PathLike | None = None, salt: str = "",
              key_of: Callable[[Any], Any] | None = None) -> list:
    """``[fn(t) for t in tasks]``, run on ``executor`` (see the module notes), in task order.

    Parameters
    ----------
    fn
        A module-level function (picklable by reference) of one argument.
    tasks
        The work items; each must pickle (and, with ``checkpoint``, have a :func:`task_key`).
    executor
        Any :class:`concurrent.futures.Executor`; the caller owns it (never shut down here).
    workers
        Without ``executor``: ``1`` (or ``None`` with one core) runs inline; ``N > 1`` runs a
        local process pool of ``min(N, cores, pending tasks)``; ``None`` uses every core.
    start_method
        The local pool's start method (``"spawn"``, ``"fork"``, ``"forkserver"``; ``None``:
        the platform's default). Ignored with ``executor``.
    progress, desc
        A tqdm bar over all tasks (resumed ones count as done).
    on_result
        ``on_result(index, result)``, called in this process for each newly computed result
        as it arrives (completion order); its failure fails that task.
    checkpoint, salt, key_of
        A folder for per-task result files (see the module notes); ``salt`` enters each key;
        ``key_of(task)`` (called here) names the part of a task that determines its result
        when the rest (e.g. how many processes it may use) does not.

    Raises
    ------
    SweepFailed
        A task (or ``on_result`` for it, or the executor's ``submit``) raised; finished
        results are in ``.completed`` and, with ``checkpoint``, on disk.
    """
    tasks = list(tasks)
    if executor is not None and not isinstance(executor, cf.Executor):
        raise ValidationError(
            f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}: "
            f"for Dask pass client.get_executor(), for Ray routerwise.parallel.RayExecutor()")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValidationError(f"workers must be a positive integer or None, got {workers!r}")
    n = len(tasks)
    results: dict[int, Any] = {}
    paths: list[Path] | None = None
    keys: list[str] = []
    if checkpoint is not None:
        folder = Path(checkpoint)
        keys = [task_key((salt, fn, t if key_of is None else key_of(t))) for t in tasks]
        paths = [folder / f"{k}{CHECKPOINT_SUFFIX}" for k in keys]
        for i, (p, k) in enumerate(zip(paths, keys)):
            found, r = _read_checkpoint(p, k)
            if found:
                results[i] = r
    pending = [i for i in range(n) if i not in results]
    failed: dict[int, BaseException] = {}

    from .settings import progress_bar
    bar = progress_bar(total=n, initial=n - len(pending), desc=desc, unit="task",
                       disable=not progress)

    def accept(i: int, value) -> None:
        try:  # on_result first: a result is checkpointed only once its caller has it
            if on_result is not None:
                on_result(i, value)
            if paths is not None:
                _write_checkpoint(paths[i], keys[i], value)
        except Exception as e:  # noqa: BLE001 - reported as this task's failure
            failed[i] = e
            return
        results[i] = value
        bar.update(1)

    not_run: list[int] = []
    try:
        local = executor is None
        if local:
            cap = workers if workers is not None else (os.cpu_count() or 1)
            cap = min(cap, os.cpu_count() or 1, len(pending))
        if local and cap <= 1:
            for pos, i in enumerate(pending):
                try:
                    value = fn(tasks[i])
                except Exception as e:  # noqa: BLE001 - carried by SweepFailed
                    failed[i] = e
                else:
                    accept(i, value)
                if failed:
                    not_run = pending[pos + 1:]
                    break
        elif local:
            import multiprocessing as mp
            ctx = mp.get_context(start_method) if start_method else None
            with cf.ProcessPoolExecutor(max_workers=cap, mp_context=ctx) as pool:
                not_run = _drain(pool, fn, tasks, pending, accept, failed)
        else:
            not_run = _drain(executor, fn, tasks, pending, accept, failed)
    finally:
        bar.close()
    if failed:
        first = min(failed)
        e = failed[first]
        where = (f"; the {len(results)} finished results are kept in {checkpoint}: rerun with "
                 f"the same checkpoint to compute only the {n - len(results)} missing"
                 if checkpoint is not None else
                 "; the finished results are in this error's .completed (pass checkpoint= "
                 "to keep them on disk and resume)")
        raise SweepFailed(
            f"{desc}: task {first} of {n} failed ({type(e).__name__}: {e}); "
            f"{len(failed)} failed, {len(results)} finished, {len(not_run)} not run{where}",
            completed=dict(sorted(results.items())), failed=failed, not_run=tuple(not_run),
            total=n) from e
    return [results[i] for i in range(n)]


def _drain(executor: cf.Executor, fn, tasks, pending, accept, failed) -> list[int]:
    """Submit ``pending`` to ``executor``, accept results as they complete; stop at the first
    failure (cancel what has not started, keep what is running). Returns the indices not run."""
    futures: dict[cf.Future, int] = {}
    not_run: list[int] = []
    for pos, i in enumerate(pending):
        try:
            futures[executor.submit(fn, tasks[i])] = i
        except Exception as e:  # noqa: BLE001 - a shut-down or broken executor
            failed[i] = e
            not_run = list(pending[pos + 1:])
            break

    def settle(fut: cf.Future, i: int) -> None:
        try:
            value = fut.result()
        except cf.CancelledError:
            not_run.append(i)
        except Exception as e:  # noqa: BLE001 - carried by SweepFailed
            failed[i] = e
        else:
            accept(i, value)

    seen: set[cf.Future] = set()
    try:
        if not failed:
            for fut in cf.as_completed(futures):
                seen.add(fut)
                settle(fut, futures[fut])
                if failed:
                    break
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    # after a failure: cancel what has not started (a cancelled future may never be
    # "notified", so as_completed is not used for them), wait for what is running
    rest = [f for f in futures if f not in seen]
    cancelled = {f for f in rest if f.cancel()}
    for fut in rest:
        if fut in cancelled:
            not_run.append(futures[fut])
        else:
            settle(fut, futures[fut])
    return sorted(not_run)


# ----------------------------------------------------------------------------- Ray

class RayExecutor(cf.Executor):
    """A thin :class:`concurrent.futures.Executor` over Ray tasks (Ray is not a dependency).

    Ray ships no ``concurrent.futures.Executor`` (``ray.util.multiprocessing.Pool`` follows
    the ``multiprocessing.Pool`` API instead; a ``RayExecutor`` was proposed upstream, in
    ray-project/ray#29456, but not merged). Each :meth:`submit` runs ``fn`` as a Ray task,
    ``ray.remote(**options)(fn).remote(*args, **kwargs)``, and returns
    ``ObjectRef.future()``, the :class:`concurrent.futures.Future` Ray documents for an object
    reference. Call ``ray.init(...)`` first (or let Ray start a local instance);
    ``options`` are Ray task options, e.g. ``num_cpus=1, max_retries=2``.
    """

    def __init__(self, **options):
        try:
            import ray
        except ImportError as e:
            raise ValidationError("RayExecutor needs Ray: pip install 'ray[default]'") from e
        self._ray = ray
        self._options = options
        self._remote: dict = {}
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        if self._shutdown:
            raise RuntimeError("cannot schedule new tasks after shutdown")
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = (self._ray.remote(**self._options)(fn)
                                         if self._options else self._ray.remote(fn))
        return remote.remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; Ray itself (``ray.shutdown()``) stays the caller's."""
        self._shutdown = True
