"""Open-loop load generation against OpenAI-compatible streaming endpoints (vLLM, SGLang, TGI).

A run sends one streamed request (``POST /v1/completions`` or ``/v1/chat/completions`` with
``stream=true``) per entry of a :class:`Schedule`, each at its scheduled time whether or not
earlier requests have finished (open loop), and parses the server-sent-event stream
(``data: {...}`` lines ending with ``data: [DONE]``). Per request it records (times in seconds
since the run started, latencies in ms):

==================  ===========================================================================
``scheduled_s``     when the schedule said to send it
``send_s``          when it was sent (later than scheduled only if the concurrency cap was hit
                    or the client fell behind: ``send_lag_ms``)
``first_token_s``   arrival of the first chunk carrying text (or token ids)
``end_s``           arrival of ``[DONE]`` (or of the failure)
``ttft_ms``         ``first_token_s - send_s``
``tpot_ms``         mean time per output token after the first:
                    ``(last_token_s - first_token_s) / (completion_tokens - 1)``
``e2e_ms``          ``end_s - send_s``
``itl_max_ms``      the longest gap between two text chunks (a stall detector)
==================  ===========================================================================

plus token counts (from the server's ``usage`` when it sends one, else the number of text
chunks; ``tokens_from_usage`` says which), the HTTP status, and ``error_kind`` /
``error_message``. Every scheduled request gets exactly one row: timeouts, HTTP errors, a
server that dies mid-stream, malformed streams and the wall-time limit are recorded as errors,
never raised. ``error_kind`` is one of :data:`ERROR_KINDS` ("" for success).

:func:`summarize` turns a run into one row of the :mod:`routerwise.data.latency_table` schema with
``source="measured"``; :func:`detect_saturation` defines when a load point counts as saturated.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import math
import platform
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from tqdm import tqdm

from routerwise.data import latency_table as profiles
from routerwise.errors import DataError, ValidationError
from routerwise.io import atomic_write_with, read_csv_checked
from routerwise.redact import redact_text, redact_url

ERROR_KINDS = (
    "connect_error",       # nothing listening / connection refused
    "connect_timeout",     # TCP connect took longer than connect_timeout_s
    "read_timeout",        # the server went silent for longer than read_timeout_s
    "request_timeout",     # the whole request took longer than request_timeout_s
    "http_status",         # a status other than 200 (the body's start is in error_message)
    "stream_broken",       # the connection broke mid-response (server died, reset)
    "stream_incomplete",   # the stream ended without [DONE]
    "malformed_stream",    # a line that is not SSE, or data that is not a JSON object
    "server_error",        # the stream carried an {"error": ...} event
    "no_tokens",           # [DONE] arrived but no chunk carried text
    "http_error",          # any other transport error httpx reports
    "client_error",        # an unexpected failure inside the client (see error_message)
    "cancelled",           # in flight when the run hit max_wall_s
    "not_sent",            # scheduled after the run hit max_wall_s
)

REQUEST_COLUMNS = (
    "request_id", "prompt_id", "scheduled_s", "send_s", "first_token_s", "end_s",
    "send_lag_ms", "ttft_ms", "tpot_ms", "e2e_ms", "itl_max_ms", "prompt_tokens",
    "completion_tokens", "tokens_from_usage", "num_chunks", "http_status", "ok", "error_kind",
    "error_message", "waited_for_cap",
)


# ---------------------------------------------------------------------------------------------
# Prompts and schedules


@dataclass(frozen=True)
class Prompt:
    text: str
    max_tokens: int
    prompt_id: str = ""

    def __post_init__(self):
        if int(self.max_tokens) < 1:
            raise ValidationError(f"prompt {self.prompt_id!r}: max_tokens must be >= 1")


@dataclass(frozen=True)
class PromptSet:
    """Named prompts; ``sha256`` fingerprints the content for provenance."""

    name: str
    prompts: tuple[Prompt, ...]

    def __post_init__(self):
        if not self.prompts:
            raise ValidationError(f"prompt set {self.name!r} is empty")

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for p in self.prompts:
            h.update(json.dumps([p.prompt_id, p.text, p.max_tokens]).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.prompts)


_WORDS = ("the", "model", "serves", "a", "request", "under", "load", "with", "latency", "of",
          "tokens", "per", "second", "and", "memory", "for", "each", "shard", "on", "GPU")


def synthetic_prompts(n: int = 64, *, prompt_words: int = 64, max_tokens: int = 128,
                      seed: int = 0) -> PromptSet:
    """``n`` prompts of ``prompt_words`` random common words, each asking ``max_tokens`` tokens.

    Synthetic (not a real workload): fixed lengths make latency depend on load alone. A word
    is roughly 1.3 tokens with Llama tokenizers; the server's ``usage`` reports the exact count.
    """
    rng = random.Random(seed)
    prompts = tuple(Prompt(" ".join(rng.choice(_WORDS) for _ in range(prompt_words)),
                           max_tokens, f"syn{i}") for i in range(n))
    return PromptSet(f"synthetic(n={n},words={prompt_words},max_tokens={max_tokens},"
                     f"seed={seed})", prompts)


def read_prompts(path: str | Path, *, default_max_tokens: int = 128) -> PromptSet:
    """Prompts from a JSON-lines file: ``{"prompt": str, "max_tokens": int?, "id": str?}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no prompt file at {path}")
    prompts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            prompts.append(Prompt(str(d["prompt"]), int(d.get("max_tokens", default_max_tokens)),
                                  str(d.get("id", n))))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{n}: expected a JSON object with a 'prompt' string "
                            f"({type(e).__name__}: {e})") from e
    return PromptSet(f"{path.name}", tuple(prompts))


@dataclass(frozen=True)
class Schedule:
    """Send times in seconds from the start of a run, non-decreasing; ``kind`` for provenance."""

    times_s: tuple[float, ...]
    rate_rps: float
    kind: str

    def __post_init__(self):
        t = np.asarray(self.times_s, dtype=float)
        if t.size == 0:
            raise ValidationError("a schedule needs at least one request")
        if not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) < 0):
            raise ValidationError("schedule times must be finite, >= 0 and non-decreasing")

    def __len__(self) -> int:
        return len(self.times_s)


def poisson_schedule(rate_rps: float, *, num_requests: int | None = None,
                     duration_s: float | None = None, seed: int = 0) -> Schedule:
    """Poisson arrivals at ``rate_rps``: exponential gaps, seeded, first arrival at its gap.

    Bounded by ``num_requests``, by ``duration_s`` (arrivals after it are dropped), or both.
    """
    if not (rate_rps > 0 and math.isfinite(rate_rps)):
        raise ValidationError(f"rate_rps must be a positive number, got {rate_rps}")
    if num_requests is None and duration_s is None:
        raise ValidationError("bound the schedule: give num_requests, duration_s or both")
    rng = np.random.default_rng(seed)
    n = num_requests if num_requests is not None else int(rate_rps * duration_s * 1.5 + 20)
    times = np.cumsum(rng.exponential(1.0 / rate_rps, size=n))
    if duration_s is not None:
        while num_requests is None and times[-1] < duration_s:  # draw more until past the end
            times = np.concatenate([times, times[-1] + np.cumsum(
                rng.exponential(1.0 / rate_rps, size=n))])
        times = times[times <= duration_s]
    return Schedule(tuple(float(t) for t in times), float(rate_rps),
                    f"poisson(rate_rps={rate_rps:g}, seed={seed})")


def trace_schedule(timestamps_s: Sequence[float], *, time_scale: float = 1.0) -> Schedule:
    """Trace-driven arrivals: timestamps shifted to start at 0, multiplied by ``time_scale``.

    ``rate_rps`` is the trace's mean rate ``(n - 1) / span`` (``n`` if the span is 0).
    """
    t = np.sort(np.asarray(timestamps_s, dtype=float))
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValidationError("trace timestamps must be a non-empty list of finite seconds")
    if not time_scale > 0:
        raise ValidationError("time_scale must be > 0")
    t = (t - t[0]) * time_scale
    span = float(t[-1])
    rate = (len(t) - 1) / span if span > 0 else float(len(t))
    return Schedule(tuple(float(x) for x in t), rate, f"trace(n={len(t)}, scale={time_scale:g})")


# ---------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests.

    ``read_timeout_s`` bounds the silence between two chunks, ``request_timeout_s`` a whole
    request. ``ignore_eos`` (a vLLM/SGLang extension) makes every request produce exactly
    ``max_tokens`` tokens; turn it off for servers that reject unknown fields. ``exact_length``
    also sends ``min_tokens = max_tokens`` (vLLM): with random-weight models a stop token or a
    generation config's extra end-of-sequence ids would otherwise end requests early.
    ``trust_env=False`` keeps proxy variables from rerouting traffic to a local endpoint.
    """

    base_url: str
    model: str
    api: str = "completions"
    api_key: str | None = field(default=None, repr=False)  # never printed or written
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    request_timeout_s: float = 600.0
    max_concurrency: int = 512
    ignore_eos: bool = True
    exact_length: bool = False
    temperature: float = 0.0
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    trust_env: bool = False

    def __post_init__(self):
        if self.api not in ("completions", "chat"):
            raise ValidationError(f"api must be 'completions' or 'chat', got {self.api!r}")
        if self.max_concurrency < 1:
            raise ValidationError("max_concurrency must be >= 1")
        for name in ("connect_timeout_s", "read_timeout_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name} must be > 0 seconds")

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.api == "chat" else "/v1/completions"

    def payload(self, prompt: Prompt) -> dict:
        body: dict[str, Any] = {"model": self.model, "max_tokens": int(prompt.max_tokens),
                                "stream": True, "stream_options": {"include_usage": True},
                                "temperature": self.temperature}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt.text}]
        else:
            body["prompt"] = prompt.text
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.exact_length:
            body["min_tokens"] = int(prompt.max_tokens)
        body.update(self.extra_body)
        return body


class _StreamError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _chunk_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        raise _StreamError("malformed_stream", f"a choice is not an object: {choice!r:.200}")
    text = choice.get("text")
    if text is None and isinstance(choice.get("delta"), dict):
        text = choice["delta"].get("content")
    return text if isinstance(text, str) else ""


def _chunk_has_tokens(choice: Any) -> bool:
    """Whether a streamed choice carries generated tokens: text, or (vLLM's
    ``return_token_ids``) token ids whose text is still held back or empty: a random-weight
    model may generate only tokens that detokenize to nothing (partial UTF-8 bytes)."""
    if _chunk_text(choice):
        return True
    ids = choice.get("token_ids")
    return isinstance(ids, list) and len(ids) > 0


async def _consume(resp: httpx.Response, row: dict, t0: float) -> None:
    """Read one SSE stream into ``row`` as it arrives; raise _StreamError on a bad stream."""
    usage = None
    done = False
    last_token_s = float("nan")
    async for line in resp.aiter_lines():
        if not line or line.startswith(":"):
            continue
        if line.startswith(("event:", "id:", "retry:")):
            continue
        if not line.startswith("data:"):
            raise _StreamError("malformed_stream", f"not an SSE line: {line[:200]!r}")
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            obj = json.loads(data)
        except ValueError:
            raise _StreamError("malformed_stream", f"data is not JSON: {data[:200]!r}") from None
        if not isinstance(obj, dict):
            raise _StreamError("malformed_stream", f"data is not a JSON object: {data[:200]!r}")
        if obj.get("error"):
            raise _StreamError("server_error", json.dumps(obj["error"])[:500])
        choices = obj.get("choices") or []
        if not isinstance(choices, list):
            raise _StreamError("malformed_stream", f"'choices' is not a list: {data[:200]!r}")
        if any(_chunk_has_tokens(c) for c in choices):
            now = time.perf_counter() - t0
            if row["num_chunks"] == 0:
                row["first_token_s"] = now
            else:
                gap_ms = 1000 * (now - last_token_s)
                row["itl_max_ms"] = gap_ms if math.isnan(row["itl_max_ms"]) else max(
                    row["itl_max_ms"], gap_ms)
            last_token_s = now
            row["num_chunks"] += 1
        if isinstance(obj.get("usage"), dict):
            usage = obj["usage"]
    row["end_s"] = time.perf_counter() - t0
    ntok = row["num_chunks"]
    if usage is not None and usage.get("completion_tokens") is not None:
        ntok = int(usage["completion_tokens"])
        row["tokens_from_usage"] = True
        if usage.get("prompt_tokens") is not None:
            row["prompt_tokens"] = int(usage["prompt_tokens"])
    row["completion_tokens"] = ntok
    if ntok > 1 and row["num_chunks"] > 1:
        row["tpot_ms"] = 1000 * (last_token_s - row["first_token_s"]) / (ntok - 1)
    if not done:
        raise _StreamError("stream_incomplete", "the stream ended without 'data: [DONE]'")
    if row["num_chunks"] == 0:
        raise _StreamError("no_tokens", "the stream finished without a chunk carrying text or token ids")


def _new_row(i: int, prompt: Prompt, scheduled_s: float) -> dict:
    nan = float("nan")
    return {"request_id": i, "prompt_id": prompt.prompt_id, "scheduled_s": scheduled_s,
            "send_s": nan, "first_token_s": nan, "end_s": nan, "send_lag_ms": nan,
            "ttft_ms": nan, "tpot_ms": nan, "e2e_ms": nan, "itl_max_ms": nan,
            "prompt_tokens": nan, "completion_tokens": nan, "tokens_from_usage": False,
            "num_chunks": 0, "http_status": 0, "ok": False, "error_kind": "not_sent",
            "error_message": "", "waited_for_cap": False}


def _fail(row: dict, kind: str, message: str, t0: float) -> None:
    row["error_kind"], row["error_message"] = kind, redact_text(message)[:500]
    if math.isnan(row["end_s"]):
        row["end_s"] = time.perf_counter() - t0


async def _send(client: httpx.AsyncClient, ep: Endpoint, prompt: Prompt, row: dict, t0: float,
                sem: asyncio.Semaphore, state: dict, bar) -> None:
    if sem.locked():
        row["waited_for_cap"] = True
        state["cap_hits"] += 1
    async with sem:
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        row["send_s"] = time.perf_counter() - t0
        row["send_lag_ms"] = 1000 * (row["send_s"] - row["scheduled_s"])
        row["error_kind"] = "cancelled"  # until it finishes one way or another
        try:
            async with asyncio.timeout(ep.request_timeout_s):
                async with client.stream("POST", ep.path, json=ep.payload(prompt)) as resp:
                    row["http_status"] = resp.status_code
                    if resp.status_code != 200:
                        body = (await resp.aread())[:300].decode("utf-8", "replace")
                        raise _StreamError("http_status", f"HTTP {resp.status_code}: {body}")
                    await _consume(resp, row, t0)
            row["ok"], row["error_kind"] = True, ""
        except _StreamError as e:
            _fail(row, e.kind, str(e), t0)
        except TimeoutError:
            _fail(row, "request_timeout", f"no complete response within "
                  f"{ep.request_timeout_s:g} s", t0)
        except httpx.ConnectTimeout as e:
            _fail(row, "connect_timeout", f"connect took over {ep.connect_timeout_s:g} s: {e}", t0)
        except httpx.ReadTimeout as e:
            _fail(row, "read_timeout", f"no data for {ep.read_timeout_s:g} s: {e!r}", t0)
        except httpx.ConnectError as e:
            _fail(row, "connect_error", f"{e}", t0)
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            _fail(row, "stream_broken", f"{type(e).__name__}: {e}", t0)
        except httpx.HTTPError as e:
            _fail(row, "http_error", f"{type(e).__name__}: {e}", t0)
        except Exception as e:  # anything else still gets its row; the run goes on
            _fail(row, "client_error", f"{type(e).__name__}: {e}", t0)
        finally:
            state["in_flight"] -= 1
            if row["error_kind"] != "cancelled":
                bar.update(1)
    s, f, e = row["send_s"], row["first_token_s"], row["end_s"]
    row["ttft_ms"] = 1000 * (f - s)
    row["e2e_ms"] = 1000 * (e - s) if row["ok"] else float("nan")


@dataclass(frozen=True)
class LoadResult:
    """One load run: the per-request table and what the run itself observed."""

    requests: pd.DataFrame
    schedule: Schedule
    endpoint: Endpoint
    prompt_set: str
    prompt_set_sha256: str
    wall_s: float
    cap_hits: int
    max_in_flight: int
    hit_wall_limit: bool
    started_at: str

    def write_requests(self, path: str | Path) -> Path:
        df = self.requests
        return atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))


async def run_load_async(schedule: Schedule, prompts: PromptSet, endpoint: Endpoint, *,
                         max_wall_s: float | None = None, progress: bool = True) -> LoadResult:
    """The coroutine behind :func:`run_load` (use it inside a running event loop)."""
    n = len(schedule)
    rows = [_new_row(i, prompts.prompts[i % len(prompts)], s)
            for i, s in enumerate(schedule.times_s)]
    state = {"cap_hits": 0, "in_flight": 0, "max_in_flight": 0}
    sem = asyncio.Semaphore(endpoint.max_concurrency)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    timeout = httpx.Timeout(connect=endpoint.connect_timeout_s, read=endpoint.read_timeout_s,
                            write=endpoint.read_timeout_s, pool=None)
    limits = httpx.Limits(max_connections=endpoint.max_concurrency,
                          max_keepalive_connections=endpoint.max_concurrency)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    tasks: list[asyncio.Task] = []
    hit_limit = False
    with tqdm(total=n, unit="req", desc=f"{schedule.rate_rps:g} rps", disable=not progress,
              leave=False) as bar:
        async with httpx.AsyncClient(base_url=endpoint.base_url, headers=headers, timeout=timeout,
                                     limits=limits, trust_env=endpoint.trust_env) as client:
            try:  # first contact loads the transport's lazy imports and opens a connection
                await client.get("/v1/models", timeout=endpoint.connect_timeout_s)
            except httpx.HTTPError:
                pass  # an unreachable endpoint shows up as connect errors in the rows
            t0 = time.perf_counter()

            async def drive():
                for i, s in enumerate(schedule.times_s):
                    delay = t0 + s - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    p = prompts.prompts[i % len(prompts)]
                    tasks.append(asyncio.create_task(
                        _send(client, endpoint, p, rows[i], t0, sem, state, bar)))
                await asyncio.gather(*tasks)

            driver = asyncio.create_task(drive())
            done, _ = await asyncio.wait({driver}, timeout=max_wall_s)
            if driver in done:
                driver.result()
            else:
                hit_limit = True
                driver.cancel()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(driver, *tasks, return_exceptions=True)
            wall_s = time.perf_counter() - t0
    for r in rows:
        if r["error_kind"] in ("cancelled", "not_sent"):
            r["error_message"] = (f"the run reached max_wall_s={max_wall_s:g} s"
                                  if hit_limit else r["error_message"])
    df = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    return LoadResult(df, schedule, endpoint, prompts.name, prompts.sha256, wall_s,
                      state["cap_hits"], state["max_in_flight"], hit_limit, started_at)


def run_load(schedule: Schedule, prompts: PromptSet, endpoint: Endpoint, *,
             max_wall_s: float | None = None, progress: bool = True) -> LoadResult:
    """Send ``schedule`` open-loop to ``endpoint``; one row per scheduled request.

    ``max_wall_s`` bounds the whole run: requests still in flight are cancelled and those not
    yet sent are recorded as ``not_sent``. Prompts are used in order, cycling. Called where an
    event loop is already running (a Jupyter kernel), the run gets a private loop in a worker
    thread.
    """
    coro = run_load_async(schedule, prompts, endpoint, max_wall_s=max_wall_s,
                          progress=progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loadgen") as pool:
        return pool.submit(asyncio.run, coro).result()


def read_requests(path: str | Path) -> pd.DataFrame:
    df = read_csv_checked(path, REQUEST_COLUMNS, "request table")
    # an all-empty column reads as float NaN: fill per value (fillna("") on floats is deprecated)
    for col in ("error_kind", "error_message"):
        df[col] = df[col].map(lambda v: "" if pd.isna(v) else str(v))
    return df


# ---------------------------------------------------------------------------------------------
# Saturation and the profile row


@dataclass(frozen=True)
class SaturationCriteria:
    """When a load point counts as saturated (any one criterion suffices).

    * ``min_completion_ratio``: the achieved completion rate, ``(n_ok - 1) / (last - first
      completion)``, is below this fraction of the delivered arrival rate, ``(n - 1) /
      (last - first scheduled arrival)``. Both are interval rates, so a constant latency
      shifts completions without changing the ratio, while a growing queue stretches them.
    * ``max_error_rate``: the share of requests that failed (any error kind) exceeds this.
    * ``max_ttft_growth`` and ``min_ttft_rise_ms``: the median TTFT counted from the
      *scheduled* time (so waiting at the client's concurrency cap counts) over the last third
      of arrivals is more than ``max_ttft_growth`` times that of the first third, and higher by
      more than ``min_ttft_rise_ms`` (which keeps jitter at tiny TTFTs from counting).

    The rate and trend tests need at least ``min_requests`` successful requests; with fewer,
    only the error test applies (and no success at all is saturated).
    """

    min_completion_ratio: float = 0.85
    max_error_rate: float = 0.05
    max_ttft_growth: float = 2.0
    min_ttft_rise_ms: float = 50.0
    min_requests: int = 9


@dataclass(frozen=True)
class Saturation:
    saturated: bool
    reasons: tuple[str, ...]
    completion_ratio: float
    error_rate: float
    ttft_growth: float


def _interval_rate(t: np.ndarray) -> float:
    t = np.sort(t[np.isfinite(t)])
    if t.size < 2 or t[-1] <= t[0]:
        return float("nan")
    return (t.size - 1) / float(t[-1] - t[0])


def detect_saturation(requests: pd.DataFrame,
                      criteria: SaturationCriteria = SaturationCriteria()) -> Saturation:
    """Apply :class:`SaturationCriteria` to a per-request table."""
    n = len(requests)
    ok = requests[requests["ok"].astype(bool)]
    reasons = []
    error_rate = 1.0 - len(ok) / n if n else 0.0
    if n and error_rate > criteria.max_error_rate:
        kinds = requests.loc[~requests["ok"].astype(bool), "error_kind"].value_counts()
        reasons.append(f"error rate {error_rate:.1%} > {criteria.max_error_rate:.0%} "
                       f"({', '.join(f'{k}: {v}' for k, v in kinds.items())})")
    ratio = growth = float("nan")
    if len(ok) >= criteria.min_requests:
        offered = _interval_rate(requests["scheduled_s"].to_numpy(float))
        achieved = _interval_rate(ok["end_s"].to_numpy(float))
        ratio = achieved / offered if offered > 0 else float("nan")
        if ratio < criteria.min_completion_ratio:
            reasons.append(f"completion rate {achieved:.3g} rps is {ratio:.0%} of the "
                           f"{offered:.3g} rps delivered (< {criteria.min_completion_ratio:.0%})")
        o = ok.sort_values("scheduled_s")
        ttft_sched = 1000 * (o["first_token_s"] - o["scheduled_s"]).to_numpy(float)
        k = len(ttft_sched) // 3
        first, last = float(np.median(ttft_sched[:k])), float(np.median(ttft_sched[-k:]))
        growth = last / first if first > 0 else float("inf")
        if growth > criteria.max_ttft_growth and last - first > criteria.min_ttft_rise_ms:
            reasons.append(f"TTFT rose from {first:.0f} ms (first third) to {last:.0f} ms "
                           f"(last third)")
    elif n and len(ok) == 0:
        reasons.append("no request completed")
    return Saturation(bool(reasons), tuple(reasons), ratio, error_rate, growth)


# Error kinds that say the endpoint is wrong (dead, not an LLM server, misconfigured), not busy.
# 429 and 503 are a busy server's answers, so "http_status" counts only for other codes.
ENDPOINT_FAULT_KINDS = ("connect_error", "connect_timeout", "http_status", "malformed_stream",
                        "no_tokens", "http_error", "client_error")
BUSY_STATUSES = (429, 503)


def endpoint_failure(requests: pd.DataFrame) -> str | None:
    """Why a load run measured the endpoint's failure rather than its latency, or None.

    A run *failed* when no request completed, or when more than half of the requests failed
    with an endpoint fault (:data:`ENDPOINT_FAULT_KINDS`: nothing listening, not an
    OpenAI-compatible stream, a 4xx/5xx other than 429/503, ...). A failed run is no profile
    point at all: in particular it is not a *saturated* point (one where a working server
    could not keep up), which would end the curve as if it had been measured.
    """
    n = len(requests)
    if n == 0:
        return "no request was scheduled"
    ok = requests["ok"].astype(bool)
    kinds = requests["error_kind"].fillna("").astype(str)
    status = pd.to_numeric(requests["http_status"], errors="coerce").fillna(0).astype(int)
    fault = kinds.isin(ENDPOINT_FAULT_KINDS) & ~((kinds == "http_status")
                                                 & status.isin(BUSY_STATUSES))
    counts = kinds[~ok].value_counts()
    shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
    first = requests.loc[~ok, "error_message"].fillna("").astype(str)
    example = f"; first error: {first.iloc[0][:200]}" if len(first) and first.iloc[0] else ""
    if not ok.any():
        return f"no request of {n} completed ({shown}){example}"
    if fault.sum() > n / 2:
        return (f"{int(fault.sum())} of {n} requests failed with endpoint faults "
                f"({shown}){example}")
    return None


def send_lag(scheduled_s, send_s, waited_for_cap=None) -> dict[str, float]:
    """Median and p99 send lag (ms) from scheduled and actual send times (s), leaving out
    requests that waited for the concurrency cap (``waited_for_cap``: their lag is the cap's,
    not the client's) and requests never sent (NaN). Pure: the times are given, not measured.
    """
    sched = np.asarray(scheduled_s, dtype=float)
    sent = np.asarray(send_s, dtype=float)
    own = 1000.0 * (sent - sched)
    if waited_for_cap is not None:
        own = own[~np.asarray(waited_for_cap, dtype=bool)]
    own = own[np.isfinite(own)]
    if own.size == 0:
        return {"send_lag_p50_ms": float("nan"), "send_lag_p99_ms": float("nan")}
    return {"send_lag_p50_ms": float(np.median(own)),
            "send_lag_p99_ms": float(np.percentile(own, 99))}


def client_lag(requests: pd.DataFrame) -> dict[str, float]:
    """Median and p99 of how late the client sent requests that did not wait for the cap
    (:func:`send_lag` over the table's ``scheduled_s`` and ``send_s``).

    A load generator short of CPU falls behind its schedule and reads streams late, which
    inflates TTFT and bunches tokens (TPOT shrinks): such a point measures the client, not the
    server.
    """
    return send_lag(requests["scheduled_s"], requests["send_s"],
                    requests["waited_for_cap"].astype(bool))


def _above(value: float, limit: float) -> str:
    """``value`` (> ``limit``) with the fewest decimals (at least one) that still print it
    above ``limit``: 5.0004 against 5 prints 5.0004, never a rounded 5.0."""
    for digits in range(1, 10):
        text = f"{value:.{digits}f}"
        if float(text) > limit:
            return text
    return repr(value)


def lag_warning(lag: Mapping[str, float], max_client_lag_ms: float) -> str | None:
    """The warning for a median send lag above ``max_client_lag_ms`` (None when within it
    or unknown); ``lag`` as :func:`send_lag` gives it."""
    p50 = lag["send_lag_p50_ms"]
    if not p50 > max_client_lag_ms:      # NaN (nothing sent on its own) is no verdict
        return None
    return (f"the load generator fell behind its schedule (median send lag "
            f"{_above(p50, max_client_lag_ms)} ms > {max_client_lag_ms:g} ms): these latencies "
            f"include client-side delay; use a faster client host or lower loads")


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("routerwise", "httpx", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _stats(values: pd.Series, name: str) -> dict[str, float]:
    v = values.to_numpy(float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {f"{name}_{s}_ms": float("nan") for s in ("mean", "p50", "p95", "p99")}
    return {f"{name}_mean_ms": float(v.mean()), f"{name}_p50_ms": float(np.percentile(v, 50)),
            f"{name}_p95_ms": float(np.percentile(v, 95)),
            f"{name}_p99_ms": float(np.percentile(v, 99))}


def summarize(result: LoadResult, load_rps: float | None = None, *, model: str, gpu: str,
              tp: int = 1, compute_share: float = 1.0,
              criteria: SaturationCriteria = SaturationCriteria(),
              provenance: Mapping[str, Any] | None = None,
              max_client_lag_ms: float = 5.0) -> pd.DataFrame:
    """One profile-table row (``source="measured"``) for a load run, normalized.

    Latency statistics cover successful requests only; ``num_requests`` counts them and
    ``duration_s`` spans the first send to the last completion. ``load_rps`` defaults to the
    schedule's nominal rate. ``provenance`` (e.g. GPU, driver, engine command) is merged into the
    JSON provenance with the endpoint, model, date, prompt set, arrivals, error counts,
    saturation verdict, the client's send lag (:func:`client_lag`) and tool versions. A median
    send lag above ``max_client_lag_ms`` adds a warning there (:func:`lag_warning`; and a Python
    warning).
    """
    df = result.requests
    ok = df[df["ok"].astype(bool)]
    sat = detect_saturation(df, criteria)
    sent = df["send_s"].to_numpy(float)
    sent = sent[np.isfinite(sent)]
    ends = ok["end_s"].to_numpy(float)
    duration = float(ends.max() - sent.min()) if len(ends) and len(sent) else float("nan")
    errors = df.loc[~df["ok"].astype(bool), "error_kind"].value_counts()
    lag = client_lag(df)
    notes = []
    late = lag_warning(lag, max_client_lag_ms)
    if late:
        notes.append(late)
        warnings.warn(late, stacklevel=2)
    prov = {
        "endpoint": redact_url(result.endpoint.base_url + result.endpoint.path),
        "served_model": result.endpoint.model,
        "date": result.started_at,
        "prompt_set": result.prompt_set,
        "prompt_set_sha256": result.prompt_set_sha256,
        "arrivals": result.schedule.kind,
        "num_scheduled": int(len(df)),
        "errors": {str(k): int(v) for k, v in errors.items()},
        "concurrency_cap": result.endpoint.max_concurrency,
        "cap_hits": result.cap_hits,
        "hit_wall_limit": result.hit_wall_limit,
        "saturation": list(sat.reasons),
        "client": lag,
        "warnings": notes,
        "tools": tool_versions(),
        **dict(provenance or {}),
    }
    row = {"model": model, "gpu": gpu, "tp": int(tp), "compute_share": float(compute_share),
           "load_rps": float(result.schedule.rate_rps if load_rps is None else load_rps),
           "num_requests": int(len(ok)), "duration_s": duration,
           **_stats(ok["ttft_ms"], "ttft"), **_stats(ok["tpot_ms"], "tpot"),
           **_stats(ok["e2e_ms"], "e2e"),
           "saturated": sat.saturated, "source": "measured",
           "provenance": redact_text(json.dumps(prov, sort_keys=True, default=str),
                                     [result.endpoint.api_key or ""])}
    return profiles.normalize(pd.DataFrame([row]))
