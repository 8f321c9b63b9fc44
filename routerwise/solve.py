"""One front door to every solver: ``solve(problem, method=...)`` returns a verified Solution.

============== ===========================================================================
method         what it is
============== ===========================================================================
``exact``      default: bounded search over retained setups, exact LP per setup (optimal)
``dual-price`` the paper's method (subgradient prices, projected gradient, beta bisection)
``milp``       the joint MILP (setup + placement + routing + latency) with HiGHS or CBC
============== ===========================================================================
"""

from __future__ import annotations

import inspect
from dataclasses import replace

from .errors import ValidationError
from .problem import Problem
from .solution import Solution

METHODS = ("exact", "dual-price", "milp")


def solve(problem: Problem, method: str = "exact", **options) -> Solution:
    """Solve ``problem``; an infeasible SLO gives ``status="infeasible"`` with a diagnosis."""
    if method == "exact":
        from .search import solve_exact as run
    elif method == "dual-price":
        from .dual_price import solve_dual_price as run
    elif method == "milp":
        from .milp import solve_milp as run
    else:
        raise ValidationError(f"unknown method {method!r}; choose one of {METHODS}")
    if not isinstance(problem, Problem):
        raise ValidationError(f"solve() needs a routerwise.Problem, got {type(problem).__name__}")
    accepted = [n for n, p in inspect.signature(run).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValidationError(f"unknown option(s) {unknown} for method {method!r}; it accepts "
                              f"{accepted}")
    sol = run(problem, **options).verify(problem)
    return replace(sol, notes=sol.notes + tuple(f"input: {a}" for a in problem.assumptions))
