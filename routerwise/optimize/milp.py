r"""An exact MILP of the whole joint problem: setup choice, shard placement, routing, latency.

Sets
    i in I              models
    k in K_i            model i's usable options (tp_k, r_k, t_k): tp degree, compute share in
                        tenths, GPU type (one type on a homogeneous cluster)
    g in {0..G-1}       GPUs, numbered pool by pool; T: GPU types, G_t GPUs of type t,
                        Gam_t the GPUs of type t (all G GPUs on a homogeneous cluster)
    j in J              groups of prompts with identical score rows, n_j prompts each, N = sum n_j
    p in P_ik           pieces of option (i, k)'s latency-mass envelope

Parameters
    s_ji in [0, 1]      predicted score of model i on group j
    lambda [req/s]      arrival rate;   tau [ms]: SLO;   rho_min: utilization floor
    m_ik [GB]           memory of one shard of model i at tp_k;   Mem_g [GB]: memory of GPU g
    wtop_ik             largest routable fraction: min(1, max profiled load / lambda), and where
                        w l_ik(lambda w) reaches tau (aggregate "mean") or l_ik reaches tau ("max")
    (sigma_ikp, c_ikp)  slope and intercept of secant piece p of phi_ik(w) = w l_ik(lambda w)
                        (``routerwise.optimize.latency.mass_secants``: over-estimates phi by <= eps ms)

Variables
    x_ik in {0,1}       model i runs option k
    y_ikg in {0,1}      a shard of model i (option k) is on GPU g, for g in Gam_{t_k} only
    w_ik >= 0           fraction of traffic to model i under option k (0 unless x_ik = 1)
    t_ik >= 0           latency mass of model i under option k [ms]
    z_ji >= 0           prompts of group j routed to model i

Objective
    max  (1/N) sum_j sum_i s_ji z_ji
    (the LP carries N times it, sum_j sum_i s_ji z_ji: coefficients in [0, 1], a value above 1,
    so HiGHS's relative gap, relative to max(1, |objective|), is a relative one; ``run_milp``
    divides the objective and the bound by N)

Constraints (names in the LP file in brackets)
    (1)  [one_setup[i]]          sum_k x_ik = 1
    (2)  [shards[i,k]]           sum_{g in Gam_{t_k}} y_ikg = tp_k x_ik
    (3)  [anti_affinity[i,g]]    sum_k y_ikg <= 1                  (TP ranks on distinct GPUs)
    (4)  [gpu_compute[g]]        sum_ik r_k y_ikg <= 10            (if check_compute)
    (5)  [gpu_mem[g]]            sum_ik m_ik y_ikg <= Mem_g        (if check_memory)
    (6)  [utilization_lo/hi]     10 G rho_min <= sum_ik tp_k r_k x_ik <= 10 G
    (6') [utilization_hi[t]]     sum_{ik: t_k = t} tp_k r_k x_ik <= 10 G_t   (mixed clusters)
    (7)  [route_simplex]         sum_ik w_ik = 1
    (8)  [load_range[i,k]]       w_ik <= wtop_ik x_ik
    (9)  [mass[i,k,p]]           t_ik >= sigma_ikp w_ik + c_ikp x_ik          (convex envelope)
    (9') [mass_w/mass_t/fill...] incremental piecewise-linear form with binaries, used instead of
                                 (9) when the envelope of (i,k) is not convex
    (10) [slo]                   sum_ik t_ik <= tau                 (aggregate "mean" only)
    (11) [assign[j]]             sum_i z_ji = n_j
    (12) [count[i]]              sum_j z_ji = N sum_k w_ik
    (13) [gpu_order[g]]          load(g) >= load(g+1)   for g, g+1 of one type (symmetry
                                 breaking: GPUs of a type are identical, so placements can be
                                 sorted by compute, or memory, in use within each pool)

Aggregate form (``placement="aggregate"``, the master of ``routerwise.optimize.decomposition``):
no y and no (2)-(5), (13); instead valid aggregate rows implied by them (:func:`aggregate_rows`):
    (A1) [agg_mem]               sum_ik tp_k m_ik x_ik <= G Mem      (if check_memory; (5) summed)
    (A2) [agg_compute_dff[e]]    sum_ik tp_k f_e(r_k / 10) x_ik <= G (if check_compute)
    (A3) [agg_mem_dff[e]]        sum_ik tp_k f_e(m_ik / Mem) x_ik <= G  (if check_memory)
    (A4) [agg_compute_lonely]    sum_ik tp_k r'_ik x_ik <= 10 G      (if check_compute)
where r'_ik = 10 for a "lonely" option (a shard that shares its GPU with no other model's
shard, even the smallest: memory or compute would overflow) and r_k otherwise; lonely options
also weigh a whole GPU (1) in (A2)/(A3). (A4) matters because rho_min = 1 asks for every
GPU's compute to be used: a GPU filled by a lonely shard's memory wastes 10 - r_k tenths.
f_e is the dual-feasible function of bin packing with threshold e in (0, 1/2]:
f_e(a) = 1 if a > 1 - e, a if e <= a <= 1 - e, 0 if a < e (Fekete and Schepers 2001); per GPU
sum f_e(a) <= 1 whenever sum a <= 1, so (A2)/(A3) sum valid per-GPU rows. e = 1/2 reads
"shards with more than half a GPU's compute (memory) cannot share a GPU". The aggregate form is
a relaxation of the placement rows: its optimum is an upper bound on the full MILP's. On a
cluster of several GPU types the rows hold per pool: sums over the options on that type, with
that pool's G and Mem, names suffixed with the type (``agg_mem[H100-80GB]``).

(9) is the perspective of the secant lines: with x_ik = 0 it reads t_ik >= 0 (w_ik = 0 by (8));
with x_ik = 1 it is t_ik >= max_p line_p(w_ik) = phi_hat(w_ik), exact for a convex envelope.
Because phi_hat >= phi (within eps), every MILP-feasible plan meets tau exactly; the MILP optimum
lies between the true optima at tau - M eps and tau. With ``lazy_envelopes`` (the
decomposition's master) only a few pieces p of each (9) start in the model and the rest are
added when a solution violates them (:func:`add_violated_mass_rows`); the model with fewer
rows is a relaxation, and a solution that violates none of them solves the full one.
Constraints (2)-(5), (13) are omitted when neither deployability check is on (then any
tp <= G places trivially).

Build, solve, read out are separate: :func:`build_milp` is pure and returns the PuLP problem with
a variable index; :func:`solve_milp` runs a named solver (HiGHS or CBC) with a time limit and
reads the proven bound; the extracted plan is re-evaluated from scratch and verified.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SolverUnavailable, ValidationError
from ..io import atomic_path
from ..problem import Problem, SystemSetup
from .assignment import central_prices, group_scores, score_of_fractions
from .bounds import SearchContext, capped_bound
from .diagnosis import infeasible_solution
from .fixed_setup import evaluate_plan, mass_tol_ms, option_limits
from .highs import Deadline, consume_banner, pulp_highs
from .setup_space import model_options
from .solution import Solution

__all__ = ["SOLVERS", "PLACEMENTS", "DFF_THRESHOLDS", "LAZY_START_PIECES", "MASS_ROW_TOL_MS",
           "MilpModel", "MilpRun", "aggregate_rows", "add_violated_mass_rows", "build_milp",
           "complete_mass_rows",
           "write_lp", "run_milp", "solve_milp"]

SOLVERS = ("HiGHS", "CBC")
PLACEMENTS = ("per_gpu", "aggregate")
DFF_THRESHOLDS = (0.5, 0.4, 0.3, 0.2)   # e of the aggregate rows (A2)/(A3)
LAZY_START_PIECES = 8     # rows (9) per convex envelope a lazy build starts with
MASS_ROW_TOL_MS = 1e-7    # a missing row (9) violated by more than this is added [ms]


@dataclass
class MilpModel:
    """The PuLP problem and the index of its variables (keyed by the symbols above)."""

    lp: object
    options: list            # options[i] = tuple of ModelSetup
    x: dict                  # (i, k) -> var
    y: dict                  # (i, k, g) -> var
    w: dict                  # (i, k) -> var
    t: dict                  # (i, k) -> var
    z: dict                  # (j, i) -> var
    groups: object
    nonconvex: list          # (i, k) built with binaries (9')
    secants: dict            # (i, k) -> MassSecants of a convex envelope (9), all its pieces
    mass_rows: dict          # (i, k) -> the pieces p whose row (9) is in the model
    objective_scale: float   # the LP's objective is N times the mean score (see build_milp)


def _pulp():
    try:
        import pulp
    except ImportError as e:  # pragma: no cover
        raise SolverUnavailable("PuLP is not installed: pip install pulp") from e
    return pulp


def _dff(a: float, e: float) -> float:
    """Dual-feasible function f_e of bin packing (see (A2)), for a share a of one GPU."""
    if a > 1.0 - e + 1e-12:
        return 1.0
    return a if a >= e - 1e-12 else 0.0


def aggregate_rows(problem: Problem, options, x: dict) -> list:
    """The aggregate rows (A1)-(A4), one set per GPU pool, as (PuLP expression, name) pairs.

    Each pool's rows sum over the options placed on its GPU type, with that pool's G and Mem
    (a homogeneous cluster is one pool; its row names carry no type).
    """
    cl = problem.cluster
    rows = []
    for gpu, count in cl.pools:
        ik = [(i, k, o, problem.models[i].mem_gb(o.tp)) for i, opts in enumerate(options)
              for k, o in enumerate(opts) if not cl.is_mixed or o.gpu == gpu.name]
        suffix = f"[{gpu.name}]" if cl.is_mixed else ""
        rows += _pool_rows(problem, ik, count, gpu.mem_gb, x, suffix)
    return rows


def _pool_rows(problem: Problem, ik: list, G: int, mem: float, x: dict, suffix: str) -> list:
    pulp = _pulp()
    sp = problem.space
    lonely = _lonely(problem, ik, mem)
    rows = []
    if not ik:
        return rows
    if sp.check_memory:                                                            # (A1)
        rows.append((pulp.lpSum(o.tp * m * x[i, k] for i, k, o, m in ik) <= G * mem,
                     f"agg_mem{suffix}"))
    if sp.check_compute:                                                           # (A4)
        rows.append((pulp.lpSum(o.tp * (10 if lonely[i, k] else o.compute_tenths) * x[i, k]
                                for i, k, o, _ in ik) <= 10 * G, f"agg_compute_lonely{suffix}"))
    for e in DFF_THRESHOLDS:
        if sp.check_compute:                                                       # (A2)
            terms = [(o.tp * (1.0 if lonely[i, k] else _dff(o.compute_tenths / 10, e)), i, k)
                     for i, k, o, _ in ik]
            rows.append((pulp.lpSum(c * x[i, k] for c, i, k in terms if c > 0) <= G,
                         f"agg_compute_dff[{e:g}]{suffix}"))
        if sp.check_memory:                                                        # (A3)
            terms = [(o.tp * (1.0 if lonely[i, k] else _dff(m / mem, e)), i, k)
                     for i, k, o, m in ik]
            rows.append((pulp.lpSum(c * x[i, k] for c, i, k in terms if c > 0) <= G,
                         f"agg_mem_dff[{e:g}]{suffix}"))
    return rows


def _lonely(problem: Problem, ik: list, mem: float) -> dict:
    """(i, k) -> True when a shard of option k of model i can share its GPU with no other
    model's shard on the same GPU type: with the smallest such shard of any other model it
    would exceed the GPU's memory (check_memory) or compute (check_compute)."""
    sp = problem.space
    min_m: dict[int, float] = {}
    min_r: dict[int, int] = {}
    for i, _, o, m in ik:
        min_m[i] = min(min_m.get(i, np.inf), m)
        min_r[i] = min(min_r.get(i, 10**9), o.compute_tenths)
    out = {}
    for i, k, o, m in ik:
        other_m = min((v for j, v in min_m.items() if j != i), default=np.inf)
        other_r = min((v for j, v in min_r.items() if j != i), default=10**9)
        out[i, k] = bool((sp.check_memory and m + other_m > mem + 1e-9)
                         or (sp.check_compute and o.compute_tenths + other_r > 10))
    return out


def build_milp(problem: Problem, *, tol_ms: float | None = None,
               symmetry_breaking: bool = True, fix_setup: SystemSetup | None = None,
               placement: str = "per_gpu", lazy_envelopes: bool = False) -> MilpModel:
    """Build the MILP above for ``problem`` (pure: solves nothing).

    ``fix_setup`` fixes x to one system setup (its (tp, rho) per model), leaving placement and
    routing free: the MILP then solves the routing problem of that setup. ``placement``:
    ``"per_gpu"`` (default) places every shard with y and rows (2)-(5), (13); ``"aggregate"``
    drops y for the aggregate rows (A1)-(A4), a relaxation whose chosen setup still has to be
    placed (``routerwise.optimize.decomposition``). ``lazy_envelopes``: a convex envelope
    starts with :data:`LAZY_START_PIECES` of its rows (9) (first, last, evenly spaced between);
    :func:`add_violated_mass_rows` adds the others when a solution violates them. Fewer rows
    relax the model (its bound stays valid); a solution that violates none of the missing rows
    is a solution of the full model, so a loop that adds them until none is violated ends at
    the full model's optimum.
    """
    pulp = _pulp()
    if placement not in PLACEMENTS:
        raise ValidationError(f"unknown placement form {placement!r}; choose one of {PLACEMENTS}")
    sp, cl = problem.space, problem.cluster
    G = cl.num_gpus
    mean = problem.slo.aggregate == "mean"
    groups = group_scores(problem.workload.scores)
    J, M = groups.scores.shape
    N = groups.num_prompts
    options = [model_options(problem, i)[0] for i in range(M)]
    lp = pulp.LpProblem(f"routerwise_{problem.name or 'problem'}".replace("-", "_"),
                        pulp.LpMaximize)
    x, y, w, t, z = {}, {}, {}, {}, {}
    place = (sp.check_memory or sp.check_compute) and placement == "per_gpu"
    limits = {}
    for i, opts in enumerate(options):
        for k, o in enumerate(opts):
            x[i, k] = lp.add_variable(f"x[{i},{k}]", cat="Binary")
            w[i, k] = lp.add_variable(f"w[{i},{k}]", lowBound=0)
            if mean:
                t[i, k] = lp.add_variable(f"t[{i},{k}]", lowBound=0)
            if place:
                for g in cl.gpu_indices(o.gpu if cl.is_mixed else ""):
                    y[i, k, g] = lp.add_variable(f"y[{i},{k},{g}]", cat="Binary")
            limits[i, k] = option_limits(problem.curve(i, o), problem, tol_ms)
    for j in range(J):
        for i in range(M):
            z[j, i] = lp.add_variable(f"z[{j},{i}]", lowBound=0)

    # The LP's objective is the total score of the N prompts (the mean times N): coefficients
    # in [0, 1] on z in prompts, and a value above 1, so HiGHS's relative gap (relative to
    # max(1, |objective|)) is relative. run_milp divides by N.
    lp += pulp.lpSum(float(groups.scores[j, i]) * z[j, i] for j in range(J) for i in range(M))

    for i, opts in enumerate(options):                                             # (1)
        lp += pulp.lpSum(x[i, k] for k in range(len(opts))) == 1, f"one_setup[{i}]"
        if fix_setup is not None:
            want = fix_setup.per_model[i]
            ks = [k for k, o in enumerate(opts)
                  if (o.tp, o.compute_tenths, o.gpu) == (want.tp, want.compute_tenths, want.gpu)]
            if not ks:
                raise ValidationError(f"fix_setup: {want.label()} is not a usable option of model "
                                      f"{problem.models[i].name!r}")
            lp += x[i, ks[0]] == 1, f"fixed_setup[{i}]"
    if place:
        for i, opts in enumerate(options):
            for k, o in enumerate(opts):                                           # (2)
                lp += (pulp.lpSum(y[i, k, g] for g in range(G) if (i, k, g) in y)
                       == o.tp * x[i, k], f"shards[{i},{k}]")
            for g in range(G):                                                     # (3)
                ks = [k for k in range(len(opts)) if (i, k, g) in y]
                if ks:
                    lp += (pulp.lpSum(y[i, k, g] for k in ks) <= 1, f"anti_affinity[{i},{g}]")

        def load(g, what):
            return pulp.lpSum((o.compute_tenths if what == "compute"
                               else problem.models[i].mem_gb(o.tp)) * y[i, k, g]
                              for i, opts in enumerate(options) for k, o in enumerate(opts)
                              if (i, k, g) in y)
        used = {g for (_, _, g) in y}
        for g in sorted(used):
            if sp.check_compute:                                                   # (4)
                lp += load(g, "compute") <= 10, f"gpu_compute[{g}]"
            if sp.check_memory:                                                    # (5)
                lp += load(g, "mem") <= cl.gpu_of(g).mem_gb, f"gpu_mem[{g}]"
        if symmetry_breaking:                                                      # (13)
            what = "compute" if sp.check_compute else "mem"
            for g in range(G - 1):
                if g in used and cl.gpu_of(g) == cl.gpu_of(g + 1):
                    lp += load(g, what) >= load(g + 1, what), f"gpu_order[{g}]"
    if placement == "aggregate":                                                # (A1)-(A4)
        for row, name in aggregate_rows(problem, options, x):
            lp += row, name
    units = pulp.lpSum(o.compute_units_tenths * x[i, k]
                       for i, opts in enumerate(options) for k, o in enumerate(opts))
    lp += units >= int(round(10 * G * sp.rho_min - 1e-9)), "utilization_lo"             # (6)
    lp += units <= 10 * G, "utilization_hi"
    if cl.is_mixed:                                                                     # (6')
        for gtype, n in cl.pools:
            on_t = [(i, k, o) for i, opts in enumerate(options) for k, o in enumerate(opts)
                    if o.gpu == gtype.name]
            if on_t:
                lp += (pulp.lpSum(o.compute_units_tenths * x[i, k] for i, k, o in on_t)
                       <= 10 * n, f"utilization_hi[{gtype.name}]")
    lp += pulp.lpSum(w.values()) == 1, "route_simplex"                                  # (7)
    nonconvex, secants, mass_rows = [], {}, {}
    for (i, k), (wtop, sec) in limits.items():
        lp += w[i, k] <= float(wtop) * x[i, k], f"load_range[{i},{k}]"                  # (8)
        if not mean or sec is None or sec.w.size < 2:
            continue
        if sec.convex:                                                                  # (9)
            secants[i, k], mass_rows[i, k] = sec, set()
            n = sec.w.size - 1
            first = (np.linspace(0, n - 1, min(n, LAZY_START_PIECES)).round().astype(int)
                     if lazy_envelopes else range(n))
            _add_mass_rows(lp, i, k, t, w, x, sec, set(first), mass_rows)
        else:                                                                           # (9')
            nonconvex.append((i, k))
            dw, dphi = np.diff(sec.w), np.diff(sec.phi)
            d = [lp.add_variable(f"d[{i},{k},{p}]", 0, 1) for p in range(dw.size)]
            u = [lp.add_variable(f"u[{i},{k},{p}]", cat="Binary") for p in range(dw.size)]
            lp += w[i, k] == pulp.lpSum(float(a) * v for a, v in zip(dw, d)), f"mass_w[{i},{k}]"
            lp += (t[i, k] >= pulp.lpSum(float(a) * v for a, v in zip(dphi, d)),
                   f"mass_t[{i},{k}]")
            lp += d[0] <= x[i, k], f"fill_first[{i},{k}]"
            for p in range(dw.size):
                lp += u[p] <= d[p], f"fill_done[{i},{k},{p}]"
                if p + 1 < dw.size:
                    lp += d[p + 1] <= u[p], f"fill_next[{i},{k},{p}]"
    if mean:                                                                            # (10)
        lp += pulp.lpSum(t.values()) <= problem.slo.latency_ms, "slo"
    for j in range(J):                                                                  # (11)
        lp += pulp.lpSum(z[j, i] for i in range(M)) == float(groups.counts[j]), f"assign[{j}]"
    for i, opts in enumerate(options):                                                  # (12)
        lp += (pulp.lpSum(z[j, i] for j in range(J))
               == N * pulp.lpSum(w[i, k] for k in range(len(opts))), f"count[{i}]")
    return MilpModel(lp, options, x, y, w, t, z, groups, nonconvex, secants, mass_rows,
                     float(N))


def _add_mass_rows(lp, i, k, t, w, x, sec, pieces, mass_rows) -> None:
    slopes, intercepts = sec.slopes, sec.intercepts
    for p in sorted(set(int(q) for q in pieces) - mass_rows[i, k]):
        lp += (t[i, k] >= float(slopes[p]) * w[i, k] + float(intercepts[p]) * x[i, k],
               f"mass[{i},{k},{p}]")
        mass_rows[i, k].add(p)


def add_violated_mass_rows(model: MilpModel, tol_ms: float = MASS_ROW_TOL_MS) -> int:
    """Add the missing rows (9) that the model's current solution violates by more than
    ``tol_ms``; returns how many were added (0: the solution meets every envelope).

    For each option every violated missing piece is added, with one neighbour on each side of
    them (a re-solve tends to move w a little). The other options of a model with a violated
    option are tightened at the same fraction w: the piece that is highest there is added, with
    its neighbours, where the rows in the model fall short of it by more than ``tol_ms`` (else
    the next master picks a sibling option for its still coarse envelope). Needs a solved
    ``model``; on one built without ``lazy_envelopes`` nothing is missing and it returns 0.
    """
    pulp = _pulp()
    added, at_w = 0, {}
    for (i, k), sec in model.secants.items():
        have = model.mass_rows[i, k]
        if len(have) == sec.w.size - 1:
            continue
        xv = pulp.value(model.x[i, k]) or 0.0
        wv = pulp.value(model.w[i, k]) or 0.0
        tv = pulp.value(model.t[i, k]) or 0.0
        viol = sec.slopes * wv + sec.intercepts * xv - tv
        viol[sorted(have)] = -np.inf
        bad = np.flatnonzero(viol > tol_ms)
        if bad.size:
            at_w.setdefault(i, []).append(wv / max(xv, 1e-12))
            added += _add_pieces(model, i, k, sec, bad)
    for (i, k), sec in model.secants.items():
        for wv in at_w.get(i, ()):
            lines = sec.slopes * min(wv, sec.w[-1]) + sec.intercepts
            have = sorted(model.mass_rows[i, k])
            p = int(np.argmax(lines))
            if lines[p] > lines[have].max() + tol_ms:
                added += _add_pieces(model, i, k, sec, np.array([p]))
    return added


def complete_mass_rows(model: MilpModel) -> int:
    """Add every missing row (9): the model becomes the fully built one; how many were added."""
    added = 0
    for (i, k), sec in model.secants.items():
        missing = set(range(sec.w.size - 1)) - model.mass_rows[i, k]
        _add_mass_rows(model.lp, i, k, model.t, model.w, model.x, sec, missing, model.mass_rows)
        added += len(missing)
    return added


def _add_pieces(model: MilpModel, i: int, k: int, sec, pieces: np.ndarray) -> int:
    """Add rows (9) for ``pieces`` and their neighbours; how many were new."""
    n = sec.w.size - 1
    new = {int(q) for q in np.concatenate([pieces - 1, pieces, pieces + 1]) if 0 <= q < n}
    new -= model.mass_rows[i, k]
    _add_mass_rows(model.lp, i, k, model.t, model.w, model.x, sec, new, model.mass_rows)
    return len(new)


def write_lp(model: MilpModel, path: str | Path) -> Path:
    """Dump the model as an LP file (constraint names as in the formulation), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.lp.writeLP(str(tmp))
    return path


def _solver(name: str, deadline: Deadline, gap_rel, threads, msg, start=None, options=None):
    pulp = _pulp()
    if name == "HiGHS":       # its time limit is set when HiGHS starts (pulp_highs)
        s = pulp_highs(deadline, start, msg=msg, gapRel=gap_rel, threads=threads,
                       **(options or {}))
    elif name == "CBC":
        left = deadline.left()
        # CBC reads its limit as given when it starts; 0 might read as "none", so a sliver
        time_limit_s = None if left is None else max(0.01, left)
        # A CBC on the PATH (pulp[cbc] or the system's) if there is one, else the copy bundled
        # with PuLP 3 (deprecated there, removed in PuLP 4).
        s = pulp.COIN_CMD(msg=msg, timeLimit=time_limit_s, gapRel=gap_rel, threads=threads)
        if not s.available():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                s = pulp.PULP_CBC_CMD(msg=msg, timeLimit=time_limit_s, gapRel=gap_rel,
                                      threads=threads)
    else:
        raise SolverUnavailable(f"unknown MILP solver {name!r}; choose one of {SOLVERS}")
    if not s.available():
        hint = "pip install highspy" if name == "HiGHS" else "pip install pulp (bundles CBC)"
        raise SolverUnavailable(f"MILP solver {name} is not available here: {hint}")
    return s


@dataclass
class MilpRun:
    """What one solver call on a :class:`MilpModel` returned."""

    solver: str
    solve_s: float
    infeasible: bool          # proven: no x meets the rows
    optimal: bool             # proven optimal (within gap_rel)
    has_solution: bool        # an integer-feasible incumbent exists
    bound: float | None       # proven upper bound on the objective (None if unknown)
    objective: float | None   # the incumbent's objective
    nodes: int | None


def run_milp(model: MilpModel, *, solver: str = "HiGHS", time_limit_s: float | None = 120.0,
             gap_rel: float = 1e-6, threads: int | None = None, msg: bool = False,
             deadline: Deadline | None = None, start: dict | None = None,
             highs_options: dict | None = None) -> MilpRun:
    """Solve a built model with a named solver and read its status and proven bound.

    Can be called again after rows are added to ``model.lp`` (a cut loop re-solves this way).
    ``deadline`` (:class:`~routerwise.optimize.highs.Deadline`) replaces ``time_limit_s``: the
    solver gets what it leaves when it starts, so a caller passes one for its whole run.
    ``start`` ({variable: value}): a MIP start for HiGHS (see
    :func:`~routerwise.optimize.highs.pulp_highs`; CBC ignores it). ``highs_options``: HiGHS
    option values by name (``{"presolve": "off"}``); CBC ignores them.
    """
    pulp = _pulp()
    if deadline is None:
        deadline = Deadline(time_limit_s)
    s = _solver(solver, deadline, gap_rel, threads, msg, start, highs_options)
    if solver == "HiGHS" and not msg:
        consume_banner()
    t1 = time.perf_counter()
    model.lp.solve(s)
    solve_s = time.perf_counter() - t1
    bound, nodes = None, None
    if solver == "HiGHS":
        import highspy
        h = model.lp.solverModel
        info = h.getInfo()
        hstatus = h.getModelStatus()
        # PuLP hands HiGHS a maximization as the minimization of -objective: flip the bound.
        sign = -1.0 if model.lp.sense == pulp.LpMaximize else 1.0
        bound = (sign * float(info.mip_dual_bound) / model.objective_scale
                 if np.isfinite(info.mip_dual_bound) else None)
        nodes = int(info.mip_node_count)
        infeasible = hstatus in (highspy.HighsModelStatus.kInfeasible,
                                 highspy.HighsModelStatus.kUnboundedOrInfeasible)
        optimal = hstatus == highspy.HighsModelStatus.kOptimal
    else:
        infeasible = model.lp.status == pulp.LpStatusInfeasible
        optimal = model.lp.sol_status == pulp.LpSolutionOptimal
    has_solution = model.lp.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    objective = (float(pulp.value(model.lp.objective)) / model.objective_scale if has_solution
                 else None)
    if bound is None and optimal and objective is not None:
        bound = objective
    return MilpRun(solver, solve_s, infeasible, optimal, has_solution and not infeasible, bound,
                   objective, nodes)


def solve_milp(problem: Problem, *, solver: str = "HiGHS", time_limit_s: float | None = 120.0,
               gap_rel: float = 1e-6, threads: int | None = None, lp_path: str | Path | None = None,
               tol_ms: float | None = None, msg: bool = False,
               fix_setup: SystemSetup | None = None, clock=time.perf_counter) -> Solution:
    """Solve the joint MILP with a named solver; the plan is re-evaluated and verified.

    ``time_limit_s`` counts from the call: building the model (not interruptible) uses part
    of it and the solver gets the rest. ``clock``: the time source of the limit.
    """
    t0 = time.perf_counter()
    deadline = Deadline(time_limit_s, clock)
    model = build_milp(problem, tol_ms=tol_ms, fix_setup=fix_setup)
    build_s = time.perf_counter() - t0
    if lp_path is not None:
        write_lp(model, lp_path)
    name = f"milp[{solver}]"
    if deadline.expired():
        return Solution(None, None, None, float("nan"), float("nan"), name, "time_limit",
                        solve_time_s=time.perf_counter() - t0, stats={"build_s": build_s},
                        notes=("the time limit passed while the model was built",))
    run = run_milp(model, solver=solver, gap_rel=gap_rel, threads=threads, msg=msg,
                   deadline=deadline)
    bound, optimal = capped_bound(problem, run.bound), run.optimal
    stats = {"build_s": build_s, "solver_s": run.solve_s, "nodes": run.nodes,
             "variables": len(model.lp.variables()), "constraints": model.lp.numConstraints(),
             "nonconvex_envelopes": len(model.nonconvex)}
    if run.infeasible or not run.has_solution:
        if not run.infeasible:   # time limit without an incumbent
            return Solution(None, None, None, float("nan"), float("nan"), name, "time_limit",
                            bound=bound, solve_time_s=time.perf_counter() - t0, stats=stats)
        return infeasible_solution(problem, SearchContext.build(problem), t0, name)
    setup, w = _extract(problem, model)
    res = score_of_fractions(model.groups, w)
    if bound is not None:
        bound = max(bound, res.score)
    sol = Solution(setup, w, central_prices(model.groups, res.z, fallback=res.prices), res.score,
                   evaluate_plan(problem, setup, w), name,
                   "optimal" if optimal else "time_limit", bound=bound,
                   solve_time_s=time.perf_counter() - t0, stats=stats,
                   notes=(f"latency envelope tolerance per model: "
                          f"{tol_ms if tol_ms is not None else mass_tol_ms(problem):.3g} ms",))
    return sol.verify(problem)


def _extract(problem: Problem, model: MilpModel) -> tuple[SystemSetup, np.ndarray]:
    pulp = _pulp()
    M, G = problem.num_models, problem.cluster.num_gpus
    chosen, frac, placement = [], np.zeros(M), []
    for i, opts in enumerate(model.options):
        k = max(range(len(opts)), key=lambda k: pulp.value(model.x[i, k]) or 0.0)
        chosen.append(opts[k])
        frac[i] = sum(max(0.0, pulp.value(model.w[i, kk]) or 0.0) for kk in range(len(opts)))
        if model.y:
            gpus = [g for g in range(G) if (i, k, g) in model.y
                    and (pulp.value(model.y[i, k, g]) or 0.0) > 0.5]
        else:
            gpus = list(problem.cluster.gpu_indices(opts[k].gpu if problem.cluster.is_mixed
                                                    else ""))[:opts[k].tp]
        placement.append(tuple(gpus))
    frac = frac / frac.sum()
    return SystemSetup(tuple(chosen), tuple(placement)), frac
