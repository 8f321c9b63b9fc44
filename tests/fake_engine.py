"""A tiny OpenAI-compatible streaming server for loopback tests (standard library only).

Serves ``GET /health``, ``GET /v1/models`` and streamed ``POST /v1/completions`` /
``/v1/chat/completions`` with controlled delays: response headers at once, then (after a slot
of ``max_concurrency`` frees up, if set) the first token after ``ttft_s`` and each further one
after ``tpot_s``; then a ``usage`` chunk and ``data: [DONE]``. Bodies use chunked transfer
encoding, as uvicorn-based servers do.

A request whose prompt (or last message) starts with ``FAKE:<mode>`` misbehaves on purpose:

    http_500        answers 500 with a JSON error body
    die_mid_stream  sends two tokens, then closes the socket without ending the body
    malformed       sends one token, then a line that is not JSON
    no_done         ends the body cleanly without ``data: [DONE]``
    error_event     sends a ``data: {"error": ...}`` event
    hang            sends nothing at all for ``hang_s`` seconds

In-process: ``with FakeEngine(ttft_s=0.05) as eng: eng.url``. As a program (for the launcher):
``python tests/fake_engine.py --port P [--health-delay-s S] [--fail-health] [--crash]
[--ignore-sigterm]``; it logs to stdout, starting with the CUDA variables it was given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "http_500", "die_mid_stream", "malformed", "no_done", "error_event", "hang")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, fmt, *args):  # keep test output quiet; the program logs itself
        if self.server.verbose:
            sys.stdout.write("fake engine: " + fmt % args + "\n")
            sys.stdout.flush()

    # -- plain responses ------------------------------------------------------------------
    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        cfg = self.server
        if self.path == "/health":
            ready = not cfg.fail_health and time.monotonic() - cfg.started >= cfg.health_delay_s
            self._json(200 if ready else 503, {"status": "ok" if ready else "starting"})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": cfg.model, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    # -- streaming ------------------------------------------------------------------------
    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self._chunk(f"data: {payload}\n\n".encode())

    def do_POST(self):
        cfg = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        with cfg.lock:
            cfg.requests += 1
        text = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        mode = text[5:].split()[0] if text.startswith("FAKE:") else "ok"
        if mode == "http_500":
            self._json(500, {"error": {"message": "injected failure", "code": 500}})
            return
        if mode == "hang":
            time.sleep(cfg.hang_s)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if chat:
            self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        slot = cfg.slots
        if slot is not None:
            slot.acquire()
        try:
            self._stream(body, chat, mode, len(text.split()))
        finally:
            if slot is not None:
                slot.release()

    def _stream(self, body: dict, chat: bool, mode: str, prompt_tokens: int) -> None:
        cfg = self.server
        n = int(body.get("max_tokens", 16))
        time.sleep(cfg.ttft_s)
        for i in range(n):
            if i:
                time.sleep(cfg.tpot_s)
            if mode == "die_mid_stream" and i == 2:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if mode == "malformed" and i == 1:
                self._chunk(b"data: {this is not json\n\n")
                break
            if mode == "error_event" and i == 1:
                self._event({"error": {"message": "injected engine error", "code": 500}})
                break
            piece = f" tok{i}"
            choice = ({"index": 0, "delta": {"content": piece}} if chat
                      else {"index": 0, "text": piece})
            self._event({"id": "fake", "model": cfg.model, "choices": [choice], "usage": None})
        else:
            if body.get("stream_options", {}).get("include_usage"):
                self._event({"id": "fake", "choices": [], "usage": {
                    "prompt_tokens": prompt_tokens, "completion_tokens": n,
                    "total_tokens": prompt_tokens + n}})
            if mode != "no_done":
                self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, *, model, ttft_s, tpot_s, max_concurrency, health_delay_s,
                 fail_health, hang_s, verbose):
        super().__init__(addr, _Handler)
        self.model, self.ttft_s, self.tpot_s = model, ttft_s, tpot_s
        self.slots = threading.Semaphore(max_concurrency) if max_concurrency else None
        self.health_delay_s, self.fail_health = health_delay_s, fail_health
        self.hang_s, self.verbose = hang_s, verbose
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.requests = 0

    def handle_error(self, request, client_address):
        # Clients closing kept-alive connections (or timing out on purpose) are expected here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeEngine:
    """The server in a background thread on 127.0.0.1 and a free port."""

    def __init__(self, *, model: str = "fake-model", ttft_s: float = 0.02, tpot_s: float = 0.005,
                 max_concurrency: int | None = None, health_delay_s: float = 0.0,
                 fail_health: bool = False, hang_s: float = 3.0, port: int = 0):
        self._server = _Server(("127.0.0.1", port), model=model, ttft_s=ttft_s, tpot_s=tpot_s,
                               max_concurrency=max_concurrency, health_delay_s=health_delay_s,
                               fail_health=fail_health, hang_s=hang_s, verbose=False)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> int:
        return self._server.requests

    def __enter__(self) -> FakeEngine:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--ttft-ms", type=float, default=20.0)
    ap.add_argument("--tpot-ms", type=float, default=5.0)
    ap.add_argument("--max-concurrency", type=int, default=0)
    ap.add_argument("--health-delay-s", type=float, default=0.0)
    ap.add_argument("--fail-health", action="store_true", help="/health never turns 200")
    ap.add_argument("--crash", action="store_true", help="log an error and exit 3 at start")
    ap.add_argument("--ignore-sigterm", action="store_true")
    a = ap.parse_args(argv)
    print(f"fake engine starting: model={a.model} port={a.port}", flush=True)
    for var in ("CUDA_VISIBLE_DEVICES", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
                "CUDA_MPS_PIPE_DIRECTORY"):
        print(f"fake engine env {var}={os.environ.get(var, '')}", flush=True)
    if a.crash:
        print("fake engine: CUDA error: out of memory (injected)", flush=True)
        return 3
    if a.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    srv = _Server((a.host, a.port), model=a.model, ttft_s=a.ttft_ms / 1000,
                  tpot_s=a.tpot_ms / 1000, max_concurrency=a.max_concurrency or None,
                  health_delay_s=a.health_delay_s, fail_health=a.fail_health, hang_s=30.0,
                  verbose=True)
    print(f"fake engine listening on http://{a.host}:{a.port}", flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
