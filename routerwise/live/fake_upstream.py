"""A fast fake OpenAI-compatible model server (plain ASGI) for the router's tests and benchmark.

Serves ``GET /health``, ``GET /v1/models`` and ``POST /v1/completions`` /
``/v1/chat/completions``, streamed (``"stream": true``: one SSE event per token, ``max_tokens``
tokens, a ``usage`` event when ``stream_options.include_usage``, then ``data: [DONE]``) or
whole. The first token comes after ``ttft_s``, each further one after ``tpot_s``. Every request
is recorded (``requests``: path, body, headers); a request whose client goes away before its
answer ends is counted in ``cancelled``, one answered to the end in ``completed``.

A prompt (or last message) starting with ``FAKE:<mode>`` misbehaves on purpose: ``http_500``
and ``http_400`` answer that status with an OpenAI-style error; ``hang`` sends nothing for
``hang_s``; ``die_mid_stream`` sends two tokens, then drops the connection.

In-process: ``with RouterServer(FakeUpstream()) as srv: srv.url``. As a program (its own
process, e.g. for the router benchmark): ``python -m routerwise.live.fake_upstream --port P
[--ttft-ms T] [--tpot-ms T]``.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio

__all__ = ["FakeUpstream", "main"]


class _Dropped(Exception):
    """Raised inside the app to make the server drop the connection mid-answer."""


class FakeUpstream:
    def __init__(self, model: str = "fake-model", *, ttft_s: float = 0.0, tpot_s: float = 0.0,
                 hang_s: float = 30.0, record: bool = True):
        self.model, self.ttft_s, self.tpot_s, self.hang_s = model, ttft_s, tpot_s, hang_s
        self.record = record
        self.requests: list[dict] = []
        self.cancelled = 0
        self.completed = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/health":
            return await _json(send, 200, {"status": "ok"})
        if method == "GET" and path == "/v1/models":
            return await _json(send, 200, {"object": "list", "data": [
                {"id": self.model, "object": "model"}]})
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return await _json(send, 404, {"error": {"message": f"no route {method} {path}"}})
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        body = json.loads(raw or b"{}")
        if self.record:
            self.requests.append({"path": path, "body": body, "headers": {
                k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}})
        chat = path.endswith("chat/completions")
        text = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        mode = text[5:].split()[0] if isinstance(text, str) and text.startswith("FAKE:") else "ok"
        if mode in ("http_500", "http_400"):
            status = int(mode[5:])
            return await _json(send, status, {"error": {"message": f"injected {status}",
                                                        "type": "fake", "code": status}})
        async with anyio.create_task_group() as tg:
            async def watch():
                while (await receive())["type"] != "http.disconnect":
                    pass
                self.cancelled += 1
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            if mode == "hang":
                await anyio.sleep(self.hang_s)
            elif body.get("stream"):
                await self._stream(send, body, chat, mode, text)
            else:
                await self._whole(send, body, chat, text)
            self.completed += 1
            tg.cancel_scope.cancel()

    def _chunk(self, body, chat: bool, i: int) -> dict:
        piece = f" tok{i}"
        choice = ({"index": 0, "delta": {"content": piece}} if chat
                  else {"index": 0, "text": piece})
        return {"id": "fake", "object": "chat.completion.chunk" if chat else "text_completion",
                "model": body.get("model"), "choices": [choice]}

    async def _stream(self, send, body, chat, mode, text) -> None:
        n = int(body.get("max_tokens", 16))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        if self.ttft_s:
            await anyio.sleep(self.ttft_s)
        for i in range(n):
            if i and self.tpot_s:
                await anyio.sleep(self.tpot_s)
            if mode == "die_mid_stream" and i == 2:
                raise _Dropped("connection dropped on purpose")
            await _event(send, self._chunk(body, chat, i))
        if (body.get("stream_options") or {}).get("include_usage"):
            words = len(str(text).split())
            await _event(send, {"id": "fake", "choices": [], "usage": {
                "prompt_tokens": words, "completion_tokens": n, "total_tokens": words + n}})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": False})

    async def _whole(self, send, body, chat, text) -> None:
        n = int(body.get("max_tokens", 16))
        await anyio.sleep(self.ttft_s + max(n - 1, 0) * self.tpot_s)
        content = "".join(f" tok{i}" for i in range(n))
        choice = ({"index": 0, "message": {"role": "assistant", "content": content}} if chat
                  else {"index": 0, "text": content})
        words = len(str(text).split())
        await _json(send, 200, {"id": "fake", "model": body.get("model"), "choices": [choice],
                                "usage": {"prompt_tokens": words, "completion_tokens": n,
                                          "total_tokens": words + n}})


async def _event(send, obj) -> None:
    await send({"type": "http.response.body", "body": f"data: {json.dumps(obj)}\n\n".encode(),
                "more_body": True})


async def _json(send, status: int, obj) -> None:
    data = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--tpot-ms", type=float, default=0.0)
    a = ap.parse_args(argv)
    from .server import serve_forever
    serve_forever(FakeUpstream(a.model, ttft_s=a.ttft_ms / 1000, tpot_s=a.tpot_ms / 1000,
                               record=False), a.host, a.port, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
