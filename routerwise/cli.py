"""Command line: ``routerwise reproduce | solve | profiles``.

    routerwise reproduce [--out results]            every notebook into a results folder
    routerwise solve --models 3 --gpus 4 --rate 25 --slo 600 [--method exact|dual-price|milp]
                     [--headroom 0.8] [--consistent] [--json PATH]
    routerwise profiles [--gpu A100-80GB]           build (or find) the simulated profile grid
"""

from __future__ import annotations

import argparse
import sys

from .errors import RouterWiseError


def _solve(args) -> int:
    from .headroom import with_headroom
    from .instances import default_problem
    from .problem import SetupSpace
    from .solve import solve
    space = SetupSpace(check_compute=not args.memory_only)
    p = default_problem(args.models, args.gpus, args.rate, args.slo, gpu=args.gpu,
                        metric=args.metric, aggregate=args.aggregate, space=space)
    record = None
    if args.consistent:
        from .consistency import plan_consistently, profile_set
        from .instances import predicted_scores, profile_table
        qm, _ = predicted_scores(p.model_names)
        p99 = profile_set(profile_table(args.gpu), p.slo.metric.split("_")[0] + "_p99", args.gpu)
        cp = plan_consistently(p, qm, headroom=args.headroom, method=args.method,
                               p99_profiles=p99)
        sol, p, record = cp.solution, cp.problem, cp.replay
    else:
        p = with_headroom(p, args.headroom)
        sol = solve(p, args.method)
    if args.json:
        from .io import write_json
        out = {"summary": sol.summary(p), "notes": list(sol.notes)}
        if sol.feasible and not args.no_replay:
            out["replay"] = record if record is not None else sol.replay(p)
        if not sol.feasible:
            out["infeasibility"] = sol.infeasibility.message
        write_json(args.json, out)
    if not sol.feasible:
        print(f"infeasible ({sol.infeasibility.binding}): {sol.infeasibility.message}")
        return 1
    print(f"{sol.solver}: {sol.status}, score {sol.score:.4f}, {p.slo.metric} {sol.latency_ms:.1f} ms "
          f"(SLO {p.slo.latency_ms:g}), {sol.solve_time_s:.2f} s")
    for name, s, w, a in zip(p.model_names, sol.setup.per_model, sol.fractions, sol.prices):
        print(f"  {name:40s} {s.label():14s} w={w:.3f} price={a:+.4f}")
    print("  placement (GPUs per model):", sol.setup.placement)
    for n in sol.notes:
        print("  -", n)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="routerwise", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run every notebook into a results folder")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    s = sub.add_parser("solve", help="solve a default real-data instance")
    s.add_argument("--models", type=int, default=3, choices=(3, 4))
    s.add_argument("--gpus", type=int, default=4)
    s.add_argument("--rate", type=float, required=True, help="arrival rate, req/s")
    s.add_argument("--slo", type=float, required=True, help="latency SLO, ms")
    s.add_argument("--metric", default="ttft_mean")
    s.add_argument("--aggregate", default="mean", choices=("mean", "max"))
    s.add_argument("--method", default="exact", choices=("exact", "dual-price", "milp"))
    s.add_argument("--gpu", default="A100-80GB")
    s.add_argument("--memory-only", action="store_true",
                   help="the paper's deployability check (memory only, no compute placement)")
    s.add_argument("--headroom", type=float, default=None,
                   help="cap each model's load at this fraction of its curve's saturation-free "
                        "range (default 0.8; with --consistent the ladder 0.8 0.85 0.9 0.95, "
                        "relaxed only when no plan fits; 1 = the paper's behaviour)")
    s.add_argument("--consistent", action="store_true",
                   help="iterate to consistency: re-profile routed models with the prompts "
                        "the plan routes them, replay, re-solve (routerwise.consistency)")
    s.add_argument("--json", metavar="PATH",
                   help="write the plan, its notes and its replay record (predicted vs "
                        "simulated mean and p99 per model, SLO met) to PATH")
    s.add_argument("--no-replay", action="store_true", help="leave the replay out of --json")
    pr = sub.add_parser("profiles", help="build (or find) the simulated profile grid")
    pr.add_argument("--gpu", default="A100-80GB")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "reproduce":
            from .reproduce import main as reproduce
            reproduce(args.rest)
            return 0
        if args.cmd == "solve":
            if args.headroom is None:
                from .consistency import DEFAULT_HEADROOM_LADDER
                from .headroom import DEFAULT_LOAD_FRACTION
                args.headroom = DEFAULT_HEADROOM_LADDER if args.consistent else \
                    DEFAULT_LOAD_FRACTION
            return _solve(args)
        from .instances import profile_table
        t = profile_table(args.gpu, progress=True)
        print(f"{len(t)} load points, {t.groupby(['model', 'tp', 'compute_share']).ngroups} curves")
        return 0
    except RouterWiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
