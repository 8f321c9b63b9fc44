"""Command line: ``python -m profiling inventory|sample|sweep|steps`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from routerwise.errors import RouterWiseError, ValidationError
from routerwise.io import blank

from . import nvml


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m profiling", description=(
        "GPU inventory, GPU sampling, latency-profile sweeps against serving engines, and "
        "prefill/decode step timing."))
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("inventory", help="show the GPUs NVML sees")
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")

    p = sub.add_parser("sample", help="record GPU state at an interval into a CSV table")
    p.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    p.add_argument("--interval-s", type=float, default=1.0)
    p.add_argument("--duration-s", type=float, default=None,
                   help="stop after this long (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--flush-every-s", type=float, default=5.0,
                   help="rewrite the CSV (atomically) this often, so a hard kill (kill -9, "
                        "power loss) loses at most this much (default: 5)")

    p = sub.add_parser("sweep", help="measure latency profiles over tp x share x load")
    p.add_argument("--model", required=True, help="model name or path given to the engine")
    p.add_argument("--served-model-name", default=None,
                   help="model name the endpoint expects in requests (default: --model)")
    p.add_argument("--tp", type=int, nargs="+", default=[1])
    p.add_argument("--shares", type=float, nargs="+", default=[1.0],
                   help="MPS compute shares (multiples of 0.1); below 1 needs --mps")
    p.add_argument("--loads", type=float, nargs="+", required=True, help="offered loads, rps")
    p.add_argument("--out", required=True, type=Path, help="results folder (resumable)")
    p.add_argument("--gpu", default=None, help="GPU label for the rows (default: NVML name)")
    p.add_argument("--gpus", type=int, nargs="+", default=[0],
                   help="CUDA devices; a tp-k setup uses the first k")
    p.add_argument("--endpoint", default=None,
                   help="attach to this running endpoint instead of launching (one setup only)")
    p.add_argument("--command", default=None,
                   help="engine command template (default: vLLM's OpenAI server); fields "
                        "{python} {model} {tp} {gpu_memory_utilization} {host} {port}")
    p.add_argument("--extra-args", default="", help="appended to the engine command")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--startup-timeout-s", type=float, default=1800.0)
    p.add_argument("--mps", action="store_true", help="run a private MPS daemon for the sweep")
    p.add_argument("--engine", choices=("command", "vllm"), default="command",
                   help="'vllm': --model is a local model folder served by the installed vLLM "
                        "(`make engine`) with the kit's settings (profiling.vllm_server; the "
                        "CPU build's on CPU machines, rows labelled --gpu, default 'cpu'), the "
                        "engine's /metrics recorded and exact output lengths; 'command' "
                        "(default): the --command template")
    p.add_argument("--cpu-cores", default=None,
                   help="--engine vllm, CPU build: cores for the server's threads (e.g. 0 or "
                        "2-3); servers running at once need disjoint cores")
    p.add_argument("--server-metrics", action="store_true",
                   help="record the engine's /metrics beside the client's timings (on with "
                        "--engine vllm)")
    p.add_argument("--exact-length", action="store_true",
                   help="ask for exactly max_tokens tokens per request (min_tokens; on with "
                        "--engine vllm)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompts", type=Path, default=None,
                     help="JSON-lines prompts: {\"prompt\": ..., \"max_tokens\": ...}")
    src.add_argument("--synthetic", type=int, default=64, help="number of synthetic prompts")
    p.add_argument("--prompt-words", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--num-requests", type=int, default=None)
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api", choices=("completions", "chat"), default="completions")
    p.add_argument("--max-concurrency", type=int, default=512)
    p.add_argument("--connect-timeout-s", type=float, default=10.0,
                   help="per request: TCP connect limit (default: 10)")
    p.add_argument("--read-timeout-s", type=float, default=120.0,
                   help="per request: longest silence between two chunks (default: 120)")
    p.add_argument("--request-timeout-s", type=float, default=600.0,
                   help="per request: limit on the whole response (default: 600)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("steps", help="time prefill/decode steps of a Llama-shaped model")
    shape = p.add_mutually_exclusive_group(required=True)
    shape.add_argument("--model", help="a preset shape (see profiling.gpu_steps.PRESETS)")
    shape.add_argument("--config", type=Path, help="a Hugging Face config.json")
    shape.add_argument("--shape-json", help="a LlamaShape as JSON")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--context", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--phase", nargs="+", default=["prefill", "decode"],
                   choices=("prefill", "decode"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-cuda-graphs", action="store_true")
    p.add_argument("--shares", type=float, nargs="+", default=None,
                   help="measure under these MPS compute shares (one subprocess each)")
    p.add_argument("--gpu-index", type=int, default=0, help="CUDA device for --shares")
    p.add_argument("--compute-share", type=float, default=1.0,
                   help="label rows with this share (set by the parent under --shares)")
    p.add_argument("--engine", choices=("torch", "vllm", "served", "auto"), default="torch",
                   help="torch: a plain PyTorch forward of the shape (GPU machines without "
                        "vLLM); vllm: the offline engine's iterations for the model folder "
                        "of --config (profiling.engine_steps); served: the iterations of the "
                        "running server at --endpoint, timed by its /metrics "
                        "(profiling.served_steps; what a sweep against it meets); auto: vllm "
                        "when installed")
    p.add_argument("--endpoint", default=None,
                   help="--engine served: the server's base URL (e.g. http://127.0.0.1:8000)")
    p.add_argument("--served-model-name", default=None,
                   help="--engine served: the model name the server expects (default: the "
                        "--config folder's name)")
    p.add_argument("--max-num-batched-tokens", type=int, default=None,
                   help="--engine vllm or served: the server's batched-token budget")
    p.add_argument("--max-num-seqs", type=int, default=None,
                   help="--engine vllm: the server's running-request limit")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="--engine vllm: time each iteration on the wall clock, or by the CPU "
                        "time the probe used (the CPU build on a shared machine: the cost of "
                        "the work itself, whatever share of a core the probe got)")
    p.add_argument("--scope", choices=("step", "engine-core"), default="step",
                   help="--engine vllm: time the whole LLMEngine.step, or only its engine-core "
                        "part (what a served engine's core process does per iteration; the "
                        "API server does the output processing)")
    p.add_argument("--out", required=True, type=Path)
    return ap


def _inventory(a) -> int:
    snap = nvml.snapshot()
    if a.json:
        print(json.dumps(asdict(snap), indent=2, default=str))
    else:
        print(snap.summary())
    return 0


def _positive(name: str, v) -> None:
    if v is not None and not (math.isfinite(v) and v > 0):
        raise ValidationError(f"{name} must be a positive number of seconds, got {v:g}")


def _sample(a) -> int:
    from .sampler import GPUSampler, terminate_gracefully
    _positive("--interval-s", a.interval_s)
    _positive("--duration-s", a.duration_s)
    _positive("--flush-every-s", a.flush_every_s)
    if a.out.is_dir():
        raise ValidationError(f"--out {a.out} is a folder; give the CSV file to write, e.g. "
                              f"{a.out / 'gpu.csv'}")
    if a.out.parent.exists() and not a.out.parent.is_dir():
        raise ValidationError(f"--out {a.out}: {a.out.parent} is not a folder")
    sampler = GPUSampler(a.out, a.interval_s, flush_every_s=a.flush_every_s)
    with terminate_gracefully(), sampler:
        try:
            if a.duration_s is None:
                while True:
                    time.sleep(3600)
            time.sleep(a.duration_s)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through terminate_gracefully
            pass
    print(f"{sampler.samples} samples -> {a.out}")
    return 0


def sweep_setups(a):
    """The SweepSetups a parsed ``sweep`` command asks for (validated before anything runs)."""
    from .launcher import VLLM_COMMAND, EngineSpec
    from .sweep import SweepSetup
    bad = [s for s in a.shares
           if not (0.1 - 1e-9 <= s <= 1.0 + 1e-9 and abs(s * 10 - round(s * 10)) < 1e-6)]
    if bad:
        raise ValidationError(f"--shares {bad}: an MPS compute share is a multiple of 0.1 in "
                              f"[0.1, 1.0]")
    bad = [t for t in a.tp if t < 1]
    if bad:
        raise ValidationError(f"--tp {bad}: tensor-parallel degrees are integers >= 1")
    bad = [x for x in a.loads if not (math.isfinite(x) and x > 0)]
    if bad:
        raise ValidationError(f"--loads {bad}: offered loads are positive rates in req/s")
    for name in ("duration_s", "connect_timeout_s", "read_timeout_s", "request_timeout_s"):
        _positive("--" + name.replace("_", "-"), getattr(a, name))
    combos = list(itertools.product(a.tp, a.shares))
    if a.endpoint:
        if len(combos) != 1:
            raise ValidationError("--endpoint attaches to one running setup: give one --tp and "
                                  "one --shares value")
        (tp, share), = combos
        return [SweepSetup(a.model, tp, share, endpoint_url=a.endpoint,
                           served_model=a.served_model_name)]
    if getattr(a, "engine", "command") == "vllm":
        from .vllm_server import vllm_spec
        if a.command:
            raise ValidationError("--engine vllm builds the engine command itself; drop "
                                  "--command (or use --engine command)")
        bad = [(tp, share) for tp, share in combos if share != 1.0]
        if bad:
            raise ValidationError(f"--engine vllm measures whole devices: give --shares 1 "
                                  f"(asked for {bad})")
        setups = []
        for tp, _ in combos:
            if tp > len(a.gpus):
                raise ValidationError(f"tp={tp} needs {tp} GPUs; --gpus lists {a.gpus}")
            spec = vllm_spec(a.model, port=a.port, served_model_name=a.served_model_name,
                             cpu_cores=a.cpu_cores, extra_args=tuple(shlex.split(a.extra_args)),
                             startup_timeout_s=a.startup_timeout_s, tp=tp,
                             gpus=tuple(a.gpus[:tp]),
                             gpu_memory_utilization=a.gpu_memory_utilization)
            setups.append(SweepSetup(Path(a.model).name, tp, 1.0, engine=spec,
                                     served_model=spec.served_model_name))
        return setups
    command = tuple(shlex.split(a.command)) if a.command else VLLM_COMMAND
    setups = []
    for tp, share in combos:
        if tp > len(a.gpus):
            raise ValidationError(f"tp={tp} needs {tp} GPUs; --gpus lists {a.gpus}")
        spec = EngineSpec(a.model, tp, share, gpus=tuple(a.gpus[:tp]),
                          gpu_memory_utilization=a.gpu_memory_utilization, port=a.port,
                          command=command, extra_args=tuple(shlex.split(a.extra_args)),
                          served_model_name=a.served_model_name,
                          startup_timeout_s=a.startup_timeout_s)
        setups.append(SweepSetup(a.model, tp, share, engine=spec,
                                 served_model=a.served_model_name))
    return setups


def _sweep(a) -> int:
    from .launcher import MPSDaemon
    from .loadgen import read_prompts, synthetic_prompts
    from .sweep import run_sweep
    prompts = (read_prompts(a.prompts, default_max_tokens=a.max_tokens) if a.prompts else
               synthetic_prompts(a.synthetic, prompt_words=a.prompt_words,
                                 max_tokens=a.max_tokens, seed=a.seed))
    setups = sweep_setups(a)
    real = a.engine == "vllm"
    gpu = a.gpu
    if real and gpu is None:
        from .vllm_server import is_cpu_build
        gpu = "cpu" if is_cpu_build() else None
    kw = dict(prompts=prompts, gpu=gpu, num_requests=a.num_requests,
              server_metrics=a.server_metrics or real, exact_length=a.exact_length or real,
              duration_s=a.duration_s, seed=a.seed, api=a.api,
              max_concurrency=a.max_concurrency, progress=not a.no_progress,
              connect_timeout_s=a.connect_timeout_s, read_timeout_s=a.read_timeout_s,
              request_timeout_s=a.request_timeout_s)
    from .sampler import terminate_gracefully
    # SIGTERM unwinds like Ctrl-C, so launched engines are stopped on the way out.
    with terminate_gracefully():
        if a.mps:
            with MPSDaemon(gpus=tuple(a.gpus)) as daemon:
                table = run_sweep(setups, a.loads, a.out, mps=daemon, **kw)
        else:
            table = run_sweep(setups, a.loads, a.out, **kw)
    print(f"{len(table)} profile rows -> {a.out / 'profile.csv'}")
    return 0


def step_shape(a):
    from .gpu_steps import LlamaShape, llama_shape, read_shape
    if a.config:
        return read_shape(a.config)
    if a.shape_json:
        try:
            return LlamaShape(**json.loads(a.shape_json))
        except (ValueError, TypeError) as e:
            raise ValidationError(f"--shape-json is not a LlamaShape: {e}") from e
    return llama_shape(a.model)


def _steps(a) -> int:
    from .gpu_steps import measure_steps, measure_steps_under_mps, write_steps
    from .vllm_server import engine_installed
    shape = step_shape(a)
    command = " ".join(shlex.quote(x) for x in ["python", "-m", "profiling", *a.argv])
    engine = a.engine
    if engine == "auto":
        engine = "vllm" if a.config and engine_installed() is None else "torch"
    if engine == "served":
        from .served_steps import probe_served_steps
        if not a.config or not a.endpoint:
            raise ValidationError("--engine served probes a running server: give --endpoint "
                                  "URL and --config <model folder>/config.json")
        df = probe_served_steps(a.endpoint, a.served_model_name or a.config.parent.name,
                                a.config, batch_sizes=a.batch, context_lens=a.context,
                                warmup=a.warmup, repeats=a.repeats,
                                max_num_batched_tokens=a.max_num_batched_tokens or 2048,
                                command=command)
        write_steps(df, a.out)
        print(f"{len(df)} served step rows -> {a.out}")
        return 0
    if engine == "vllm":
        from .engine_steps import probe_vllm_steps
        if not a.config or a.shares:
            raise ValidationError("--engine vllm serves a model folder: give --config "
                                  "<folder>/config.json (and no --shares)")
        df = probe_vllm_steps(a.config.parent, batch_sizes=a.batch, context_lens=a.context,
                              phases=a.phase, warmup=a.warmup, repeats=a.repeats,
                              max_num_batched_tokens=a.max_num_batched_tokens,
                              max_num_seqs=a.max_num_seqs, command=command,
                              clock=a.clock, scope=a.scope)
        write_steps(df, a.out)
        failed = int((~blank(df["error"])).sum())
        print(f"{len(df)} engine step rows ({failed} with errors) -> {a.out}")
        return 0
    common = dict(batch_sizes=a.batch, context_lens=a.context, phases=a.phase, dtype=a.dtype,
                  warmup=a.warmup, repeats=a.repeats, cuda_graphs=not a.no_cuda_graphs)
    if a.shares:
        df = measure_steps_under_mps(shape, a.shares, gpu=a.gpu_index, **common)
    else:
        df = measure_steps(shape, device=a.device, compute_share=a.compute_share,
                           command=command, **common)
    write_steps(df, a.out)
    failed = int((~blank(df["error"])).sum())
    print(f"{len(df)} step rows ({failed} with errors) -> {a.out}")
    return 0


class _Redacting(logging.Filter):
    """Masks credentials in every log record (see :mod:`routerwise.redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from routerwise.redact import redact_text
        record.msg, record.args = redact_text(record.getMessage()), ()
        return True


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    a.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for h in logging.getLogger().handlers:  # no credentials in logs (httpx logs request URLs)
        h.addFilter(_Redacting())
    # httpx logs every request at INFO: thousands of lines per sweep, none of them news
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return {"inventory": _inventory, "sample": _sample, "sweep": _sweep,
                "steps": _steps}[a.cmd](a)
    except RouterWiseError as e:
        from routerwise.redact import redact_text
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
