"""Cost beside quality: the cheapest cluster meeting an SLO and a quality floor, and the
quality-vs-cost Pareto frontier (so gains over the baselines are reported at matched cost).

Cost is the number of GPUs, or, with a :class:`GpuPrices` table the user gives, dollars per
hour: ``sum over GPU types of count x price``. Prices are **user inputs** (assumptions the kit
does not check against any market); the kit ships no price table of its own.

:func:`cheapest_cluster` searches clusters in cost order and stops at the first cost level
where some cluster's plan meets the SLO with predicted score ``>= quality_floor``. Sizes that
cannot reach the floor are skipped on cheap valid upper bounds before any routing LP is solved:

* with unlimited capacity every prompt goes to its best model, so no cluster scores above
  ``U = (1/N) sum_j max_i s_ji`` (:func:`unlimited_capacity_bound`); a floor above ``U`` ends
  the search at once;
* for the ``exact`` method, every retained setup's Lagrangian bound ``D(alpha) + hbar(alpha)``
  (``routerwise.optimize.bounds.setup_bounds``) is valid for any prices alpha; the search uses
  alpha = 0 and the router prices of the plans already solved at cheaper sizes. A size whose
  best setup bound is below the floor is skipped.

**More GPUs do not always help.** The setup space's utilization filter keeps setups with
``G rho_min <= sum_i tp_i rho_i <= G``. With ``rho_min = 0`` a setup that fits G GPUs also fits
G + 1 (the extra GPU idles; latency curves do not depend on G), so the optimum is
non-decreasing in G. With the paper's ``rho_min = 1`` every GPU must be fully allocated, so a
larger cluster forces every setup to use more compute and may admit none, or only worse ones:
the optimum can fall (or become infeasible) as G grows. Nothing here assumes monotonicity:
the search tries every cost level in order, and the frontier marks a row Pareto-optimal only
when no cluster at most as expensive scores at least as well (one of the two strictly).

Mixed clusters (several GPU types, ``Cluster.mixed``) are searched over counts per type within
user bounds (``gpu_bounds``); everything else works on homogeneous clusters.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import RouterWiseError, ValidationError
from ..optimize.bounds import unlimited_capacity_bound
from ..optimize.solution import Solution
from ..problem import Cluster, GPUType, Problem, as_pairs
from .solve import solve

__all__ = ["DEFAULT_MAX_GPUS", "SCORE_ATOL", "TRIAL_STATUSES", "PROVING_METHODS",
           "proves_optimum", "GpuPrices",
           "unlimited_capacity_bound", "cluster_pools", "cluster_cost", "candidate_counts",
           "ClusterTrial", "CheapestCluster", "cheapest_cluster", "pareto_frontier"]

DEFAULT_MAX_GPUS = 16
# A plan "meets" the floor when score >= floor - SCORE_ATOL: the LP's optimality tolerance,
# far below any difference in quality anyone would act on.
SCORE_ATOL = 1e-9
# Methods whose "infeasible" and whose bound are proofs: the exact search, the MILP, its
# decomposition (exact: the cuts remove only unplaceable setups) and "auto" (one of the two
# first). The dual-price method is a heuristic. Everything that says "proven" reads this.
PROVING_METHODS = ("exact", "milp", "decomposition", "auto")
TRIAL_STATUSES = ("meets", "below_floor", "bound_below_floor", "infeasible", "undeployable",
                  "not_tried")


def proves_optimum(method: str) -> bool:
    """Whether ``method``'s optimum, bound and "infeasible" are proofs (:data:`PROVING_METHODS`)."""
    return method in PROVING_METHODS


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


# ----------------------------------------------------------------------------- prices

@dataclass(frozen=True)
class GpuPrices:
    """Price per GPU-hour (USD) of each GPU type: a user input, never a kit fact.

    ``usd_per_hour`` is a mapping ``{gpu type name: $/hour}`` or ``((name, $/hour), ...)``;
    every price must be a positive finite number. ``source`` says where the prices come from
    (a quote, a cloud list price and its date, "illustrative assumption"); it is carried into
    reports so a cost is never read as more than its source.
    """

    usd_per_hour: tuple[tuple[str, float], ...]
    source: str = "user-provided"

    def __post_init__(self):
        raw = self.usd_per_hour
        items = as_pairs(raw, f"GpuPrices needs {{gpu type: $/hour}} or ((type, $/hour), "
                              f"...); got {raw!r}")
        if not items:
            raise ValidationError("GpuPrices is empty: give a $/hour price for every GPU type "
                                  "of the cluster")
        seen: dict[str, float] = {}
        for pair in items:
            if len(pair) != 2:
                raise ValidationError(f"GpuPrices entries are (gpu type, $/hour) pairs; got "
                                      f"{pair!r}")
            name, price = pair
            if not isinstance(name, str) or not name:
                raise ValidationError(f"GpuPrices: a GPU type name must be a non-empty string, "
                                      f"got {name!r}")
            if name in seen:
                raise ValidationError(f"GpuPrices lists {name!r} twice; give one price per type")
            if not (_is_real(price) and math.isfinite(price) and price > 0):
                raise ValidationError(f"GpuPrices[{name!r}] = {price!r}: a price must be a "
                                      f"positive finite number of $/hour")
            seen[name] = float(price)
        object.__setattr__(self, "usd_per_hour", tuple(sorted(seen.items())))
        if not isinstance(self.source, str):
            raise ValidationError(f"GpuPrices.source must be a string, got {self.source!r}")

    @property
    def gpu_types(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.usd_per_hour)

    def price(self, gpu_type: str) -> float:
        """$/hour of one GPU of ``gpu_type``; a ValidationError naming the table's types if absent."""
        for n, p in self.usd_per_hour:
            if n == gpu_type:
                return p
        raise ValidationError(f"the price table has no price for GPU type {gpu_type!r}; it "
                              f"prices {list(self.gpu_types)}. Add a $/hour price for "
                              f"{gpu_type!r}")

    def check_covers(self, gpu_types: Iterable[str]) -> None:
        """Raise (naming the first missing type and the table's types) unless every type is priced."""
        for t in gpu_types:
            self.price(t)


def cluster_pools(cluster: Cluster) -> tuple[tuple[GPUType, int], ...]:
    """``cluster.pools`` (GPU type, count) per type; one pool for a homogeneous cluster."""
    pools = getattr(cluster, "pools", None)
    return tuple(pools) if pools is not None else ((cluster.gpu, cluster.num_gpus),)


def _is_mixed(cluster: Cluster) -> bool:
    return bool(getattr(cluster, "is_mixed", False))


def _pool_cost(pools, prices: GpuPrices | None) -> float:
    if prices is None:
        return float(sum(n for _, n in pools))
    return float(sum(n * prices.price(t.name) for t, n in pools))


def cluster_cost(cluster: Cluster, prices: GpuPrices | None = None) -> float:
    """Number of GPUs (no prices) or $/hour (sum over types of count x price)."""
    return _pool_cost(cluster_pools(cluster), prices)



# ----------------------------------------------------------------------------- candidates

def candidate_counts(gpu_types: Sequence[GPUType], *, max_gpus: int = DEFAULT_MAX_GPUS,
                     min_gpus: int = 1, gpu_bounds: Mapping[str, tuple[int, int]] | None = None,
                     prices: GpuPrices | None = None):
    """Every cluster composition to try, cheapest first.

    Returns ``[(pools, cost), ...]`` where ``pools`` is ``((GPUType, count), ...)`` with zero
    counts left out, over all counts with ``min_gpus <= total <= max_gpus`` and each type's
    count within ``gpu_bounds[type] = (lo, hi)`` (default ``(0, max_gpus)``). Sorted by cost,
    then total GPUs, then counts (so ties are broken the same way on every run).
    """
    types = tuple(gpu_types)
    names = [t.name for t in types]
    if not types or len(set(names)) != len(names):
        raise ValidationError(f"candidate_counts needs distinct GPU types, got {names}")
    for v, what in ((max_gpus, "max_gpus"), (min_gpus, "min_gpus")):
        if not (_is_real(v) and float(v) == int(v) and v >= 1):
            raise ValidationError(f"{what} must be an integer >= 1, got {v!r}")
    max_gpus, min_gpus = int(max_gpus), int(min_gpus)
    if min_gpus > max_gpus:
        raise ValidationError(f"min_gpus = {min_gpus} exceeds max_gpus = {max_gpus}")
    bounds = dict(gpu_bounds or {})
    unknown = sorted(set(bounds) - set(names))
    if unknown:
        raise ValidationError(f"gpu_bounds names GPU type(s) {unknown} that the cluster does not "
                              f"have; its types are {names}")
    ranges = []
    for n in names:
        lo, hi = bounds.get(n, (0, max_gpus))
        if not all(_is_real(v) and float(v) == int(v) for v in (lo, hi)) or not 0 <= lo <= hi:
            raise ValidationError(f"gpu_bounds[{n!r}] = {(lo, hi)!r}: give integer counts "
                                  f"0 <= lo <= hi")
        ranges.append(range(int(lo), min(int(hi), max_gpus) + 1))
    if prices is not None:
        prices.check_covers(names)
    out = []
    for counts in itertools.product(*ranges):
        if not min_gpus <= sum(counts) <= max_gpus:
            continue
        pools = tuple((t, c) for t, c in zip(types, counts) if c > 0)
        out.append((pools, _pool_cost(pools, prices), counts))
    out.sort(key=lambda r: (r[1], sum(r[2]), r[2]))
    return [(pools, cost) for pools, cost, _ in out]


def _build_cluster(template: Cluster, pools) -> Cluster:
    """A cluster of ``pools``: homogeneous like ``template``, or ``Cluster.mixed`` when the
    problem's cluster is mixed (a single remaining type falls back to a homogeneous cluster
    only if ``Cluster.mixed`` refuses one pool)."""
    if not _is_mixed(template):
        (gpu, n), = pools
        return Cluster(gpu, n)
    try:
        return Cluster.mixed(list(pools))
    except ValidationError:
        if len(pools) != 1:
            raise
        (gpu, n), = pools
        return Cluster(gpu, n)


def _on_cluster(problem: Problem, cluster: Cluster) -> Problem:
    """``problem`` on ``cluster``; homogeneous clusters go through ``with_cluster(int)``, which
    every version of Problem accepts, mixed ones through ``with_cluster(cluster)``."""
    if _is_mixed(problem.cluster) or _is_mixed(cluster):
        return problem.with_cluster(cluster)
    if cluster.gpu != problem.cluster.gpu:      # another GPU type: a new, re-validated problem
        return replace(problem, cluster=cluster)
    return problem.with_cluster(cluster.num_gpus)


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class ClusterTrial:
    """One cluster tried: its cost, what happened, the plan's score and the proven bound.

    ``status``: ``meets`` (plan meets the SLO and the floor), ``below_floor`` (best plan found
    scores under the floor), ``bound_below_floor`` (skipped: a valid upper bound is under the
    floor), ``infeasible`` (no plan meets the SLO), ``undeployable`` (a model cannot be placed
    at all, e.g. its shard needs more memory than the GPUs have), ``not_tried`` (a cheaper
    cluster met both already). ``proven``: whether the status is a proof (a solve by a method
    of :data:`PROVING_METHODS` that ended before its time limit, or a bound) rather than a
    heuristic's result.
    """

    cluster: Cluster
    cost: float
    status: str
    score: float = float("nan")
    bound: float | None = None
    latency_ms: float = float("nan")
    proven: bool = True
    binding: str = ""
    message: str = ""

    @property
    def num_gpus(self) -> int:
        return self.cluster.num_gpus

    def row(self) -> dict:
        pools = cluster_pools(self.cluster)
        return {"num_gpus": self.num_gpus,
                "gpus": " + ".join(f"{n} x {t.name}" for t, n in pools),
                "cost": self.cost, "status": self.status, "score": self.score,
                "bound": self.bound, "latency_ms": self.latency_ms, "proven": self.proven,
                "binding": self.binding, "message": self.message}


@dataclass(frozen=True)
class CheapestCluster:
    """What :func:`cheapest_cluster` found.

    ``cluster``, ``problem`` (the input problem on that cluster) and ``solution`` are None
    when no cluster in range meets both targets; ``reason`` then says why and ``binding``
    names the limit: ``quality_ceiling`` (floor above the unlimited-capacity bound),
    ``quality`` (plans meet the SLO but score below the floor), ``latency`` / ``capacity`` /
    ``setup_space`` (no plan meets the SLO; the solver's diagnosis), ``memory`` (no cluster
    in range can hold every model). ``cost_unit`` is ``"gpus"`` or ``"usd_per_hour"``.
    ``proven``: every cheaper cluster's rejection is a proof (exact solves or bounds).
    """

    cluster: Cluster | None
    problem: Problem | None
    solution: Solution | None
    cost: float | None
    cost_unit: str
    quality_floor: float
    unlimited_bound: float
    trials: tuple[ClusterTrial, ...]
    reason: str = ""
    binding: str = ""
    proven: bool = True
    price_source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def found(self) -> bool:
        return self.cluster is not None

    def table(self) -> pd.DataFrame:
        """Every cluster tried, cheapest first, one row each."""
        return pd.DataFrame([t.row() for t in self.trials])


# ----------------------------------------------------------------------------- search

def _check_floor(quality_floor) -> float:
    if not (_is_real(quality_floor) and math.isfinite(quality_floor)
            and 0.0 <= quality_floor <= 1.0):
        raise ValidationError(f"quality_floor must be a score in [0, 1] (scores are in [0, 1]), "
                              f"got {quality_floor!r}")
    return float(quality_floor)


def _cheap_bound(problem: Problem, alphas: list[np.ndarray]):
    """(context, bound): the largest over retained setups of min over ``alphas`` of each
    setup's Lagrangian bound; -inf when no retained setup can meet the SLO."""
    from ..optimize.bounds import SearchContext, setup_bounds
    ctx = SearchContext.build(problem)
    if ctx.setups.shape[0] == 0:
        return ctx, -np.inf
    ub = np.full(ctx.setups.shape[0], np.inf)
    for a in alphas:
        ub = np.minimum(ub, setup_bounds(ctx, np.asarray(a, dtype=float)))
    return ctx, float(ub.max())


def _trial_from_solution(cluster, cost, sol: Solution, floor: float, method: str) -> ClusterTrial:
    proving = proves_optimum(method)
    if not sol.feasible:
        inf = sol.infeasibility
        binding = inf.binding if inf is not None else "latency"
        msg = inf.message if inf is not None else "no plan meets the SLO"
        return ClusterTrial(cluster, cost, "infeasible", proven=proving, binding=binding,
                            message=msg, bound=sol.bound)
    if np.isnan(sol.score):      # a time limit without any plan
        return ClusterTrial(cluster, cost, "below_floor", bound=sol.bound, proven=False,
                            binding="time_limit", message=f"{sol.solver}: no plan within the "
                                                          f"time limit")
    if sol.score >= floor - SCORE_ATOL:
        return ClusterTrial(cluster, cost, "meets", sol.score, sol.bound, sol.latency_ms, True)
    proven = sol.bound is not None and sol.bound < floor - SCORE_ATOL
    return ClusterTrial(cluster, cost, "below_floor", sol.score, sol.bound, sol.latency_ms,
                        proven, "quality",
                        f"best plan scores {sol.score:.4f} < floor {floor:g}"
                        + ("" if proven else " (not proven optimal)"))


def cheapest_cluster(problem: Problem, *, quality_floor: float, prices: GpuPrices | None = None,
                     max_gpus: int = DEFAULT_MAX_GPUS, min_gpus: int = 1,
                     gpu_bounds: Mapping[str, tuple[int, int]] | None = None,
                     method: str = "exact", **solve_options) -> CheapestCluster:
    """The cheapest cluster whose plan meets ``problem``'s SLO with score ``>= quality_floor``.

    Cheapest means fewest GPUs, or lowest $/hour when ``prices`` is given (every GPU type of
    the cluster must be priced). Clusters of ``min_gpus..max_gpus`` GPUs of the problem's GPU
    type are tried in cost order (for a mixed cluster: every count per type within
    ``gpu_bounds``, default ``(0, max_gpus)`` each); the search stops at the first cost level
    where a cluster meets both targets, and among clusters of that cost takes the best score.
    Sizes that cannot reach the floor are skipped on upper bounds (see the module docstring).
    Plans come from :func:`routerwise.solve` with ``method`` and ``solve_options``; the answer
    is the proven cheapest when ``method`` proves its optimum (:func:`proves_optimum`: exact,
    milp, decomposition, auto) and no solve stops at a time limit (``result.proven``).

    Never raises for a target out of reach: the result then has no cluster and says in
    ``reason`` which limit binds. Bad arguments (floor outside [0, 1], a price table without
    a cluster GPU type, unknown ``gpu_bounds`` types) raise :class:`ValidationError`.
    """
    floor = _check_floor(quality_floor)
    if not isinstance(problem, Problem):
        raise ValidationError(f"cheapest_cluster() needs a routerwise.Problem, got "
                              f"{type(problem).__name__}")
    types = [t for t, _ in cluster_pools(problem.cluster)]
    cands = candidate_counts(types, max_gpus=max_gpus, min_gpus=min_gpus, gpu_bounds=gpu_bounds,
                             prices=prices)
    unit = "gpus" if prices is None else "usd_per_hour"
    U = unlimited_capacity_bound(problem)
    common = dict(cost_unit=unit, quality_floor=floor, unlimited_bound=U,
                  price_source="" if prices is None else prices.source)
    if not cands:
        return CheapestCluster(None, None, None, None, trials=(), binding="range",
                               reason="no cluster composition lies within the bounds given",
                               **common)
    if U < floor - SCORE_ATOL:
        trials = tuple(ClusterTrial(_build_cluster(problem.cluster, pools), cost,
                                    "bound_below_floor", bound=U, binding="quality_ceiling",
                                    message="floor above the unlimited-capacity bound")
                       for pools, cost in cands)
        return CheapestCluster(
            None, None, None, None, trials=trials, binding="quality_ceiling",
            reason=(f"quality floor {floor:g} is above {U:.4f}, the score with unlimited "
                    f"capacity (every prompt on its best model): no cluster can reach it; "
                    f"lower the floor or add better models"), **common)

    alphas = [np.zeros(problem.num_models)]
    trials: list[ClusterTrial] = []
    met: list[tuple[ClusterTrial, Problem, Solution]] = []
    k = 0
    while k < len(cands):
        # one cost level: every composition of (numerically) the same cost
        level_cost = cands[k][1]
        j = k
        while j < len(cands) and math.isclose(cands[j][1], level_cost, rel_tol=1e-12):
            j += 1
        for pools, cost in cands[k:j]:
            cluster = _build_cluster(problem.cluster, pools)
            try:
                q = _on_cluster(problem, cluster)
            except ValidationError as e:
                trials.append(ClusterTrial(cluster, cost, "undeployable", binding="memory",
                                           message=str(e)))
                continue
            options = dict(solve_options)
            if method == "exact":
                ctx, ub = _cheap_bound(q, alphas)
                if ub == -np.inf:        # no setup can meet the SLO: the solver says why
                    sol = solve(q, method, context=ctx, **options)
                    trials.append(_trial_from_solution(cluster, cost, sol, floor, method))
                    continue
                if ub < floor - SCORE_ATOL:
                    trials.append(ClusterTrial(cluster, cost, "bound_below_floor", bound=ub,
                                               binding="quality",
                                               message=f"upper bound {ub:.4f} < floor {floor:g}"))
                    continue
                options.setdefault("context", ctx)
            sol = solve(q, method, **options)
            t = _trial_from_solution(cluster, cost, sol, floor, method)
            trials.append(t)
            if sol.feasible and sol.prices is not None and np.all(np.isfinite(sol.prices)):
                alphas.append(np.asarray(sol.prices, dtype=float))
            if t.status == "meets":
                met.append((t, q, sol))
        if met:
            best_t, q, sol = max(met, key=lambda r: r[0].score)
            rest = tuple(ClusterTrial(_build_cluster(problem.cluster, pools), cost, "not_tried",
                                      message="a cheaper cluster meets both targets")
                         for pools, cost in cands[j:])
            proven = all(t.proven for t in trials if t.cost < level_cost
                         and not math.isclose(t.cost, level_cost, rel_tol=1e-12))
            return CheapestCluster(best_t.cluster, q, sol, best_t.cost, trials=tuple(trials) + rest,
                                   proven=proven, notes=_notes(problem, method), **common)
        k = j
    binding, reason = _why_none(trials, floor, max_gpus)
    return CheapestCluster(None, None, None, None, trials=tuple(trials), binding=binding,
                           reason=reason, proven=all(t.proven for t in trials),
                           notes=_notes(problem, method), **common)


def _notes(problem: Problem, method: str) -> tuple[str, ...]:
    out = []
    if problem.space.rho_min > 0:
        out.append(f"rho_min = {problem.space.rho_min:g}: every setup must allocate at least "
                   f"{problem.space.rho_min:g} x G GPUs of compute, so more GPUs can lower the "
                   f"optimum; no size is judged from its neighbours (each one before the "
                   f"cheapest was solved or bounded)")
    if not proves_optimum(method):
        out.append(f"method {method!r} is a heuristic: a cluster it rejects might still meet "
                   f"the targets with an exact method")
    return tuple(out)


def _why_none(trials: Sequence[ClusterTrial], floor: float, max_gpus: int) -> tuple[str, str]:
    feasible = [t for t in trials if t.status in ("below_floor", "meets")]
    bounded = [t for t in trials if t.status == "bound_below_floor"]
    if feasible or bounded:
        best = max(feasible, key=lambda t: t.score) if feasible else None
        ub = max([t.bound for t in feasible + bounded if t.bound is not None] or [float("nan")])
        where = (f"; the best plan scores {best.score:.4f} on {best.num_gpus} GPUs"
                 if best else "")
        return "quality", (f"plans meet the SLO but none reaches the quality floor {floor:g} "
                           f"within {max_gpus} GPUs{where} (best proven bound {ub:.4f}); lower "
                           f"the floor, raise max_gpus, or relax the SLO")
    infeasible = [t for t in trials if t.status == "infeasible"]
    if infeasible:
        last = infeasible[-1]
        return last.binding or "latency", (
            f"no cluster up to {max_gpus} GPUs has a plan meeting the SLO; on the largest "
            f"deployable one ({last.num_gpus} GPUs): {last.message}")
    if trials and all(t.status == "undeployable" for t in trials):
        return "memory", (f"no cluster up to {max_gpus} GPUs can hold every model: "
                          f"{trials[-1].message}")
    return "range", "no cluster was tried"


# ----------------------------------------------------------------------------- frontier

def _frontier_cluster(problem: Problem, item) -> Cluster:
    if isinstance(item, Cluster):
        return item
    if not (_is_real(item) and float(item) == int(item) and item >= 1):
        raise ValidationError(f"pareto_frontier: cluster sizes must be integers >= 1 (or "
                              f"Cluster objects), got {item!r}")
    if _is_mixed(problem.cluster):
        raise ValidationError("pareto_frontier on a mixed cluster needs Cluster objects (a GPU "
                              "count does not say which types); build them with Cluster.mixed")
    return Cluster(problem.cluster.gpu, int(item))


def pareto_frontier(problem: Problem, num_gpus: Iterable = range(1, 9), *, baselines: bool = True,
                    prices: GpuPrices | None = None, method: str = "exact",
                    progress: bool = False, **solve_options) -> pd.DataFrame:
    """The quality-vs-cost frontier: one row per cluster size (or given Cluster), cheapest first
    (``progress``: a bar over the sizes).

    Columns: ``num_gpus``, ``cost`` (GPUs, or $/hour with ``prices``), ``status`` (the
    solver's, or ``undeployable`` when a model cannot be placed at that size), ``score``,
    ``bound`` and ``gap`` (proven, for ``exact``/``milp``), ``latency_ms``, ``setup``,
    ``binding`` and ``message`` (why no plan); ``pareto_optimal``: feasible and no other
    feasible row costs at most as much and scores at least as much (one strictly), i.e. the
    row is on the frontier; ``best_cheaper_score``: the best score of any strictly cheaper row.
    With ``baselines`` (``routerwise.optimize.baselines.run_baselines``) each baseline ``b``
    adds ``{b}_status`` (the solver's; ``undeployable`` with the row; ``not_run`` where
    run_baselines leaves ``b`` out), ``{b}_score`` and ``gain_vs_{b}`` (optimum minus
    baseline score at the same cluster, i.e. at matched cost). The frontier is computed from every row as given,
    never assuming more GPUs help (see the module docstring on ``rho_min``).
    """
    if not isinstance(problem, Problem):
        raise ValidationError(f"pareto_frontier() needs a routerwise.Problem, got "
                              f"{type(problem).__name__}")
    clusters = [_frontier_cluster(problem, g) for g in num_gpus]
    if not clusters:
        raise ValidationError("pareto_frontier needs at least one cluster size")
    if prices is not None:
        for c in clusters:
            prices.check_covers(t.name for t, _ in cluster_pools(c))
    from ..optimize.baselines import BASELINES, run_baselines
    rows = []
    from ..settings import progress_bar
    for c in progress_bar(clusters, desc="cluster sizes", unit="size", disable=not progress):
        row = {"num_gpus": c.num_gpus,
               "gpus": " + ".join(f"{n} x {t.name}" for t, n in cluster_pools(c)),
               "cost": cluster_cost(c, prices), "status": "undeployable", "score": np.nan,
               "bound": np.nan, "gap": np.nan, "latency_ms": np.nan, "setup": "",
               "binding": "", "message": ""}
        if baselines:
            for b in BASELINES:
                row.update({f"{b}_status": "undeployable", f"{b}_score": np.nan,
                            f"gain_vs_{b}": np.nan})
        try:
            q = _on_cluster(problem, c)
        except ValidationError as e:
            row.update(binding="memory", message=str(e))
            rows.append(row)
            continue
        sol = solve(q, method, **solve_options)
        row.update(status=sol.status, score=sol.score if sol.feasible else np.nan,
                   bound=np.nan if sol.bound is None else sol.bound,
                   gap=np.nan if sol.gap is None else sol.gap,
                   latency_ms=sol.latency_ms if sol.feasible else np.nan,
                   setup=sol.setup.label() if sol.feasible and sol.setup is not None else "")
        if not sol.feasible and sol.infeasibility is not None:
            row.update(binding=sol.infeasibility.binding, message=sol.infeasibility.message)
        if baselines:
            for b in BASELINES:           # a baseline run_baselines leaves out on this cluster
                row[f"{b}_status"] = "not_run"
            try:
                base = run_baselines(q)
            except RouterWiseError as e:   # a baseline this cluster cannot express
                base = {}
                for b in BASELINES:
                    row[f"{b}_status"] = f"error: {e}"
            for b, bs in base.items():
                row[f"{b}_status"] = bs.status
                row[f"{b}_score"] = bs.score if bs.feasible else np.nan
                row[f"gain_vs_{b}"] = (row["score"] - bs.score
                                       if sol.feasible and bs.feasible else np.nan)
        rows.append(row)
    df = pd.DataFrame(rows).sort_values(["cost", "num_gpus"], kind="stable").reset_index(drop=True)
    cost = df["cost"].to_numpy(float)
    score = df["score"].to_numpy(float)
    ok = ~np.isnan(score)
    dominated = np.zeros(len(df), dtype=bool)
    best_cheaper = np.full(len(df), np.nan)
    for r in range(len(df)):
        cheaper = ok & (cost < cost[r]) & ~np.isclose(cost, cost[r], rtol=1e-12, atol=0)
        if cheaper.any():
            best_cheaper[r] = score[cheaper].max()
        if not ok[r]:
            continue
        others = ok & (np.arange(len(df)) != r)
        no_dearer = others & ((cost <= cost[r]) | np.isclose(cost, cost[r], rtol=1e-12, atol=0))
        at_least = score >= score[r] - SCORE_ATOL
        strictly = (cost < cost[r]) & ~np.isclose(cost, cost[r], rtol=1e-12, atol=0) | \
            (score > score[r] + SCORE_ATOL)
        dominated[r] = bool(np.any(no_dearer & at_least & strictly))
    df.insert(df.columns.get_loc("setup") + 1, "pareto_optimal", ok & ~dominated)
    df.insert(df.columns.get_loc("pareto_optimal") + 1, "best_cheaper_score", best_cheaper)
    df.attrs["cost_unit"] = "gpus" if prices is None else "usd_per_hour"
    df.attrs["price_source"] = "" if prices is None else prices.source
    return df
