"""profiling.sweep: resume without redoing points, stop after saturation, never overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fake_engine import FakeEngine
from fake_nvml import scenario

from profiling import sweep as sw
from profiling.errors import ResultExists
from profiling.launcher import EngineSpec, free_port
from profiling.loadgen import synthetic_prompts
from routerwise.data import latency_table as profiles
from routerwise.errors import ValidationError

pytestmark = [pytest.mark.timeout(60),  # see test_loadgen.py for the warning
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]

PROMPTS = synthetic_prompts(8, prompt_words=8, max_tokens=4)
FAKE_ENGINE = str(Path(__file__).with_name("fake_engine.py"))


class Interrupt(KeyboardInterrupt):
    pass


def run(setups, loads, out, **kw):
    kw.setdefault("num_requests", 10)
    kw.setdefault("gpu", "loopback")
    kw.setdefault("nvml_backend", scenario("no_library"))
    return sw.run_sweep(setups, loads, out, prompts=PROMPTS, progress=False, **kw)


@pytest.fixture
def engine():
    # One request at a time, ~18 ms each: capacity ~55 rps.
    with FakeEngine(ttft_s=0.01, tpot_s=0.002, max_concurrency=1) as eng:
        yield eng


def test_resume_skips_finished_points_and_stops_after_saturation(engine, tmp_path):
    setup = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url, served_model="fake-model")
    loads = [600.0, 10.0, 500.0, 20.0]  # run in ascending order

    def stop_after_first(folder, summary):
        raise Interrupt

    with pytest.raises(Interrupt):
        run([setup], loads, tmp_path, on_point=stop_after_first)
    first = sw.point_dir(tmp_path, setup, 10.0)
    assert sw.is_finished(first) and not sw.point_dir(tmp_path, setup, 20.0).exists()
    assert len(profiles.read_table(tmp_path / "profile.csv")) == 1
    stamp = (first / sw.SUMMARY).stat().st_mtime_ns
    sent = engine.requests
    assert sent == 10

    table = run([setup], loads, tmp_path)
    assert (first / sw.SUMMARY).stat().st_mtime_ns == stamp  # not redone
    assert engine.requests == sent + 20  # 20 rps and 500 rps only
    assert list(table["load_rps"]) == [10.0, 20.0, 500.0]
    assert list(table["saturated"]) == [False, False, True]
    assert not sw.point_dir(tmp_path, setup, 600.0).exists()  # beyond the saturated point
    assert table.equals(profiles.read_table(tmp_path / "profile.csv"))
    assert (table["source"] == "measured").all()
    assert "attached to a running endpoint" in json.loads(table["provenance"][0])["engine"]
    for load in (10.0, 20.0, 500.0):
        folder = sw.point_dir(tmp_path, setup, load)
        assert len(pd.read_csv(folder / sw.REQUESTS)) == 10
        assert json.loads((folder / sw.SETTINGS).read_text())["load_rps"] == load

    again = run([setup], loads, tmp_path)  # everything finished: nothing sent
    assert engine.requests == sent + 20 and again.equals(table)


def test_refuses_to_overwrite_finished_measurements(engine, tmp_path):
    setup = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url, served_model="fake-model")
    run([setup], [20.0], tmp_path)
    folder = sw.point_dir(tmp_path, setup, 20.0)
    before = (folder / sw.REQUESTS).read_bytes()
    with pytest.raises(ResultExists, match="num_requests: finished=10 now=12") as err:
        run([setup], [20.0], tmp_path, num_requests=12)
    assert str(folder) in str(err.value) and "remove that folder" in str(err.value)
    with pytest.raises(ResultExists):
        sw.write_point(folder, pd.DataFrame(), pd.DataFrame())
    assert (folder / sw.REQUESTS).read_bytes() == before


def test_half_finished_point_is_measured_again(engine, tmp_path):
    setup = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url, served_model="fake-model")
    folder = sw.point_dir(tmp_path, setup, 20.0)
    folder.mkdir(parents=True)
    (folder / sw.REQUESTS).write_text("partial\n")
    run([setup], [20.0], tmp_path)
    assert sw.is_finished(folder) and len(pd.read_csv(folder / sw.REQUESTS)) == 10


def test_launched_engine_with_gpu_samples(tmp_path):
    engine = EngineSpec("fake-model", port=free_port(), startup_timeout_s=20, grace_s=5,
                        command=("{python}", FAKE_ENGINE, "--port", "{port}", "--model",
                                 "{model}", "--ttft-ms", "5", "--tpot-ms", "1"))
    setup = sw.SweepSetup("fake-model", 1, 1.0, engine=engine)
    table = run([setup], [20.0], tmp_path, gpu=None, nvml_backend=scenario("h100"),
                sample_interval_s=0.05)
    row = table.iloc[0]
    assert row["gpu"] == "H100-80GB-HBM3" and row["num_requests"] == 10
    prov = json.loads(row["provenance"])
    assert FAKE_ENGINE in prov["engine_command"] and prov["nvml_driver"] == "560.35.03"
    folder = sw.point_dir(tmp_path, setup, 20.0)
    samples = pd.read_csv(folder / sw.GPU_SAMPLES)
    assert len(samples) >= 1 and (samples["name"] == "NVIDIA H100 80GB HBM3").all()
    assert list(setup.folder(tmp_path).glob("engine-*.log"))


def test_validation(engine, tmp_path):
    attach = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url)
    with pytest.raises(ValidationError, match="repeat"):
        run([attach, attach], [1.0], tmp_path)
    with pytest.raises(ValidationError, match="loads_rps"):
        run([attach], [0.0], tmp_path)
    with pytest.raises(ValidationError, match="bound each load point"):
        run([attach], [1.0], tmp_path, num_requests=None)
    with pytest.raises(ValidationError, match="name the GPU type"):
        run([attach], [1.0], tmp_path, gpu=None)
    low = sw.SweepSetup("m", 1, 0.5, engine=EngineSpec("m", compute_share=0.5))
    with pytest.raises(ValidationError, match="only MPS enforces"):
        run([low], [1.0], tmp_path)
    with pytest.raises(ValidationError, match="exactly one"):
        sw.SweepSetup("m")
    with pytest.raises(ValidationError, match="engine spec says"):
        sw.SweepSetup("m", 2, 1.0, engine=EngineSpec("m"))
    assert not (tmp_path / "points").exists()


def test_sweep_command_against_a_running_endpoint(engine, tmp_path, capsys, caplog):
    import logging

    from profiling.__main__ import main
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    caplog.set_level(logging.INFO)
    try:
        rc = main(["sweep", "--model", "fake", "--served-model-name", "fake-model", "--loads",
                   "20", "--endpoint", engine.url, "--out", str(tmp_path), "--gpu", "loopback",
                   "--num-requests", "5", "--synthetic", "4", "--max-tokens", "3",
                   "--no-progress"])
    finally:
        httpx_log.setLevel(level)
    assert rc == 0 and "1 profile rows" in capsys.readouterr().out
    # the sweep's own progress is logged, not a line per HTTP request
    assert any(r.name == "profiling.sweep" for r in caplog.records)
    assert not [r for r in caplog.records if r.name.startswith("httpx")]
    row = profiles.read_table(tmp_path / "profile.csv").iloc[0]
    assert (row["model"], row["gpu"], row["num_requests"]) == ("fake", "loopback", 5)


# --- failed points, endpoint identity, credentials, CLI validation ---------------------------

def _all_written_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_a_dead_endpoint_is_a_failed_point_and_a_rerun_measures_it(tmp_path):
    from profiling.errors import PointFailed
    from profiling.launcher import free_port
    port = free_port()
    url = f"http://alice:s3cret-pw@127.0.0.1:{port}"  # nothing listens there yet
    setup = sw.SweepSetup("fake", 1, 1.0, endpoint_url=url, served_model="fake-model")
    with pytest.raises(PointFailed, match="no request of 10 completed.*connect_error") as err:
        run([setup], [10.0, 20.0], tmp_path)
    first = sw.point_dir(tmp_path, setup, 10.0)
    assert not sw.is_finished(first) and not sw.point_dir(tmp_path, setup, 20.0).exists()
    (failed,) = first.glob("failed-*")
    assert "connect_error" in json.loads((failed / sw.FAILURE).read_text())["reason"]
    assert len(pd.read_csv(failed / sw.REQUESTS)) == 10
    assert len(profiles.read_table(tmp_path / "profile.csv")) == 0 and len(err.value.table) == 0

    with FakeEngine(port=port, ttft_s=0.005, tpot_s=0.001) as live:  # the server comes up
        table = run([setup], [10.0, 20.0], tmp_path)
        assert live.requests == 20  # both points measured, the failed one included
    assert list(table["load_rps"]) == [10.0, 20.0] and not table["saturated"].any()
    assert table["ttft_mean_ms"].notna().all()
    written = _all_written_text(tmp_path)
    assert "s3cret-pw" not in written and "alice" not in written
    assert json.loads((first / sw.SETTINGS).read_text())["endpoint"] == f"http://127.0.0.1:{port}"


def test_a_garbage_endpoint_is_a_failed_point(tmp_path):
    import http.server
    import threading

    from profiling.errors import PointFailed

    class Garbage(http.server.BaseHTTPRequestHandler):
        def _html(self):
            body = b"<html>not an LLM server</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _html

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    try:
        setup = sw.SweepSetup("fake", 1, 1.0, endpoint_url=f"http://127.0.0.1:{srv.server_port}")
        with pytest.raises(PointFailed, match="no request of 10 completed"):
            run([setup], [10.0], tmp_path)
    finally:
        srv.shutdown()
        srv.server_close()
    assert not sw.is_finished(sw.point_dir(tmp_path, setup, 10.0))
    assert len(profiles.read_table(tmp_path / "profile.csv")) == 0


def test_another_endpoint_is_measured_not_skipped(engine, tmp_path):
    a = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url, served_model="fake-model")
    run([a], [10.0], tmp_path)
    with FakeEngine(ttft_s=0.005, tpot_s=0.001) as other:
        b = sw.SweepSetup("fake", 1, 1.0, endpoint_url=other.url, served_model="fake-model")
        assert sw.point_dir(tmp_path, b, 10.0) != sw.point_dir(tmp_path, a, 10.0)
        table = run([b], [10.0], tmp_path)
        assert other.requests == 10
    assert len(table) == 1  # the later measurement of the same point is the table's row
    assert other.url.split("//")[1] in json.loads(table["provenance"][0])["endpoint"]
    # credentials do not make another endpoint
    c = sw.SweepSetup("fake", 1, 1.0, endpoint_url=engine.url.replace("//", "//u:p@"))
    assert c.folder(tmp_path) == a.folder(tmp_path)


def test_sweep_command_validates_before_measuring(engine, tmp_path, capsys):
    from profiling.__main__ import main
    common = ["sweep", "--model", "fake", "--served-model-name", "fake-model", "--loads", "20",
              "--endpoint", engine.url, "--out", str(tmp_path), "--gpu", "loopback",
              "--num-requests", "5", "--no-progress"]
    for extra, msg in ((["--shares", "1.7"], "multiple of 0.1"),
                       (["--shares", "0.55"], "multiple of 0.1"),
                       (["--request-timeout-s", "0"], "--request-timeout-s must be a positive"),
                       (["--tp", "0"], "--tp")):
        assert main(common + extra) == 2
        assert msg in capsys.readouterr().err
    assert engine.requests == 0 and not (tmp_path / "points").exists()
    with pytest.raises(ValidationError, match="compute_share must be a multiple"):
        sw.SweepSetup("m", 1, 1.7, endpoint_url=engine.url)


def test_sweep_command_request_timeouts_bound_a_stalling_server(tmp_path, capsys):
    import socket
    import time

    from profiling.__main__ import main
    with socket.socket() as stall:  # accepts connections (backlog), never answers
        stall.bind(("127.0.0.1", 0))
        stall.listen(64)
        url = f"http://127.0.0.1:{stall.getsockname()[1]}"
        t0 = time.monotonic()
        rc = main(["sweep", "--model", "fake", "--loads", "50", "--endpoint", url,
                   "--out", str(tmp_path), "--gpu", "loopback", "--num-requests", "3",
                   "--no-progress", "--connect-timeout-s", "0.3", "--read-timeout-s", "0.3",
                   "--request-timeout-s", "0.5"])
        took = time.monotonic() - t0
    assert rc == 2 and "no request of 3 completed" in capsys.readouterr().err
    # The defaults (120 s read) would take minutes; 0.5 s timeouts take about 1.5 s. The bound
    # sits far from both, so a loaded machine cannot fail it.
    assert took < 60
