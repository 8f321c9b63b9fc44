"""``method="auto"``: the exact search on small setup spaces, the decomposition on large ones.

The exact search (``routerwise.optimize.exact_search``) enumerates and places every candidate
setup before it prunes any, so its cost grows with the number of candidate setups: the
Cartesian product of the models' usable options filtered by the utilization window
``10 G rho_min <= sum_i tp_i r_i <= 10 G`` (stage ``usable_options`` of
``routerwise.optimize.setup_space.enumerate_setups``). That count grows roughly like K^M and
is found WITHOUT enumerating: a dynamic program over compute units (tenths) that convolves the
models' option-cost histograms (``setup_space.candidate_setup_count``), exact integers.

Rule: at most :data:`EXACT_MAX_SETUPS` candidates -> ``exact`` (every paper-sized instance:
at most 16,660 candidates, 4 models on 4 GPUs with the utilization filter alone; the real-data
panels of notebooks 01-05 count 136 to 12,206, so their default plans are unchanged); above ->
``decomposition`` (``routerwise.optimize.decomposition``: aggregate master MILP + placement
cuts), whose cost does not grow with the count. Measured (2 shared cores): the exact search
solves the 4 x 4 synthetic ladder (11,076 candidates) in about 2.6 s; issue 12 measured it at
58 s for 5 models on 8 GPUs and not within 600 s for 6 on 8, while the ladder counts 268,195
and 8.3 million candidates there; the decomposition solved the 6 x 8 ladder in about 28 s
(``benchmarks/bench_scale.py``), and in 9.5 CPU-seconds with lazy envelope rows (issue 22).
The threshold sits between. The choice and its reason are
written into ``Solution.notes`` and ``Solution.stats["auto"]``.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..errors import ValidationError
from ..problem import Problem
from .setup_space import candidate_setup_count
from .solution import Solution

__all__ = ["EXACT_MAX_SETUPS", "candidate_setup_count", "choose_method", "solve_auto"]

EXACT_MAX_SETUPS = 20_000


def choose_method(problem: Problem, max_exact_setups: int = EXACT_MAX_SETUPS
                  ) -> tuple[str, int, str]:
    """(method, candidate count, reason) for ``problem`` under the rule above."""
    n = candidate_setup_count(problem)
    if n <= max_exact_setups:
        return "exact", n, (f"auto: {n:,} candidate setups <= {max_exact_setups:,}: "
                            f"exact search")
    return "decomposition", n, (f"auto: {n:,} candidate setups > {max_exact_setups:,}: "
                                f"decomposition (aggregate master MILP + placement cuts)")


def solve_auto(problem: Problem, *, time_limit_s: float | None = None,
               max_exact_setups: int = EXACT_MAX_SETUPS, routing: str = "auto",
               gap_rel: float = 1e-6, threads: int | None = None) -> Solution:
    """Solve with the method :func:`choose_method` picks; the Solution says which and why.

    ``time_limit_s`` goes to whichever runs (None: the exact search has none, the
    decomposition 600 s). ``routing`` is the exact search's fixed-setup solver;
    ``gap_rel`` and ``threads`` are the decomposition's MILP options.
    """
    if isinstance(max_exact_setups, bool) or not isinstance(max_exact_setups, int) \
            or max_exact_setups < 0:
        raise ValidationError(f"max_exact_setups must be a non-negative integer, got "
                              f"{max_exact_setups!r}")
    t0 = time.perf_counter()
    method, n, reason = choose_method(problem, max_exact_setups)
    count_s = time.perf_counter() - t0
    if method == "exact":
        from .exact_search import solve_exact
        sol = solve_exact(problem, time_limit_s=time_limit_s, routing=routing)
    else:
        from .decomposition import solve_decomposition
        sol = solve_decomposition(problem, gap_rel=gap_rel, threads=threads,
                                  time_limit_s=600.0 if time_limit_s is None else time_limit_s)
    stats = dict(sol.stats)
    stats["auto"] = {"method": method, "candidate_setups": n,
                     "max_exact_setups": max_exact_setups, "count_s": count_s}
    return replace(sol, notes=(reason,) + sol.notes, stats=stats,
                   solve_time_s=sol.solve_time_s + count_s)
