"""A real vLLM in the loop: typed start-up failures, no orphaned servers, the engine's /metrics,
and a short measured sweep against vLLM serving a tiny local model.

The sweep test needs vLLM in this environment (`make engine`). Without it the test is skipped
with the reason, except under CI=true, where it fails: CI installs the engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import in_ci

from profiling import server_metrics
from profiling.errors import EngineStartError
from profiling.launcher import EngineSpec, free_port, launch, port_in_use
from profiling.loadgen import Endpoint, Prompt
from routerwise.errors import ValidationError

FAKE_ENGINE = str(Path(__file__).with_name("fake_engine.py"))
FAKE_COMMAND = ("{python}", FAKE_ENGINE, "--port", "{port}", "--model", "{model}")
ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


# ---------------------------------------------------------------------------------------------
# Start-up failures are typed and quote the engine's log


def test_busy_port_is_refused_not_mistaken_for_a_healthy_engine():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)  # another server answers /health
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = EngineSpec("fake-model", port=server.server_address[1], command=FAKE_COMMAND,
                          startup_timeout_s=20.0, grace_s=5.0)
        with pytest.raises(EngineStartError, match="in use") as err:
            with launch(spec):
                pass
        assert err.value.kind == "port_busy"
    finally:
        server.shutdown()
        server.server_close()


def test_out_of_memory_exit_is_classified_and_quotes_the_log(tmp_path):
    crash = ("{python}", "-c", "import sys; print('loading weights'); "
             "print('RuntimeError: CPU out of memory while allocating the KV cache'); "
             "sys.exit(1)")
    spec = EngineSpec("m", port=free_port(), command=crash, startup_timeout_s=20.0, grace_s=5.0)
    with pytest.raises(EngineStartError, match="out of memory") as err:
        with launch(spec, log_path=tmp_path / "engine.log"):
            pass
    assert err.value.kind == "out_of_memory"
    assert "loading weights" in str(err.value)  # the log's last lines are quoted
    assert "VLLM_CPU_KVCACHE_SPACE" in str(err.value)  # and what to change


def test_health_timeout_is_kind_timeout(tmp_path):
    spec = EngineSpec("fake-model", port=free_port(), command=FAKE_COMMAND,
                      extra_args=("--fail-health",), startup_timeout_s=2.0, grace_s=5.0)
    with pytest.raises(EngineStartError) as err:
        with launch(spec, log_path=tmp_path / "engine.log"):
            pass
    assert err.value.kind == "timeout"


def test_engine_dies_with_the_command_that_started_it(tmp_path):
    """A launching process killed by SIGKILL runs no cleanup; the engine must go anyway."""
    script = tmp_path / "starter.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from profiling.launcher import EngineSpec, free_port, launch
        spec = EngineSpec("fake-model", port=free_port(), command={FAKE_COMMAND!r},
                          startup_timeout_s=20.0, grace_s=5.0)
        with launch(spec) as eng:
            print(eng.process.pid, flush=True)
            time.sleep(600)
    """))
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    engine_pid = None
    try:
        engine_pid = int(starter.stdout.readline())
        assert _alive(engine_pid)
        starter.kill()
        starter.wait(30)
        deadline = time.monotonic() + 30
        while _alive(engine_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
            try:  # reap it should it be our child's child that init has not collected yet
                os.waitpid(engine_pid, os.WNOHANG)
            except ChildProcessError:
                pass
        assert not _alive(engine_pid), "the engine outlived the process that started it"
    finally:
        if starter.poll() is None:
            starter.kill()
        if engine_pid is not None and _alive(engine_pid):
            os.killpg(engine_pid, signal.SIGKILL)


def test_provenance_keeps_version_flags_and_startup_log(tmp_path):
    spec = EngineSpec("fake-model", port=free_port(), command=FAKE_COMMAND,
                      env={"VLLM_CPU_KVCACHE_SPACE": "1", "HF_TOKEN": "hf_secret"},
                      startup_timeout_s=20.0, grace_s=5.0)
    with launch(spec, log_path=tmp_path / "engine.log") as eng:
        prov = eng.provenance()
    assert prov["engine_log"] == str(tmp_path / "engine.log")
    assert prov["engine_startup_s"] is not None and prov["engine_startup_s"] >= 0
    assert prov["engine_env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "hf_secret" not in json.dumps(prov)
    assert "engine_version" in prov


# ---------------------------------------------------------------------------------------------
# vLLM settings


def test_vllm_spec_serves_a_model_folder_on_loopback_with_the_cpu_settings(tmp_path):
    from profiling.vllm_server import CPU_ENGINE_ENV, vllm_spec
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    spec = vllm_spec(tmp_path / "m", cpu=True, cpu_cores="1", port=9123)
    argv = spec.argv()
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--enforce-eager" in argv and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--served-model-name") + 1] == "m" == spec.served_model_name
    assert spec.env["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert {k: spec.env[k] for k in CPU_ENGINE_ENV} == CPU_ENGINE_ENV
    with pytest.raises(ValidationError, match="loopback"):
        vllm_spec(tmp_path / "m", host="0.0.0.0", cpu=True)
    with pytest.raises(EngineStartError, match="no config.json") as err:
        vllm_spec(tmp_path / "missing", cpu=True)
    assert err.value.kind == "bad_model"


def test_sweep_cli_builds_a_vllm_setup_for_a_model_folder(tmp_path):
    from profiling.__main__ import build_parser, sweep_setups
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text("{}")
    a = build_parser().parse_args(["sweep", "--engine", "vllm", "--model", str(tmp_path / "tiny"),
                                   "--loads", "1", "--out", str(tmp_path / "out")])
    (setup,) = sweep_setups(a)
    assert setup.model == "tiny" and setup.served_model == "tiny"
    assert "--enforce-eager" in setup.engine.argv() or "--tensor-parallel-size" in \
        setup.engine.argv()


def test_exact_length_asks_for_min_tokens():
    ep = Endpoint("http://127.0.0.1:1", "m", exact_length=True)
    body = ep.payload(Prompt("hi", 32))
    assert body["min_tokens"] == 32 and body["max_tokens"] == 32 and body["ignore_eos"]


# ---------------------------------------------------------------------------------------------
# The engine's /metrics

METRICS_BEFORE = """# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="tiny"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 2.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} 2.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 0.06
vllm:generation_tokens_total{engine="0",model_name="tiny"} 64.0
"""
METRICS_AFTER = """vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="tiny"} 5.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 6.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} 6.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 0.46
vllm:time_to_first_token_seconds_count{engine="0",model_name="other"} 9.0
vllm:generation_tokens_total{engine="0",model_name="tiny"} 192.0
"""


def test_metrics_delta_counts_only_the_run_and_the_model():
    d = server_metrics.delta(server_metrics.parse_prometheus(METRICS_BEFORE),
                             server_metrics.parse_prometheus(METRICS_AFTER), "tiny")
    assert d["ttft_count"] == 4
    assert d["ttft_mean_ms"] == pytest.approx(100.0)  # (0.46 - 0.06) / 4 s
    assert d["generation_tokens"] == 128
    # 3 of the 4 new observations fall in (0.01, 0.1]: the median lies in that bucket
    assert 10.0 < d["ttft_p50_ms"] <= 100.0
    assert "itl_count" not in d  # not exported: left out, not zero


# ---------------------------------------------------------------------------------------------
# A measured sweep against the real engine


def _need_engine():
    from profiling.vllm_server import engine_installed
    why = engine_installed()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"CI=true but the engine is missing: {why}")
    pytest.skip(why)


LIGHT_RPS, HEAVY_RPS, MAX_TOKENS, N = 2.0, 80.0, 32, 48
# The engine runs at most this many sequences at once, so requests past its capacity wait in
# its queue whatever the machine's speed: uncapped, a fast machine batches all 48 requests
# at once and TTFT barely rises (seen once: 16 -> 21 ms at 80 req/s).
MAX_SEQS = 2


@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sweep_against_real_vllm_on_a_tiny_model(tmp_path):
    _need_engine()
    from profiling.loadgen import read_requests, synthetic_prompts
    from profiling.sweep import SweepSetup, point_dir, run_sweep
    from profiling.tiny_models import build_tiny_model
    from profiling.vllm_server import vllm_spec
    from routerwise.data import latency_table

    model = build_tiny_model(tmp_path / "tiny-llama-s", "tiny-llama-s", seed=0)
    spec = vllm_spec(model, startup_timeout_s=600.0,
                     extra_args=("--max-num-seqs", str(MAX_SEQS)))
    setup = SweepSetup("tiny-llama-s", engine=spec, served_model=spec.served_model_name)
    prompts = synthetic_prompts(16, prompt_words=64, max_tokens=MAX_TOKENS)
    out = tmp_path / "sweep"
    # A light rate and one far past the capped engine's capacity: the heavy point's queue grows
    # whatever else the machine is doing (checked below from the light point). One start.
    run_sweep([setup], [LIGHT_RPS, HEAVY_RPS], out, prompts=prompts, gpu="cpu",
              num_requests=N, server_metrics=True, exact_length=True,
              stop_after_saturation=False, request_timeout_s=300.0, progress=False,
              sample_interval_s=None)
    assert not port_in_use(spec.host, spec.port), "the server outlived the sweep"

    table = latency_table.read_table(out / "profile.csv")
    assert sorted(table["load_rps"]) == [LIGHT_RPS, HEAVY_RPS]
    rows = {r.load_rps: r for r in table.itertuples()}
    for load in (LIGHT_RPS, HEAVY_RPS):
        n = N
        folder = point_dir(out, setup, load)
        req = read_requests(folder / "requests.csv")
        assert len(req) == n and req["ok"].all(), req["error_kind"].value_counts()
        assert (req["completion_tokens"] == MAX_TOKENS).all()  # exact lengths
        assert req["tokens_from_usage"].all()
        server = json.loads((folder / "server_metrics.json").read_text())
        assert server["ttft_count"] == n  # the server saw exactly the client's requests
        assert server["generation_tokens"] == n * MAX_TOKENS
        prov = json.loads(rows[load].provenance)
        assert prov["server_metrics"] == server
        assert server["queue_count"] == n and "queue_p50_ms" not in server
        assert prov["engine_version"].startswith("vllm")
        assert "--enforce-eager" in prov["engine_command"] or not spec.env
        assert Path(prov["engine_log"]).is_file()
    light = rows[LIGHT_RPS]
    server_light = json.loads((point_dir(out, setup, LIGHT_RPS) / "server_metrics.json")
                              .read_text())
    # Client and server agree at the light rate: the client's TTFT adds the HTTP round trip
    # and its own scheduling delay, so it is the larger, by a bounded overhead.
    assert server_light["ttft_mean_ms"] <= light.ttft_mean_ms + 5.0
    assert light.ttft_mean_ms - server_light["ttft_mean_ms"] <= max(
        100.0, 0.5 * server_light["ttft_mean_ms"])
    assert light.tpot_mean_ms == pytest.approx(server_light["itl_mean_ms"], rel=0.5, abs=10.0)
    # Past saturation TTFT rises: requests queue for the engine. With at most MAX_SEQS running,
    # the engine completes far fewer than HEAVY_RPS requests a second (about 28 on a free core).
    heavy = rows[HEAVY_RPS]
    completed_rps = heavy.num_requests / heavy.duration_s
    assert completed_rps < HEAVY_RPS / 1.5, f"the capped engine kept up: {completed_rps:.1f} req/s"
    assert heavy.ttft_mean_ms > 1.5 * light.ttft_mean_ms
    assert bool(heavy.saturated) and not bool(light.saturated)
