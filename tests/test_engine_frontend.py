"""A served model split as a deployment would run it: the API server (front end) and the
engine core on separate CPU cores (``vllm_spec(frontend_cores=..., cpu_cores=...)``), the
launcher's CPU affinity for the server and its child processes, and the load generator's."""

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
