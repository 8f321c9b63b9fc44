"""Checkpointed sweeps under hostile or failing conditions: planted files never run code, a
checkpoint of another task is not used, an unwritable folder is refused before anything runs,
two runs on one folder never compute a task twice, and pool workers die with their parent."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO

from routerwise import parallel
from routerwise.errors import ValidationError
from routerwise.parallel import CHECKPOINT_SUFFIX, map_tasks, task_key


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder (home of the checkpoint key) of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(folder))
    return folder


CALLS: list = []


def counted_sqrt(x):
    """math.sqrt that records what it computed (inline sweeps run in this process)."""
    CALLS.append(x)
    return math.sqrt(x)


@pytest.fixture
def calls():
    CALLS.clear()
    return CALLS


def _ck_path(folder: Path, x, salt: str = "") -> Path:
    return folder / f"{task_key((salt, counted_sqrt, x))}{CHECKPOINT_SUFFIX}"


class _Mkdir:
    """Unpickling this creates a folder: the visible trace of code run by a planted file."""

    def __init__(self, where: Path):
        self.where = str(where)

    def __reduce__(self):
        return os.mkdir, (self.where,)


# ----------------------------------------------------------------------------- planted files

def test_a_planted_checkpoint_never_runs_code(tmp_path, calls, cache):
    ck = tmp_path / "ck"
    map_tasks(counted_sqrt, [16.0], checkpoint=ck)  # a genuine file, to forge the new layout from
    genuine = _ck_path(ck, 16.0).read_bytes()
    header = b"\n".join(genuine.split(b"\n", 3)[:3]) + b"\n"  # magic, key, signature
    marks = {x: tmp_path / f"ran-{x:g}" for x in (4.0, 9.0, 25.0)}
    k4, k9 = (task_key(("", counted_sqrt, x)) for x in (4.0, 9.0))
    # the old layout: magic, an unkeyed sha256 of the payload, the payload
    p4 = pickle.dumps((k4, _Mkdir(marks[4.0])))
    _ck_path(ck, 4.0).write_bytes(b"routerwise-checkpoint-v1\n"
                                  + hashlib.sha256(p4).hexdigest().encode() + b"\n" + p4)
    # the current layout with a copied signature, and a bare pickle
    _ck_path(ck, 9.0).write_bytes(header.replace(task_key(("", counted_sqrt, 16.0)).encode(),
                                                 k9.encode())
                                  + pickle.dumps(_Mkdir(marks[9.0])))
    _ck_path(ck, 25.0).write_bytes(pickle.dumps(_Mkdir(marks[25.0])))
    calls.clear()

    with pytest.warns(RuntimeWarning, match="integrity") as got:
        out = map_tasks(counted_sqrt, [4.0, 9.0, 25.0, 16.0], checkpoint=tmp_path / "ck")
    assert not [m for m in marks.values() if m.exists()]  # nothing was unpickled
    assert out == [2.0, 3.0, 5.0, 4.0] and sorted(calls) == [4.0, 9.0, 25.0]
    assert len([w for w in got if "integrity" in str(w.message)]) == 3
    assert map_tasks(counted_sqrt, [4.0, 9.0, 25.0], checkpoint=ck) == [2.0, 3.0, 5.0]  # rewritten
    assert len(calls) == 3


def test_the_key_is_private_and_checkpoints_signed_with_another_key_are_computed_again(
        tmp_path, calls, cache, monkeypatch):
    ck = tmp_path / "ck"
    assert map_tasks(counted_sqrt, [4.0], checkpoint=ck) == [2.0]
    calls.clear()
    key = cache / "checkpoint.key"
    assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path / "another-user"))
    with pytest.warns(RuntimeWarning, match="integrity"):
        assert map_tasks(counted_sqrt, [4.0], checkpoint=ck) == [2.0]
    assert calls == [4.0]
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(cache))
    key.chmod(0o644)  # readable by others: anyone could forge
    with pytest.raises(ValidationError, match="not private.*chmod 600"):
        map_tasks(counted_sqrt, [4.0], checkpoint=ck)


def test_a_checkpoint_of_another_task_is_not_used(tmp_path, calls, cache):
    """A file signed for task 4.0, moved to task 9.0's name, is authentic but not 9.0's."""
    ck = tmp_path / "ck"
    map_tasks(counted_sqrt, [4.0], checkpoint=ck)
    shutil.copy(_ck_path(ck, 4.0), _ck_path(ck, 9.0))
    calls.clear()
    with pytest.warns(RuntimeWarning, match="integrity"):
        assert map_tasks(counted_sqrt, [9.0, 4.0], checkpoint=ck) == [3.0, 2.0]
    assert calls == [9.0]


# ----------------------------------------------------------------------------- unwritable

def test_a_checkpoint_folder_that_is_a_file_is_refused_before_any_task_runs(tmp_path, calls,
                                                                            cache):
    where = tmp_path / "taken"
    where.write_text("not a folder")
    with pytest.raises(ValidationError, match=f"checkpoint folder {where} is not writable"):
        map_tasks(counted_sqrt, [1.0, 4.0], checkpoint=where)
    assert calls == []


def test_a_read_only_checkpoint_folder_is_refused_before_any_task_runs(tmp_path, calls,
                                                                       monkeypatch):
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    # permissions do not bind root: then act as nobody, in folders nobody can reach
    base = Path(tempfile.mkdtemp()) if as_root else tmp_path
    try:
        base.chmod(0o755)
        cache, ck = base / "cache", base / "ck"
        cache.mkdir()
        ck.mkdir(mode=0o555)
        ck.chmod(0o555)
        if as_root:
            os.chown(cache, 65534, 65534)
        monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(cache))
        try:
            if as_root:
                os.seteuid(65534)
            with pytest.raises(ValidationError, match=f"checkpoint folder {ck} is not writable"):
                map_tasks(counted_sqrt, [1.0, 4.0], checkpoint=ck)
        finally:
            if as_root:
                os.seteuid(0)
        assert calls == []
    finally:
        (base / "ck").chmod(0o755)
        if as_root:
            shutil.rmtree(base)


def test_a_failed_write_keeps_the_result_and_does_not_blame_the_task(tmp_path, calls, cache,
                                                                       monkeypatch):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(parallel, "atomic_write", disk_full)
    with pytest.warns(RuntimeWarning, match=r"2 result\(s\) could not be written to the "
                                            r"checkpoint folder .*No space left"):
        assert map_tasks(counted_sqrt, [1.0, 4.0], checkpoint=tmp_path / "ck") == [1.0, 2.0]
    assert calls == [1.0, 4.0]


# ----------------------------------------------------------------------------- processes

SCRIPT = textwrap.dedent("""
    import json, os, sys, time, uuid
    from pathlib import Path

    from routerwise.parallel import map_tasks

    def work(x):
        out = Path(os.environ["COUNT_DIR"])
        (out / f"{x}-{os.getpid()}-{uuid.uuid4().hex}").write_text("")
        release = Path(os.environ.get("RELEASE", "/nonexistent"))
        if os.environ.get("BLOCK") == "1":
            deadline = time.monotonic() + 120
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        else:
            time.sleep(0.05)
        return x * x

    if __name__ == "__main__":
        name, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        barrier = Path(os.environ["BARRIER"])
        (barrier / name).write_text("")
        deadline = time.monotonic() + 300
        while len(list(barrier.iterdir())) < int(os.environ["PARTIES"]):
            assert time.monotonic() < deadline, "the other run never started"
            time.sleep(0.05)
        out = map_tasks(work, range(n), workers=workers, start_method="spawn",
                        checkpoint=os.environ["CHECKPOINT"])
        print(json.dumps(out))
""")


def _env(tmp_path, cache, parties: int, **extra) -> dict:
    for d in ("counts", "barrier"):
        (tmp_path / d).mkdir(exist_ok=True)
    for f in (tmp_path / "barrier").iterdir():
        f.unlink()
    return {**os.environ, "PYTHONPATH": str(REPO), "ROUTERWISE_CACHE_DIR": str(cache),
            "COUNT_DIR": str(tmp_path / "counts"), "BARRIER": str(tmp_path / "barrier"),
            "CHECKPOINT": str(tmp_path / "ck"), "PARTIES": str(parties), **extra}


def _script(tmp_path) -> Path:
    path = tmp_path / "sweep.py"
    path.write_text(SCRIPT)
    return path


def _counts(tmp_path) -> dict[int, int]:
    seen: dict[int, int] = {}
    for f in (tmp_path / "counts").iterdir():
        x = int(f.name.split("-")[0])
        seen[x] = seen.get(x, 0) + 1
    return seen


def test_two_runs_on_one_folder_compute_each_task_once(tmp_path, cache):
    script, n = _script(tmp_path), 20
    env = _env(tmp_path, cache, parties=2)
    runs = [subprocess.Popen([sys.executable, str(script), name, str(n), workers],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for name, workers in (("a", "2"), ("b", "1"))]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [x * x for x in range(n)]
    assert _counts(tmp_path) == {x: 1 for x in range(n)}  # nothing computed twice


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _poll(what, deadline_s: float):
    """what() until it is truthy or the (generous) deadline passes; its last value."""
    end = time.monotonic() + deadline_s
    while True:
        got = what()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_a_killed_parent_and_the_rerun_takes_over(tmp_path, cache):
    script = _script(tmp_path)
    release = tmp_path / "release"
    env = _env(tmp_path, cache, parties=1, BLOCK="1", RELEASE=str(release))
    parent = subprocess.Popen([sys.executable, str(script), "a", "2", "2"], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        started = _poll(lambda: len(list((tmp_path / "counts").iterdir())) == 2, 300)
        assert started, "the two tasks never started"
        workers = {int(f.name.split("-")[1]) for f in (tmp_path / "counts").iterdir()}
        assert len(workers) == 2 and {_parent_of(p) for p in workers} == {parent.pid}

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=60)
        survivors = _poll(lambda: not {p for p in workers if _alive(p)}, 60)
        assert survivors, f"pool workers {sorted(p for p in workers if _alive(p))} outlived " \
                          f"their killed parent"
    finally:
        release.write_text("")
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=60)
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)

    # the dead run's locks do not block the rerun, which computes the two tasks once each
    env = _env(tmp_path, cache, parties=1)
    rerun = subprocess.run([sys.executable, str(script), "b", "2", "1"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1]) == [0, 1]
    assert _counts(tmp_path) == {0: 2, 1: 2}  # the killed run's starts and the rerun's
