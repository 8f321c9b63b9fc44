"""Discrete-event simulator of ONE engine replica with vLLM-like continuous batching.

Scheduling (iteration level, as vLLM's default scheduler without chunked prefill)
-----------------------------------------------------------------------------------
* **Prefill priority.** At every iteration boundary, if the request at the head of the FIFO
  waiting queue can be admitted, the iteration is a prefill: waiting requests are admitted in
  arrival order while (a) the running count stays within ``max_num_seqs``, (b) the batched
  prompt tokens stay within the step table's token budget and (c) the KV cache can hold them.
  The prefill emits each admitted request's first token (its TTFT).
* Otherwise every running request advances one token in a **decode** iteration.
* **KV cache and preemption policy.** A request holds ``prompt + generated`` tokens. Admission
  reserves its final footprint ``prompt + output`` (the simulator knows the output length),
  so the cache never overflows and **no request is ever preempted**; this is conservative
  against vLLM, which admits on the prompt alone and preempts (recomputes) on overflow.
  ``peak_kv_tokens`` instruments the tokens actually held.

Iteration times come from :class:`~routerwise.serving.stepcost.StepTimes`: a decode step costs
``a_B + b C`` (``B`` running requests, ``C`` cached tokens). While the running batch is
unchanged, ``C`` grows by ``B`` per step, so ``k`` steps take ``k a_B + b (k C + B k(k-1)/2)``:
the simulator jumps to the next completion, or to the step during which the next request
arrives (when it could be admitted), solving that quadratic instead of looping over tokens.

Statistics and saturation
-------------------------
The first ``warmup_fraction`` of requests (by arrival) are a warm-up, excluded from every
statistic. TTFT = first token - arrival; E2E = last token - arrival; TPOT = (E2E - TTFT) /
(output - 1) over requests with more than one output token. ``saturated`` means the replica
could not keep up: the number of requests waiting for admission, sampled at every measured
arrival, grows over the window by more than ``max(SAT_MIN_GROWTH, SAT_GROWTH_FRACTION *
measured requests)`` (least-squares slope x window length), or when it grows for the whole
window: the mean waiting count rises from each quarter of the window to the next and the
growth exceeds ``SAT_MIN_GROWTH`` (a run overloaded by a few percent grows by less than the
proportional threshold but never stops growing). A stable queue fluctuates around a level; an
overloaded one grows by about ``(lambda - mu) * window``.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..data.traces import load_trace
from ..errors import ValidationError
from .stepcost import StepTimes

SAT_MIN_GROWTH = 10.0
SAT_GROWTH_FRACTION = 0.02
STAT_NAMES = ("mean", "p50", "p95", "p99")


@dataclass(frozen=True)
class EngineConfig:
    """Scheduler limits of one replica (vLLM defaults for ``max_num_seqs``)."""

    max_num_seqs: int = 256
    kv_capacity_tokens: int = 65536

    def __post_init__(self):
        if self.max_num_seqs < 1 or self.kv_capacity_tokens < 2:
            raise ValidationError("EngineConfig needs max_num_seqs >= 1 and kv_capacity_tokens "
                                  ">= 2")


@dataclass(frozen=True)
class Requests:
    """A request stream: arrival times (s, non-decreasing) and token counts."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    label: str = ""

    def __post_init__(self):
        a = np.asarray(self.arrival_s, dtype=float)
        p = np.asarray(self.prompt_tokens, dtype=np.int64)
        o = np.asarray(self.output_tokens, dtype=np.int64)
        if not (a.ndim == p.ndim == o.ndim == 1 and a.size == p.size == o.size and a.size):
            raise ValidationError("Requests needs equally long, non-empty 1-D arrays")
        if not np.all(np.isfinite(a)) or np.any(np.diff(a) < 0) or a[0] < 0:
            raise ValidationError("arrival_s must be finite, >= 0 and non-decreasing")
        if p.min() < 1 or o.min() < 1:
            raise ValidationError("every request needs >= 1 prompt token and >= 1 output token")
        for name, v in (("arrival_s", a), ("prompt_tokens", p), ("output_tokens", o)):
            v.setflags(write=False)
            object.__setattr__(self, name, v)

    def __len__(self) -> int:
        return int(self.arrival_s.size)


@dataclass(frozen=True)
class SimResult:
    """One simulated load point (times in ms; statistics over measured requests only)."""

    load_rps: float
    num_requests: int
    duration_s: float
    saturated: bool
    backlog_growth: float
    peak_kv_tokens: int
    stats_ms: dict  # {"ttft_mean": ..., "tpot_p99": ..., ...}
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_ms: np.ndarray
    preemptions: int = 0  # recompute preemptions (paged-KV engine profiles only)
    iterations: int = 0  # engine iterations run (paged-KV engine profiles only; 0 otherwise)

    def row(self) -> dict:
        """The profile-table columns of this point (see routerwise.data.latency_table)."""
        return {"load_rps": self.load_rps, "num_requests": self.num_requests,
                "duration_s": self.duration_s, "saturated": self.saturated,
                **{f"{k}_ms": v for k, v in self.stats_ms.items()}}


def poisson_arrivals(rate_rps: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` arrival times (s) of a Poisson process of rate ``rate_rps``, starting at 0."""
    if not (rate_rps > 0 and math.isfinite(rate_rps)) or n < 1:
        raise ValidationError(f"need a positive rate and n >= 1, got {rate_rps}, {n}")
    gaps = rng.exponential(1.0 / rate_rps, size=n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def poisson_requests(rate_rps: float, n: int, prompt_pool, output_pool, seed: int) -> Requests:
    """Poisson arrivals with (prompt, output) pairs drawn jointly, with replacement, from the
    pools (index ``j`` of both pools is one observed request)."""
    prompt_pool = np.asarray(prompt_pool, dtype=np.int64)
    output_pool = np.asarray(output_pool, dtype=np.int64)
    if prompt_pool.shape != output_pool.shape or prompt_pool.size == 0:
        raise ValidationError("prompt and output pools must be non-empty and of equal length")
    rng = np.random.default_rng(seed)
    arr = poisson_arrivals(rate_rps, n, rng)
    idx = rng.integers(0, prompt_pool.size, size=n)
    return Requests(arr, np.maximum(prompt_pool[idx], 1), np.maximum(output_pool[idx], 1),
                    label=f"Poisson {rate_rps:g} req/s, seed {seed}")


def trace_requests(key: str, rate_rps: float, n: int | None = None, start: int = 0) -> Requests:
    """Requests of a public trace (timestamps and lengths), time-rescaled to ``rate_rps``.

    The trace's own mean rate is (count - 1) / (last - first timestamp); arrival gaps are
    multiplied by (trace rate / target rate). ``n`` requests from index ``start``.
    """
    trace = load_trace(key)
    t, p, o = trace.arrival_s, trace.prompt_tokens, trace.output_tokens
    end = t.size if n is None else min(t.size, start + n)
    if end - start < 2:
        raise ValidationError(f"trace {key} has fewer than 2 requests from index {start}")
    t, p, o = t[start:end], p[start:end], o[start:end]
    span = t[-1] - t[0]
    trace_rate = (t.size - 1) / span if span > 0 else float("inf")
    if not (rate_rps > 0 and math.isfinite(trace_rate)):
        raise ValidationError("target rate must be positive and the trace must span time")
    arr = (t - t[0]) * (trace_rate / rate_rps)
    return Requests(arr, np.maximum(p, 1), np.maximum(o, 1),
                    label=f"trace {trace.provenance} rescaled x{trace_rate / rate_rps:.3g} to "
                          f"{rate_rps:g} req/s")


def decode_steps_until(dt_ms: float, step_ms: float, ms_per_context_token: float,
                       batch: int, context_tokens: float) -> int:
    """Decode steps (at least 1) until ``dt_ms`` has passed, in closed form.

    Step j (from 0) of a batch of ``batch`` sequences holding ``context_tokens`` cached tokens
    takes ``step_ms + ms_per_context_token * (context_tokens + batch * j)``, so k steps take
    ``alpha k + beta k^2`` with ``beta = b B / 2``, ``alpha = a + b C - beta``: the smallest k
    whose total reaches ``dt_ms`` is the positive root of that quadratic, rounded up.
    """
    beta = 0.5 * ms_per_context_token * batch
    alpha = step_ms + ms_per_context_token * context_tokens - beta
    if beta > 0:
        kf = (-alpha + math.sqrt(alpha * alpha + 4.0 * beta * dt_ms)) / (2.0 * beta)
    else:
        kf = dt_ms / alpha if alpha > 0 else 1.0
    return max(1, math.ceil(kf - 1e-9))


def simulate(step: StepTimes, requests: Requests, config: EngineConfig = EngineConfig(), *,
             warmup_fraction: float = 0.1, load_rps: float | None = None) -> SimResult:
    """Run one replica over ``requests`` until every request has finished."""
    n = len(requests)
    P = requests.prompt_tokens
    O = requests.output_tokens
    budget = step.max_batched_tokens
    cap = config.kv_capacity_tokens
    if P.max() > budget:
        raise ValidationError(f"a prompt of {int(P.max())} tokens exceeds the batched-token "
                              f"budget {budget}; tabulate the step times with "
                              f"max_batched_tokens >= the longest prompt")
    if (P + O).max() > cap:
        raise ValidationError(f"a request needs {int((P + O).max())} KV tokens, more than the "
                              f"replica's capacity {cap}: it could never be admitted")
    if not 0 <= warmup_fraction < 1:
        raise ValidationError("warmup_fraction must be in [0, 1)")

    arr_ms = (requests.arrival_s * 1e3).tolist()
    plist, olist = P.tolist(), O.tolist()
    pre_tab = step.prefill_by_tokens_ms.tolist()
    c_sq, c_seq = step.prefill_ms_per_sq_token, step.prefill_ms_per_seq
    dec_tab = step.decode_base_ms.tolist()
    b_ctx = step.decode_ms_per_context_token
    max_seqs = min(config.max_num_seqs, step.max_seqs)

    first = [0.0] * n
    finish = [0.0] * n
    admit = [0.0] * n
    waiting: deque[int] = deque()
    heap: list[tuple[int, int]] = []  # (decode step at which the request finishes, request)
    t = 0.0
    S = 0  # decode steps executed so far
    B = 0  # running requests in the decode phase
    K = 0  # sum over running of (prompt + 1 - admission step): C = K + B * S
    kv_reserved = 0
    peak_kv = 0
    nxt = 0
    done = 0
    s_admit = [0] * n

    while done < n:
        while nxt < n and arr_ms[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        if waiting:
            i = waiting[0]
            if B < max_seqs and kv_reserved + plist[i] + olist[i] <= cap:
                tokens, sq, m, batch = 0, 0, 0, []
                while waiting:
                    i = waiting[0]
                    p = plist[i]
                    need = p + olist[i]
                    if (B + m >= max_seqs or tokens + p > budget
                            or kv_reserved + need > cap):
                        break
                    waiting.popleft()
                    tokens += p
                    sq += p * p
                    m += 1
                    kv_reserved += need
                    admit[i] = t
                    batch.append(i)
                t += pre_tab[tokens] + c_sq * sq + c_seq * m
                held = K + B * S + tokens
                if held > peak_kv:
                    peak_kv = held
                for i in batch:
                    first[i] = t
                    if olist[i] == 1:
                        finish[i] = t
                        kv_reserved -= plist[i] + 1
                        done += 1
                    else:
                        heapq.heappush(heap, (S + olist[i] - 1, i))
                        s_admit[i] = S
                        K += plist[i] + 1 - S
                        B += 1
                continue
        if B:
            C = K + B * S
            a = dec_tab[B]
            k = heap[0][0] - S
            if not waiting and nxt < n:
                k_arr = decode_steps_until(arr_ms[nxt] - t, a, b_ctx, B, C)
                if k_arr < k:
                    k = k_arr
            t += k * a + b_ctx * (k * C + B * k * (k - 1) * 0.5)
            S += k
            held = K + B * S
            if held > peak_kv:
                peak_kv = held
            while heap and heap[0][0] == S:
                _, i = heapq.heappop(heap)
                finish[i] = t
                K -= plist[i] + 1 - s_admit[i]
                B -= 1
                kv_reserved -= plist[i] + olist[i]
                done += 1
            continue
        t = max(t, arr_ms[nxt])

    return _summarize(requests, np.array(first), np.array(finish), np.array(admit), peak_kv,
                      warmup_fraction, load_rps)


def _summarize(req: Requests, first, finish, admit, peak_kv, warmup_fraction, load_rps):
    n = len(req)
    arr = req.arrival_s * 1e3
    w = int(warmup_fraction * n)
    sel = slice(w, n)
    ttft = (first - arr)[sel]
    e2e = (finish - arr)[sel]
    out = req.output_tokens[sel]
    multi = out > 1
    tpot = (e2e[multi] - ttft[multi]) / (out[multi] - 1)
    stats = {}
    for name, v in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        if v.size:
            q = np.percentile(v, [50, 95, 99])
            stats.update({f"{name}_mean": float(v.mean()), f"{name}_p50": float(q[0]),
                          f"{name}_p95": float(q[1]), f"{name}_p99": float(q[2])})
        else:
            stats.update({f"{name}_{s}": float("nan") for s in STAT_NAMES})
    growth, rising = _backlog_growth(arr[sel], admit, w)
    measured = n - w
    saturated = bool(growth > max(SAT_MIN_GROWTH, SAT_GROWTH_FRACTION * measured)
                     or (rising and growth > SAT_MIN_GROWTH))
    duration_s = float((finish[sel].max() - arr[w]) / 1e3) if measured else 0.0
    if load_rps is None:
        span = req.arrival_s[-1] - req.arrival_s[0]
        load_rps = (n - 1) / span if span > 0 else float("nan")
    return SimResult(float(load_rps), int(measured), duration_s, saturated, float(growth),
                     int(peak_kv), stats, ttft, tpot, e2e)


def _backlog_growth(arr_ms: np.ndarray, admit_ms: np.ndarray, offset: int) \
        -> tuple[float, bool]:
    """Least-squares growth of the waiting count over the measured arrivals (requests), and
    whether its mean rises from each quarter of the window to the next.

    Admission is FIFO, so admission times are non-decreasing in request index and the count
    waiting when request j arrives is ``j + 1 - #(admit <= arrival_j)``.
    """
    if arr_ms.size < 3 or arr_ms[-1] <= arr_ms[0]:
        return 0.0, False
    j = np.arange(offset, offset + arr_ms.size)
    admitted = np.searchsorted(admit_ms, arr_ms, side="right")
    q = (j + 1 - admitted).astype(float)
    x = arr_ms - arr_ms.mean()
    slope = float((x * (q - q.mean())).sum() / (x * x).sum())
    quarters = [part.mean() for part in np.array_split(q, 4) if part.size]
    rising = len(quarters) == 4 and bool(np.all(np.diff(quarters) > 0))
    return slope * (arr_ms[-1] - arr_ms[0]), rising


def md1_wait_ms(rho: float, service_ms: float) -> float:
    """Pollaczek-Khinchine mean wait of an M/D/1 queue: rho S / (2 (1 - rho))."""
    if not 0 <= rho < 1:
        raise ValidationError("M/D/1 needs utilisation 0 <= rho < 1")
    return rho * service_ms / (2.0 * (1.0 - rho))


__all__ = ["EngineConfig", "Requests", "SimResult", "simulate", "poisson_arrivals",
           "poisson_requests", "trace_requests", "md1_wait_ms",
           "decode_steps_until"]
