"""A served model split as a deployment would run it: the API server (front end) and the
engine core on separate CPU cores (``vllm_spec(frontend_cores=..., cpu_cores=...)``), the
launcher's CPU affinity for the server and its child processes, and the load generator's."""

import math
import os
from pathlib import Path

import pytest

from profiling.engine_check import _on_cores
from profiling.errors import EngineStartError
from profiling.launcher import EngineSpec, free_port, launch
from profiling.vllm_server import ENGINE_CORE_PROCESS, parse_cores, vllm_spec
from routerwise.errors import ValidationError

pytestmark = pytest.mark.timeout(60)

FAKE_ENGINE = str(Path(__file__).with_name("fake_engine.py"))
two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or not {0, 1} <= os.sched_getaffinity(0),
    reason="needs Linux and CPU cores 0 and 1 available to this process")


@pytest.mark.parametrize("text, cores", [("0", {0}), ("2-3", {2, 3}), ("0,2-3", {0, 2, 3}),
                                         (" 1 , 4-5", {1, 4, 5})])
def test_parse_cores_reads_the_taskset_notation(text, cores):
    assert parse_cores(text) == cores


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "1,,2"])
def test_parse_cores_refuses_what_is_not_a_core_list(text):
    with pytest.raises(ValidationError, match="expected a list like"):
        parse_cores(text)


@two_cores
def test_frontend_cores_split_the_server_from_the_engine_core(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    spec = vllm_spec(tmp_path / "m", cpu=True, cpu_cores="1", frontend_cores="0", port=9123)
    assert spec.cpu_affinity == (0,)  # the API server starts there
    assert dict(spec.child_cpu_affinity) == {ENGINE_CORE_PROCESS: (1,)}  # its engine core
    assert spec.env["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    # without the option nothing is pinned (the earlier behaviour)
    plain = vllm_spec(tmp_path / "m", cpu=True, cpu_cores="1", port=9123)
    assert plain.cpu_affinity == () and dict(plain.child_cpu_affinity) == {}
    with pytest.raises(ValidationError, match="share cores \\[1\\]"):
        vllm_spec(tmp_path / "m", cpu=True, cpu_cores="1", frontend_cores="0-1")
    with pytest.raises(ValidationError, match="give cpu_cores"):
        vllm_spec(tmp_path / "m", cpu=True, frontend_cores="0")
    with pytest.raises(ValidationError, match="give cpu_cores"):
        vllm_spec(tmp_path / "m", cpu=False, cpu_cores="1", frontend_cores="0")


def test_engine_spec_refuses_cores_this_process_cannot_use():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("needs Linux")
    missing = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(ValidationError, match=f"cores \\[{missing}\\] are not available"):
        EngineSpec("m", cpu_affinity=(missing,))
    with pytest.raises(ValidationError, match="is empty"):
        EngineSpec("m", child_cpu_affinity={"x": ()})


def _spec_with_a_child(**kw) -> EngineSpec:
    # a shell starts `sleep` (process name "sleep", same process group) and becomes the server
    cmd = ("/bin/sh", "-c", f"sleep 600 & exec {{python}} {FAKE_ENGINE} --port {{port}}")
    return EngineSpec("fake-model", port=free_port(), command=cmd, startup_timeout_s=20.0,
                      grace_s=5.0, **kw)


@two_cores
def test_launcher_pins_the_server_and_moves_a_named_child_to_other_cores(tmp_path):
    spec = _spec_with_a_child(cpu_affinity=(0,), child_cpu_affinity={"sleep": (1,)})
    with launch(spec, log_path=tmp_path / "e.log") as eng:
        procs = {("server" if p["pid"] == eng.process.pid else p["name"]): p
                 for p in eng.processes()}
        assert procs["server"]["cpus"] == [0]
        assert procs["sleep"]["cpus"] == [1]
        # every thread of the server stays on its core: read the kernel's own list
        for tid in os.listdir(f"/proc/{eng.process.pid}/task"):
            status = Path(f"/proc/{eng.process.pid}/task/{tid}/status").read_text()
            assert "Cpus_allowed_list:\t0\n" in status
        prov = eng.provenance()
        assert prov["engine_cpu_affinity"] == [0]
        assert [(p["name"], p["cpus"]) for p in prov["engine_pinned_processes"]] == \
            [("sleep", [1])]
        sleep_pid = procs["sleep"]["pid"]
    assert not Path(f"/proc/{sleep_pid}").exists() or \
        "zombie" in Path(f"/proc/{sleep_pid}/status").read_text()


@two_cores
def test_a_child_to_pin_that_never_appears_is_a_typed_start_error(tmp_path):
    spec = _spec_with_a_child(child_cpu_affinity={"no-such-process": (1,)})
    with pytest.raises(EngineStartError, match="no process named 'no-such-process'") as err:
        with launch(spec, log_path=tmp_path / "e.log"):
            pass
    assert err.value.kind == "affinity"


@two_cores
def test_the_load_generator_runs_on_the_frontend_cores_and_is_released():
    before = os.sched_getaffinity(0)
    with _on_cores((0,)):
        assert os.sched_getaffinity(0) == {0}
    assert os.sched_getaffinity(0) == before
    with _on_cores(()):  # no split: untouched
        assert os.sched_getaffinity(0) == before


def test_the_step_probe_pins_only_with_cores(tmp_path):
    from profiling.engine_steps import probe_in_subprocess
    with pytest.raises(ValidationError, match="pin=True needs cpu_cores"):
        probe_in_subprocess(tmp_path, tmp_path / "steps.csv", pin=True)


# ---------------------------------------------------------------------------------------------
# The step probe's clock and the engine's measured CPU share


class _SleepingEngine:
    """An engine whose every iteration waits (no CPU work) for ``wait_s``."""

    def __init__(self, steps: int, wait_s: float):
        self.left, self.wait_s = steps, wait_s

    def has_unfinished_requests(self) -> bool:
        return self.left > 0

    def step(self) -> None:
        import time
        time.sleep(self.wait_s)
        self.left -= 1


def test_the_cpu_clock_counts_work_not_waiting():
    from profiling.engine_steps import CLOCKS, _step_until_done
    wall = _step_until_done(_SleepingEngine(3, 0.03), timed=True, clock=CLOCKS["wall"])
    cpu = _step_until_done(_SleepingEngine(3, 0.03), timed=True, clock=CLOCKS["cpu"])
    assert len(wall) == len(cpu) == 3
    assert min(wall) >= 30.0  # a sleep lasts at least as long as asked
    assert sum(cpu) < sum(wall) / 2  # sleeping costs (almost) no CPU time


def test_the_probe_refuses_an_unknown_clock_and_passes_its_clock_on(tmp_path, monkeypatch):
    import subprocess

    from profiling import engine_steps
    from profiling.errors import ToolUnavailable
    with pytest.raises(ValidationError, match="clock 'gpu'"):
        engine_steps.probe_vllm_steps(tmp_path, clock="gpu")
    seen = {}

    def fake_run(argv, **kw):
        seen.update(argv=argv, **kw)
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(engine_steps.subprocess, "run", fake_run)
    with pytest.raises(ToolUnavailable, match="the step probe failed"):
        engine_steps.probe_in_subprocess(tmp_path, tmp_path / "s.csv", clock="cpu",
                                         cpu_cores="1", pin=True)
    argv = seen["argv"]
    assert argv[argv.index("--clock") + 1] == "cpu" and argv[argv.index("--scope") + 1] == "step"
    assert seen["env"]["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    if two_cores.args[0]:  # not Linux with cores 0 and 1: the pinning itself is not checked
        return
    # the child's set-up pins it: run it in a child of this test and read its cores back
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=lambda: (seen["preexec_fn"](), q.put(os.sched_getaffinity(0))))
    child.start()
    assert q.get(timeout=20) == {1}
    child.join(20)
    with pytest.raises(ToolUnavailable):
        engine_steps.probe_in_subprocess(tmp_path, tmp_path / "s.csv")
    assert seen["argv"][seen["argv"].index("--clock") + 1] == "wall"


def test_steps_cli_takes_the_clock(tmp_path):
    from profiling.__main__ import build_parser
    a = build_parser().parse_args(["steps", "--engine", "vllm", "--config",
                                   str(tmp_path / "config.json"), "--clock", "cpu", "--out",
                                   str(tmp_path / "s.csv")])
    assert a.clock == "cpu"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["steps", "--config", "c.json", "--clock", "gpu", "--out",
                                   "s.csv"])


def test_cpu_share_from_known_scheduler_readings():
    from profiling.engine_check import cpu_share
    assert cpu_share((1.0, 2.0), (4.0, 3.0)) == pytest.approx(0.75)  # ran 3 s, waited 1 s
    assert cpu_share((1.0, 2.0), (2.0, 2.0)) == 1.0  # never waited: an idle machine
    assert math.isnan(cpu_share((1.0, 2.0), (1.0, 2.0)))  # no time passed: unknown
    with pytest.raises(ValidationError, match="went backwards"):
        cpu_share((5.0, 2.0), (4.0, 3.0))


def test_sched_totals_count_this_process_running():
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux /proc")
    import time

    from profiling.engine_check import sched_totals
    before = sched_totals(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.05:  # 50 ms of CPU work
        pass
    after = sched_totals(os.getpid())
    assert after[0] - before[0] >= 0.045  # the kernel saw it run at least that long
    assert after[1] >= before[1] >= 0.0


class _TwoPartEngine:
    """An in-process engine whose step is the engine core's part (``core_s``) followed by
    output processing (``output_s``), as vLLM's LLMEngine.step with an in-process core."""

    def __init__(self, steps: int, core_s: float, output_s: float):
        import time
        self.left = steps

        class _Core:
            def get_output(inner):
                time.sleep(core_s)
                return "outputs"

        self.engine_core, self.output_s = _Core(), output_s

    def has_unfinished_requests(self) -> bool:
        return self.left > 0

    def step(self) -> None:
        import time
        assert self.engine_core.get_output() == "outputs"  # the wrapper returns what it wraps
        time.sleep(self.output_s)
        self.left -= 1


def test_the_engine_core_scope_times_only_the_core_part_of_each_step():
    from profiling.engine_steps import CLOCKS, _CoreTimer, _step_until_done
    whole = _step_until_done(_TwoPartEngine(2, 0.01, 0.04), timed=True, clock=CLOCKS["wall"])
    eng = _TwoPartEngine(2, 0.01, 0.04)
    core = _step_until_done(eng, timed=True, clock=CLOCKS["wall"],
                            core=_CoreTimer(eng, CLOCKS["wall"]))
    assert len(whole) == len(core) == 2
    assert min(whole) >= 50.0  # both parts
    assert min(core) >= 10.0 and max(core) < min(whole)  # the core part, without the other


def test_steps_cli_takes_the_scope(tmp_path):
    from profiling.__main__ import build_parser
    from profiling.engine_steps import probe_vllm_steps
    a = build_parser().parse_args(["steps", "--engine", "vllm", "--config", "c.json",
                                   "--scope", "engine-core", "--out", "s.csv"])
    assert a.scope == "engine-core"
    assert build_parser().parse_args(["steps", "--config", "c.json", "--out", "s.csv"]).scope \
        == "step"
    with pytest.raises(ValidationError, match="scope 'core'"):
        probe_vllm_steps(tmp_path, scope="core")


def test_the_cpu_clock_is_refused_when_the_engine_core_runs_in_another_process(tmp_path,
                                                                              monkeypatch):
    # With vLLM's engine core in its own process the probe's CPU time misses the work
    # (iterations of 0.2 ms were read that way): the probe must refuse, not mismeasure.
    from profiling import engine_steps
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    with pytest.raises(ValidationError, match="VLLM_ENABLE_V1_MULTIPROCESSING=0"):
        engine_steps.probe_vllm_steps(tmp_path, clock="cpu")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    with pytest.raises(ValidationError, match="VLLM_ENABLE_V1_MULTIPROCESSING=0"):
        engine_steps.probe_vllm_steps(tmp_path, clock="cpu")
