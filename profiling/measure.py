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

from dataclasses import dataclass
from pathlib import Path

import httpx
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
