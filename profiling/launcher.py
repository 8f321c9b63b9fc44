"""Start and stop serving engines and the NVIDIA MPS control daemon for profiling runs.

:func:`launch` starts one engine per model setup from a command template (default: vLLM's
OpenAI-compatible server) with ``CUDA_VISIBLE_DEVICES`` set to the setup's GPUs and
``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` to ``100 * compute_share``, waits until ``GET /health``
(or ``/v1/models``) answers 200, and always tears the engine down: its whole process group gets
SIGTERM, then SIGKILL after a grace period, on normal exit, on an exception and on Ctrl-C.
The engine's output reaches its log file through :func:`routerwise.redact.redact_text`, with
the values of secret options and variables it was given (``--hf-token``, ``HF_TOKEN``, see
:func:`routerwise.redact.secret_values`): a token it echoes never reaches the disk, and the
command shown in errors and provenance is masked the same way.

The compute share only takes effect under MPS: a CUDA process connects to an MPS control
daemon if one is running for its ``CUDA_MPS_PIPE_DIRECTORY``, and otherwise ignores the
variable silently. :class:`MPSDaemon` runs a private daemon (``nvidia-cuda-mps-control -d``
with its own pipe and log folders) and stops it (``echo quit | nvidia-cuda-mps-control``);
engines launched with ``mps=daemon`` get its folders in their environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from routerwise.errors import ValidationError
from routerwise.redact import redact_text, secret_values

from .errors import EngineStartError, MPSError, ToolUnavailable

# vLLM's OpenAI-compatible server; `vllm serve MODEL ...` takes the same flags.
VLLM_COMMAND = ("{python}", "-m", "vllm.entrypoints.openai.api_server", "--model", "{model}",
                "--tensor-parallel-size", "{tp}",
                "--gpu-memory-utilization", "{gpu_memory_utilization}",
                "--host", "{host}", "--port", "{port}")
# SGLang's server, for reference: mem-fraction-static plays vLLM's memory-utilization role.
SGLANG_COMMAND = ("{python}", "-m", "sglang.launch_server", "--model-path", "{model}",
                  "--tp", "{tp}", "--mem-fraction-static", "{gpu_memory_utilization}",
                  "--host", "{host}", "--port", "{port}")

MPS_CONTROL = "nvidia-cuda-mps-control"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free right now (another process may still take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on (host, port): then a new server could not bind it,
    and a health check would reach the other server instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


# Log lines by which an engine that exited says why (checked in this order).
_EXIT_CAUSES = (
    ("port_busy", ("address already in use", "errno 98"),
     "the port is taken: choose another (profiling.launcher.free_port)"),
    ("out_of_memory", ("out of memory", "outofmemory", "cannot allocate memory",
                       "memoryerror", "insufficient memory", "not enough memory",
                       "kv cache space", "no available memory for the cache blocks"),
     "the engine ran out of memory: lower the KV cache space (VLLM_CPU_KVCACHE_SPACE on the "
     "CPU build, --gpu-memory-utilization on a GPU), --max-model-len or --max-num-seqs, or "
     "stop other servers"),
    ("bad_model", ("no such file or directory", "does not appear to have a file named",
                   "is not a valid model", "unrecognized model", "repo id must be",
                   "repository not found", "config.json", "can't load the configuration"),
     "the model could not be loaded: give a folder holding config.json, the weights and the "
     "tokenizer (profiling.tiny_models.build_tiny_model writes one)"),
)


def exit_cause(log_text: str) -> tuple[str, str]:
    """(kind, hint) for an engine that exited, from its log; ("exited", "") when unknown."""
    low = log_text.lower()
    for kind, needles, hint in _EXIT_CAUSES:
        if any(n in low for n in needles):
            return kind, hint
    return "exited", ""


def _die_with_parent(cpu_affinity: tuple[int, ...] = ()):
    """A ``preexec_fn`` that makes the kernel SIGTERM the engine when the process that started
    it dies, even by SIGKILL, so that a server never outlives the command that started it
    (Linux ``PR_SET_PDEATHSIG``; None elsewhere), and, given ``cpu_affinity``, confines the
    engine (and what it starts, unless that re-pins itself) to those CPU cores. The C function
    is looked up here, in the parent: the child between fork and exec must not import."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    cores = frozenset(int(c) for c in cpu_affinity)

    def set_death_signal() -> None:  # pragma: no cover (runs in the child)
        prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        if cores:
            os.sched_setaffinity(0, cores)

    return set_death_signal


def tail(path: str | Path | None, max_lines: int = 40) -> str:
    """The last ``max_lines`` lines of a text file ('' if there is none)."""
    if path is None or not Path(path).is_file():
        return ""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])


# ---------------------------------------------------------------------------------------------
# MPS


class MPSDaemon:
    """A private NVIDIA MPS control daemon (context manager).

    ``root`` holds ``pipe/`` and ``log/`` (default: a fresh private temporary folder, removed
    after a clean stop). ``gpus`` restricts the daemon to those CUDA devices. A missing binary
    raises :class:`ToolUnavailable`; a daemon that fails to start or stop raises
    :class:`MPSError` with its control log.
    """

    def __init__(self, root: str | Path | None = None, *, gpus: tuple[int, ...] | None = None,
                 binary: str = MPS_CONTROL, timeout_s: float = 30.0):
        self._own_root = root is None
        self.root = Path(root) if root is not None else None
        self.gpus = gpus
        self.binary = binary
        self.timeout_s = timeout_s
        self.running = False

    @property
    def pipe_dir(self) -> Path:
        return self._root() / "pipe"

    @property
    def log_dir(self) -> Path:
        return self._root() / "log"

    def _root(self) -> Path:
        if self.root is None:
            raise MPSError("the MPS daemon has no folder yet: call start() first")
        return self.root

    def client_env(self) -> dict[str, str]:
        """Variables a CUDA process needs to reach this daemon."""
        return {"CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
                "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir)}

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.client_env()}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self.gpus)
        return env

    def _exe(self) -> str:
        exe = shutil.which(self.binary)
        if exe is None:
            raise ToolUnavailable(
                f"{self.binary} was not found on PATH. It ships with the NVIDIA driver's compute "
                f"utilities (e.g. Debian/Ubuntu nvidia-compute-utils-<version>); MPS also needs "
                f"a Volta or newer GPU on Linux. Without MPS, compute shares cannot be enforced.")
        return exe

    def start(self) -> MPSDaemon:
        exe = self._exe()
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="rw-mps-"))  # mode 0700: private
        self.pipe_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            r = subprocess.run([exe, "-d"], env=self._env(), capture_output=True, text=True,
                               timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise MPSError(f"{self.binary} -d did not return within {self.timeout_s:g} s") from e
        if r.returncode != 0:
            raise MPSError(f"{self.binary} -d failed with exit code {r.returncode}: "
                           f"{(r.stdout + r.stderr).strip()}\ncontrol log:\n"
                           f"{tail(self.log_dir / 'control.log')}\nCheck that no other MPS "
                           f"daemon owns these GPUs and that you may use them.")
        self.running = True
        return self

    def stop(self) -> None:
        if not self.running:
            return
        try:
            r = subprocess.run([self._exe()], input="quit\n", env=self._env(),
                               capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as e:
            raise MPSError(f"'echo quit | {self.binary}' did not return within "
                           f"{self.timeout_s:g} s; the daemon may still run (pipe folder "
                           f"{self.pipe_dir})") from e
        if r.returncode != 0:
            raise MPSError(f"'echo quit | {self.binary}' failed with exit code {r.returncode}: "
                           f"{(r.stdout + r.stderr).strip()}")
        self.running = False
        if self._own_root:
            shutil.rmtree(self._root(), ignore_errors=True)

    def __enter__(self) -> MPSDaemon:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.stop()
            return
        try:
            self.stop()
        except MPSError as e:  # keep the original failure as the one the caller sees
            warnings.warn(f"MPS daemon stop failed during error handling: {e}", stacklevel=2)


# ---------------------------------------------------------------------------------------------
# Engines


@dataclass(frozen=True)
class EngineSpec:
    """One model setup to serve: model, tensor-parallel degree, compute share, GPUs, port.

    ``command`` is a template; ``{python}``, ``{model}``, ``{tp}``,
    ``{gpu_memory_utilization}``, ``{host}`` and ``{port}`` are filled in, and ``extra_args``
    appended. ``gpus`` lists one CUDA device per shard (``len(gpus) == tp``).
    ``startup_timeout_s`` must cover downloading and loading the weights.
    ``cpu_affinity`` (Linux) confines the server's process to those CPU cores from its start
    (``sched_setaffinity`` before exec, inherited by its children); empty: wherever the OS
    schedules it. ``child_cpu_affinity`` maps a process-name prefix (``/proc/<pid>/comm``, e.g.
    ``"VLLM::EngineCor"``) to cores: once the server is healthy, every thread of each process
    in its group whose name starts so is moved there (threads it starts later inherit it).
    """

    model: str
    tp: int = 1
    compute_share: float = 1.0
    gpus: tuple[int, ...] = (0,)
    gpu_memory_utilization: float = 0.9
    host: str = "127.0.0.1"
    port: int = 8000
    command: tuple[str, ...] = VLLM_COMMAND
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    served_model_name: str | None = None
    health_paths: tuple[str, ...] = ("/health", "/v1/models")
    startup_timeout_s: float = 1800.0
    grace_s: float = 30.0
    cpu_affinity: tuple[int, ...] = ()
    child_cpu_affinity: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self):
        for what, cores in (("cpu_affinity", self.cpu_affinity),
                            *((f"child_cpu_affinity[{k!r}]", v)
                              for k, v in dict(self.child_cpu_affinity).items())):
            _check_cores(what, cores)
        if int(self.tp) != self.tp or self.tp < 1:
            raise ValidationError(f"tp must be an integer >= 1, got {self.tp}")
        if len(self.gpus) != self.tp or len(set(self.gpus)) != len(self.gpus):
            raise ValidationError(f"give tp={self.tp} distinct GPUs (one per shard), got "
                                  f"gpus={self.gpus}")
        tenths = round(self.compute_share * 10)
        if abs(self.compute_share * 10 - tenths) > 1e-9 or not 1 <= tenths <= 10:
            raise ValidationError(f"compute_share must be a multiple of 0.1 in [0.1, 1.0], got "
                                  f"{self.compute_share}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValidationError("gpu_memory_utilization must be in (0, 1]")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def thread_percentage(self) -> int:
        return int(round(self.compute_share * 100))

    def argv(self) -> list[str]:
        values = {"python": sys.executable, "model": self.model, "tp": self.tp,
                  "gpu_memory_utilization": f"{self.gpu_memory_utilization:g}",
                  "host": self.host, "port": self.port}
        try:
            return [part.format(**values) for part in self.command] + list(self.extra_args)
        except (KeyError, IndexError) as e:
            raise ValidationError(f"engine command template uses an unknown field {e}; known: "
                                  f"{sorted(values)}") from e

    def environment(self, mps: MPSDaemon | None = None) -> dict[str, str]:
        env = {**os.environ, **dict(self.env)}
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self.gpus)
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(self.thread_percentage)
        if mps is not None:
            env.update(mps.client_env())
        return env


def _check_cores(what: str, cores: tuple[int, ...]) -> None:
    if not cores:
        if what != "cpu_affinity":
            raise ValidationError(f"{what} is empty; give at least one CPU core")
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ValidationError(f"{what} needs Linux (os.sched_setaffinity); leave CPU affinity "
                              f"unset on this platform")
    allowed = os.sched_getaffinity(0)
    bad = sorted(set(cores) - allowed)
    if bad:
        raise ValidationError(f"{what} {list(cores)}: cores {bad} are not available to this "
                              f"process (allowed: {sorted(allowed)})")


def group_processes(pgid: int) -> list[tuple[int, str]]:
    """(pid, name) of the live processes in process group ``pgid`` (Linux ``/proc``)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
            out.append((int(entry.name), name))
    return sorted(out)


def pin_threads(pid: int, cores: tuple[int, ...]) -> int:
    """Move every thread of process ``pid`` to ``cores``; the number of threads moved."""
    moved = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), set(cores))
            moved += 1
    return moved


def cpus_allowed(pid: int) -> list[int]:
    """The CPU cores process ``pid``'s main thread may run on."""
    return sorted(os.sched_getaffinity(pid))


@dataclass
class Engine:
    """A running engine process (its own process group) and its log."""

    spec: EngineSpec
    process: subprocess.Popen
    log_path: Path
    argv: list[str]
    mps: bool
    secrets: list[str] = field(default_factory=list, repr=False)
    pump: threading.Thread | None = field(default=None, repr=False)  # output -> log file
    started: float = field(default_factory=time.monotonic)
    startup_s: float | None = None
    pinned: list[dict] = field(default_factory=list)  # what pin_children() moved

    @property
    def base_url(self) -> str:
        return self.spec.base_url

    @property
    def served_model(self) -> str:
        return self.spec.served_model_name or self.spec.model

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, max_lines: int = 40) -> str:
        if self.pump is not None and not self.alive():
            self.pump.join(5.0)  # the exited engine's last lines are still being copied
        return redact_text(tail(self.log_path, max_lines), self.secrets)

    @property
    def shown_command(self) -> str:
        """The command line with its secrets masked (for messages and provenance)."""
        return redact_text(" ".join(self.argv), self.secrets)

    def provenance(self) -> dict:
        return {"engine_command": self.shown_command, "cuda_visible_devices":
                ",".join(map(str, self.spec.gpus)), "mps_active_thread_percentage":
                self.spec.thread_percentage, "mps_daemon": self.mps, **self.startup_record()}

    def startup_record(self) -> dict:
        """The engine's version, the variables the spec set, where its start-up log is and
        how long start-up took."""
        from routerwise.redact import MASK, is_secret_name
        env = {k: (MASK if is_secret_name(k) else v)
               for k, v in sorted(dict(self.spec.env).items())}
        return {"engine_version": engine_version(), "engine_env": env,
                "engine_log": str(self.log_path), "engine_startup_s": self.startup_s,
                "engine_cpu_affinity": list(self.spec.cpu_affinity),
                "engine_pinned_processes": list(self.pinned)}

    def processes(self) -> list[dict]:
        """The engine's live processes (its process group) with the cores each may run on."""
        out = []
        for pid, name in group_processes(self.process.pid):
            with contextlib.suppress(ProcessLookupError, OSError):
                out.append({"pid": pid, "name": name, "cpus": cpus_allowed(pid)})
        return out

    def pin_children(self) -> list[dict]:
        """Apply ``spec.child_cpu_affinity``: move each matching process's threads to its
        cores. An :class:`EngineStartError` when a name matches no process (the affinity
        would silently not hold)."""
        done = []
        for prefix, cores in dict(self.spec.child_cpu_affinity).items():
            hits = [(pid, name) for pid, name in group_processes(self.process.pid)
                    if name.startswith(prefix) and pid != self.process.pid]
            if not hits:
                raise EngineStartError(
                    f"child_cpu_affinity: no process named {prefix!r}* in the engine's group "
                    f"(found {[n for _, n in group_processes(self.process.pid)]}); the engine "
                    f"changed its process layout: update the name", kind="affinity")
            for pid, name in hits:
                done.append({"pid": pid, "name": name, "cpus": sorted(cores),
                             "threads": pin_threads(pid, tuple(cores))})
        self.pinned = done
        return done

    def wait_healthy(self, timeout_s: float | None = None, poll_s: float = 0.5) -> str:
        """Poll the health paths until one answers 200; return it. EngineStartError otherwise.

        A path answering 404 (no such route on this server) passes on to the next one; any
        other status means the server is up but not ready.
        """
        timeout_s = self.spec.startup_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                rc = self.process.poll()
                if rc is not None:
                    kind, hint = exit_cause(self.log_tail(200))
                    raise EngineStartError(
                        f"engine for {self.spec.model!r} exited with code {rc} before it became "
                        f"healthy{f' ({kind}: {hint})' if hint else ''}.\ncommand: "
                        f"{self.shown_command}\nlog ({self.log_path}), last lines:\n"
                        f"{self.log_tail()}", kind=kind)
                for path in self.spec.health_paths:
                    try:
                        r = client.get(path)
                    except httpx.HTTPError as e:
                        last = f"GET {path}: {type(e).__name__}"
                        break  # not listening yet
                    if r.status_code == 200:
                        self.startup_s = time.monotonic() - self.started
                        self.pin_children()
                        return path
                    last = f"GET {path}: HTTP {r.status_code}"
                    if r.status_code != 404:
                        break  # the route exists and says "not ready"; only 404 falls through
                if time.monotonic() >= deadline:
                    raise EngineStartError(
                        f"engine for {self.spec.model!r} did not answer 200 on "
                        f"{list(self.spec.health_paths)} within {timeout_s:g} s (last: {last}); "
                        f"raise startup_timeout_s if loading is slow.\ncommand: "
                        f"{self.shown_command}\nlog ({self.log_path}), last lines:\n"
                        f"{self.log_tail()}", kind="timeout")
                time.sleep(poll_s)

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; return the exit code."""
        pgid = self.process.pid  # start_new_session=True made the engine its group's leader
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.process.wait(self.spec.grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.process.wait()
        # Workers the engine spawned share its group and may outlive it.
        deadline = time.monotonic() + self.spec.grace_s
        while _group_exists(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        if self.pump is not None:
            self.pump.join(self.spec.grace_s)
        return self.process.returncode


def engine_version() -> str | None:
    """The installed serving engine's version ("vllm 0.32.0", "vllm-cpu 0.32.0"), if any."""
    from importlib import metadata
    for dist in ("vllm", "vllm-cpu", "sglang"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def start_engine(spec: EngineSpec, *, mps: MPSDaemon | None = None,
                 log_path: str | Path | None = None) -> Engine:
    """Start the engine process (no health wait). Prefer :func:`launch`, which always stops it."""
    argv = spec.argv()
    if port_in_use(spec.host, spec.port):
        raise EngineStartError(f"cannot start the engine for {spec.model!r}: {spec.host}:"
                               f"{spec.port} is in use by another process; choose another port "
                               f"(profiling.launcher.free_port())", kind="port_busy")
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"engine-{spec.port}-", suffix=".log")
        os.close(fd)
        log_path = name
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = spec.environment(mps)
    secrets = secret_values(argv, spec.env)  # what this spec hands over, not the whole os.environ
    log = open(log_path, "a", encoding="utf-8")  # the pump thread closes it
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=_die_with_parent(spec.cpu_affinity))
    except FileNotFoundError as e:
        log.close()
        raise ToolUnavailable(f"cannot start the engine: {argv[0]!r} not found ({e}); is "
                              f"the serving engine installed in this environment?") from e
    pump = threading.Thread(target=_copy_redacted, args=(proc.stdout, log, secrets),
                            name=f"engine-log-{spec.port}", daemon=True)
    pump.start()
    return Engine(spec, proc, log_path, argv, mps is not None, secrets, pump)


def _copy_redacted(stream, log, secrets: list[str]) -> None:
    """Copy the engine's output into its log, line by line, with credentials masked."""
    with stream, log:
        for raw in iter(lambda: stream.readline(1 << 16), b""):
            log.write(redact_text(raw.decode("utf-8", errors="replace"), secrets))
            log.flush()


@contextlib.contextmanager
def launch(spec: EngineSpec, *, mps: MPSDaemon | None = None,
           log_path: str | Path | None = None,
           startup_timeout_s: float | None = None) -> Iterator[Engine]:
    """Start an engine, wait until it is healthy, yield it, and always stop it.

    Teardown runs on normal exit, on exceptions and on KeyboardInterrupt, including one that
    arrives while waiting for health.
    """
    engine = start_engine(spec, mps=mps, log_path=log_path)
    try:
        engine.wait_healthy(startup_timeout_s)
        yield engine
    finally:
        engine.stop()
