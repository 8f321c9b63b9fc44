"""The OpenAI-compatible router that serves a plan: a Starlette app in front of model servers.

``create_app(plan, endpoints)`` answers

================================ ===========================================================
``POST /v1/completions``         routed by the plan (:meth:`LivePlan.router`), passed on with
``POST /v1/chat/completions``    only the body's ``model`` rewritten; streamed responses are
                                 passed through chunk by chunk as the upstream sends them
``GET /v1/models``               the plan's models, planned fractions and endpoint counts
``GET /health``                  200 while the router runs
``GET /metrics``                 Prometheus text: requests, errors, TTFT and latency
                                 histograms per routed model, routing decisions, outstanding
                                 requests per endpoint
================================ ===========================================================

Each model may have several endpoints (base URLs of OpenAI-compatible servers serving the
model under the plan's name); a request goes to the one with the fewest outstanding requests
(ties in turn). Failures never hang a client: an upstream that refuses the connection or
answers 5xx gives an OpenAI-style error body with status 502, one that exceeds
``upstream_timeout_s`` (connect, or between two reads) 504; a stream that breaks after it
started ends with a ``data: {"error": ...}`` event. An upstream 4xx (the request's own fault,
e.g. too many tokens) is passed through as it came. A client that disconnects cancels its
upstream request (the upstream connection is closed); that is counted in
``routerwise_router_client_disconnects_total``, not as an error, and not at all when the client
left after ``data: [DONE]``. A body that is not a JSON object, or without a prompt text to
route on, gets 400. Headers are passed on (``Authorization``
included) except hop-by-hop ones; none is logged or exported.

The router's TTFT (``routerwise_router_ttft_seconds``) is **measured** from the request's
arrival at the router to the first body bytes from the upstream; latency to the last. The
decision log (``decision_log``) gets one JSON line per routed request: time, the prompt's
SHA-256, the chosen model and endpoint, the per-model scores and the plan's prices (the prompt
text only with ``log_prompts``).

Upstream calls go through one aiohttp ``ClientSession`` (kept-alive connections, no limit on
their number, no compression asked for, no proxy from the environment): its client spends
about half the CPU per streamed request of httpx's (measured on 2026-12-03: 1.6-1.9 against
3.5-3.9 ms per 16-token stream, sequential, through a bare Starlette proxy), and that CPU is
most of what the router adds to a request's TTFT.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ValidationError
from .plan import LivePlan, prompt_digest

__all__ = ["create_app", "normalize_endpoint", "prompt_text"]

# Headers that describe one connection, not the request (RFC 9110 7.6.1), and those the
# router sets itself; everything else (Authorization included) goes through unchanged.
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
# accept-encoding is dropped so that upstream bytes pass through uncompressed, as they came
_DROP_REQUEST = _HOP | {"accept-encoding"}
_DROP_RESPONSE = _HOP | {"content-encoding", "date", "server"}
TTFT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0, 60.0)
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                     300.0)
API_PATHS = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}


def normalize_endpoint(url: str) -> str:
    """A model server's base URL (``http://host:port``; a trailing ``/`` or ``/v1`` is
    dropped), checked to be http(s) with a host."""
    try:
        u = httpx.URL(str(url).strip())
    except (httpx.InvalidURL, TypeError) as e:
        raise ValidationError(f"endpoint {url!r} is not a URL ({e}); give one like "
                              f"http://127.0.0.1:8000") from e
    if u.scheme not in ("http", "https") or not u.host:
        raise ValidationError(f"endpoint {url!r} must be an http(s) URL with a host, like "
                              f"http://127.0.0.1:8000")
    base = str(u).rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def prompt_text(body: dict, api: str) -> str:
    """The text the router routes on: a completion's prompt (a list of strings joined by
    newlines), or a chat's message contents (text parts) joined by newlines."""
    if api == "completions":
        p = body.get("prompt")
        if isinstance(p, str):
            return p
        if isinstance(p, list) and p and all(isinstance(x, str) for x in p):
            return "\n".join(p)
        raise ValidationError("'prompt' must be a string or a list of strings: the router "
                              "routes on prompt text (token-id prompts are not routed)")
    msgs = body.get("messages")
    if not (isinstance(msgs, list) and msgs and all(isinstance(m, dict) for m in msgs)):
        raise ValidationError("'messages' must be a non-empty list of message objects")
    parts = []
    for m in msgs:
        c = m.get("content")
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            parts += [x["text"] for x in c if isinstance(x, dict) and x.get("type") == "text"
                      and isinstance(x.get("text"), str)]
    return "\n".join(parts)


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
           ) -> JSONResponse:
    """An OpenAI-style error body."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                   "code": status}}, status_code=status, headers=headers)


class _Upstream:
    def __init__(self, model: str, url: str):
        self.model, self.url = model, url
        self.outstanding = 0


class _Balancer:
    """Least outstanding requests; ties in turn."""

    def __init__(self, model: str, urls: Sequence[str]):
        self.upstreams = [_Upstream(model, u) for u in urls]
        self._turn = itertools.count()

    def pick(self) -> _Upstream:
        least = min(u.outstanding for u in self.upstreams)
        tied = [u for u in self.upstreams if u.outstanding == least]
        return tied[next(self._turn) % len(tied)]


class _Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("routerwise_router_requests", "requests routed, by model and API",
                                ["model", "api"], registry=r)
        self.errors = Counter("routerwise_router_errors", "failed requests, by model ('' before "
                              "routing) and kind", ["model", "kind"], registry=r)
        self.disconnects = Counter("routerwise_router_client_disconnects", "requests whose client "
                                   "left before the answer ended (the upstream request is "
                                   "cancelled); not errors", ["model"], registry=r)
        self.decisions = Counter("routerwise_router_decisions", "routing decisions, by model and "
                                 "score source (table or predictor)", ["model", "source"],
                                 registry=r)
        self.ttft = Histogram("routerwise_router_ttft_seconds", "measured: request arrival at "
                              "the router to the upstream's first body bytes", ["model"],
                              buckets=TTFT_BUCKETS_S, registry=r)
        self.latency = Histogram("routerwise_router_latency_seconds", "measured: request arrival "
                                 "to the upstream's last body bytes", ["model"],
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.decision_time = Histogram("routerwise_router_decision_seconds", "measured: time to "
                                       "parse, score and route one request",
                                       buckets=TTFT_BUCKETS_S, registry=r)
        self.outstanding = Gauge("routerwise_router_outstanding_requests", "requests in flight "
                                 "per endpoint", ["model", "endpoint"], registry=r)


class _DecisionLog:
    def __init__(self, path: Path | None, log_prompts: bool):
        self.path, self.log_prompts = path, log_prompts
        self._fh = None

    def open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed at shutdown

    def write(self, text: str, decision, endpoint: str, api: str) -> None:
        if self._fh is None:
            return
        rec = {"time_unix_s": time.time(), "prompt_sha256": prompt_digest(text),
               "model": decision.model, "endpoint": endpoint, "api": api,
               "predicted_scores": decision.predicted_scores, "prices": decision.prices,
               "score_source": decision.source}
        if self.log_prompts:
            rec["prompt"] = text
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _check_endpoints(plan: LivePlan, endpoints: Mapping[str, Sequence[str]]) -> dict:
    if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Mapping):
        raise ValidationError("endpoints must map each model name to a list of base URLs")
    out = {}
    for model, urls in endpoints.items():
        urls = [urls] if isinstance(urls, str) else list(urls)
        if urls:
            out[str(model)] = [normalize_endpoint(u) for u in urls]
    unknown = sorted(set(out) - set(plan.model_names))
    if unknown:
        raise ValidationError(f"endpoints given for model(s) {unknown} that the plan does not "
                              f"have; the plan's models are {list(plan.model_names)}")
    missing = [m for m, w in zip(plan.model_names, plan.fractions) if w > 0 and m not in out]
    if missing:
        raise ValidationError(f"the plan routes prompts to model(s) {missing} without an "
                              f"endpoint; give --endpoint MODEL=URL for each (models: "
                              f"{list(plan.model_names)})")
    return out


def create_app(plan: LivePlan, endpoints: Mapping[str, Sequence[str]], *,
               decision_log: Path | None = None, log_prompts: bool = False,
               upstream_timeout_s: float = 300.0) -> Starlette:
    """The router app for ``plan`` with ``endpoints`` (model -> base URLs). Refuses (a
    ValidationError naming them) plan models that get prompts but have no endpoint, and
    endpoints for models the plan lacks. Fits the plan's score predictor here."""
    if not (isinstance(upstream_timeout_s, (int, float)) and upstream_timeout_s > 0):
        raise ValidationError(f"upstream_timeout_s must be a positive number of seconds, got "
                              f"{upstream_timeout_s!r}")
    ends = _check_endpoints(plan, endpoints)
    router = plan.router()
    balancers = {m: _Balancer(m, urls) for m, urls in ends.items()}
    metrics = _Metrics()
    log = _DecisionLog(Path(decision_log) if decision_log is not None else None, log_prompts)
    # no total limit: a long answer may stream for minutes; a gap between two reads may not
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, upstream_timeout_s),
                                    sock_read=upstream_timeout_s)
    state = {}

    @asynccontextmanager
    async def lifespan(app):
        log.open()
        # accept-encoding not added: the upstream's bytes pass through as they came
        state["client"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=timeout, auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"))
        try:
            yield
        finally:
            await state.pop("client").close()
            log.close()

    async def proxy(request: Request) -> Response:
        t0 = time.perf_counter()
        api = API_PATHS[request.url.path]
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as e:
            metrics.errors.labels("", "bad_request").inc()
            return _error(400, f"the request body is not JSON ({e})", "invalid_request_error")
        if not isinstance(body, dict):
            metrics.errors.labels("", "bad_request").inc()
            return _error(400, "the request body must be a JSON object", "invalid_request_error")
        try:
            text = prompt_text(body, api)
        except ValidationError as e:
            metrics.errors.labels("", "bad_request").inc()
            return _error(400, str(e), "invalid_request_error")
        decision = router.choose(text)
        model = decision.model
        up = balancers[model].pick()
        metrics.decision_time.observe(time.perf_counter() - t0)
        metrics.decisions.labels(model, decision.source).inc()
        metrics.requests.labels(model, api).inc()
        log.write(text, decision, up.url, api)
        body["model"] = model
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST]
        if "content-type" not in request.headers:
            # the body is JSON (parsed above); left unnamed, aiohttp would call it
            # application/octet-stream, which an OpenAI-compatible server refuses
            headers.append(("Content-Type", "application/json"))
        routed = {"x-routerwise-model": model}
        client: aiohttp.ClientSession = state["client"]
        up.outstanding += 1
        gauge = metrics.outstanding.labels(model, up.url)
        gauge.inc()

        def done(kind: str | None) -> None:
            up.outstanding -= 1
            gauge.dec()
            if kind == "client_disconnect":
                metrics.disconnects.labels(model).inc()
            elif kind is not None:
                metrics.errors.labels(model, kind).inc()

        try:
            resp = await client.post(up.url + request.url.path, data=json.dumps(body).encode(),
                                     headers=headers)
        except TimeoutError as e:       # before ClientError: aiohttp's timeouts are both
            done("timeout")
            return _error(504, f"model {model!r} at {up.url} did not answer within "
                               f"{upstream_timeout_s:g} s ({type(e).__name__})",
                          "upstream_timeout", routed)
        except (aiohttp.ClientError, OSError) as e:
            done("upstream_down")
            return _error(502, f"model {model!r} at {up.url} could not be reached "
                               f"({type(e).__name__}: {e})", "upstream_unavailable", routed)
        except BaseException:      # the client went away while connecting: cancelled
            done("client_disconnect")
            raise
        if resp.status >= 400 or not body.get("stream"):
            return await _whole(resp, model, up, routed, metrics, done, t0, upstream_timeout_s)
        return _Stream(resp, model, routed, metrics, done, t0)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "routerwise",
             "planned_fraction": w, "endpoints": len(ends.get(m, ()))}
            for m, w in zip(plan.model_names, plan.fractions)]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "plan": plan.problem,
                             "endpoints": {m: len(u) for m, u in ends.items()}})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[
        Route("/v1/completions", proxy, methods=["POST"]),
        Route("/v1/chat/completions", proxy, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.plan, app.state.router, app.state.metrics = plan, router, metrics
    app.state.balancers = balancers
    return app


def _response_headers(resp: aiohttp.ClientResponse, routed: Mapping[str, str]) -> list[tuple[str, str]]:
    keep = [(k, v) for k, v in resp.headers.items() if k.lower() not in _DROP_RESPONSE]
    return keep + list(routed.items())


async def _whole(resp, model, up, routed, metrics, done, t0, timeout_s) -> Response:
    """A non-streamed answer (or an upstream error) read whole, then answered."""
    kind = None
    try:
        content = await resp.read()
    except TimeoutError:
        kind = "timeout"
        return _error(504, f"model {model!r} at {up.url} stopped answering for {timeout_s:g} s",
                      "upstream_timeout", routed)
    except aiohttp.ClientError as e:
        kind = "upstream_broken"
        return _error(502, f"model {model!r} at {up.url} broke off its answer "
                           f"({type(e).__name__}: {e})", "upstream_error", routed)
    except BaseException:
        kind = "client_disconnect"
        raise
    finally:
        _let_go(resp, kind is None)
        done(kind)
    if resp.status >= 500:
        metrics.errors.labels(model, "upstream_status").inc()
        return _error(502, f"model {model!r} at {up.url} answered {resp.status}: "
                           f"{content[:500].decode('utf-8', 'replace')}", "upstream_error", routed)
    elapsed = time.perf_counter() - t0
    if resp.status < 400:
        metrics.ttft.labels(model).observe(elapsed)
        metrics.latency.labels(model).observe(elapsed)
    out = Response(content, status_code=resp.status)
    for k, v in _response_headers(resp, routed):
        out.headers.append(k, v)
    return out


def _let_go(resp: aiohttp.ClientResponse, whole: bool) -> None:
    """An answer read to its end gives its connection back to the pool; one cut short closes
    it, which is what cancels the upstream request."""
    if whole:
        resp.release()
    else:
        resp.close()


class _Stream:
    """An ASGI response that passes an upstream stream through chunk by chunk, and cancels it
    when the client disconnects (a watcher awaits ``http.disconnect``)."""

    def __init__(self, resp: aiohttp.ClientResponse, model: str, routed, metrics: _Metrics, done, t0):
        self.resp, self.model, self.routed = resp, model, routed
        self.metrics, self.done, self.t0 = metrics, done, t0
        self._accounted = False

    async def __call__(self, scope, receive, send) -> None:
        kind = None
        first, finished, done_seen, whole = True, False, False, False
        try:
            async with anyio.create_task_group() as tg:
                async def watch():
                    nonlocal kind
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not finished:       # after the last byte, the server reports it too
                        # a client that leaves once it read `data: [DONE]` had the whole answer
                        kind = None if done_seen else "client_disconnect"
                        tg.cancel_scope.cancel()

                tg.start_soon(watch)
                headers = [(k.encode("latin-1"), v.encode("latin-1"))
                           for k, v in _response_headers(self.resp, self.routed)]
                await send({"type": "http.response.start", "status": self.resp.status,
                            "headers": headers})
                try:
                    async for chunk in self.resp.content.iter_any():
                        if first:
                            first = False
                            self.metrics.ttft.labels(self.model).observe(
                                time.perf_counter() - self.t0)
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                        done_seen = chunk.rstrip().endswith(b"data: [DONE]")
                    whole = True
                except (aiohttp.ClientError, TimeoutError) as e:
                    kind = "timeout" if isinstance(e, TimeoutError) else "upstream_broken"
                    err = {"error": {"message": f"model {self.model!r} broke off the stream "
                                                f"({type(e).__name__}: {e})",
                                     "type": "upstream_error", "param": None,
                                     "code": 504 if kind == "timeout" else 502}}
                    await send({"type": "http.response.body", "more_body": True,
                                "body": f"data: {json.dumps(err)}\n\n".encode()})
                finished = True
                # accounted before the last bytes go out: a client that sends its next request
                # on seeing them finds this endpoint's outstanding count already lowered
                self._account(kind)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:                 # the client's socket failed while we wrote to it
            kind = "client_disconnect"
        finally:
            _let_go(self.resp, whole)
            self._account(kind)

    def _account(self, kind: str | None) -> None:
        if self._accounted:
            return
        self._accounted = True
        if kind is None:
            self.metrics.latency.labels(self.model).observe(time.perf_counter() - self.t0)
        self.done(kind)
