"""One panel sweep on several executors: wall time each, and whether the results agree.

The sweep is ``routerwise.paper.experiments.panels`` over notebook 03's default grid (the
3-model ladder at G {4, 8}, loads 50% and 80% of the paper's, SLOs 400 and 800 ms: 8 panels;
``--synthetic`` uses the modelled synthetic problem instead, no data needed). Each panel is
one task. Executors: inline, a local spawn-started process pool (``--workers``), and, when
``distributed`` is installed, a local Dask cluster of ``--workers`` processes through
``client.get_executor()``. ``same_results`` compares every panel's summary and setup table
with the inline run (scores are predicted, latencies simulated or modelled: see the README).

    python benchmarks/bench_sweeps.py [--synthetic] [--workers 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import multiprocessing as mp
import time

import pandas as pd

from routerwise.io import write_json
from routerwise.paper import experiments as ex


def _sweep(problem, grid, **kw):
    t0 = time.perf_counter()
    out = list(ex.panels(problem, *grid, **kw))
    return out, time.perf_counter() - t0


def _same(a, b) -> bool:
    for (_, ra), (_, rb) in zip(a, b, strict=True):
        for k in ra["summary"]:
            x, y = ra["summary"][k], rb["summary"][k]
            if not (x == y or (isinstance(x, float) and isinstance(y, float)
                               and math.isnan(x) and math.isnan(y))):
                return False
        if not ra["setups"].equals(rb["setups"]):
            return False
    return True


def run(synthetic: bool = False, workers: int = 2) -> dict:
    if synthetic:
        from routerwise.paper.synthetic import synthetic_problem
        problem, grid = synthetic_problem(3, 4), ([4, 8], [30.0, 40.0], [300.0, 400.0])
    else:
        from routerwise.paper.instances import default_problem, paper_loads
        loads = paper_loads(3)
        problem = default_problem(3, 4)
        grid = ([4, 8], [loads[0], loads[3]], [400.0, 800.0])
    out = {"instance": problem.name, "panels": math.prod(len(g) for g in grid),
           "workers": workers}
    ref, out["inline_s"] = _sweep(problem, grid, space=ex.SPACES["paper"], workers=1)
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        got, out["processes_s"] = _sweep(problem, grid, space=ex.SPACES["paper"], executor=pool)
    out["processes_same_results"] = _same(ref, got)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        out["dask"] = "distributed not installed (pip install -e '.[cluster]')"
        return out
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as c, \
            Client(c) as client:
        out["dask_startup_s"] = time.perf_counter() - t0
        got, out["dask_s"] = _sweep(problem, grid, space=ex.SPACES["paper"],
                                    executor=client.get_executor())
    out["dask_same_results"] = _same(ref, got)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="the synthetic problem (no data)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    out = run(args.synthetic, args.workers)
    print(pd.Series(out).to_string())
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
