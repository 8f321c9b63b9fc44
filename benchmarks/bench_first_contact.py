"""What a newcomer meets first: the reproduction's time per notebook and the first simulated solve.

    python benchmarks/bench_first_contact.py [--json out.json] [--jobs 2] [--cold]
                                             [--skip-reproduce] [--skip-solve] [-p NAME VALUE]

Measures (wall and CPU seconds, each with the machine's load average sampled every second
while it ran, so that a run on a busy machine reads as one):

1. **first simulated solve**: ``python -m routerwise solve`` of the worked example
   (``data/examples/problem.toml``) with ``simulate = true`` in ``[latency]`` and no
   ``[space]`` table (the default setup space), in a fresh, empty ``ROUTERWISE_CACHE_DIR``:
   the step-cost fit and every curve are computed. Target: under 15 s wall on an idle 2-core
   machine.
2. **reproduction**: ``python -m routerwise reproduce --jobs N`` (what ``make reproduce`` runs
   after its install step) into a temporary folder, with the cache in use
   (``ROUTERWISE_CACHE_DIR``, else the default; warm after one earlier run), or with
   ``--cold`` in a fresh empty one. Per notebook: wall and CPU seconds from its run record
   (``<out>/notebooks/<name>.run.json``). Target: ``make reproduce`` within 180 s on a 2-core
   machine with warm caches (add the install step's time: a fresh clone's ``make install``).

``-p NAME VALUE`` is handed to the reproduction (e.g. ``-p mode simulated`` keeps notebook 07
off a real engine installed in this environment). CPU seconds include every child process
that finished (kernels, worker pools). All times are measured; nothing here is modelled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "data" / "examples"
TARGET_SOLVE_S = 15.0
TARGET_REPRODUCE_S = 180.0


class LoadSampler:
    """The 1-minute load average, sampled every ``every_s`` seconds while in a ``with``."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.samples = every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every_s):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"load_avg_1min_min": round(min(s), 2),
                "load_avg_1min_median": round(statistics.median(s), 2),
                "load_avg_1min_max": round(max(s), 2), "load_samples": len(s)}


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_run(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; its wall and CPU seconds (with its reaped children), the load while it ran."""
    c0, t0 = _children_cpu_s(), time.perf_counter()
    with LoadSampler() as load, open(log, "w") as fh:
        rc = subprocess.call(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    out = {"command": " ".join(cmd), "returncode": rc,
           "wall_s": round(time.perf_counter() - t0, 1),
           "cpu_s": round(_children_cpu_s() - c0, 1), **load.summary(), "log": str(log)}
    if rc:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise SystemExit(f"{out['command']} failed (exit {rc}):\n" + "\n".join(tail))
    return out


def simulated_example(folder: Path) -> Path:
    """A copy of the worked example with ``simulate = true`` and the default setup space."""
    shutil.copytree(EXAMPLE, folder, dirs_exist_ok=True)
    path = folder / "problem.toml"
    text = path.read_text()
    text = re.sub(r'(?m)^table = "curves\.csv".*$', "simulate = true", text)
    text = re.split(r"(?m)^\[space\]", text)[0]
    if "simulate = true" not in text:
        raise SystemExit(f"{path}: the worked example no longer names curves.csv in [latency]; "
                         f"update simulated_example()")
    path.write_text(text)
    return path


def first_solve(work: Path, env: dict) -> dict:
    problem = simulated_example(work / "example")
    cache = work / "empty-cache"
    env = dict(env, ROUTERWISE_CACHE_DIR=str(cache), ROUTERWISE_PROGRESS="text")
    res = timed_run([sys.executable, "-m", "routerwise", "solve", str(problem),
                     "--json", str(work / "plan.json")], env, work / "solve.log")
    plan = json.loads((work / "plan.json").read_text())
    res.update(target_s=TARGET_SOLVE_S, score=plan.get("score"), setup=plan.get("setup"),
               curves_built=len(list((cache / "curves").glob("*.csv"))))
    return res


def reproduce(work: Path, env: dict, jobs: int, cold: bool, params) -> dict:
    out = work / "results"
    if cold:
        env = dict(env, ROUTERWISE_CACHE_DIR=str(work / "cold-cache"))
    cmd = [sys.executable, "-m", "routerwise", "reproduce", "--out", str(out),
           "--jobs", str(jobs)]
    for name, value in params:
        cmd += ["-p", name, value]
    res = timed_run(cmd, env, work / "reproduce.log")
    per = {}
    for p in sorted((out / "notebooks").glob("*.run.json")):
        rec = json.loads(p.read_text())
        per[rec["notebook"]] = {"wall_s": rec.get("wall_s"), "cpu_s": rec.get("cpu_s"),
                                "load_avg_1min_at_end": rec.get("load_avg_1min")}
    res.update(target_s=TARGET_REPRODUCE_S, jobs=jobs,
               cache="cold (empty)" if cold else
               f"as found ({env.get('ROUTERWISE_CACHE_DIR') or 'the default folder'})",
               notebooks=per)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks at once (make reproduce: 2)")
    ap.add_argument("--cold", action="store_true", help="reproduce with an empty cache")
    ap.add_argument("--skip-reproduce", action="store_true")
    ap.add_argument("--skip-solve", action="store_true")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook parameter for the reproduction")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), env.get("PYTHONPATH")) if x)
    report = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    with tempfile.TemporaryDirectory(prefix="rw-first-contact-") as tmp:
        work = Path(tmp)
        if not args.skip_solve:
            r = report["first_simulated_solve"] = first_solve(work, env)
            print(f"first simulated solve (empty cache): {r['wall_s']:.1f} s wall, "
                  f"{r['cpu_s']:.1f} CPU-s, {r['curves_built']} curves built; load average "
                  f"{r['load_avg_1min_min']:g}-{r['load_avg_1min_max']:g} "
                  f"(target < {TARGET_SOLVE_S:g} s on an idle 2-core machine)")
        if not args.skip_reproduce:
            r = report["reproduce"] = reproduce(work, env, args.jobs, args.cold, args.p)
            print(f"reproduce --jobs {args.jobs} ({r['cache']} cache): {r['wall_s']:.0f} s wall, "
                  f"{r['cpu_s']:.0f} CPU-s; load average {r['load_avg_1min_min']:g}-"
                  f"{r['load_avg_1min_max']:g} (median {r['load_avg_1min_median']:g})")
            for name, nb in r["notebooks"].items():
                print(f"  {name:24s} {nb['wall_s']:6.1f} s wall  {nb['cpu_s'] or 0:6.1f} CPU-s")
    if args.json:
        from routerwise.io import write_json
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
