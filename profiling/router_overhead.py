"""What a router adds to time to first token: the same load sent directly and through it.

:func:`measure_overhead` sends one Poisson schedule (same arrival times, same prompts) twice,
straight to a model server and through the router in front of it, each run with
:func:`profiling.loadgen.run_load`, and :func:`routerwise.live.check.overhead_summary` compares the two TTFT
distributions. The overhead is a difference of quantiles (p50 via router minus p50 direct;
p99 likewise), not a per-request difference: the two runs are separate draws of the same
load, so a small or negative figure at light load is within their noise. With a fast fake
upstream, ``paired=True`` sends both at the same moments and adds the quantiles of each
request's own difference (:func:`paired_overhead`), which a busy machine's noise hurts far
less. All figures are **measured** on this machine (client, router and server may share its
cores).
:func:`highest_sustained_rate` reads a sweep of such points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from routerwise.errors import ValidationError
from routerwise.live.check import overhead_summary

from .loadgen import Endpoint, PromptSet, client_lag, poisson_schedule, run_load

__all__ = ["overhead_summary", "paired_overhead", "measure_overhead", "highest_sustained_rate"]


def _point(res) -> dict:
    req = res.requests
    ok = req["ok"].astype(bool)
    return {"requests": int(len(req)), "requests_failed": int((~ok).sum()),
            "achieved_rps": float(ok.sum() / res.wall_s) if res.wall_s > 0 else float("nan"),
            **client_lag(req)}


def paired_overhead(direct_ttft_ms: Sequence[float], routed_ttft_ms: Sequence[float]
                    ) -> dict[str, float]:
    """Quantiles of the per-request difference routed minus direct (ms), for requests sent at
    the same moments both ways (:func:`measure_overhead` with ``paired=True``); pairs with a
    failed side are left out."""
    d = np.asarray(direct_ttft_ms, dtype=float)
    r = np.asarray(routed_ttft_ms, dtype=float)
    if d.shape != r.shape:
        raise ValidationError(f"paired TTFTs need one of each per request, got {d.shape} and "
                              f"{r.shape}")
    diff = (r - d)[np.isfinite(r) & np.isfinite(d)]
    if diff.size == 0:
        raise ValidationError("paired_overhead needs at least one request measured both ways")
    return {"paired_overhead_ms_p50": float(np.percentile(diff, 50)),
            "paired_overhead_ms_p99": float(np.percentile(diff, 99)),
            "paired_overhead_ms_mean": float(diff.mean()), "pairs": int(diff.size)}


def measure_overhead(direct: Endpoint, routed: Endpoint, prompts: PromptSet, rate_rps: float, *,
                     num_requests: int, seed: int = 0, routed_first: bool = False,
                     paired: bool = False, max_wall_s: float | None = None) -> dict:
    """One load point: the same schedule and prompts to ``direct`` and to ``routed``.

    Sequential by default (``routed_first`` picks the order): each side alone at the load,
    which a real engine needs (sending both at once would double its load). ``paired=True``
    sends both at the same moments, concurrently: the upstream gets twice the load (fine for a
    fast fake one), and each request's routed TTFT can be set against its direct twin, which
    cancels most of a shared machine's noise (:func:`paired_overhead`, added to the result).
    Returns :func:`overhead_summary` plus each run's failures, achieved rate and client send
    lag (``direct_...``, ``routed_...``)."""
    schedule = poisson_schedule(rate_rps, num_requests=num_requests, seed=seed)
    if paired:
        import asyncio

        from .loadgen import run_load_async

        async def both():
            return await asyncio.gather(*(run_load_async(schedule, prompts, ep,
                                                         max_wall_s=max_wall_s, progress=False)
                                          for ep in (direct, routed)))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            results = asyncio.run(both())
        else:       # inside a running loop (a notebook): a private loop in a worker thread
            import concurrent.futures
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                results = pool.submit(lambda: asyncio.run(both())).result()
        runs = dict(zip(("direct", "routed"), results))
    else:
        order = [("routed", routed), ("direct", direct)]
        if not routed_first:
            order.reverse()
        runs = {name: run_load(schedule, prompts, ep, max_wall_s=max_wall_s, progress=False)
                for name, ep in order}
    # the draw's own rate (n over the last arrival): what the runs could achieve at most
    out = {"rate_rps": float(rate_rps), "num_requests": int(num_requests),
           "offered_rps": len(schedule) / schedule.times_s[-1]}
    for name, res in runs.items():
        out.update({f"{name}_{k}": v for k, v in _point(res).items()})
    ok = {name: res.requests.loc[res.requests["ok"].astype(bool), "ttft_ms"]
          for name, res in runs.items()}
    if len(ok["direct"]) and len(ok["routed"]):
        out.update(overhead_summary(ok["direct"], ok["routed"]))
    if paired:
        ttft = {name: res.requests["ttft_ms"].where(res.requests["ok"].astype(bool))
                for name, res in runs.items()}
        if (ttft["direct"].notna() & ttft["routed"].notna()).any():
            out.update(paired_overhead(ttft["direct"], ttft["routed"]))
    return out


def highest_sustained_rate(points: Sequence[Mapping], *, max_p99_overhead_ms: float = 10.0,
                           min_achieved_fraction: float = 0.9,
                           key: str = "router_overhead_ms_p99") -> float | None:
    """The highest rate of a sweep (points in increasing rate) below which every point
    sustained it: no failed request, the router's p99 overhead (``key``: the difference of p99s,
    or ``"paired_overhead_ms_p99"``) at most ``max_p99_overhead_ms``
    and an achieved rate through the router of at least ``min_achieved_fraction`` of the
    offered one (the schedule's own, ``offered_rps``, else the nominal). None when the first
    point fails."""
    best = None
    for p in sorted(points, key=lambda p: p["rate_rps"]):
        good = (p.get("routed_requests_failed", 1) == 0 and p.get("direct_requests_failed", 1) == 0
                and p.get(key, np.inf) <= max_p99_overhead_ms
                and p.get("routed_achieved_rps", 0.0)
                >= min_achieved_fraction * p.get("offered_rps", p["rate_rps"]))
        if not good:
            break
        best = p["rate_rps"]
    return best
