"""The serving engine's own latency metrics (Prometheus ``/metrics``), beside the client's.

vLLM exports histograms of what it measured itself: time to first token, inter-token latency,
time in its queue, end-to-end time, and counters of tokens and requests. :func:`scrape` reads
them; a load point scrapes before and after its run, and :func:`delta` turns the difference
into the point's server-side numbers: per histogram the number of observations and the mean,
for TTFT and inter-token latency also p50/p95/p99 (interpolated within buckets, so as coarse as
the buckets; vLLM's other latency histograms start at a 0.3 s bucket, too coarse to quote),
per counter the increase. Counts and means are exact for the requests of the run, provided nothing else used
the server meanwhile.

The server's TTFT starts when the engine received the request and excludes the HTTP round trip
and the client's own delay, so the client's TTFT is the larger by those overheads.
"""

from __future__ import annotations

import math
import re

import httpx

from routerwise.redact import redact_url

from .errors import ProfilingError

__all__ = ["HISTOGRAMS", "COUNTERS", "IN_FLIGHT", "parse_prometheus", "scrape", "delta",
           "in_flight", "MetricsUnavailable"]

# Our short name -> vLLM's metric (v1 engine names; seconds).
HISTOGRAMS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
}
QUANTILED = ("ttft", "itl")  # histograms whose buckets are fine enough for percentiles
COUNTERS = {
    "requests_ok": "vllm:request_success_total",
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "preemptions": "vllm:num_preemptions_total",
    # one observation per engine iteration (its batched tokens): the histogram's count
    "iterations": "vllm:iteration_tokens_total_count",
}

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class MetricsUnavailable(ProfilingError, RuntimeError):
    """The endpoint has no readable Prometheus ``/metrics``."""


def parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text exposition -> {(sample name, sorted labels): value}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = value
    return out


def scrape(base_url: str, *, timeout_s: float = 10.0) -> dict:
    """The endpoint's metrics now (see :func:`parse_prometheus`)."""
    url = base_url.rstrip("/") + "/metrics"
    try:
        r = httpx.get(url, timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as e:
        raise MetricsUnavailable(f"{redact_url(url)} does not answer ({type(e).__name__})") \
            from None
    if r.status_code != 200:
        raise MetricsUnavailable(f"{redact_url(url)} answered HTTP {r.status_code}")
    return parse_prometheus(r.text)


# Gauges of the requests the engine holds now (running and queued).
IN_FLIGHT = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def in_flight(base_url: str) -> float:
    """Requests the engine runs or queues now (its gauges): 0 when it is idle."""
    samples = scrape(base_url)
    return sum(_sum(samples, name, None) for name in IN_FLIGHT)


def _matches(labels, model: str | None) -> bool:
    d = dict(labels)
    return model is None or "model_name" not in d or d["model_name"] == model


def _sum(samples: dict, name: str, model: str | None, **want) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and _matches(labels, model)
               and all(dict(labels).get(k) == w for k, w in want.items()))


def _buckets(samples: dict, name: str, model: str | None) -> list[tuple[float, float]]:
    les = {dict(labels)["le"] for (n, labels) in samples if n == name + "_bucket"
           and "le" in dict(labels) and _matches(labels, model)}
    return sorted((float(le), _sum(samples, name + "_bucket", model, le=le)) for le in les)


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_le, lower_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return lower_le
            return lower_le + (le - lower_le) * ((rank - lower_n) / (n - lower_n)
                                                 if n > lower_n else 1.0)
        lower_le, lower_n = le, n
    return float("nan")


def delta(before: dict, after: dict, model: str | None = None) -> dict[str, float | None]:
    """What the server recorded between two scrapes, for ``model`` (its ``model_name`` label;
    None: all). Histograms: ``{name}_count``, ``{name}_mean_ms`` (TTFT and ITL also
    ``{name}_p50_ms`` ...);
    counters: their increase. None where there was nothing to measure; metrics the server
    does not export are left out."""
    out: dict[str, float] = {}
    names = {n for n, _ in after}
    for short, metric in HISTOGRAMS.items():
        if metric + "_count" not in names:
            continue
        count = _sum(after, metric + "_count", model) - _sum(before, metric + "_count", model)
        total = _sum(after, metric + "_sum", model) - _sum(before, metric + "_sum", model)
        b_after, b_before = _buckets(after, metric, model), dict(_buckets(before, metric, model))
        diff = [(le, n - b_before.get(le, 0.0)) for le, n in b_after]
        out[f"{short}_count"] = count
        out[f"{short}_mean_ms"] = 1000 * total / count if count > 0 else float("nan")
        if short in QUANTILED:
            for q in (50, 95, 99):
                out[f"{short}_p{q}_ms"] = 1000 * _quantile(diff, q / 100)
    for short, metric in COUNTERS.items():
        if metric in names:
            out[short] = _sum(after, metric, model) - _sum(before, metric, model)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
