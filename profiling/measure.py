"""Setup latencies for the notebooks: measured when an endpoint or GPUs are there, else simulated.

:func:`setup_latencies` returns a profile table (``routerwise.data.latency_table`` schema) for one model
over tp degrees, compute shares and loads, and says which path produced it:

* ``endpoint`` is a URL of a running OpenAI-compatible server: it is measured (attach mode: the
  caller vouches that the server runs the model at the one (tp, share) given);
* ``launch=True``: one engine per (tp, share) is started with the launcher (vLLM under MPS:
  needs the engine, GPUs and ``nvidia-cuda-mps-control``);
* otherwise, or when the endpoint does not answer or no GPU is visible for a launch, the rows
  come from the kit's simulated profiles, and ``reason`` says why.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from routerwise.redact import redact_text, redact_url

from . import nvml
from .errors import PointFailed
from .launcher import EngineSpec, MPSDaemon
from .loadgen import synthetic_prompts
from .sweep import SweepSetup, run_sweep


@dataclass(frozen=True)
class SetupLatencies:
    table: pd.DataFrame
    mode: str          # "measured" | "simulated"
    reason: str


def endpoint_reachable(url: str, timeout_s: float = 3.0) -> str | None:
    """None when ``url`` answers /v1/models, else why not."""
    shown = redact_url(url)
    try:
        r = httpx.get(url.rstrip("/") + "/v1/models", timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as e:
        return redact_text(f"{shown} does not answer ({type(e).__name__}: {e})")
    return None if r.status_code == 200 else f"{shown}/v1/models answered HTTP {r.status_code}"


def simulated_rows(model: str, tp_degrees, shares, gpu: str = "A100-80GB") -> pd.DataFrame:
    from routerwise.paper.instances import profile_table
    t = profile_table(gpu)
    keep = (t["model"] == model) & t["tp"].isin(list(tp_degrees)) & \
        t["compute_share"].round(1).isin([round(s, 1) for s in shares])
    return t[keep].reset_index(drop=True)


def setup_latencies(model: str, tp_degrees, shares, loads_rps, *, endpoint: str = "simulate",
                    launch: bool = False, out_dir: str | Path = "results/measurements",
                    num_requests: int = 200, duration_s: float | None = 60.0,
                    gpu: str = "A100-80GB", served_model: str | None = None,
                    hf_model: str | None = None, gpus: tuple[int, ...] | None = None,
                    nvml_backend=None) -> SetupLatencies:
    """Measure (endpoint or launch) or fall back to simulation; see the module docstring.

    ``gpu`` labels measured rows from an endpoint (the server's GPU type) and picks the
    simulated profiles of the fallback; a launch labels rows with the local NVML name.
    """
    if endpoint != "simulate":
        why = endpoint_reachable(endpoint)
        if why is None:
            if len(tp_degrees) != 1 or len(shares) != 1:
                why = ("an attached endpoint serves one (tp, share); give exactly one of each "
                       "or use launch=True")
            else:
                setup = SweepSetup(model, int(tp_degrees[0]), float(shares[0]),
                                   endpoint_url=endpoint, served_model=served_model)
                try:
                    table = run_sweep([setup], loads_rps, out_dir, prompts=synthetic_prompts(),
                                      gpu=gpu, num_requests=num_requests,
                                      duration_s=duration_s, nvml_backend=nvml_backend)
                except PointFailed as e:  # answered /v1/models, but could not serve requests
                    why = redact_text(f"the endpoint failed its load points: {e}")
                else:
                    return SetupLatencies(table, "measured",
                                          f"measured against {setup.endpoint}")
        return SetupLatencies(simulated_rows(model, tp_degrees, shares, gpu), "simulated",
                              f"fell back to simulated profiles: {why}")
    if launch:
        snap = nvml.snapshot(nvml_backend)
        if not snap.available or not snap.gpus:
            return SetupLatencies(simulated_rows(model, tp_degrees, shares, gpu), "simulated",
                                  f"fell back to simulated profiles: {snap.reason or 'no GPU'}")
        devices = gpus or tuple(g.index for g in snap.gpus)
        setups = [SweepSetup(model, int(tp), float(sh), engine=EngineSpec(
            model=hf_model or model, tp=int(tp), compute_share=float(sh),
            gpus=tuple(devices[:int(tp)]))) for tp in tp_degrees for sh in shares]
        with MPSDaemon(gpus=devices) as mps:
            table = run_sweep(setups, loads_rps, out_dir, prompts=synthetic_prompts(),
                              num_requests=num_requests, duration_s=duration_s, mps=mps,
                              nvml_backend=nvml_backend)
        return SetupLatencies(table, "measured", "measured on launched engines under MPS")
    return SetupLatencies(simulated_rows(model, tp_degrees, shares, gpu), "simulated",
                          "endpoint='simulate': simulated profiles")


# ---------------------------------------------------------------------------------------------
# Notebook 07: a short measured sweep on the real engine, with repeats, or the simulated fallback

MODES = ("auto", "tiny", "endpoint", "simulated")
STATS = ("ttft_mean_ms", "ttft_p99_ms", "tpot_mean_ms")


@dataclass(frozen=True)
class LatencyRun:
    """What :func:`latency_run` measured (or simulated).

    ``table``: profile rows (``routerwise.data.latency_table`` schema), one per (load, repeat)
    when measured, with a ``repeat`` column; ``levels``: one row per load, the mean of each of
    :data:`STATS` over the repeats with its repeats' ``_min``/``_max`` and ``_spread_pct``
    (``100 (max - min) / mean``, the repeat noise), in the profile schema so it plots like a
    profile (simulated: the simulated rows). ``model``/``tp_degrees``/``shares`` name the curves
    drawn; ``provenance`` says what served them (engine version, hardware, model); ``notes``:
    the warnings the measurement raised (a load generator behind its schedule, a point without
    server metrics), kept here instead of printed so that a notebook's output stays the same."""

    table: pd.DataFrame
    levels: pd.DataFrame
    mode: str          # "measured" | "simulated"
    reason: str
    model: str
    tp_degrees: tuple[int, ...]
    shares: tuple[float, ...]
    provenance: dict
    notes: tuple[str, ...] = field(default=())


class _NoteHandler(logging.Handler):
    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(f"{record.levelname.lower()}: {record.getMessage()}")


@contextlib.contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Collect the Python warnings and the ``profiling`` loggers' warnings raised inside the
    block into the list it yields, instead of printing them to stderr (where a notebook under
    nbval would fail on an output field that a quiet run does not have). Callers report them."""
    notes: list[str] = []
    handler = _NoteHandler(notes)
    logger = logging.getLogger("profiling")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notes
    finally:
        logger.removeHandler(handler)
    notes.extend(f"warning: {w.message}" for w in caught)


def repeat_levels(table: pd.DataFrame) -> pd.DataFrame:
    """Per load, the mean of :data:`STATS` over the repeats, their min, max and spread (%):
    profile-schema rows (``saturated`` when any repeat saturated) plus those columns."""
    from routerwise.data import latency_table
    rows = []
    for _, d in table.groupby("load_rps", sort=True):
        row = latency_table.normalize(d.head(1)).iloc[0].to_dict()
        d = d.reindex(columns=list(latency_table.COLUMNS))  # repeats: not one profile
        for c in latency_table.METRIC_COLUMNS + ("duration_s",):
            row[c] = float(d[c].mean())
        row["num_requests"] = int(d["num_requests"].sum())
        row["saturated"] = bool(d["saturated"].astype(bool).any())
        row["repeats"] = len(d)
        for c in STATS:
            lo, hi, mean = float(d[c].min()), float(d[c].max()), float(d[c].mean())
            row[f"{c}_min"], row[f"{c}_max"] = lo, hi
            row[f"{c}_spread_pct"] = 100.0 * (hi - lo) / mean if mean > 0 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def repeat_noise_pct(levels: pd.DataFrame, stat: str = "ttft_mean_ms") -> float:
    """The median over loads of the repeats' spread of ``stat`` (%): the noise floor."""
    col = f"{stat}_spread_pct"
    if col not in levels or levels[col].dropna().empty:
        return float("nan")
    return float(levels[col].median())


def _sweep_repeats(base_url: str, served_model: str, label: str, loads_rps, repeats: int,
                   num_requests: int, out: Path, *, gpu: str, exact_length: bool,
                   prompts) -> pd.DataFrame:
    """``repeats`` sweeps of ``loads_rps`` against one running server (one folder each, fresh
    Poisson arrivals per repeat); the rows of every repeat, with a ``repeat`` column."""
    tables = []
    for k in range(repeats):
        setup = SweepSetup(label, 1, 1.0, endpoint_url=base_url, served_model=served_model)
        t = run_sweep([setup], loads_rps, out / f"repeat-{k}", prompts=prompts, gpu=gpu,
                      num_requests=num_requests, seed=k, exact_length=exact_length,
                      server_metrics=True, stop_after_saturation=False, progress=False,
                      sample_interval_s=None, request_timeout_s=300.0)
        tables.append(t.assign(repeat=k))
    return pd.concat(tables, ignore_index=True)


def _tiny_run(tiny_model: str, loads_rps, repeats: int, num_requests: int, out: Path,
              startup_timeout_s: float) -> tuple[pd.DataFrame, dict]:
    """Build ``tiny_model``, serve it with vLLM on loopback, sweep, stop the server."""
    import platform

    from .engine_check import MAX_TOKENS, PROMPT_WORDS, SERVER_ARGS
    from .launcher import engine_version, launch
    from .loadgen import Endpoint, poisson_schedule, run_load
    from .tiny_models import build_tiny_model
    from .vllm_server import is_cpu_build, vllm_spec

    folder = build_tiny_model(out.parent / "models" / tiny_model, tiny_model, seed=0)
    spec = vllm_spec(folder, extra_args=SERVER_ARGS, startup_timeout_s=startup_timeout_s)
    prompts = synthetic_prompts(num_requests, prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS)
    hardware = "CPU" if is_cpu_build() else "GPU"
    with launch(spec, log_path=out / "engine.log") as eng:
        prov = {"engine_version": engine_version(), "hardware": hardware,
                "machine": platform.machine(), "model": tiny_model, "model_seed": 0,
                "prompt_tokens": PROMPT_WORDS + 1, "output_tokens": MAX_TOKENS,
                "server": eng.provenance()}
        # untimed warm-up: the CPU build builds kernels for each new batch shape
        warm = min(20, num_requests)
        run_load(poisson_schedule(float(np.median(loads_rps)), num_requests=warm, seed=10**6),
                 synthetic_prompts(warm, prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS,
                                   seed=10**6),
                 Endpoint(eng.base_url, spec.served_model_name, exact_length=True,
                          request_timeout_s=300.0), progress=False)
        table = _sweep_repeats(eng.base_url, spec.served_model_name, tiny_model, loads_rps,
                               repeats, num_requests, out, gpu=hardware.lower(),
                               exact_length=True, prompts=prompts)
    return table, prov


def latency_run(mode: str = "auto", *, loads_rps=(4.0, 12.0, 24.0), repeats: int = 2,
                num_requests: int = 40, tiny_model: str = "tiny-llama-s", endpoint: str = "",
                served_model: str = "", model: str = "llama-3.1-8b-instruct",
                tp_degrees=(1, 2), shares=(0.5, 1.0), gpu: str = "A100-80GB",
                out_dir: str | Path = "results/measurements",
                startup_timeout_s: float = 600.0) -> LatencyRun:
    """Latencies for notebook 07, measured on a real engine where there is one.

    ``mode``:

    * ``"tiny"``: build ``tiny_model`` (:mod:`profiling.tiny_models`), serve it with the
      installed vLLM on 127.0.0.1 (:mod:`profiling.vllm_server` settings), sweep ``loads_rps``
      ``repeats`` times with ``num_requests`` requests per point, and stop the server;
      :class:`ToolUnavailable` when vLLM is not installed;
    * ``"endpoint"``: the same sweep against ``endpoint``, a running OpenAI-compatible server
      serving ``served_model`` (rows labelled ``model``, ``gpu``); an endpoint that does not
      answer falls back to the simulated profiles, with the reason;
    * ``"simulated"``: the kit's simulated profiles of ``model`` over ``tp_degrees`` x
      ``shares`` on ``gpu``;
    * ``"auto"``: ``"tiny"`` when vLLM can be imported, else ``"simulated"`` with the reason.

    Each measured run writes into a new folder under ``out_dir`` (a rerun measures afresh).
    """
    from routerwise.errors import ValidationError

    from .errors import ToolUnavailable
    from .vllm_server import engine_installed
    if mode not in MODES:
        raise ValidationError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    loads = sorted(float(x) for x in loads_rps)
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValidationError(f"repeats must be an integer >= 1, got {repeats!r}")

    def simulated(reason: str) -> LatencyRun:
        t = simulated_rows(model, tp_degrees, shares, gpu)
        return LatencyRun(t, t, "simulated", reason, model, tuple(int(x) for x in tp_degrees),
                          tuple(float(x) for x in shares), {"source": f"simulated on {gpu}"})

    why = None
    if mode == "auto":
        why = engine_installed()
        if why is not None:
            return simulated(f"fell back to simulated profiles: {why}")
        mode = "tiny"
    if mode == "simulated":
        return simulated("mode='simulated': simulated profiles")
    from datetime import UTC, datetime
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    if mode == "tiny":
        why = engine_installed()
        if why is not None:
            raise ToolUnavailable(f"mode='tiny' serves a tiny model with vLLM: {why}; or use "
                                  f"mode='simulated'")
        with collect_notes() as notes:
            table, prov = _tiny_run(tiny_model, loads, repeats, num_requests,
                                    Path(out_dir) / "tiny" / f"{tiny_model}-{stamp}",
                                    startup_timeout_s)
        levels = repeat_levels(table)
        return LatencyRun(table, levels, "measured",
                          f"measured on {prov['engine_version']} ({prov['hardware']}) serving "
                          f"the random-weight {tiny_model} on 127.0.0.1: {len(loads)} loads x "
                          f"{repeats} repeats x {num_requests} requests",
                          tiny_model, (1,), (1.0,), prov, tuple(notes))
    if not endpoint:
        raise ValidationError("mode='endpoint' measures a running server: give endpoint= its "
                              "URL (e.g. http://127.0.0.1:8000)")
    why = endpoint_reachable(endpoint)
    if why is not None:
        return simulated(f"fell back to simulated profiles: {why}")
    shown = redact_url(endpoint.rstrip("/"))
    try:
        with collect_notes() as notes:
            table = _sweep_repeats(endpoint, served_model or model, model, loads, repeats,
                                   num_requests, Path(out_dir) / "endpoint" / stamp, gpu=gpu,
                                   exact_length=False, prompts=synthetic_prompts())
    except PointFailed as e:  # answered /v1/models, but could not serve requests
        return simulated(redact_text(f"fell back to simulated profiles: the endpoint failed "
                                     f"its load points: {e}"))
    return LatencyRun(table, repeat_levels(table), "measured",
                      f"measured against {shown}: {len(loads)} loads x {repeats} repeats x "
                      f"{num_requests} requests", model, (1,), (1.0,),
                      {"endpoint": shown, "hardware": gpu, "model": served_model or model},
                      tuple(notes))
