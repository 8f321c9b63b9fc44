"""Latency-profile sweeps over (model, tp, compute share, load), resumable and append-only.

For each :class:`SweepSetup` the sweep launches its engine (or attaches to a running endpoint),
runs the loads in ascending order and stops the curve after the first saturated point (see
:class:`profiling.loadgen.SaturationCriteria`). Each finished point is a folder::

    <out_dir>/points/<model>-<digest>/tp<tp>-share<rho>/load-<rps>rps/
        point.json     settings the point was measured with (written first)
        requests.csv   one row per request (profiling.loadgen)
        gpu.csv        NVML samples during the run, when a GPU is visible
        server_metrics.json  the engine's own /metrics over the run (server_metrics=True)
        summary.csv    the profile row; written last, so its presence marks a finished point

(``<model>-<digest>``: the model name as a safe folder name, :func:`routerwise.io.safe_name`.)

A rerun with the same settings skips finished points (resume after interruption); a rerun
whose settings differ from a finished point's raises :class:`~profiling.errors.ResultExists`
instead of overwriting it: remove that folder, or choose another ``out_dir``. Half-finished
points (no ``summary.csv``) are measured again. After every point the summaries are assembled
into ``<out_dir>/profile.csv`` with :func:`routerwise.data.latency_table.write_table`.

A run that measured the endpoint's failure (:func:`profiling.loadgen.endpoint_failure`: no
request completed, or most failed with connection/protocol faults) is *failed*, not
saturated: its requests and the reason go to ``<point>/failed-<UTC stamp>/`` (``requests.csv``,
``failure.json``), no ``summary.csv`` is written, so the point is never treated as finished
and a rerun measures it again; the curve stops there and :func:`run_sweep` raises
:class:`~profiling.errors.PointFailed` listing every failed point (after assembling the
finished ones).

For a setup attached to a running endpoint, the endpoint (its URL without credentials) is part
of the points' identity: the curve folder is ``tp<tp>-share<rho>-at-<host>_<port>-<hash>`` and
``point.json`` records it, so a rerun against another endpoint measures anew instead of
skipping. Should two endpoints' finished points share a (model, gpu, tp, share, load), the
table keeps the most recently finished one and logs which it superseded. Credentials never
reach a written file (see :mod:`routerwise.redact`).

A compute share below 1 takes effect only under NVIDIA MPS, so launching such a setup without
an :class:`~profiling.launcher.MPSDaemon` is refused rather than measured mislabelled.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from routerwise.data import latency_table as profiles
from routerwise.errors import ValidationError
from routerwise.io import atomic_write_with, safe_name, write_json
from routerwise.redact import redact_url

from . import nvml
from .errors import PointFailed, ResultExists
from .launcher import EngineSpec, MPSDaemon, launch
from .loadgen import Endpoint, PromptSet, SaturationCriteria, endpoint_failure, poisson_schedule, run_load, summarize
from .sampler import GPUSampler

log = logging.getLogger(__name__)

SUMMARY, REQUESTS, SETTINGS, GPU_SAMPLES = "summary.csv", "requests.csv", "point.json", "gpu.csv"
SERVER_METRICS = "server_metrics.json"
FAILURE = "failure.json"


@dataclass(frozen=True)
class SweepSetup:
    """One curve: launch ``engine``, or attach to ``endpoint_url`` (then the caller vouches
    that it serves ``model`` at this ``tp`` and ``compute_share``)."""

    model: str
    tp: int = 1
    compute_share: float = 1.0
    engine: EngineSpec | None = None
    endpoint_url: str | None = None
    served_model: str | None = None

    def __post_init__(self):
        share = self.compute_share
        if not (isinstance(share, (int, float)) and math.isfinite(share)
                and 0.1 - 1e-9 <= share <= 1.0 + 1e-9 and abs(share * 10 - round(share * 10)) < 1e-6):
            raise ValidationError(f"setup {self.model} tp{self.tp}: compute_share must be a "
                                  f"multiple of 0.1 in [0.1, 1.0] (an MPS share), got {share!r}")
        if not (isinstance(self.tp, int) and self.tp >= 1):
            raise ValidationError(f"setup {self.model}: tp must be an integer >= 1, "
                                  f"got {self.tp!r}")
        if (self.engine is None) == (self.endpoint_url is None):
            raise ValidationError(f"setup {self.label}: give exactly one of engine= (launch) or "
                                  f"endpoint_url= (attach)")
        if self.engine is not None and (self.engine.tp != self.tp or
                                        abs(self.engine.compute_share - self.compute_share) > 1e-9):
            raise ValidationError(f"setup {self.label}: its engine spec says tp={self.engine.tp}, "
                                  f"compute_share={self.engine.compute_share}")

    @property
    def label(self) -> str:
        return f"{self.model} tp{self.tp} share{self.compute_share:.1f}"

    @property
    def endpoint(self) -> str | None:
        """The attached endpoint without credentials (None for a launched engine)."""
        return None if self.endpoint_url is None else redact_url(self.endpoint_url.rstrip("/"))

    def folder(self, root: Path) -> Path:
        name = f"tp{self.tp}-share{self.compute_share:.1f}"
        if self.endpoint is not None:
            from urllib.parse import urlsplit
            parts = urlsplit(self.endpoint)
            name += "-at-" + safe_name(f"{parts.hostname}_{parts.port or ''}",
                                       key=self.endpoint, digest_chars=6)
        # model names are the user's (an HF id has a '/'): never a path
        return root / "points" / safe_name(self.model) / name


def point_dir(root: str | Path, setup: SweepSetup, load_rps: float) -> Path:
    return setup.folder(Path(root)) / f"load-{load_rps:g}rps"


def is_finished(folder: Path) -> bool:
    return (folder / SUMMARY).is_file()


def write_point(folder: Path, requests: pd.DataFrame, summary: pd.DataFrame,
                gpu_samples: pd.DataFrame | None = None) -> None:
    """Write a measured point; refuses to replace a finished one."""
    if is_finished(folder):
        raise ResultExists(f"{folder} already holds a finished measurement; remove that folder "
                           f"to measure it again")
    atomic_write_with(folder / REQUESTS, lambda tmp: requests.to_csv(tmp, index=False))
    if gpu_samples is not None:
        atomic_write_with(folder / GPU_SAMPLES, lambda tmp: gpu_samples.to_csv(tmp, index=False))
    atomic_write_with(folder / SUMMARY, lambda tmp: profiles.normalize(summary).to_csv(
        tmp, index=False))


def write_failure(folder: Path, requests: pd.DataFrame, reason: str, settings: dict) -> Path:
    """Keep a failed run apart from the point's measurements: ``folder/failed-<stamp>/``."""
    where = folder / f"failed-{_stamp()}"
    atomic_write_with(where / REQUESTS, lambda tmp: requests.to_csv(tmp, index=False))
    write_json(where / FAILURE, {"reason": reason, "settings": settings})
    return where


def assemble(out_dir: str | Path) -> pd.DataFrame:
    """All finished points under ``out_dir`` as one profile table, written to profile.csv."""
    out_dir = Path(out_dir)
    paths = sorted(out_dir.glob(f"points/*/*/*/{SUMMARY}"), key=lambda p: p.stat().st_mtime_ns)
    parts = [profiles.read_table(p).assign(_folder=str(p.parent)) for p in paths]
    if parts:
        table = pd.concat(parts, ignore_index=True)
        dup = table.duplicated(list(profiles.KEY_COLUMNS), keep="last")
        for folder in table.loc[dup, "_folder"]:
            log.warning("superseded by a later measurement of the same point: %s", folder)
        table = profiles.normalize(table.loc[~dup].drop(columns="_folder"))
    else:
        table = profiles.empty_table()
    profiles.write_table(table, out_dir / "profile.csv")
    return table


def _check_settings(folder: Path, settings: dict) -> None:
    recorded = json.loads((folder / SETTINGS).read_text()) if (folder / SETTINGS).is_file() else {}
    diff = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
    if diff:
        shown = "; ".join(f"{k}: finished={a!r} now={b!r}" for k, (a, b) in sorted(diff.items()))
        raise ResultExists(f"{folder} holds a finished measurement taken with other settings "
                           f"({shown}). It is never overwritten: remove that folder (or the "
                           f"whole out_dir) to measure again, or choose another out_dir.")


def _saturated(folder: Path) -> bool:
    return bool(profiles.read_table(folder / SUMMARY)["saturated"].iloc[0])


def run_sweep(setups: Sequence[SweepSetup], loads_rps: Sequence[float], out_dir: str | Path, *,
              prompts: PromptSet, gpu: str | None = None, num_requests: int | None = None,
              duration_s: float | None = None, seed: int = 0, api: str = "completions",
              max_concurrency: int = 512, request_timeout_s: float = 600.0,
              connect_timeout_s: float = 10.0, read_timeout_s: float = 120.0,
              criteria: SaturationCriteria = SaturationCriteria(),  # noqa: B008 (frozen dataclass)
              point_max_wall_s: float | None = None, mps: MPSDaemon | None = None,
              stop_after_saturation: bool = True, sample_interval_s: float | None = 1.0,
              nvml_backend: Any | None = None, progress: bool = True,
              on_point: Callable[[Path, pd.DataFrame], None] | None = None,
              server_metrics: bool = False, exact_length: bool = False) -> pd.DataFrame:
    """Measure every (setup, load) point not yet finished; return the assembled profile table.

    Each point offers Poisson arrivals at its load (``seed``), bounded by ``num_requests``
    and/or ``duration_s``; ``point_max_wall_s`` (default: three times the schedule's span plus
    ``request_timeout_s``) bounds one point's run. ``gpu`` labels the rows; by default it is
    the NVML name of the first GPU. ``on_point(folder, summary)`` is called after each newly
    measured point. Timeouts: see :class:`profiling.loadgen.Endpoint`. A failed point (see the
    module notes) raises :class:`PointFailed` at the end, after the other setups ran.
    ``server_metrics`` scrapes the engine's ``/metrics`` before and after each point and keeps
    what it recorded (:func:`profiling.server_metrics.delta`) in ``server_metrics.json`` and
    the row's provenance. ``exact_length`` asks for exactly ``max_tokens`` tokens per request
    (:class:`~profiling.loadgen.Endpoint`; random-weight models).
    """
    for name, v in (("request_timeout_s", request_timeout_s),
                    ("connect_timeout_s", connect_timeout_s), ("read_timeout_s", read_timeout_s)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValidationError(f"{name} must be a positive number of seconds, got {v!r}")
    loads = sorted(float(x) for x in loads_rps)
    if not loads or any(not (x > 0 and math.isfinite(x)) for x in loads) or \
            len(set(loads)) != len(loads):
        raise ValidationError(f"loads_rps must be distinct positive numbers, got {loads_rps}")
    if num_requests is None and duration_s is None:
        raise ValidationError("bound each load point: give num_requests, duration_s or both")
    labels = [s.label for s in setups]
    if len(set(labels)) != len(labels):
        raise ValidationError(f"setups repeat a (model, tp, compute_share): {labels}")
    for s in setups:
        if s.engine is not None and s.compute_share < 1.0 and mps is None:
            raise ValidationError(f"setup {s.label} asks for a compute share below 1, which "
                                  f"only MPS enforces: pass mps=MPSDaemon(...) (CLI: --mps)")
    out_dir = Path(out_dir)
    snap = nvml.snapshot(nvml_backend)
    gpu = gpu or nvml.gpu_label(snap)
    if not gpu:
        raise ValidationError(f"name the GPU type for the profile rows (gpu='A100-80GB'); NVML "
                              f"gives none here: {snap.reason or 'no GPU name'}")
    hardware = ({"nvml_driver": snap.driver_version, "nvml_cuda_driver": snap.cuda_driver_version,
                 "nvml_gpus": [g.name for g in snap.gpus]} if snap.available
                else {"nvml": snap.reason})
    base = {"gpu": gpu, "prompt_set": prompts.name, "prompt_set_sha256": prompts.sha256,
            "num_requests": num_requests, "duration_s": duration_s, "seed": seed, "api": api,
            "criteria": asdict(criteria)}

    failures: list[str] = []
    for setup in setups:
        todo = []
        for load in loads:
            folder = point_dir(out_dir, setup, load)
            settings = {**base, "model": setup.model, "tp": setup.tp,
                        "compute_share": setup.compute_share, "load_rps": load}
            if setup.endpoint is not None:
                settings["endpoint"] = setup.endpoint
            if is_finished(folder):
                _check_settings(folder, settings)
                log.info("finished, skipped: %s", folder)
                if stop_after_saturation and _saturated(folder):
                    todo = []
                    break
                continue
            todo.append((load, folder, settings))
        if not todo:
            continue
        if setup.engine is not None:
            ctx = launch(setup.engine, mps=mps,
                         log_path=setup.folder(out_dir) / f"engine-{_stamp()}.log")
        else:
            ctx = _Attached(setup)
        with ctx as engine:
            endpoint = Endpoint(engine.base_url, setup.served_model or engine.served_model,
                                api=api, max_concurrency=max_concurrency,
                                request_timeout_s=request_timeout_s,
                                connect_timeout_s=connect_timeout_s,
                                read_timeout_s=read_timeout_s, exact_length=exact_length)
            for load, folder, settings in todo:
                write_json(folder / SETTINGS, settings)
                schedule = poisson_schedule(load, num_requests=num_requests,
                                            duration_s=duration_s, seed=seed)
                wall = point_max_wall_s or 3 * schedule.times_s[-1] + request_timeout_s
                sampler = GPUSampler(None, sample_interval_s, backend=nvml_backend) \
                    if snap.available and sample_interval_s else None
                if sampler:
                    sampler.start()
                before = _scrape(engine.base_url) if server_metrics else None
                try:
                    result = run_load(schedule, prompts, endpoint, max_wall_s=wall,
                                      progress=progress)
                finally:
                    samples = sampler.stop() if sampler else None
                reason = endpoint_failure(result.requests)
                if reason is not None:
                    where = write_failure(folder, result.requests, reason, settings)
                    log.error("failed, not a profile point: %s at %g rps: %s (kept in %s)",
                              setup.label, load, reason, where)
                    failures.append(f"{setup.label} at {load:g} rps ({where}): {reason}")
                    break  # the rest of this curve would measure the same failure
                server = (_server_delta(before, engine.base_url, endpoint.model)
                          if server_metrics else {})
                summary = summarize(result, load, model=setup.model, gpu=gpu, tp=setup.tp,
                                    compute_share=setup.compute_share, criteria=criteria,
                                    provenance={**hardware, **engine.provenance(), **server})
                if server:
                    write_json(folder / SERVER_METRICS, server["server_metrics"])
                write_point(folder, result.requests, summary, samples)
                assemble(out_dir)
                log.info("measured %s at %g rps: saturated=%s", setup.label, load,
                         bool(summary["saturated"].iloc[0]))
                if on_point is not None:
                    on_point(folder, summary)
                if stop_after_saturation and bool(summary["saturated"].iloc[0]):
                    break
    table = assemble(out_dir)
    if failures:
        raise PointFailed(f"{len(failures)} load point(s) measured a failing endpoint, not its "
                          f"latency; they are not in profile.csv and a rerun measures them "
                          f"again. Check the endpoint (URL, served model name, --api) and its "
                          f"log:\n  " + "\n  ".join(failures), table=table)
    return table


class _Attached:
    """An already-running endpoint in the shape of a launched engine (nothing to stop)."""

    def __init__(self, setup: SweepSetup):
        self.base_url = setup.endpoint_url.rstrip("/")
        self.served_model = setup.served_model or setup.model
        self.shown_url = redact_url(self.base_url)

    def __enter__(self) -> _Attached:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def provenance(self) -> dict:
        return {"engine": f"attached to a running endpoint at {self.shown_url}; its setup was "
                          f"declared by the caller, not launched by the sweep"}


def _scrape(base_url: str) -> dict | str:
    from .server_metrics import MetricsUnavailable, scrape
    try:
        return scrape(base_url)
    except MetricsUnavailable as e:
        return str(e)


def _server_delta(before: dict | str, base_url: str, model: str) -> dict:
    """``{"server_metrics": ...}`` for a point's provenance: the delta, or why there is none."""
    from .server_metrics import delta
    after = _scrape(base_url)
    for snap in (before, after):
        if isinstance(snap, str):
            log.warning("no server metrics for this point: %s", snap)
            return {"server_metrics": {"unavailable": snap}}
    return {"server_metrics": delta(before, after, model)}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
