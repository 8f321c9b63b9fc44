"""Sweeps on any :class:`concurrent.futures.Executor`: local processes, threads, Dask.

Every sweep of the kit (experiment panels, profile grids, latency validation runs) maps one
picklable function over independent work items with :func:`map_tasks`. Where they run is the
caller's choice:

``executor=None, workers=1``
    inline, in this process, in task order;
``executor=None, workers=N``
    a local :class:`~concurrent.futures.ProcessPoolExecutor` of ``min(N, cores, tasks)``
    processes, made and shut down here (started with ``start_method``; the solver sweeps use
    ``"spawn"`` because HiGHS keeps a global thread pool that a forked child inherits broken).
    Its workers die with this process, even when it is killed with ``kill -9`` (Linux:
    ``PR_SET_PDEATHSIG``; elsewhere a thread that watches the parent), so none is left
    computing a task that a rerun computes again;
``executor=<any Executor>``
    e.g. a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, or a Dask cluster's
    ``client.get_executor()`` (a :class:`distributed.cfexecutor.ClientExecutor`: ``submit``
    sends the task to the cluster and returns a :class:`concurrent.futures.Future`). The
    caller owns it: it is never shut down here.

Results come back in TASK order, never completion order, and each task is a pure function of
its inputs, so a sweep returns the same results whatever runs them.

Failures: the first task that raises stops the sweep: tasks not yet started are cancelled,
tasks already running are waited for and kept, and :class:`~routerwise.errors.SweepFailed`
names the failed task and carries every finished result (``completed``), the failures
(``failed``) and what never ran (``not_run``). ``KeyboardInterrupt`` is not wrapped.

Resuming: with ``checkpoint=<folder>`` each finished result is written atomically, as it
arrives, to ``<folder>/<key>.pkl``, where ``key = task_key((salt, fn, task))`` is a digest of
the task's content (:func:`task_key`). A rerun with the same folder reuses every intact
result and computes only the missing ones, so a sweep interrupted by a failed executor
finishes with nothing lost and nothing computed twice. The folder must be writable: that is
checked before any task runs (:class:`~routerwise.errors.ValidationError` naming it); a
result that cannot be written later is kept in memory and reported in a warning, never
blamed on its task. Runs that share a folder share the work: a run computes a task only
while it holds that key's lock (``fcntl.flock`` on ``<folder>/<key>.lock``, released by the
kernel when its holder dies, so a killed run never blocks the next), waits for the tasks
another run is computing and reuses their results. The checkpoint resumes one sweep; it is
not a cache across code changes: pass a new ``salt`` (or a new folder) when the code that
computes the results changes. Sweeps that keep their own per-item files (the profile grid's
checksummed curve chunks) use ``on_result`` instead.

Trust: checkpoints are pickles, and unpickling runs code, so a file is unpickled only after
its HMAC-SHA256, under a per-user secret key kept in the cache folder
(:func:`routerwise.settings.cache_dir`, file ``checkpoint.key``, created with mode 0600 when
missing), checks out. A file planted in a checkpoint folder by anyone without that key is
computed again, never loaded, so the checkpoint folder itself need not be trusted; the cache
folder must be (writable only by you): whoever can write the key can forge checkpoints.
Checkpoints written under another user's (or machine's) key are computed again.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import enum
import functools
import hashlib
import hmac
import math
import os
import pickle
import secrets
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

from .errors import SweepFailed, ValidationError
from .io import atomic_write

__all__ = ["map_tasks", "task_key", "CHECKPOINT_SUFFIX"]

CHECKPOINT_SUFFIX = ".pkl"
# v2: HMAC-signed (v1 files, checked by a bare sha256 anyone can recompute, are computed again)
_MAGIC = b"routerwise-checkpoint-v2\n"


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

_SECRET_FILE = "checkpoint.key"
_LOCK_SUFFIX = ".lock"
_LOCK_POLL_S = 0.2


def _secret_key() -> tuple[bytes, Path]:
    """This user's checkpoint signing key (and its file), created 0600 when missing."""
    from .settings import cache_dir
    path = cache_dir() / _SECRET_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{_SECRET_FILE}.", dir=path.parent)  # 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_hex(32).encode())
                try:  # link, not rename: concurrent first runs must all end up with one key
                    os.link(tmp, path)
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            st, secret = os.fstat(f.fileno()), f.read()
    except OSError as e:
        raise ValidationError(
            f"cannot read or create the checkpoint key {path} ({e}): set ROUTERWISE_CACHE_DIR "
            f"to a folder that only you can write") from e
    if hasattr(os, "geteuid") and (st.st_uid != os.geteuid() or st.st_mode & 0o077):
        raise ValidationError(
            f"the checkpoint key {path} is not private (owner uid {st.st_uid}, mode "
            f"{st.st_mode & 0o777:o}): whoever can read or write it can forge checkpoints; "
            f"delete it (a new one is made) or chown it to yourself and chmod 600 it")
    if len(secret) < 32:
        raise ValidationError(f"the checkpoint key {path} is truncated: delete it (a new one "
                              f"is made; existing checkpoints are then computed again)")
    return secret, path


def _mac(secret: bytes, key: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _MAGIC + key + b"\n" + payload, hashlib.sha256).hexdigest().encode()


def _check_writable(folder: Path) -> None:
    """Raise a ValidationError naming ``folder`` unless a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValidationError(
            f"checkpoint folder {folder} is not writable ({e.strerror or e}): pass a folder "
            f"you can write, or fix its permissions; nothing was computed") from e


def _write_checkpoint(path: Path, key: str, result, secret: bytes) -> None:
    payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    k = key.encode()
    atomic_write(path, _MAGIC + k + b"\n" + _mac(secret, k, payload) + b"\n" + payload)


def _read_checkpoint(path: Path, key: str, secret: bytes):
    """(found, result, bad): ``found`` for an authentic checkpoint of ``key``; ``bad`` for a
    file that is there but corrupt, forged, or another task's (it is computed again)."""
    try:
        blob = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # the folder's problems are checked later
        return False, None, False
    parts = blob[len(_MAGIC):].split(b"\n", 2) if blob.startswith(_MAGIC) else []
    ok = len(parts) == 3
    if ok:  # authentic: signed with this user's key; checked before anything is unpickled
        got_key, mac, payload = parts
        ok = hmac.compare_digest(mac, _mac(secret, got_key, payload))
    if ok:  # and written for this task, not another task's file moved here
        ok = got_key == key.encode()
    if ok:
        try:
            return True, pickle.loads(payload), False
        except Exception:  # noqa: BLE001 - a result that no longer unpickles: compute it again
            pass
    return False, None, True


class _KeyLock:
    """An exclusive claim on one task key among the processes that share a checkpoint folder.

    ``fcntl.flock`` on ``<key>.lock``: the kernel releases it when the holder exits, however
    it exits, so a lock is never stale. The file is unlinked while still locked; a claimant
    that locked a file which was unlinked meanwhile sees another inode at the path and
    tries again. Without ``fcntl`` (Windows) every claim succeeds.
    """

    def __init__(self, path: Path, fd: int | None):
        self.path, self.fd = path, fd

    @classmethod
    def try_acquire(cls, path: Path) -> _KeyLock | None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return cls(path, None)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------- pool workers

def _die_with_parent(parent: int | None) -> None:
    """Initializer of the local pool's workers: end the worker when the sweep's process dies.

    Linux: ``PR_SET_PDEATHSIG`` (SIGKILL on the parent's death, ``kill -9`` included; the pool
    starts its workers from the thread that submits, which outlives them). Elsewhere a daemon
    thread exits the worker once its parent changes. ``parent`` is the expected parent pid
    (None when a fork server starts the workers; it exits with this process in turn).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    here = os.getppid()
    if parent is not None and here != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == here:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, name="routerwise-parent-watch", daemon=True).start()


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
    ValidationError
        Bad arguments; a task without a :func:`task_key`; a ``checkpoint`` folder that is not
        writable (checked before any task runs); a checkpoint key that is not private.
    """
    tasks = list(tasks)
    if executor is not None and not isinstance(executor, cf.Executor):
        raise ValidationError(
            f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}: "
            f"for Dask pass client.get_executor()")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValidationError(f"workers must be a positive integer or None, got {workers!r}")
    n = len(tasks)
    results: dict[int, Any] = {}
    folder: Path | None = None
    keys: list[str] = []
    secret = b""
    bad: set[int] = set()  # checkpoint files already reported as failing their check

    def load(i: int) -> bool:
        found, r, corrupt = _read_checkpoint(folder / f"{keys[i]}{CHECKPOINT_SUFFIX}", keys[i],
                                             secret)
        if found:
            results[i] = r
        elif corrupt and i not in bad:
            bad.add(i)
            warnings.warn(f"checkpoint {folder / keys[i]}{CHECKPOINT_SUFFIX} fails its "
                          f"integrity check (corrupt, another task's, or not signed with "
                          f"this user's key); computing it again", RuntimeWarning, stacklevel=3)
        return found

    if checkpoint is not None:
        folder = Path(checkpoint)
        keys = [task_key((salt, fn, t if key_of is None else key_of(t))) for t in tasks]
        secret, _ = _secret_key()
        for i in range(n):
            load(i)
    pending = [i for i in range(n) if i not in results]
    if folder is not None and pending:
        _check_writable(folder)
    failed: dict[int, BaseException] = {}
    unwritten: list[tuple[int, OSError]] = []
    held: dict[int, _KeyLock] = {}

    from .settings import progress_bar
    bar = progress_bar(total=n, initial=n - len(pending), desc=desc, unit="task",
                       disable=not progress)

    def accept(i: int, value) -> None:
        try:  # on_result first: a result is checkpointed only once its caller has it
            if on_result is not None:
                on_result(i, value)
            if folder is not None:
                try:
                    _write_checkpoint(folder / f"{keys[i]}{CHECKPOINT_SUFFIX}", keys[i], value,
                                      secret)
                except OSError as e:  # the folder's fault, not the task's: keep the result
                    unwritten.append((i, e))
        except Exception as e:  # noqa: BLE001 - reported as this task's failure
            failed[i] = e
            return
        results[i] = value
        bar.update(1)

    def claim(todo: list[int]) -> tuple[list[int], list[int]]:
        """Split ``todo`` into the tasks this run now holds the lock of and still has to
        compute, and those another run is computing; reuse what another run finished."""
        mine, busy = [], []
        for i in todo:
            lock = _KeyLock.try_acquire(folder / f"{keys[i]}{_LOCK_SUFFIX}")
            if lock is None:
                busy.append(i)
            elif load(i):  # finished by another run since this one looked
                lock.release()
                bar.update(1)
            else:
                held[i] = lock
                mine.append(i)
        return mine, busy

    not_run: list[int] = []
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        stack.callback(lambda: [held.pop(i).release() for i in list(held)])
        local = executor is None
        if local:
            cap = workers if workers is not None else (os.cpu_count() or 1)
            cap = min(cap, os.cpu_count() or 1, len(pending))
        pool: cf.Executor | None = executor

        def run(batch: list[int]) -> list[int]:
            nonlocal pool
            if local and cap <= 1:
                for pos, i in enumerate(batch):
                    try:
                        value = fn(tasks[i])
                    except Exception as e:  # noqa: BLE001 - carried by SweepFailed
                        failed[i] = e
                    else:
                        accept(i, value)
                    if failed:
                        return batch[pos + 1:]
                return []
            if pool is None:
                import multiprocessing as mp
                ctx = mp.get_context(start_method)
                direct = ctx.get_start_method() in ("fork", "spawn")  # children of this process
                pool = stack.enter_context(cf.ProcessPoolExecutor(
                    max_workers=cap, mp_context=ctx, initializer=_die_with_parent,
                    initargs=(os.getpid() if direct else None,)))
            return _drain(pool, fn, tasks, batch, accept, failed)

        todo = pending
        while todo and not failed:
            if folder is None:
                batch, todo = todo, []
            else:
                batch, todo = claim(todo)
                if not batch:
                    if todo:  # all of them are being computed by another run: wait for it
                        time.sleep(_LOCK_POLL_S)
                    continue
            not_run.extend(run(batch))
            for i in batch:
                if i in held:
                    held.pop(i).release()
        not_run = sorted(not_run + (todo if failed else []))
    if unwritten:
        i, e = unwritten[0]
        warnings.warn(
            f"{desc}: {len(unwritten)} result(s) could not be written to the checkpoint folder "
            f"{folder} (task {i}: {e}); they are returned, but a rerun computes them again: "
            f"free space or fix the folder's permissions", RuntimeWarning, stacklevel=2)
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
