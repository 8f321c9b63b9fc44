"""Command line: ``routerwise reproduce | solve | cost | profiles | serve | calibrate``.

    routerwise reproduce [--out results] [--only NB ...] [-p NAME VALUE]   notebooks -> results
    routerwise solve problem.toml [--json plan.json]  your problem file (routerwise.planning.problem_file)
    routerwise solve --models 3 --gpus 4 --rate 25 --slo 600
                     [--method auto|exact|decomposition|dual-price|milp]
                     [--headroom 0.8] [--consistent] [--json PATH]
                     [--replays 8] [--confidence 0.95]   replays behind the SLO check
    routerwise cost problem.toml --quality-floor 0.72 [--max-gpus 8] [--price TYPE=USD ...]
                    [--frontier] [--json PATH]    fewest GPUs (or lowest $/hour) meeting the SLO
                                                  and the floor; --frontier: quality vs GPUs
    routerwise profiles [--gpu A100-80GB]           build (or find) the simulated profile grid
    routerwise profiles list | show KEY | export KEY OUT.csv   the cached curves
    routerwise live-check PLAN.json --endpoint MODEL=URL ... [--rate R] [--duration S]
                    [--json OUT]   the plan's workload through its router to live engines
    routerwise serve plan.json --endpoint MODEL=URL [--endpoint ...] [--port 8000]
                     [--decision-log PATH]    an OpenAI-compatible router serving the plan
    routerwise calibrate RUN [RUN ...] --format {vllm-bench,guidellm,inference-perf,genai-perf,kit}
                    --arch NAME --gpu NAME --tp N [--engine vllm-v1|vllm-v0] [--max-num-seqs N]
                    [--max-num-batched-tokens N] [--step-table steps.csv] [--fit-levels K]
                    --json OUT [--out deployment.json]   fit the serving model to your sweep
"""

from __future__ import annotations

import argparse
import math
import sys

from .errors import RouterWiseError, ValidationError
from .io import write_json

__all__ = ["main", "plan_record", "SOLVE_EXIT_CODES"]

SOLVE_EXIT_CODES = """exit codes:
  0  a plan was found (with --consistent also when not verified: see its notes and
     replay check)
  1  infeasible: no plan meets the SLO (the reason is printed; --json still records it)
  2  an input error: a bad problem file or flag, or a --json path that cannot be written
     (checked before solving)"""


def plan_record(problem, sol) -> dict:
    """The plan as plain JSON-able data: what ``solve --json`` writes."""
    d = {"problem": problem.name, "method": sol.solver, "status": sol.status,
         "score": sol.score, "latency_ms": sol.latency_ms, "bound": sol.bound,
         "solve_time_s": sol.solve_time_s,
         "slo": {"latency_ms": problem.slo.latency_ms, "metric": problem.slo.metric,
                 "aggregate": problem.slo.aggregate},
         "arrival_rate_rps": problem.arrival_rate_rps, "notes": list(sol.notes)}
    if not sol.feasible:
        inf = sol.infeasibility
        d["infeasibility"] = {"binding": inf.binding, "message": inf.message,
                              "min_latency_ms": inf.min_latency_ms}
        return d
    if sol.setup is None:       # a time limit before the first plan: status and bound only
        return d
    lat = sol.per_model_latency_ms(problem)
    d["setup"] = sol.setup.label()
    d["models"] = [{"name": name, "tp": s.tp, "compute_share": s.compute_share,
                    "gpus": list(sol.setup.placement[i]) if sol.setup.placement else None,
                    "fraction": float(w), "load_rps": float(w) * problem.arrival_rate_rps,
                    "latency_ms": float(lat[i]) if w > 0 else None, "price": float(a)}
                   for i, (name, s, w, a) in enumerate(zip(problem.model_names,
                                                           sol.setup.per_model, sol.fractions,
                                                           sol.prices))]
    realized = sol.realized_score(problem)
    if realized is not None:
        d["realized_score"] = realized
    return d


def _default_problem(args):
    """A default real-data instance from the CLI flags, checked before any data is built."""
    import math

    from .paper.instances import default_problem
    from .problem import LATENCY_METRICS, SetupSpace
    if args.rate is None or args.slo is None:
        raise ValidationError("give a problem file (routerwise solve problem.toml) or both "
                              "--rate and --slo for a default instance")
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise ValidationError(f"--rate must be a positive arrival rate in req/s, got "
                              f"{args.rate:g}")
    if not (math.isfinite(args.slo) and args.slo > 0):
        raise ValidationError(f"--slo must be a positive latency in ms, got {args.slo:g}")
    if args.gpus < 1:
        raise ValidationError(f"--gpus must be >= 1, got {args.gpus}")
    if args.metric not in LATENCY_METRICS:
        raise ValidationError(f"--metric {args.metric!r} is unknown; use one of "
                              f"{LATENCY_METRICS}")
    space = SetupSpace(check_compute=not args.memory_only)
    return default_problem(args.models, args.gpus, args.rate, args.slo, gpu=args.gpu,
                           metric=args.metric, aggregate=args.aggregate, space=space)


def _check_json_path(path: str) -> None:
    """Fail before solving when ``--json PATH`` cannot be written: a file is made and removed
    in the folder it goes to (or the nearest existing folder above, which the write would
    create it in), so a read-only file system, a missing permission or a path through a
    file is an input error (exit 2), not a plan lost after solving."""
    import os
    import tempfile
    from pathlib import Path

    target = Path(path).expanduser()
    if target.is_dir():
        raise ValidationError(f"--json {path} is a folder; give the path of a file to write")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValidationError(f"cannot write --json {path}: {folder} does not take a new file "
                              f"({e.strerror or e}); give a path in a writable folder") from e


def _score_source(problem_file: str | None) -> dict:
    """Where the scores the plan routes on come from, for ``routerwise serve`` to route live
    prompts: the problem file and its score table (absolute paths), or the default instance's
    dataset."""
    import tomllib
    from pathlib import Path
    if not problem_file:
        return {"problem_file": None, "score_table": {"path": None, "dataset": "routeprofile"}}
    path = Path(problem_file).expanduser().resolve()
    scores = tomllib.loads(path.read_text())["scores"]      # read_problem_file checked it
    return {"problem_file": str(path),
            "score_table": {"path": str((path.parent / scores["table"]).resolve()),
                            "dataset": None, "kind": scores.get("kind", "measured")}}


def _solve(args) -> int:
    from .io import json_safe
    from .optimize.headroom import with_headroom
    from .planning.consistency import slo_check_text
    from .planning.solve import solve
    if args.json:
        _check_json_path(args.json)
    if args.replays < 1:
        raise ValidationError(f"--replays must be >= 1, got {args.replays}")
    if not 0.5 <= args.confidence < 1:
        raise ValidationError(f"--confidence must be in [0.5, 1) (0.95 = 95%), got "
                              f"{args.confidence:g}")
    check = {"replays": args.replays, "confidence": args.confidence}
    qm = archs = p99 = None
    if args.problem:
        from .planning.problem_file import read_problem_file
        # only the curves a deployable setup of this cluster uses: the same plan, fewer curves
        inputs = read_problem_file(args.problem, progress=True, usable_curves_only=True)
        p, qm, archs = inputs.problem, inputs.scores, inputs.architectures
    else:
        p = _default_problem(args)
    replay_error = None
    if qm is not None and (qm.prompt_tokens is None or qm.completion_tokens is None):
        replay_error = ("the score table has no prompt_tokens/output_tokens: a plan cannot be "
                        "replayed without the lengths of the prompts it routes")
    elif any(a is None for a in (archs or {}).values()):
        replay_error = ("a model without an architecture (or config) cannot be simulated: "
                        "give each model one to replay the plan")
    record = None
    if args.consistent:
        if replay_error:
            raise ValidationError(f"--consistent needs replays: {replay_error}")
        from .planning.consistency import plan_consistently
        if qm is None:
            from .paper.instances import default_p99_profiles, predicted_scores
            qm, _ = predicted_scores(p.model_names)
            p99 = default_p99_profiles(p)
        cp = plan_consistently(p, qm, headroom=args.headroom, method=args.method,
                               p99_profiles=p99, archs=archs, **check)
        slo_ms = p.slo.latency_ms           # the user's; cp.problem's is the planning target
        sol, p, record = cp.solution, cp.problem, cp.replay
    else:
        p = with_headroom(p, args.headroom)
        slo_ms = p.slo.latency_ms
        sol = solve(p, args.method)
    if args.json:
        out = plan_record(p, sol)
        out["slo"].update(latency_ms=slo_ms, planning_target_ms=p.slo.latency_ms)
        out.update(_score_source(args.problem))
        if sol.feasible and not args.no_replay:
            if record is None and replay_error is None:
                if qm is None:
                    from .paper.instances import replay_default
                    record = replay_default(p, sol, **check)
                else:
                    from .planning.consistency import replay_record
                    record = replay_record(p, sol, qm, archs=archs, **check)
            out["replay"] = record if record is not None else {"skipped": replay_error}
        try:        # NaN/inf (an infeasible plan's score, a gap) are written as null
            write_json(args.json, json_safe(out), allow_nan=False)
        except OSError as e:   # e.g. the disk filled up while solving
            raise ValidationError(f"could not write --json {args.json} "
                                  f"({e.strerror or e}); free space or give another path "
                                  f"and solve again") from e
    if not sol.feasible:
        inf = sol.infeasibility
        where = inf.binding + (f": {inf.stage}" if inf.stage else "")
        print(f"infeasible ({where}): {inf.message}")
        return 1
    target = (f", planned to {p.slo.latency_ms:.4g}" if p.slo.latency_ms != slo_ms else "")
    print(f"{sol.solver}: {sol.status}, score {sol.score:.4f}, {p.slo.metric} {sol.latency_ms:.1f} ms "
          f"(SLO {slo_ms:g}{target}), {sol.solve_time_s:.2f} s")
    if record is not None:
        print(f"  replay check: SLO {'met' if record['slo_met'] else 'NOT met'}; "
              f"{slo_check_text(record)}")
    for name, s, w, a in zip(p.model_names, sol.setup.per_model, sol.fractions, sol.prices):
        print(f"  {name:40s} {s.label():14s} w={w:.3f} price={a:+.4f}")
    print("  placement (GPUs per model):", sol.setup.placement)
    for n in sol.notes:
        print("  -", n)
    return 0


def parse_endpoints(items) -> dict[str, list[str]]:
    """``--endpoint MODEL=URL`` options as model -> URLs (a model may repeat)."""
    out: dict[str, list[str]] = {}
    for item in items:
        model, sep, url = item.partition("=")
        if not sep or not model.strip() or not url.strip():
            raise ValidationError(f"--endpoint {item!r}: write MODEL=URL, e.g. "
                                  f"chat-8b=http://127.0.0.1:8001")
        out.setdefault(model.strip(), []).append(url.strip())
    return out


def _serve(args) -> int:
    from pathlib import Path

    from .live import require_live_extra
    require_live_extra()
    from .live.app import create_app
    from .live.plan import LivePlan
    from .live.server import serve_forever
    plan = LivePlan.from_json(args.plan)
    if not args.endpoint:
        raise ValidationError(f"give --endpoint MODEL=URL for each of the plan's models "
                              f"{list(plan.model_names)}")
    app = create_app(plan, parse_endpoints(args.endpoint),
                     decision_log=Path(args.decision_log) if args.decision_log else None,
                     log_prompts=args.log_prompts, upstream_timeout_s=args.upstream_timeout_s)
    print(f"serving plan {plan.problem!r} ({args.plan}): "
          + ", ".join(f"{m} {w:.3f}" for m, w in plan.planned_fractions.items()), flush=True)
    serve_forever(app, args.host, args.port, access_log=not args.no_access_log)
    return 0


def _parse_prices(items, file_prices):
    """``--price TYPE=USD`` options (they replace a problem file's [prices] table)."""
    if not items:
        return file_prices
    from .planning.cost import GpuPrices
    table = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            price = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValidationError(f"--price takes TYPE=USD_PER_HOUR (e.g. A100-80GB=2.0), got "
                                  f"{item!r}")
        if name in table:
            raise ValidationError(f"--price gives GPU type {name!r} twice ({table[name]:g} and "
                                  f"{price:g} $/hour); give one --price per type")
        table[name] = price
    return GpuPrices(table, source="--price on the command line (user-provided)")


def _fixed(v, digits: int, scale: float = 1.0, sign: str = "") -> str:
    """``v * scale`` to ``digits`` decimals; NaN/None as "-"; no "-0.00" for a rounded zero."""
    import math
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    text = f"{v * scale:{sign}.{digits}f}"
    return text if float(text) != 0 else f"{0:{sign}.{digits}f}"


def frontier_view(df, priced: bool = False, mixed: bool = False):
    """The rows of :func:`routerwise.planning.cost.pareto_frontier` for a terminal: one column per
    quantity with its unit, rounded (a gap of 8e-15 is 0.00%), baselines as "score (+gain
    in points)", the setup last; ``--json`` keeps the full-precision table."""
    import pandas as pd

    from .optimize.baselines import BASELINES
    view = pd.DataFrame({"GPUs": df["gpus"] if mixed else df["num_gpus"]})
    if priced:
        view["$/hour"] = [_fixed(v, 2) for v in df["cost"]]
    view["status"] = [st if not isinstance(b, str) or not b or st == "optimal" else f"{st} ({b})"
                      for st, b in zip(df["status"], df.get("binding", [""] * len(df)))]
    view["score"] = [_fixed(v, 4) for v in df["score"]]
    view["bound"] = [_fixed(v, 4) for v in df["bound"]]
    view["gap %"] = [_fixed(v, 2, 100) for v in df["gap"]]
    view["latency ms"] = [_fixed(v, 1) for v in df["latency_ms"]]
    view["pareto"] = ["yes" if bool(v) else "" for v in df["pareto_optimal"]]
    for b in BASELINES:
        if f"{b}_score" in df:
            view[b] = [f"{_fixed(sc, 4)} ({_fixed(g, 2, 100, '+')})" if sc == sc else "-"
                       for sc, g in zip(df[f"{b}_score"], df[f"gain_vs_{b}"])]
    view["setup"] = df["setup"].fillna("")
    return view


def _records(df) -> list[dict]:
    """Rows as JSON-able dicts, NaN as null (strict JSON)."""
    import json
    return json.loads(df.to_json(orient="records"))


def _cost(args) -> int:
    """``routerwise cost``: the cheapest cluster meeting the SLO and a quality floor."""
    import pandas as pd

    from .optimize.headroom import with_headroom
    from .planning.cost import cheapest_cluster, cluster_pools, pareto_frontier, proves_optimum
    file_prices = None
    if args.problem:
        from .planning.problem_file import read_problem_file
        inputs = read_problem_file(args.problem, progress=True)
        p, file_prices = inputs.problem, inputs.prices
    else:
        p = _default_problem(args)
    prices = _parse_prices(args.price, file_prices)
    p = with_headroom(p, args.headroom)
    res = cheapest_cluster(p, quality_floor=args.quality_floor, prices=prices,
                           max_gpus=args.max_gpus, min_gpus=args.min_gpus, method=args.method)
    unit = "GPUs" if prices is None else "$/hour"
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(res.table().drop(columns=["message"]).to_string(index=False))
        out = {"quality_floor": res.quality_floor, "cost_unit": res.cost_unit,
               "price_source": res.price_source, "unlimited_capacity_bound": res.unlimited_bound,
               "found": res.found, "proven": res.proven, "reason": res.reason,
               "binding": res.binding, "notes": list(res.notes),
               "trials": _records(res.table())}
        if args.frontier:
            # The clusters the search considered (every composition per type on a mixed
            # cluster, where a GPU count alone does not say which types), so the frontier
            # and the search cover the same clusters.
            mixed = p.cluster.is_mixed
            df = pareto_frontier(p, [t.cluster for t in res.trials], prices=prices,
                                 method=args.method)
            print("\nquality vs cost (baselines: their score, then the optimum's gain over "
                  "them at the same cluster in points):")
            print(frontier_view(df, prices is not None, mixed).to_string(index=False))
            out["frontier"] = _records(df)
    if res.found:
        out["plan"] = plan_record(res.problem, res.solution)
        out["cost"] = res.cost
    if args.json:
        write_json(args.json, out)
    if not res.found:
        print(f"no cluster meets both ({res.binding}): {res.reason}")
        return 1
    sol = res.solution
    gpus = " + ".join(f"{n} x {t.name}" for t, n in cluster_pools(res.cluster))
    print(f"cheapest: {gpus}, cost {res.cost:g} {unit}"
          + (f" ({res.price_source})" if prices is not None else "")
          + f", score {sol.score:.4f} >= {res.quality_floor:g}, {p.slo.metric} "
            f"{sol.latency_ms:.1f} ms (SLO {p.slo.latency_ms:g})"
          + ("" if res.proven else " [not proven cheapest: "
             + ("a heuristic method]" if not proves_optimum(args.method)
                else "a cheaper cluster's solve stopped at its time limit]")))
    for name, s, w in zip(p.model_names, sol.setup.per_model, sol.fractions):
        print(f"  {name:40s} {s.label():14s} w={w:.3f}")
    for n in res.notes:
        print("  -", n)
    return 0


def curve_summary(table):
    """One row per curve of a profile table: points, capacity (the highest load it measured
    or simulated unsaturated), unloaded and highest unsaturated mean TTFT, source."""
    import pandas as pd
    rows = []
    for (model, gpu, tp, share), g in table.groupby(["model", "gpu", "tp", "compute_share"],
                                                    sort=True):
        ok = g[~g["saturated"].astype(bool)].sort_values("load_rps")
        rows.append({"model": model, "gpu": gpu, "tp": int(tp), "share": float(share),
                     "points": len(g),
                     "capacity_rps": round(float(ok["load_rps"].max()), 3) if len(ok) else None,
                     "ttft_unloaded_ms": round(float(ok["ttft_mean_ms"].iloc[0]), 1)
                     if len(ok) else None,
                     "ttft_at_capacity_ms": round(float(ok["ttft_mean_ms"].iloc[-1]), 1)
                     if len(ok) else None,
                     "source": ", ".join(sorted(set(g["source"])))})
    return pd.DataFrame(rows)


def _profiles(args) -> int:
    """``routerwise profiles list | show KEY | export KEY OUT``: the cached curves."""
    import pandas as pd

    from .serving.curve_grid import cached_grids, read_cached_grid
    from .settings import cache_dir
    if args.action == "list":
        grids = cached_grids()
        if grids.empty:
            print(f"no cached profile grids in {cache_dir() / 'profiles'}; `routerwise profiles` "
                  f"builds the default one, `routerwise solve` one per problem file with "
                  f"simulate = true")
            return 0
        grids["models"] = [m if len(m) <= 48 else m[:45] + "..." for m in grids["models"]]
        with pd.option_context("display.width", 160):
            print(grids.to_string(index=False))
        print(f"\n{len(grids)} grid(s) in {cache_dir() / 'profiles'}; `routerwise profiles show "
              f"KEY` lists a grid's curves, `export KEY OUT.csv` writes them")
        return 0
    table = read_cached_grid(args.key)
    if args.model:
        unknown = sorted(set(args.model) - set(table["model"]))
        if unknown:
            raise ValidationError(f"--model {unknown} not in grid {args.key}; it has "
                                  f"{sorted(set(table['model']))}")
        table = table[table["model"].isin(args.model)]
    if args.action == "show":
        with pd.option_context("display.width", 160, "display.max_rows", None):
            print(curve_summary(table).to_string(index=False))
        return 0
    from .io import atomic_write_with
    path = atomic_write_with(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"wrote {len(table)} load points of "
          f"{table.groupby(['model', 'tp', 'compute_share']).ngroups} curves to {path}")
    return 0


def add_live_check_parser(sub) -> None:
    """The ``live-check`` subcommand's arguments (:func:`live_check_from_args` runs it)."""
    lc = sub.add_parser("live-check", help="send a plan's workload through its router to live "
                                           "engines; measured vs predicted vs replayed",
                        epilog="exit codes: 0 every request answered; 1 some failed (counted "
                               "by kind in the record); 2 an input error")
    lc.add_argument("plan", help="the plan `routerwise solve --json` wrote")
    lc.add_argument("--endpoint", action="append", default=[], metavar="MODEL=URL",
                    help="an engine serving MODEL (repeatable; several per model are balanced)")
    lc.add_argument("--router", metavar="URL", help="a running `routerwise serve` to send "
                    "through (default: start one here on the endpoints)")
    lc.add_argument("--rate", type=float, help="arrival rate, req/s (default: the plan's)")
    lc.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals "
                    "(default 60)")
    lc.add_argument("--seed", type=int, default=0, help="arrivals and prompt draws (default 0)")
    lc.add_argument("--api", default="completions", choices=("completions", "chat"))
    lc.add_argument("--body", default="{}", metavar="JSON", help="extra fields for every "
                    "request body, e.g. '{\"ignore_eos\": true}' for random-weight models")
    lc.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    lc.add_argument("--json", metavar="PATH", help="write the measured record (and the "
                    "requests as PATH with .requests.csv) here")


def live_check_from_args(args) -> int:
    """``routerwise live-check``: see :mod:`routerwise.live.check`."""
    import json
    from contextlib import nullcontext

    from .live import require_live_extra
    from .live.check import (
        live_workload,
        measured_record,
        prompts_from_matrix,
        read_plan_record,
        router_resolver,
        send_workload,
    )
    from .live.plan import LivePlan
    require_live_extra()
    if args.json:
        _check_json_path(args.json)
    try:
        body = json.loads(args.body)
    except ValueError as e:
        raise ValidationError(f"--body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValidationError("--body must be a JSON object")
    plan = read_plan_record(args.plan)
    live = LivePlan.from_json(args.plan)
    if live.score_table is None:
        raise ValidationError(f"{args.plan} routes on the {live.score_dataset} dataset; a live "
                              f"check draws its prompts from a score table: plan a problem "
                              f"file (routerwise solve problem.toml --json PLAN)")
    endpoints = parse_endpoints(args.endpoint)
    if args.router is None and not endpoints:
        raise ValidationError("give --endpoint MODEL=URL for each model the plan routes to, or "
                              "--router URL of a running router")
    rate = float(plan["arrival_rate_rps"]) if args.rate is None else args.rate
    work = live_workload(prompts_from_matrix(live.scores()), rate,
                         args.duration, seed=args.seed)
    if args.router:
        server = nullcontext(args.router)
    else:
        from .live.app import create_app
        from .live.server import RouterServer
        server = RouterServer(create_app(live, endpoints))
    with server as s:
        url = s if isinstance(s, str) else s.url
        print(f"live check: {len(work)} requests at {rate:g} req/s for {args.duration:g} s "
              f"through {url}")
        df = send_workload(work, router_resolver(url), api=args.api, body_extra=body,
                           timeout_s=args.timeout)
    replay = plan.get("replay") if isinstance(plan.get("replay"), dict) and \
        "per_model" in plan["replay"] else None
    rec = measured_record(plan, df, duration_s=args.duration, rate_rps=rate, seed=args.seed,
                          replay=replay)
    if args.json:
        from .io import atomic_write_with, json_safe
        write_json(args.json, json_safe(rec), allow_nan=False)
        atomic_write_with(args.json + ".requests.csv", lambda t: df.to_csv(t, index=False))
    print(f"  {rec['metric']}: predicted {rec['predicted_ms']:.1f} ms (modelled), "
          + (f"replayed {replay['replayed_ms']:.1f} ms (simulated), " if replay else "")
          + f"live {rec['replayed_ms']:.1f} ms (measured), gap {rec['rel_gap_pct']:+.1f}%; "
          f"SLO {rec['slo_ms']:g} ms {'met' if rec['slo_met'] else 'NOT met'}")
    print(f"  {rec['requests_ok']}/{rec['requests_sent']} ok, achieved "
          f"{rec['achieved_rate_rps']:.2f} req/s, errors {rec['errors'] or 'none'}")
    for r in rec["per_model"]:
        print(f"  {r['model']:24s} planned {r['fraction']:.3f} live {r['live_fraction']:.3f}  "
              f"predicted {r['predicted_ms'] or float('nan'):.1f} ms  live {r['replayed_ms']:.1f} ms"
              f"  p99 {r['replayed_p99_ms']:.1f} ms")
    return 0 if rec["requests_failed"] == 0 else 1


def _version() -> str:
    from . import __version__
    return __version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="routerwise", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    from .problem import LATENCY_METRICS
    from .serving.hardware import GPUS
    metric_help = (f"default instance: the latency the SLO bounds, one of "
                   f"{', '.join(LATENCY_METRICS)} (default ttft_mean)")
    gpu_help = f"default instance: the GPU type, one of {', '.join(GPUS)} (default A100-80GB)"
    aggregate_help = ("mean: the load-weighted mean latency over models meets the SLO; max: "
                      "every routed model meets it (default mean)")
    from .paper.reproduce import add_arguments
    from .planning.consistency import DEFAULT_CONFIDENCE, DEFAULT_REPLAYS
    add_arguments(sub.add_parser("reproduce", help="run every notebook into a results folder"))
    s = sub.add_parser("solve", help="solve a problem file, or a default real-data instance",
                       epilog=SOLVE_EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("problem", nargs="?", help="a problem file (TOML); see routerwise.planning.problem_file")
    s.add_argument("--models", type=int, default=3, choices=(3, 4),
                   help="default instance: the paper's 3- or 4-model ladder (default 3)")
    s.add_argument("--gpus", type=int, default=4,
                   help="default instance: number of GPUs in the cluster (default 4)")
    s.add_argument("--rate", type=float, help="arrival rate, req/s (default instance)")
    s.add_argument("--slo", type=float, help="latency SLO, ms (default instance)")
    s.add_argument("--metric", default="ttft_mean", help=metric_help)
    s.add_argument("--aggregate", default="mean", choices=("mean", "max"), help=aggregate_help)
    s.add_argument("--method", default="auto", help="a registered solver: auto (default: exact "
                   "on small setup spaces, decomposition on large ones), exact, decomposition, "
                   "dual-price, milp")
    s.add_argument("--gpu", default="A100-80GB", help=gpu_help)
    s.add_argument("--memory-only", action="store_true",
                   help="the paper's deployability check (memory only, no compute placement)")
    s.add_argument("--headroom", type=float, default=None,
                   help="cap each model's load at this fraction of its curve's saturation-free "
                        "range (default 0.8; with --consistent the ladder 0.8 0.85 0.9 0.95, "
                        "relaxed only when no plan fits; 1 = the paper's behaviour)")
    s.add_argument("--consistent", action="store_true",
                   help="iterate to consistency: re-profile routed models with the prompts "
                        "the plan routes them, replay, re-solve (routerwise.planning.consistency)")
    s.add_argument("--json", metavar="PATH",
                   help="write the plan, its notes and its replay record (predicted vs "
                        "simulated mean and p99 per model, SLO met) to PATH")
    s.add_argument("--no-replay", action="store_true", help="leave the replay out of --json")
    s.add_argument("--replays", type=int, default=DEFAULT_REPLAYS,
                   help=f"independent replays (seeds derived from the base seed) behind a "
                        f"replay's SLO check and --consistent's verification (default "
                        f"{DEFAULT_REPLAYS}; 1 = one draw, no confidence statement)")
    s.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                   help=f"the SLO is met when, with this confidence, at least this fraction of "
                        f"fresh replays meet it (normal tolerance bound; default "
                        f"{DEFAULT_CONFIDENCE:g})")
    c = sub.add_parser("cost", help="fewest GPUs (or lowest $/hour) meeting the SLO and a "
                                    "quality floor; --frontier adds quality vs GPUs")
    c.add_argument("problem", nargs="?", help="a problem file (TOML), optionally with [prices]")
    c.add_argument("--quality-floor", type=float, required=True,
                   help="the lowest acceptable mean predicted score, in [0, 1]")
    c.add_argument("--max-gpus", type=int, default=8, help="largest cluster to try (default 8)")
    c.add_argument("--min-gpus", type=int, default=1, help="smallest cluster to try (default 1)")
    c.add_argument("--price", action="append", metavar="TYPE=USD",
                   help="$/hour of one GPU of TYPE (repeatable; replaces the file's [prices]); "
                        "your prices: the kit ships none")
    c.add_argument("--frontier", action="store_true",
                   help="also print the quality-vs-cost frontier with the baselines")
    c.add_argument("--models", type=int, default=3, choices=(3, 4))
    c.add_argument("--gpus", type=int, default=4, help=argparse.SUPPRESS)
    c.add_argument("--rate", type=float, help="arrival rate, req/s (default instance)")
    c.add_argument("--slo", type=float, help="latency SLO, ms (default instance)")
    c.add_argument("--metric", default="ttft_mean", help=metric_help)
    c.add_argument("--aggregate", default="mean", choices=("mean", "max"), help=aggregate_help)
    c.add_argument("--method", default="exact", help="a registered solver (exact: proven)")
    c.add_argument("--gpu", default="A100-80GB", help=gpu_help)
    c.add_argument("--memory-only", action="store_true",
                   help="the paper's deployability check (memory only, no compute placement)")
    c.add_argument("--headroom", type=float, default=None,
                   help="cap each model's load at this fraction of its curve's saturation-free "
                        "range (default 0.8, as solve; 1 = none)")
    c.add_argument("--json", metavar="PATH", help="write every cluster tried, the plan and "
                                                  "(with --frontier) the frontier to PATH")
    pr = sub.add_parser("profiles", help="build (or find) the simulated profile grid; list, "
                                         "inspect and export the cached grids")
    pr.add_argument("--gpu", default="A100-80GB", help=gpu_help.replace("default instance: ",
                                                                        "without a subcommand: "))
    pa = pr.add_subparsers(dest="action", metavar="{list,show,export}")
    pa.add_parser("list", help="the cached profile grids: key, GPU, models, curves, status")
    ps = pa.add_parser("show", help="one grid's curves: points, capacity, unloaded latency")
    ps.add_argument("key", help="a grid's key from `routerwise profiles list` (a unique prefix)")
    ps.add_argument("--model", action="append", help="only this model (repeatable)")
    pe = pa.add_parser("export", help="write one grid's curves as CSV in the kit's latency-table "
                                      "schema (a problem file's [latency] table)")
    pe.add_argument("key", help="a grid's key from `routerwise profiles list` (a unique prefix)")
    pe.add_argument("out", help="the CSV file to write")
    pe.add_argument("--model", action="append", help="only this model (repeatable)")
    sv = sub.add_parser("serve", help="serve a plan: an OpenAI-compatible router in front of "
                                      "the plan's model servers (routerwise.live)")
    sv.add_argument("plan", help="a plan written by `routerwise solve ... --json PLAN.json`")
    sv.add_argument("--endpoint", action="append", default=[], metavar="MODEL=URL",
                    help="a server of MODEL (serving it under that name), e.g. "
                         "chat-8b=http://127.0.0.1:8001; repeat for each model, and for "
                         "several servers of one model (least outstanding requests)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                         "127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    sv.add_argument("--decision-log", metavar="PATH",
                    help="append one JSON line per routed request (time, prompt SHA-256, "
                         "chosen model, scores, prices) to PATH")
    sv.add_argument("--log-prompts", action="store_true",
                    help="also write each prompt's text to the decision log")
    sv.add_argument("--no-access-log", action="store_true",
                    help="do not print a line per request (method, path, status)")
    sv.add_argument("--upstream-timeout-s", type=float, default=300.0,
                    help="give up on a model server silent for this long: 504 (default 300)")
    _add_calibrate(sub)
    add_live_check_parser(sub)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "serve":
            return _serve(args)
        if args.cmd == "calibrate":
            return _calibrate(args)
        if args.cmd == "reproduce":
            from .paper.reproduce import run_from_args
            return run_from_args(args)
        if args.cmd == "solve":
            if args.headroom is None:
                from .optimize.headroom import DEFAULT_LOAD_FRACTION
                from .planning.consistency import DEFAULT_HEADROOM_LADDER
                args.headroom = DEFAULT_HEADROOM_LADDER if args.consistent else \
                    DEFAULT_LOAD_FRACTION
            return _solve(args)
        if args.cmd == "live-check":
            return live_check_from_args(args)
        if args.cmd == "cost":
            if args.headroom is None:
                from .optimize.headroom import DEFAULT_LOAD_FRACTION
                args.headroom = DEFAULT_LOAD_FRACTION
            return _cost(args)
        if args.action:
            return _profiles(args)
        from .paper.instances import profile_table
        t = profile_table(args.gpu, progress=True)
        print(f"{len(t)} load points, {t.groupby(['model', 'tp', 'compute_share']).ngroups} curves")
        return 0
    except RouterWiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _add_calibrate(sub) -> None:
    from .data.reports import FORMATS
    k = sub.add_parser("calibrate", help="fit the serving model's overheads to a measured load "
                                         "sweep of your deployment; predict its other levels")
    k.add_argument("runs", nargs="+", metavar="RUN", help="the tool's result file(s) or folder")
    k.add_argument("--format", required=True, choices=sorted(FORMATS),
                   help="the tool that wrote RUN")
    k.add_argument("--arch", required=True, help="the served model's architecture: a "
                   "registered name, or its folder / config.json")
    k.add_argument("--gpu", required=True, help="a GPU type of the kit's catalogue (any name "
                   "with --step-table)")
    k.add_argument("--tp", type=int, required=True, help="tensor-parallel degree")
    k.add_argument("--engine", default="vllm-v1", choices=("vllm-v1", "vllm-v0"))
    k.add_argument("--max-num-seqs", type=int, help="the server's limit (default vLLM's)")
    k.add_argument("--max-num-batched-tokens", type=int,
                   help="the server's token budget (default vLLM's)")
    k.add_argument("--step-table", metavar="CSV", help="the engine's measured step times "
                   "(python -m profiling steps) in place of the kit's step model")
    k.add_argument("--kv-capacity-tokens", type=int, help="KV cache capacity (default: the "
                   "memory model; 1 GiB of KV on a CPU engine)")
    k.add_argument("--fit-levels", type=int, default=2, metavar="K",
                   help="fit on the lowest K unsaturated levels (default 2; K = 1 fits the "
                        "request and iteration overheads only)")
    k.add_argument("--json", required=True, metavar="OUT", help="write levels, errors, fitted "
                   "values and saturation rates to OUT")
    k.add_argument("--out", metavar="deployment.json", help="save the calibration (a problem "
                   "file's [latency] calibration)")


def _calibrate(args) -> int:
    from .data.reports import read_report
    from .serving.calibration import Deployment, calibrate

    report = read_report(args.runs, args.format)
    dep = Deployment(args.arch, args.gpu, args.tp, args.engine, args.max_num_seqs,
                     args.max_num_batched_tokens, args.step_table,
                     kv_capacity_tokens=args.kv_capacity_tokens)
    cal, doc = calibrate(report, dep, args.fit_levels)
    write_json(args.json, doc)
    if args.out:
        cal.save(args.out)
    print(f"fitted on {doc['fit_levels_rps']} req/s: "
          + ", ".join(f"{k} {v:.4g}" for k, v in doc["fitted"].items()))
    print(f"held-out levels {doc['levels_held_out']}: median |error| of mean TTFT and TPOT "
          f"{doc['median_abs_err_pct_heldout']:.1f}% (uncalibrated "
          f"{doc['median_abs_err_pct_heldout_uncalibrated']:.1f}%)")
    ci = doc["median_ci95_pct_heldout"]
    if math.isfinite(ci):
        print(f"the measurement's own noise there: median 95% half-width {ci:.1f}% (batch means "
              f"per level); a smaller error cannot be told from it")
    sat = doc["saturation"]
    print(f"saturation: measured {sat['measured_rps']:.3g} req/s, predicted "
          f"{sat['predicted_rps']:.3g} (uncalibrated {sat['predicted_rps_uncalibrated']:.3g})")
    for n in doc["notes"]:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
