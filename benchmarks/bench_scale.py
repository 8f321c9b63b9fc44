"""Scale benchmark: the default method (``auto``) on the seeded synthetic ladder, 4x4 to 16x32.

For each (models, GPUs) it prints and records: the method ``auto`` chose and the candidate-setup
count it chose by (counted, not enumerated), wall-clock time, this process's CPU time, the
machine's 1-minute load average before and after (a shared machine's wall time depends on it),
status, score, proven bound and proven gap. Instances:
``routerwise.paper.synthetic.ladder_problem`` (modelled curves and scores;
load = half the equal-split capacity, SLO = geometric mean of the extremes' unloaded latencies),
300 prompts, seed 0. Nothing here is measured on GPUs: times are this machine's solver times.

Targets (issue 12): 8 x 16 proven optimal in < 120 s on 2 cores; 16 x 32 a plan with a proven
gap <= 1% in < 10 min. Issue 22: 12 x 24 proven optimal within 600 s; 16 x 32 proven optimal or
its gap reported; 4 x 4 under the decomposition (``--method decomposition``) within 5 s.
Figures go in the closing note, not in asserts.

    python benchmarks/bench_scale.py                          # all five sizes (~15-25 min)
    python benchmarks/bench_scale.py --sizes 4x4 6x8          # a subset
    python benchmarks/bench_scale.py --time-limit-s 600 --json scale.json
    python benchmarks/bench_scale.py --sizes 4x4 --method decomposition
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from routerwise.errors import ValidationError
from routerwise.io import write_json
from routerwise.paper.synthetic import ladder_problem
from routerwise.planning.solve import solve

SIZES = ((4, 4), (6, 8), (8, 16), (12, 24), (16, 32))


def parse_size(text: str) -> tuple[int, int]:
    """'8x16' -> (8, 16)."""
    try:
        m, g = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValidationError(f"--sizes takes MODELSxGPUS like 8x16, got {text!r}") from None
    if m < 1 or g < 1:
        raise ValidationError(f"--sizes needs positive counts, got {text!r}")
    return m, g


def run_one(models: int, gpus: int, time_limit_s: float, num_prompts: int = 300,
            seed: int = 0, method: str = "auto") -> dict:
    p = ladder_problem(models, gpus, num_prompts=num_prompts, seed=seed)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    sol = solve(p, method, time_limit_s=time_limit_s)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    auto = sol.stats.get("auto", {})
    return {"models": models, "gpus": gpus, "method": auto.get("method", method),
            "solver": sol.solver, "candidate_setups": auto.get("candidate_setups"),
            "time_s": wall_s, "cpu_s": cpu_s, "load_1min_before": load0,
            "load_1min_after": os.getloadavg()[0], "status": sol.status,
            "score": None if sol.setup is None else sol.score,
            "bound": sol.bound, "gap_pct": None if sol.gap is None else 100 * sol.gap,
            "arrival_rate_rps": p.arrival_rate_rps, "slo_ms": p.slo.latency_ms,
            "masters": sol.stats.get("masters"), "cuts": sol.stats.get("cuts"),
            "envelope_rows_added": sol.stats.get("envelope_rows_added"),
            "setup": None if sol.setup is None else sol.setup.label()}


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=[f"{m}x{g}" for m, g in SIZES],
                    help="MODELSxGPUS pairs (default: 4x4 6x8 8x16 12x24 16x32)")
    ap.add_argument("--time-limit-s", type=float, default=600.0,
                    help="per-instance solver time limit, seconds (default 600)")
    ap.add_argument("--prompts", type=int, default=300)
    ap.add_argument("--method", default="auto",
                    help="solver method (default auto; decomposition to time it on small sizes)")
    ap.add_argument("--json", help="write the rows and machine info to this JSON file")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes]
    rows = []
    print(f"{'M x G':>7s} {'method':>13s} {'candidates':>12s} {'time_s':>8s} {'cpu_s':>8s} "
          f"{'load':>5s} {'status':>10s} {'score':>8s} {'bound':>8s} {'gap_%':>7s}")
    for m, g in sizes:
        r = run_one(m, g, args.time_limit_s, args.prompts, method=args.method)
        rows.append(r)
        print(f"{m:>3d} x {g:<3d}{r['method']:>13s} {_fmt(r['candidate_setups'], '12.3g')} "
              f"{r['time_s']:8.1f} {r['cpu_s']:8.1f} {r['load_1min_after']:5.1f} "
              f"{r['status']:>10s} {_fmt(r['score'], '8.5f')} "
              f"{_fmt(r['bound'], '8.5f')} {_fmt(r['gap_pct'], '7.3f')}", flush=True)
    out = {"rows": rows, "time_limit_s": args.time_limit_s, "prompts": args.prompts,
           "method": args.method,
           "instance": "routerwise.paper.synthetic.ladder_problem (modelled, seed 0)",
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "cpus": os.cpu_count(),
                       "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}}
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
