"""profiling.launcher: the fake engine as a real subprocess on loopback, and a fake MPS binary."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import httpx
import pytest

from profiling.errors import EngineStartError, MPSError, ToolUnavailable
from profiling.launcher import VLLM_COMMAND, EngineSpec, MPSDaemon, free_port, launch, start_engine
from routerwise.errors import ValidationError

pytestmark = pytest.mark.timeout(60)

FAKE_ENGINE = str(Path(__file__).with_name("fake_engine.py"))
FAKE_COMMAND = ("{python}", FAKE_ENGINE, "--port", "{port}", "--model", "{model}")


def spec(*extra: str, **kw) -> EngineSpec:
    kw.setdefault("startup_timeout_s", 20.0)
    kw.setdefault("grace_s", 5.0)
    return EngineSpec("fake-model", port=free_port(), command=FAKE_COMMAND, extra_args=extra,
                      **kw)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_launch_waits_for_health_and_tears_down(tmp_path):
    s = spec("--health-delay-s", "0.5", tp=2, gpus=(2, 3), compute_share=0.4)
    with launch(s, log_path=tmp_path / "engine.log") as eng:
        assert eng.alive()
        r = httpx.get(eng.base_url + "/v1/models", trust_env=False)
        assert r.json()["data"][0]["id"] == "fake-model"
        pid = eng.process.pid
    assert gone(pid) and eng.process.returncode is not None
    log = (tmp_path / "engine.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=2,3" in log
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=40" in log
    assert eng.provenance()["mps_active_thread_percentage"] == 40


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_teardown_on_exception_and_interrupt(exc, tmp_path):
    with pytest.raises(exc):
        with launch(spec(), log_path=tmp_path / "e.log") as eng:
            pid = eng.process.pid
            raise exc("boom")
    assert gone(pid)


def test_health_timeout_names_the_problem_and_shows_the_log(tmp_path):
    s = spec("--fail-health")
    with pytest.raises(EngineStartError) as err:
        with launch(s, log_path=tmp_path / "e.log", startup_timeout_s=1.0):
            pytest.fail("must not get here")
    msg = str(err.value)
    assert "did not answer 200" in msg and "HTTP 503" in msg
    assert "fake engine listening" in msg  # the log tail
    assert "startup_timeout_s" in msg


def test_engine_that_exits_early(tmp_path):
    with pytest.raises(EngineStartError, match="exited with code 3") as err:
        with launch(spec("--crash"), log_path=tmp_path / "e.log"):
            pytest.fail("must not get here")
    assert "out of memory (injected)" in str(err.value)


def test_sigterm_ignored_escalates_to_sigkill(tmp_path):
    s = spec("--ignore-sigterm", grace_s=0.5)
    with launch(s, log_path=tmp_path / "e.log") as eng:
        pid = eng.process.pid
    assert eng.process.returncode == -signal.SIGKILL and gone(pid)


def test_health_falls_back_to_models_endpoint(tmp_path):
    s = spec(health_paths=("/not-there", "/v1/models"))
    eng = start_engine(s, log_path=tmp_path / "e.log")
    try:
        assert eng.wait_healthy(10) == "/v1/models"
    finally:
        eng.stop()
    assert not eng.alive()


def test_missing_engine_program(tmp_path):
    s = EngineSpec("m", port=free_port(), command=("/nonexistent/engine", "--port", "{port}"))
    with pytest.raises(ToolUnavailable, match="/nonexistent/engine"):
        with launch(s, log_path=tmp_path / "e.log"):
            pass


def test_engine_spec_validation_and_default_vllm_command():
    s = EngineSpec("meta-llama/Llama-3-8B", tp=2, gpus=(0, 1), gpu_memory_utilization=0.5,
                   port=9001)
    argv = s.argv()
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    i = argv.index("--tensor-parallel-size")
    assert argv[i + 1] == "2" and argv[argv.index("--gpu-memory-utilization") + 1] == "0.5"
    assert argv[argv.index("--port") + 1] == "9001" and s.command == VLLM_COMMAND
    env = s.environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "100"
    with pytest.raises(ValidationError, match="distinct GPUs"):
        EngineSpec("m", tp=2, gpus=(0,))
    with pytest.raises(ValidationError, match="multiple of 0.1"):
        EngineSpec("m", compute_share=0.25)
    with pytest.raises(ValidationError, match="unknown field"):
        EngineSpec("m", command=("{nope}",)).argv()


# -- MPS ----------------------------------------------------------------------------------

FAKE_MPS = r"""#!/bin/sh
# Stands in for nvidia-cuda-mps-control: records how it was called.
if [ "$1" = "-d" ]; then
  echo "start $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY $CUDA_VISIBLE_DEVICES" \
    >> "$FAKE_MPS_RECORD"
  if [ -n "$FAKE_MPS_FAIL" ]; then
    echo "An instance of this daemon is already running" >&2
    exit 1
  fi
  exit 0
fi
read cmd
echo "stdin $cmd $CUDA_MPS_PIPE_DIRECTORY" >> "$FAKE_MPS_RECORD"
exit 0
"""


@pytest.fixture
def fake_mps(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-cuda-mps-control"
    exe.write_text(FAKE_MPS)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "mps-record.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MPS_RECORD", str(record))
    return record


def test_mps_start_stop_through_the_binary(fake_mps, tmp_path):
    root = tmp_path / "mps"
    with MPSDaemon(root, gpus=(0, 1)) as d:
        assert d.running and d.pipe_dir.is_dir() and d.log_dir.is_dir()
        assert d.client_env() == {"CUDA_MPS_PIPE_DIRECTORY": str(root / "pipe"),
                                  "CUDA_MPS_LOG_DIRECTORY": str(root / "log")}
    lines = fake_mps.read_text().splitlines()
    assert lines == [f"start {root / 'pipe'} {root / 'log'} 0,1", f"stdin quit {root / 'pipe'}"]
    assert not d.running and root.is_dir()  # a folder the caller gave is kept


def test_mps_private_folder_is_removed_after_stop(fake_mps):
    d = MPSDaemon().start()
    root = d.root
    assert root.is_dir() and oct(root.stat().st_mode & 0o777) == "0o700"
    d.stop()
    assert not root.exists()


def test_engine_under_mps_gets_the_daemon_folders(fake_mps, tmp_path):
    with MPSDaemon(tmp_path / "mps") as d:
        with launch(spec(compute_share=0.3), mps=d, log_path=tmp_path / "e.log") as eng:
            assert eng.mps
    log = (tmp_path / "e.log").read_text()
    assert f"CUDA_MPS_PIPE_DIRECTORY={d.pipe_dir}" in log
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30" in log


def test_mps_start_failure(fake_mps, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MPS_FAIL", "1")
    with pytest.raises(MPSError, match="already running"):
        MPSDaemon(tmp_path / "mps").start()


def test_missing_mps_binary_is_a_typed_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolUnavailable, match="nvidia-cuda-mps-control was not found"):
        MPSDaemon(tmp_path / "mps").start()
