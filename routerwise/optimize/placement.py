"""Shard placement: can a system setup be deployed on G identical GPUs (or on pools of them)?

Model i brings tp_i shards; each needs ``compute_tenths`` of one GPU's compute (an MPS share)
and ``mem_gb`` of its memory. A placement puts every shard on a GPU such that

* no GPU's compute shares sum above 10 tenths (``check_compute``; the paper does not check this),
* no GPU's memory need sums above its memory (``check_memory``; the paper's check),
* two shards of one model never share a GPU (tensor-parallel ranks need distinct devices).

:func:`place_exact` decides this exactly: a depth-first search over models, largest shard first
(the larger of its compute and memory fractions of a GPU), that chooses, for each model, how
many of its shards go to each *class* of GPUs with identical residual capacity (GPUs are
identical, so which member of a class is used does not matter), with memoized dead ends. Every
node is pruned by necessary conditions on the models still to place (:func:`_can_still_fit`):
the compute each GPU can still take is at most the largest sum of distinct remaining models'
shard shares that fits its residual (a GPU holds one shard per model), and these sums over the
GPUs must cover the remaining shards' compute; likewise for memory; and every remaining model
of tp k needs k GPUs that can each still take one of its shards. Without these bounds a
tightly packed unplaceable setup on 24 GPUs took more than 300,000 dead ends; with them a few
dozen (measured on random 12-model setups). :func:`place_ffd` is the paper's
first-fit-decreasing heuristic. FFD succeeding is a certificate of feasibility; FFD failing is
not a proof of infeasibility, so the setup space uses FFD as a fast path and the exact search
as the judge (and counts the cases FFD gets wrong).

Mixed clusters (:func:`place_pools`): every model's shards stay on GPUs of its own type, so a
placement is one independent placement per pool (each pool's GPUs are identical); GPU indices
are global, pool by pool.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache

__all__ = ["ShardDemand", "PlacementUndecided", "place_ffd", "place_exact", "place_pools",
           "gpu_usage", "stop_when"]

_EPS = 1e-9


class PlacementUndecided(Exception):
    """:func:`place_exact` met its ``max_dead_ends`` budget, or a :func:`stop_when` condition,
    before deciding."""


# A condition that stops the exact search (a solver's deadline). A context variable rather
# than an argument: searches are memoized, and only searches that finish are cached, so one
# stopped early is simply searched again later.
_STOP: ContextVar = ContextVar("placement_stop", default=None)


@contextlib.contextmanager
def stop_when(condition):
    """Within the block, :func:`place_exact` raises :class:`PlacementUndecided` as soon as
    ``condition()`` is true (checked at every search node), e.g. ``deadline.expired``."""
    token = _STOP.set(condition)
    try:
        yield
    finally:
        _STOP.reset(token)


@dataclass(frozen=True)
class ShardDemand:
    """Per-shard need of one model: tp shards, each compute_tenths and mem_gb of a GPU."""

    tp: int
    compute_tenths: int
    mem_gb: float


def _caps(check_compute: bool, check_memory: bool, gpu_mem_gb: float) -> tuple[float, float]:
    return (10.0 if check_compute else float("inf"), gpu_mem_gb if check_memory else float("inf"))


def place_ffd(demands: list[ShardDemand], num_gpus: int, gpu_mem_gb: float, *,
              check_compute: bool = True, check_memory: bool = True):
    """First-fit decreasing (largest memory first). Returns GPU lists per model, or None."""
    cc, cm = _caps(check_compute, check_memory, gpu_mem_gb)
    used_c = [0.0] * num_gpus
    used_m = [0.0] * num_gpus
    holds: list[set[int]] = [set() for _ in range(num_gpus)]
    out: list[list[int]] = [[] for _ in demands]
    shards = sorted(((d.mem_gb, d.compute_tenths, i) for i, d in enumerate(demands)
                     for _ in range(d.tp)), reverse=True)
    for mem, comp, i in shards:
        for g in range(num_gpus):
            if (i not in holds[g] and used_c[g] + comp <= cc + _EPS
                    and used_m[g] + mem <= cm + _EPS):
                used_c[g] += comp
                used_m[g] += mem
                holds[g].add(i)
                out[i].append(g)
                break
        else:
            return None
    return tuple(tuple(sorted(p)) for p in out)


def place_exact(demands: list[ShardDemand], num_gpus: int, gpu_mem_gb: float, *,
                check_compute: bool = True, check_memory: bool = True,
                max_dead_ends: int | None = None):
    """Exact placement search. Returns GPU lists per model (input order), or None.

    ``max_dead_ends`` caps the memoized dead ends (memory and time grow with them on many
    GPUs); past it :class:`PlacementUndecided` is raised: neither placeable nor proven not.
    """
    if any(d.tp > num_gpus for d in demands):
        return None
    cc, cm = _caps(check_compute, check_memory, gpu_mem_gb)
    order = sorted(range(len(demands)), key=lambda i: _largest_first(demands[i], cc, cm))
    key = tuple((demands[i].tp, demands[i].compute_tenths,
                 round(demands[i].mem_gb if check_memory else 0.0, 9)) for i in order)
    canon = _place_canonical(key, num_gpus, cc, cm, max_dead_ends)
    if canon is None:
        return None
    out: list[tuple[int, ...]] = [()] * len(demands)
    for pos, i in enumerate(order):
        out[i] = canon[pos]
    return tuple(out)


def _largest_first(d: ShardDemand, cc: float, cm: float) -> tuple:
    """Search order: largest shard (fraction of a GPU) first, then more shards, more memory,
    more compute. Large shards fix the packing's shape early, and the bounds of
    :func:`_can_still_fit` then see the waste they force (as in first-fit decreasing)."""
    size = max(d.compute_tenths / cc if cc != float("inf") else 0.0,
               d.mem_gb / cm if cm != float("inf") else 0.0)
    return (-size, -d.tp, -d.mem_gb, -d.compute_tenths)


def _can_still_fit(key: tuple, pos: int, resid, cc: float, fill) -> bool:
    """Necessary conditions for placing ``key[pos:]`` on GPUs with residuals ``resid``.

    ``fill(pos, rc, rm)`` = (compute, memory) one GPU with that residual can still take: the
    largest subset sum of distinct remaining models' compute shares within rc (integer tenths),
    and rm capped by the remaining models' memory that fits it; both count only models with a
    shard that fits the GPU alone. Their sums over the GPUs must cover what is left, and each
    remaining model needs tp GPUs that can take one of its shards.
    """
    need_c = sum(tp * c for tp, c, _ in key[pos:])
    need_m = sum(tp * m for tp, _, m in key[pos:])
    room_c, room_m = 0, 0.0
    for rc, rm in resid:
        c, m = fill(pos, rc, rm)
        room_c += c
        room_m += m
    if (cc != float("inf") and room_c < need_c) or room_m + 1e-6 < need_m:
        return False
    for tp, c, m in key[pos:]:
        if sum(1 for rc, rm in resid if rc + _EPS >= c and rm + _EPS >= m) < tp:
            return False
    return True


@lru_cache(maxsize=200_000)
def _place_canonical(key: tuple, num_gpus: int, cc: float, cm: float,
                     max_dead_ends: int | None = None):
    """Placement for demands already in canonical order; memoized across setups."""
    dead: set = set()
    stop = _STOP.get()

    @cache
    def fill(pos: int, rc: float, rm: float) -> tuple[int, float]:
        reach, mem, top = 1, 0.0, 0          # reach: bit s set <=> compute sum s attainable
        if cc != float("inf"):
            top = int(round(rc))
        full = (1 << (top + 1)) - 1
        for _, c, m in key[pos:]:
            if c <= rc + _EPS and m <= rm + _EPS:
                reach = (reach | (reach << c)) & full
                mem += m
        return reach.bit_length() - 1, min(rm, mem)

    def dfs(pos: int, resid: tuple[tuple[float, float], ...]):
        if pos == len(key):
            return []
        if stop is not None and stop():
            raise PlacementUndecided("stopped before deciding (time limit)")
        state = (pos, tuple(sorted(resid)))
        if state in dead:
            return None
        tp, comp, mem = key[pos]
        # Classes of GPUs with identical residual capacity, that fit one shard.
        classes: dict[tuple[float, float], list[int]] = {}
        for g, (rc, rm) in enumerate(resid):
            if rc + _EPS >= comp and rm + _EPS >= mem:
                classes.setdefault((rc, rm), []).append(g)
        groups = sorted(classes.values(), key=lambda gs: resid[gs[0]])
        if sum(len(gs) for gs in groups) >= tp and _can_still_fit(key, pos, resid, cc, fill):
            for counts in _compositions(tp, [len(gs) for gs in groups]):
                chosen = [g for gs, n in zip(groups, counts) for g in gs[:n]]
                nxt = list(resid)
                for g in chosen:
                    rc, rm = nxt[g]
                    nxt[g] = (rc - comp, rm - mem)
                rest = dfs(pos + 1, tuple(nxt))
                if rest is not None:
                    return [tuple(sorted(chosen))] + rest
        dead.add(state)
        if max_dead_ends is not None and len(dead) > max_dead_ends:
            raise PlacementUndecided(f"more than {max_dead_ends} dead ends")
        return None

    res = dfs(0, tuple((cc, cm) for _ in range(num_gpus)))
    return None if res is None else tuple(res)


def place_pools(demands: list[ShardDemand], pool_of, pools, *, method: str = "exact",
                check_compute: bool = True, check_memory: bool = True,
                max_dead_ends: int | None = None):
    """Place each pool's demands on that pool's GPUs; GPU lists per model (global indices,
    pool by pool), or None if some pool cannot hold its shards.

    ``pools`` = [(num_gpus, gpu_mem_gb), ...] in cluster order; ``pool_of[i]`` is the pool of
    demand i (a model's shards never leave its pool); ``method`` is ``"ffd"`` or ``"exact"``.
    With one pool this is :func:`place_ffd` / :func:`place_exact` itself; ``max_dead_ends``
    is passed to :func:`place_exact`.
    """
    if method not in ("ffd", "exact"):
        raise ValueError(f"placement method must be 'ffd' or 'exact', got {method!r}")
    def place(d, n, mem, **kw):
        if method == "ffd":
            return place_ffd(d, n, mem, **kw)
        return place_exact(d, n, mem, max_dead_ends=max_dead_ends, **kw)

    out: list[tuple[int, ...]] = [()] * len(demands)
    start = 0
    for p, (n, mem) in enumerate(pools):
        idx = [i for i in range(len(demands)) if pool_of[i] == p]
        if idx:
            pl = place([demands[i] for i in idx], n, mem, check_compute=check_compute,
                       check_memory=check_memory)
            if pl is None:
                return None
            for i, gpus in zip(idx, pl):
                out[i] = tuple(start + g for g in gpus)
        start += n
    return tuple(out)


def _compositions(total: int, limits: list[int]):
    """All ways to write total as sum of n_k with 0 <= n_k <= limits[k] (most-filled first)."""
    if not limits:
        if total == 0:
            yield ()
        return
    if sum(limits) < total:
        return
    for n in range(min(limits[0], total), -1, -1):
        for rest in _compositions(total - n, limits[1:]):
            yield (n,) + rest


def gpu_usage(demands: list[ShardDemand], placement, num_gpus: int):
    """(compute tenths, memory GB, shard count) per GPU under a placement."""
    comp = [0] * num_gpus
    mem = [0.0] * num_gpus
    shards = [0] * num_gpus
    for d, gpus in zip(demands, placement):
        for g in gpus:
            comp[g] += d.compute_tenths
            mem[g] += d.mem_gb
            shards[g] += 1
    return comp, mem, shards
