"""profiling.nvml and profiling.sampler through every fake NVML scenario (no GPU needed)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pandas as pd
import pytest
from fake_nvml import SCENARIOS, scenario

from profiling import nvml
from profiling.sampler import GPUSampler


@pytest.mark.parametrize("name,needle", [
    ("no_library", "libnvidia-ml.so.1"),
    ("no_driver", "driver is not loaded"),
    ("no_gpu", "reports no GPU"),
])
def test_unavailable_scenarios_give_a_reason_not_an_exception(name, needle):
    fake = scenario(name)
    snap = nvml.snapshot(fake)
    assert snap.available is False
    assert snap.reason.startswith(nvml.NO_GPU) and needle in snap.reason
    assert snap.gpus == ()
    assert snap.summary() == snap.reason
    frame = nvml.to_frame(snap)
    assert len(frame) == 1 and frame.loc[0, "index"] == -1 and needle in frame.loc[0, "error"]


def test_no_gpu_session_still_shuts_nvml_down():
    fake = scenario("no_gpu")
    nvml.snapshot(fake)
    assert (fake.init_calls, fake.shutdown_calls) == (1, 1)


def test_bindings_not_installed(monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")
    monkeypatch.setattr(nvml, "load_backend", missing)
    snap = nvml.snapshot()
    assert not snap.available and "nvidia-ml-py" in snap.reason


def test_real_bindings_on_this_machine_never_raise():
    snap = nvml.snapshot()
    if snap.available:
        assert snap.gpus and all(g.index >= 0 for g in snap.gpus)
    else:
        assert snap.reason.startswith(nvml.NO_GPU)


def test_two_a100_fields_and_units():
    snap = nvml.snapshot(scenario("two_a100"))
    assert snap.available and snap.driver_version == "550.54.15"
    assert snap.cuda_driver_version == "12.4"
    g0, g1 = snap.gpus
    assert (g0.index, g1.index) == (0, 1)
    assert g1.name == "NVIDIA A100-SXM4-80GB" and g1.uuid == "GPU-a100-0001"
    assert g1.memory_total_mib == 81920 and g1.memory_used_mib == 40964
    assert g1.memory_free_mib == 81920 - 40964
    assert (g1.gpu_util_pct, g1.memory_util_pct) == (87, 41)
    assert g1.power_draw_w == pytest.approx(312.5) and g1.power_limit_w == pytest.approx(400.0)
    assert (g1.sm_clock_mhz, g1.memory_clock_mhz, g1.temperature_c) == (1410, 1593, 35)
    assert g1.mig_enabled is False and g1.compute_mode == "default"
    assert g1.processes == (nvml.ProcessInfo(4242, 40960.0),) and g0.processes == ()
    assert g0.error is None and g1.error is None
    assert nvml.gpu_label(snap) == "A100-SXM4-80GB"


def test_snapshot_is_frozen():
    snap = nvml.snapshot(scenario("h100"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.gpus[0].name = "other"


def test_h100_processes_and_compute_mode():
    snap = nvml.snapshot(scenario("h100"))
    (g,) = snap.gpus
    assert g.compute_mode == "exclusive_process" and snap.cuda_driver_version == "12.6"
    assert g.processes == (nvml.ProcessInfo(100, 60000.0), nvml.ProcessInfo(101, None))
    row = nvml.to_frame(snap).iloc[0]
    assert row["num_processes"] == 2 and row["processes_mem_mib"] == 60000.0
    assert nvml.gpu_label(snap) == "H100-80GB-HBM3"
    assert "H100" in snap.summary()


def test_unsupported_fields_are_none():
    (g,) = nvml.snapshot(scenario("unsupported_fields")).gpus
    assert g.error is None
    assert g.power_draw_w is None and g.power_limit_w is None
    assert g.sm_clock_mhz is None and g.memory_clock_mhz is None and g.temperature_c is None
    assert g.memory_total_mib == 81920 and g.gpu_util_pct == 0  # the rest still reads


def test_mig_on():
    (g,) = nvml.snapshot(scenario("mig_on")).gpus
    assert g.mig_enabled is True
    assert g.gpu_util_pct is None and g.memory_util_pct is None
    assert g.memory_total_mib == 81920 and g.error is None


def test_gpu_lost_mid_run_marks_rows_and_keeps_earlier_ones():
    fake = scenario("gpu_lost_mid_run", lost_after=14)  # one full GPU takes 13 device queries
    with nvml.NVMLSession(fake) as s:
        first = s.snapshot()
        second = s.snapshot()
    assert first.gpus[0].error is None and first.gpus[0].name is not None
    assert first.gpus[1].error is not None and "GPU is lost" in first.gpus[1].error
    assert first.gpus[1].name is None
    assert all("GPU is lost" in g.error for g in second.gpus)
    assert fake.shutdown_calls == 1


def test_indices_select_gpus():
    snap = nvml.snapshot(scenario("two_a100"), indices=(1, 7))
    assert [g.index for g in snap.gpus] == [1]


def _scenarios_named_by_other_tests() -> set[str]:
    """Scenario names written in the other test functions of this file (their bodies and
    parametrize decorators), read from the source: a scenario added to fake_nvml without a
    test that uses it is missing here."""
    import ast
    tree = ast.parse(open(__file__, encoding="utf-8").read())
    named = set()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_") and \
                fn.name != "test_every_scenario_is_exercised_here":
            for node in ast.walk(ast.Module(body=[*fn.decorator_list, fn], type_ignores=[])):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    named.add(node.value)
    return named


def test_every_scenario_is_exercised_here():
    missing = set(SCENARIOS) - _scenarios_named_by_other_tests()
    assert not missing, f"fake NVML scenarios no test here uses: {sorted(missing)}"
    # and each scenario shows something different (no two are aliases of one another)
    seen = {}
    for name in SCENARIOS:
        snap = nvml.snapshot(scenario(name))
        key = (snap.available, snap.reason,
               nvml.to_frame(snap).drop(columns=["timestamp"], errors="ignore").to_json())
        assert key not in seen, f"scenarios {seen.get(key)} and {name} look the same"
        seen[key] = name
    with pytest.raises(KeyError):
        scenario("nonexistent")


# -- sampler ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_sampler_writes_one_row_per_gpu_per_sample(tmp_path):
    out = tmp_path / "gpu.csv"
    with GPUSampler(out, 0.01, backend=scenario("two_a100")) as s:
        while s.samples < 4:
            time.sleep(0.005)
    df = pd.read_csv(out)
    assert s.samples >= 4 and len(df) == 2 * s.samples
    assert set(df["index"]) == {0, 1}
    assert df.groupby("sample")["index"].count().eq(2).all()
    assert df["elapsed_s"].is_monotonic_increasing and df["timestamp"].notna().all()
    assert not s.hung and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


@pytest.mark.timeout(30)
def test_sampler_keeps_going_when_the_gpu_is_lost(tmp_path):
    out = tmp_path / "gpu.csv"
    with GPUSampler(out, 0.005, backend=scenario("gpu_lost_mid_run", lost_after=40)) as s:
        while s.samples < 6:
            time.sleep(0.005)
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    good = df[df["error"].isna()]
    lost = df[df["error"].fillna("").str.contains("GPU is lost")]
    assert len(good) >= 2 and len(lost) >= 2  # earlier rows kept, later rows say why
    assert good["sample"].max() <= lost["sample"].min()
    assert df["sample"].nunique() == s.samples


@pytest.mark.timeout(30)
def test_sampler_can_stop_on_error(tmp_path):
    s = GPUSampler(tmp_path / "gpu.csv", 0.001, backend=scenario("gpu_lost_mid_run",
                                                                 lost_after=30),
                   stop_on_error=True)
    with s:
        s._thread.join(10)
    assert not s._thread.is_alive()
    df = pd.read_csv(tmp_path / "gpu.csv")
    assert df["error"].notna().any()
    # 13 queries per healthy GPU: sample 0 takes 26, sample 1 fails at query 31 and stops it
    assert df["sample"].max() == s.samples - 1 == 1


@pytest.mark.timeout(30)
def test_sampler_without_gpu_records_reason(tmp_path):
    with GPUSampler(tmp_path / "g.csv", 0.01, backend=scenario("no_driver")) as s:
        while s.samples < 2:
            time.sleep(0.005)
    df = pd.read_csv(tmp_path / "g.csv")
    assert (df["index"] == -1).all() and df["error"].str.contains("driver").all()


@pytest.mark.timeout(30)
def test_sampler_gives_up_on_a_hung_nvml_call(tmp_path):
    release = threading.Event()
    fake = scenario("two_a100")
    calls = {"n": 0}
    real = fake.nvmlDeviceGetName

    def hang_on_second_sample(h):
        calls["n"] += 1
        if calls["n"] > 2:
            release.wait(20)
        return real(h)

    fake.nvmlDeviceGetName = hang_on_second_sample
    s = GPUSampler(tmp_path / "g.csv", 0.01, backend=fake, join_timeout_s=0.2)
    s.start()
    while calls["n"] <= 2:
        time.sleep(0.005)
    df = s.stop()
    release.set()
    assert s.hung and len(df) == 2 and os.path.exists(tmp_path / "g.csv")


# -- command line -------------------------------------------------------------------------


def test_inventory_and_sample_commands(capsys, tmp_path):
    import json

    from profiling.__main__ import main
    assert main(["inventory", "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["available"] or snap["reason"].startswith(nvml.NO_GPU)
    out = tmp_path / "samples.csv"
    assert main(["sample", "--out", str(out), "--interval-s", "0.05", "--duration-s", "0.2"]) == 0
    df = pd.read_csv(out)
    assert len(df) >= 1 and {"sample", "elapsed_s", "index", "error"} <= set(df.columns)
