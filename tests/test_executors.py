"""Sweeps on any concurrent.futures Executor: same results inline, on threads, on processes
and on a local Dask cluster; a failing executor loses nothing and a rerun computes only what
is missing."""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, in_ci, needs_mirror

from routerwise.errors import SweepFailed, ValidationError
from routerwise.optimize.exact_search import evaluate_all
from routerwise.paper import experiments as ex
from routerwise.paper.synthetic import synthetic_problem
from routerwise.parallel import CHECKPOINT_SUFFIX, map_tasks, task_key

try:
    import distributed
except ImportError:  # pragma: no cover - the test extra installs it
    distributed = None


# ----------------------------------------------------------------------------- executors

class CountingExecutor(cf.ThreadPoolExecutor):
    """A thread pool that counts what it was asked to compute."""

    def __init__(self, workers=2):
        super().__init__(workers)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


class FlakyExecutor(cf.Executor):
    """Runs submissions 1..k-1 inline, fails the k-th (a lost worker), and never starts the
    rest (they stay pending, as on a cluster whose scheduler went away)."""

    def __init__(self, k: int):
        self.k, self.submitted, self.started = k, 0, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        fut = cf.Future()
        if self.submitted < self.k:
            self.started += 1
            fut.set_result(fn(*args, **kwargs))
        elif self.submitted == self.k:
            fut.set_exception(RuntimeError("worker lost"))
        return fut


@pytest.fixture(scope="module")
def dask_executor():
    if distributed is None:
        if in_ci():
            pytest.fail("distributed is not importable in CI: install the 'test' extra")
        pytest.skip("distributed is not installed (pip install 'routerwise[cluster]')")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client.get_executor()


def _spawn_pool():
    return cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))


# ----------------------------------------------------------------------------- map_tasks

def _fail_on_two(x):
    if x == 2:
        raise ValueError("two is bad")
    return x


def test_results_come_in_task_order_not_completion_order():
    import threading
    accepted_last = threading.Event()

    def square(x):  # the first task finishes only after the last one's result was accepted
        if x == 0:
            assert accepted_last.wait(10)
        return x * x

    def accept(i, r):
        order.append(i)
        if i == 3:
            accepted_last.set()

    order = []
    with cf.ThreadPoolExecutor(4) as pool:
        out = map_tasks(square, [0, 1, 2, 3], executor=pool, on_result=accept)
    assert out == [0, 1, 4, 9]
    assert sorted(order) == [0, 1, 2, 3] and order.index(3) < order.index(0)


def test_the_caller_owns_the_executor():
    pool = cf.ThreadPoolExecutor(2)
    assert map_tasks(math.sqrt, [4.0, 9.0], executor=pool) == [2.0, 3.0]
    assert pool.submit(math.sqrt, 16.0).result() == 4.0  # still usable: not shut down
    pool.shutdown()


def test_a_failed_task_raises_sweep_failed_with_what_finished():
    with pytest.raises(SweepFailed, match=r"task 2 of 5 failed \(ValueError: two is bad\)") as e:
        map_tasks(_fail_on_two, [0, 1, 2, 3, 4])
    err = e.value
    assert err.completed == {0: 0, 1: 1} and list(err.failed) == [2]
    assert err.not_run == (3, 4) and err.total == 5
    assert isinstance(err.__cause__, ValueError)


def test_bad_arguments_are_typed_errors():
    with pytest.raises(ValidationError, match="concurrent.futures.Executor"):
        map_tasks(math.sqrt, [1.0], executor=object())
    with pytest.raises(ValidationError, match="workers"):
        map_tasks(math.sqrt, [1.0], workers=0)
    with pytest.raises(ValidationError, match="cannot digest"):
        map_tasks(math.sqrt, [object()], checkpoint="unused")


def test_a_shut_down_executor_fails_the_sweep_clearly():
    pool = cf.ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(SweepFailed, match="task 0 of 2 failed.*after shutdown") as e:
        map_tasks(math.sqrt, [1.0, 4.0], executor=pool)
    assert e.value.not_run == (1,) and e.value.completed == {}


def test_task_keys_follow_content_not_identity_or_hash_seed():
    p = synthetic_problem(3, 4, num_prompts=50)
    q = synthetic_problem(3, 4, num_prompts=50)
    _ = p.profiles.curves[0].x  # a cached property: not part of the content
    assert task_key(p) == task_key(q)
    assert task_key(p) != task_key(p.with_rate(41.0))
    assert task_key(p) != task_key(p.with_slo(401.0))
    assert task_key((1, 2)) != task_key([1, 2]) != task_key((2, 1))
    assert task_key(1.0) != task_key(1.0 + 1e-15)
    # sets and dicts: the same key in a process with another hash seed
    obj = {"b": frozenset({"x", "y", "z"}), "a": np.arange(4.0)}
    code = ("import numpy as np; from routerwise.parallel import task_key; "
            "print(task_key({'a': np.arange(4.0), 'b': frozenset({'z', 'y', 'x'})}))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=REPO,
                             env={**os.environ, "PYTHONHASHSEED": seed,
                                  "PYTHONPATH": str(REPO)}).stdout.strip()
        assert out == task_key(obj)


# ----------------------------------------------------------------------------- panels

PANEL_GRID = dict(num_gpus=[4], loads=[30.0, 40.0], slos=[300.0, 400.0])  # 4 panels


def _base():
    return synthetic_problem(3, 4, 40.0, 400.0, num_prompts=120)


def _panels(**kw):
    g = PANEL_GRID
    return list(ex.panels(_base(), g["num_gpus"], g["loads"], g["slos"], **kw))


def _same_summary(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        both_nan = all(isinstance(v, float) and math.isnan(v) for v in (a[k], b[k]))
        assert both_nan or a[k] == b[k], (k, a[k], b[k])


def _same_panels(a, b):
    assert [p.name for p, _ in a] == [p.name for p, _ in b]
    for (pa, ra), (pb, rb) in zip(a, b):
        assert (pa.arrival_rate_rps, pa.slo.latency_ms) == (pb.arrival_rate_rps,
                                                            pb.slo.latency_ms)
        _same_summary(ra["summary"], rb["summary"])
        pd.testing.assert_frame_equal(ra["setups"], rb["setups"])
        np.testing.assert_array_equal(ra["best"].fractions, rb["best"].fractions)


@pytest.fixture(scope="module")
def inline_panels():
    return _panels(workers=1)


def test_panels_differ_from_each_other(inline_panels):
    # the sweep is not trivially constant, so "identical across executors" means something
    assert len({r["summary"]["best_score"] for _, r in inline_panels}) == 4
    assert all(r["summary"]["feasible"] > 0 for _, r in inline_panels)


def test_panels_are_identical_on_threads_and_processes(inline_panels):
    with cf.ThreadPoolExecutor(2) as pool:
        _same_panels(inline_panels, _panels(executor=pool))
    with _spawn_pool() as pool:
        _same_panels(inline_panels, _panels(executor=pool))
    _same_panels(inline_panels, _panels(workers=2))  # the default local pool


def test_panels_are_identical_on_a_local_dask_cluster(inline_panels, dask_executor):
    _same_panels(inline_panels, _panels(executor=dask_executor))


def test_a_failing_executor_loses_no_panel_and_the_rerun_computes_only_the_missing(
        inline_panels, tmp_path):
    ck = tmp_path / "panels"
    flaky = FlakyExecutor(k=2)
    with pytest.raises(SweepFailed, match="task 1 of 4 failed.*worker lost.*rerun with the "
                                          "same checkpoint") as e:
        _panels(executor=flaky, checkpoint=ck)
    err = e.value
    assert list(err.completed) == [0] and list(err.failed) == [1] and err.not_run == (2, 3)
    _same_summary(err.completed[0]["summary"], inline_panels[0][1]["summary"])
    files = {p.name: p.stat().st_ino for p in ck.glob(f"*{CHECKPOINT_SUFFIX}")}
    assert len(files) == flaky.started == 1

    with CountingExecutor() as good:
        resumed = _panels(executor=good, checkpoint=ck)
    assert good.submitted == 3  # only the missing panels were computed
    _same_panels(inline_panels, resumed)
    after = {p.name: p.stat().st_ino for p in ck.glob(f"*{CHECKPOINT_SUFFIX}")}
    assert len(after) == 4 and all(after[n] == ino for n, ino in files.items())  # not rewritten

    with CountingExecutor() as again:  # everything finished: nothing to compute
        _same_panels(inline_panels, _panels(executor=again, checkpoint=ck))
    assert again.submitted == 0


def test_a_corrupt_panel_checkpoint_is_computed_again(inline_panels, tmp_path):
    ck = tmp_path / "panels"
    _panels(workers=1, checkpoint=ck)
    victim = sorted(ck.glob(f"*{CHECKPOINT_SUFFIX}"))[0]
    blob = bytearray(victim.read_bytes())
    blob[-10] ^= 0xFF
    victim.write_bytes(bytes(blob))
    with CountingExecutor() as pool, pytest.warns(RuntimeWarning, match="integrity"):
        again = _panels(executor=pool, checkpoint=ck)
    assert pool.submitted == 1
    _same_panels(inline_panels, again)


def test_setup_evaluation_is_identical_on_an_executor():
    p = synthetic_problem(4, 4, 40.0, 400.0, num_prompts=80)
    ref = evaluate_all(p, workers=1)
    assert len(ref) > 64 and ref["feasible"].any()  # large enough to be split
    with CountingExecutor() as pool:
        got = evaluate_all(p, workers=3, executor=pool)
    assert pool.submitted == 3
    pd.testing.assert_frame_equal(ref, got)


# ----------------------------------------------------------------------------- profile grid

GRID_MODEL = "llama-3.2-3b-instruct"


def _grid(tmp_path, **kw):
    from routerwise.serving import curve_grid as pg
    lengths = pg.LengthSample(np.array([60, 200, 450, 900]), np.array([1, 40, 150, 300]),
                              "test lengths")
    return pg.build_profile_table([GRID_MODEL], "A100-80GB", (1,), (5, 10), lengths,
                                  options=pg.GridOptions(num_requests=60), progress=False,
                                  cache_dir=tmp_path, **kw)


@needs_mirror
def test_profile_grid_is_identical_whatever_runs_it(tmp_path, dask_executor):
    ref = _grid(tmp_path / "inline", workers=1)
    assert ref.groupby("compute_share")["load_rps"].max().is_monotonic_increasing
    with cf.ThreadPoolExecutor(2) as pool:
        pd.testing.assert_frame_equal(ref, _grid(tmp_path / "threads", executor=pool))
    with _spawn_pool() as pool:
        pd.testing.assert_frame_equal(ref, _grid(tmp_path / "spawn", executor=pool))
    pd.testing.assert_frame_equal(ref, _grid(tmp_path / "dask", executor=dask_executor))


@needs_mirror
def test_a_failing_executor_keeps_finished_curves_and_the_rerun_finishes(tmp_path):
    ref = _grid(tmp_path / "ref", workers=1)
    flaky = FlakyExecutor(k=2)
    with pytest.raises(SweepFailed, match="latency profiles: task 1 of 2 failed"):
        _grid(tmp_path / "run", executor=flaky)
    chunks = list((tmp_path / "run").glob("profiles/*/chunks/*.csv"))
    assert len(chunks) == flaky.started == 1
    with CountingExecutor() as good:
        df = _grid(tmp_path / "run", executor=good)
    assert good.submitted == 1
    pd.testing.assert_frame_equal(ref, df)


# ----------------------------------------------------------------------------- latency validation

@needs_mirror
def test_latency_validation_is_identical_on_an_executor_and_resumes(tmp_path):
    from routerwise.serving import latency_validation as lv
    runs, _ = lv.eligible_runs()
    runs = sorted(runs, key=lambda r: len(r.requests))[:3]
    levels, sats, cals = lv.validate(runs, split="none")
    assert cals == [] and list(sats["run_id"]) == [r.meta.run_id for r in runs]
    ck = tmp_path / "validation"
    with pytest.raises(SweepFailed, match="held-out runs: task 2 of 3 failed"):
        lv.validate(runs, split="none", executor=FlakyExecutor(k=3), checkpoint=ck)
    with CountingExecutor() as pool:
        l2, s2, _ = lv.validate(runs, split="none", executor=pool, checkpoint=ck)
    assert pool.submitted == 1
    pd.testing.assert_frame_equal(levels, l2)
    pd.testing.assert_frame_equal(sats, s2)
