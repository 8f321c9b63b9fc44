"""Run an ASGI app (the router, or a fake upstream) under uvicorn in a background thread.

``with RouterServer(create_app(plan, endpoints)) as srv: srv.url`` serves on 127.0.0.1 and a
free port (or ``port``) until the block ends; start-up failures raise, and the server stops
cleanly (open streams get ``graceful_s`` to finish) when the block ends. ``routerwise serve``
runs the same app in the foreground with :func:`serve_forever`.
"""

from __future__ import annotations

import gc
import socket
import threading
import time

import uvicorn

from ..errors import ValidationError

__all__ = ["RouterServer", "serve_forever"]


def _bind(host: str, port: int | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port or 0)))
    except OSError as e:
        sock.close()
        raise ValidationError(f"cannot listen on {host}:{port or 0} ({e.strerror or e}); give "
                              f"a free port (or none, for any free one)") from e
    return sock


def _config(app, log_level: str, access_log: bool, graceful_s: float) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                          timeout_graceful_shutdown=graceful_s)


class RouterServer:
    """``app`` served by uvicorn in a daemon thread; ``.url`` is its base URL once entered."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, *,
                 log_level: str = "warning", access_log: bool = False,
                 startup_timeout_s: float = 30.0, graceful_s: float = 5.0):
        self.app, self.host, self.port = app, host, port
        self.startup_timeout_s, self.graceful_s = startup_timeout_s, graceful_s
        self._server = uvicorn.Server(_config(app, log_level, access_log, graceful_s))
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        if self._sock is None:
            raise ValidationError("the server is not running; use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> RouterServer:
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise ValidationError(f"the server on {self.host}:{self.port} did not start "
                                      f"within {self.startup_timeout_s:g} s (its start-up "
                                      f"failed: see the log above)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.graceful_s + 10.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def serve_forever(app, host: str = "127.0.0.1", port: int | None = None, *,
                  access_log: bool = True) -> None:
    """Serve ``app`` in this thread until interrupted (Ctrl-C / SIGTERM)."""
    sock = _bind(host, port)
    # What start-up built (the plan, the fitted score predictor, the imported libraries) lives
    # as long as the process: frozen, it is out of the collector's way (a full collection
    # walked it for about 90 ms on the router here, a stall every request in flight then saw).
    gc.collect()
    gc.freeze()
    print(f"routerwise router listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    try:
        uvicorn.Server(_config(app, "info", access_log, 5.0)).run(sockets=[sock])
    finally:
        sock.close()
