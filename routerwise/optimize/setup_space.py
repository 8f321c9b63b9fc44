"""Setup space: enumerate system setups and prune them.

Per model the choices are theta_i = (tp, rho, t) with tp in ``space.tp_degrees``, rho in
``space.compute_tenths`` and t a GPU type of the cluster with tp <= G_t GPUs of that type (one
type on a homogeneous cluster); the memory share follows from the model's per-shard memory need
at that tp and type t's memory. A system setup picks one choice per model (the Cartesian
product). Filters, in order:

1. **utilization** (paper): C(Theta) = sum_i tp_i * rho_i in [G * rho_min, G]; on a mixed
   cluster also C_t(Theta) = sum_{i on t} tp_i * rho_i <= G_t for every type t (the lower
   bound stays on the total);
2. **latency curve**: every chosen (model, tp, rho) has a profiled curve;
3. **deployability**: the shards can be placed (``routerwise.optimize.placement``) so that no GPU's
   memory (``check_memory``) and no GPU's compute (``check_compute``, ours) exceeds 100%, with
   the shards of one model on distinct GPUs of its type (one placement per pool). Exact search;
   the paper's memory-only first-fit decreasing check is also counted so the two can be compared.

With the memory check off these counts reproduce the paper's: 669 (3 models, G = 4), 16,660
(4 models, G = 4), 141 and 7,764 at G = 8 (tests/test_setups.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ValidationError
from ..problem import ModelSetup, Problem, SystemSetup
from .placement import ShardDemand, place_pools

__all__ = ["RetainedSetups", "model_options", "candidate_setup_count", "enumerate_setups"]


@dataclass(frozen=True)
class RetainedSetups:
    """The setups that survive every filter, as option indices, with their placements.

    ``options[i]`` lists model i's usable ModelSetups; ``index[s, i]`` is the option model i
    uses in retained setup s; ``placements[s]`` is a feasible shard placement of setup s.
    ``stage_counts`` records how many setups survive each filter (for Fig. 6-style reports).
    """

    options: tuple[tuple[ModelSetup, ...], ...]
    index: np.ndarray
    placements: tuple
    stage_counts: dict = field(default_factory=dict)
    excluded_options: tuple = ()
    ffd_false_negatives: int = 0

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def setup(self, s: int) -> SystemSetup:
        return SystemSetup(tuple(self.options[i][k] for i, k in enumerate(self.index[s])),
                           self.placements[s])

    def compute_units_tenths(self) -> np.ndarray:
        """tp_i * rho_i (tenths) per setup and model: an (S, M) array."""
        units = [np.array([o.compute_units_tenths for o in opts]) for opts in self.options]
        return np.stack([units[i][self.index[:, i]] for i in range(len(self.options))], axis=1) \
            if len(self) else np.zeros((0, len(self.options)), dtype=int)

    def find(self, setup: SystemSetup) -> int | None:
        """Row of a setup (ignoring placement), or None if it was not retained."""
        ks = []
        for opts, s in zip(self.options, setup.per_model):
            k = [j for j, o in enumerate(opts)
                 if (o.tp, o.compute_tenths, o.gpu) == (s.tp, s.compute_tenths, s.gpu)]
            if not k:
                return None
            ks.append(k[0])
        hit = np.flatnonzero(np.all(self.index == np.asarray(ks), axis=1))
        return int(hit[0]) if hit.size else None


def model_options(problem: Problem, i: int, *, require_curve: bool = True):
    """Model i's choices (tp, rho[, GPU type]) in the space, and the ones excluded with a
    reason. Options run pool by pool (cluster order), then tp, then rho."""
    m = problem.models[i]
    cl = problem.cluster
    keep, dropped = [], []
    for t, G in cl.pools:
        gpu = t.name if cl.is_mixed else ""
        on = f" {t.name}" if cl.is_mixed else ""
        for tp in problem.space.tp_degrees:
            for r in problem.space.compute_tenths:
                if tp > G:
                    dropped.append((m.name, tp, r, f"tp={tp} exceeds the {G}{on} GPUs"))
                    continue
                if tp not in m.tp_degrees:
                    dropped.append((m.name, tp, r, f"no memory figure for tp={tp}"))
                    continue
                if problem.space.check_memory and m.mem_gb(tp) > t.mem_gb + 1e-9:
                    dropped.append((m.name, tp, r, f"a shard needs {m.mem_gb(tp):.1f} GB > "
                                                   f"{t.mem_gb:g} GB{on}"))
                    continue
                if require_curve and problem.curve_for(m.name, tp, r, gpu) is None:
                    dropped.append((m.name, tp, r, "no latency curve" + (f" on{on}" if on else "")))
                    continue
                keep.append(problem.model_setup(i, tp, r, gpu))
    return tuple(keep), dropped


def candidate_setup_count(problem: Problem) -> int:
    """Number of setups (one usable option per model) inside the utilization window.

    A DP over compute units in use (tenths) per GPU pool: ``ways[u]`` = number of option tuples
    of the models seen so far using u = (units on pool 1, ...); convolve model by model,
    dropping any pool over its 10 G_t (costs are positive, so a prefix over a cap never comes
    back); count the tuples whose total lies in [10 G rho_min, 10 G]. Python integers: no
    overflow at 16 models x 30 options. Equals
    ``enumerate_setups(problem).stage_counts["usable_options"]``.
    """
    cl = problem.cluster
    G = cl.num_gpus
    lo = int(round(10 * G * problem.space.rho_min - 1e-9))
    caps = [10 * n for _, n in cl.pools]
    pool_index = {(t.name if cl.is_mixed else ""): p for p, t in enumerate(cl.gpu_types)}
    ways: dict[tuple, int] = {(0,) * len(caps): 1}
    for i in range(problem.num_models):
        costs: dict[tuple[int, int], int] = {}
        for o in model_options(problem, i)[0]:
            key = (pool_index[o.gpu], o.compute_units_tenths)
            costs[key] = costs.get(key, 0) + 1
        nxt: dict[tuple, int] = {}
        for u, n in ways.items():
            for (p, c), m in costs.items():
                if u[p] + c <= caps[p]:
                    v = u[:p] + (u[p] + c,) + u[p + 1:]
                    nxt[v] = nxt.get(v, 0) + n * m
        ways = nxt
    return sum(n for u, n in ways.items() if sum(u) >= lo)


def _product_with_budget(costs: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
    """Index tuples (one option per model) whose summed cost lies in [lo, hi]."""
    M = len(costs)
    max_rest = [sum(int(c.max(initial=0)) for c in costs[i + 1:]) for i in range(M)]
    min_rest = [sum(int(c.min(initial=0)) for c in costs[i + 1:]) for i in range(M)]
    combos = np.zeros((1, 0), dtype=np.int32)
    total = np.zeros(1, dtype=np.int64)
    for i, c in enumerate(costs):
        if c.size == 0:
            return np.zeros((0, M), dtype=np.int32)
        k = np.arange(c.size, dtype=np.int32)
        new_total = (total[:, None] + c[None, :]).ravel()
        rows = np.repeat(np.arange(combos.shape[0]), c.size)
        ok = (new_total + min_rest[i] <= hi) & (new_total + max_rest[i] >= lo)
        combos = np.concatenate([combos[rows[ok]], np.tile(k, combos.shape[0])[ok][:, None]], axis=1)
        total = new_total[ok]
    return combos


def _per_type_ok(combos: np.ndarray, opts_types: list[np.ndarray], costs: list[np.ndarray],
                 caps: list[int]) -> np.ndarray:
    """Rows of ``combos`` whose compute units on each GPU type t stay within caps[t]."""
    ok = np.ones(combos.shape[0], dtype=bool)
    if len(caps) < 2:
        return ok
    for t, cap in enumerate(caps):
        used = np.zeros(combos.shape[0], dtype=np.int64)
        for i, (ty, c) in enumerate(zip(opts_types, costs)):
            used += np.where(ty[combos[:, i]] == t, c[combos[:, i]], 0)
        ok &= used <= cap
    return ok


def enumerate_setups(problem: Problem) -> RetainedSetups:
    """Enumerate, filter and place every system setup of ``problem``."""
    sp = problem.space
    cl = problem.cluster
    G = cl.num_gpus
    pools = [(n, t.mem_gb) for t, n in cl.pools]
    caps = [10 * n for _, n in cl.pools]
    lo = int(round(10 * G * sp.rho_min - 1e-9))
    hi = 10 * G

    # Stage counts over the full grid (every tp <= G_t, every rho), as the paper counts them.
    grid_t = np.array([p for p, (_, n) in enumerate(cl.pools) for tp in sp.tp_degrees if tp <= n
                       for r in sp.compute_tenths])
    grid = [np.array([tp * r for _, n in cl.pools for tp in sp.tp_degrees if tp <= n
                      for r in sp.compute_tenths]) for _ in problem.models]
    util = _product_with_budget(grid, lo, hi)
    util = util[_per_type_ok(util, [grid_t] * len(grid), grid, caps)]
    counts = {"cartesian": int(np.prod([g.size for g in grid], dtype=np.int64)),
              "utilization": int(util.shape[0])}

    all_opts, excluded = [], []
    for i in range(problem.num_models):
        opts, dropped = model_options(problem, i)
        if not opts:
            raise ValidationError(f"model {problem.models[i].name!r} has no usable setup: "
                                  + "; ".join(sorted({d[3] for d in dropped})))
        all_opts.append(opts)
        excluded.extend(dropped)
    pool_index = {(t.name if cl.is_mixed else ""): p for p, t in enumerate(cl.gpu_types)}
    types = [np.array([pool_index[o.gpu] for o in opts]) for opts in all_opts]
    costs = [np.array([o.compute_units_tenths for o in opts]) for opts in all_opts]
    cand = _product_with_budget(costs, lo, hi)
    cand = cand[_per_type_ok(cand, types, costs, caps)]
    counts["usable_options"] = int(cand.shape[0])

    keep_rows, placements = [], []
    n_ffd_mem = n_exact_mem = ffd_misses = 0
    for row in cand:
        demands = [ShardDemand(all_opts[i][k].tp, all_opts[i][k].compute_tenths,
                               problem.models[i].mem_gb(all_opts[i][k].tp))
                   for i, k in enumerate(row)]
        pool_of = [int(types[i][k]) for i, k in enumerate(row)]
        if sp.check_memory:
            # The paper's check: memory only, first-fit decreasing.
            n_ffd_mem += place_pools(demands, pool_of, pools, method="ffd",
                                     check_compute=False) is not None
            n_exact_mem += place_pools(demands, pool_of, pools, method="exact",
                                       check_compute=False) is not None
        pl = place_pools(demands, pool_of, pools, method="ffd", check_compute=sp.check_compute,
                         check_memory=sp.check_memory)
        if pl is None:
            pl = place_pools(demands, pool_of, pools, method="exact",
                             check_compute=sp.check_compute, check_memory=sp.check_memory)
            ffd_misses += pl is not None
        if pl is not None:
            keep_rows.append(row)
            placements.append(pl)
    if sp.check_memory:
        counts["memory_ffd"] = n_ffd_mem
        counts["memory_exact"] = n_exact_mem
    counts["retained"] = len(keep_rows)
    index = np.array(keep_rows, dtype=np.int32).reshape(-1, problem.num_models)
    return RetainedSetups(tuple(all_opts), index, tuple(placements), counts, tuple(excluded),
                          ffd_misses)
