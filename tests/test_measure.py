"""Setup latencies: measured against an endpoint, or simulated with the reason said."""

import pytest
from conftest import needs_mirror
from fake_engine import FakeEngine

from profiling.measure import endpoint_reachable, setup_latencies
from routerwise.data import latency_table as profiles

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]


@needs_mirror
def test_simulate_and_unreachable_endpoint_fall_back(tmp_path):
    res = setup_latencies("llama-3.1-8b-instruct", [1], [1.0], [1.0], out_dir=tmp_path)
    assert res.mode == "simulated" and "simulate" in res.reason
    assert set(res.table["source"]) == {"simulated"} and len(res.table) > 5
    res = setup_latencies("llama-3.1-8b-instruct", [1], [1.0], [1.0],
                          endpoint="http://127.0.0.1:9", out_dir=tmp_path)
    assert res.mode == "simulated" and "does not answer" in res.reason


def test_endpoint_is_measured_in_the_shared_schema(tmp_path):
    with FakeEngine(ttft_s=0.02, tpot_s=0.002) as eng:
        assert endpoint_reachable(eng.url) is None
        res = setup_latencies("fake-model", [1], [1.0], [4.0, 8.0], endpoint=eng.url,
                              out_dir=tmp_path, num_requests=12, duration_s=10.0,
                              gpu="test-gpu", served_model="fake-model")
    assert res.mode == "measured"
    t = profiles.normalize(res.table)
    assert list(t["load_rps"]) == [4.0, 8.0] and set(t["source"]) == {"measured"}
    assert (t["ttft_mean_ms"] >= 20.0).all()


@needs_mirror
def test_an_endpoint_that_fails_its_points_falls_back_and_says_why(tmp_path):
    # /v1/models answers, completions are refused: nothing measured, so simulated, and the
    # password in the URL is in neither the reason nor any file written
    import http.server
    import threading

    class ModelsOnly(http.server.BaseHTTPRequestHandler):
        def _send(self, code, body):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200, b'{"object": "list", "data": []}')

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send(404, b'{"error": {"message": "model not found"}}')

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelsOnly)
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://u:pa55w0rd@127.0.0.1:{srv.server_port}"
        res = setup_latencies("llama-3.1-8b-instruct", [1], [1.0], [1.0], endpoint=url,
                              out_dir=tmp_path, num_requests=5, duration_s=5.0)
    finally:
        srv.shutdown()
        srv.server_close()
    assert res.mode == "simulated" and "failed its load points" in res.reason
    assert "http_status" in res.reason and "pa55w0rd" not in res.reason
    assert not any("pa55w0rd" in p.read_text(errors="replace")
                   for p in tmp_path.rglob("*") if p.is_file())
