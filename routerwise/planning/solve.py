"""One front door to every solver: ``solve(problem, method=...)`` returns a verified Solution.

================= ========================================================================
method            what it is
================= ========================================================================
``auto``          default: ``exact`` when the candidate setups are few (at most 20,000,
                  counted without enumerating), else ``decomposition``; says which and why
                  in ``Solution.notes`` (``routerwise.optimize.auto``)
``exact``         bounded search over retained setups, exact LP per setup (optimal)
``decomposition`` aggregate master MILP (no per-GPU placement) + placement check and cuts;
                  optimal, with the master's proven bound on a time limit
``dual-price``    the paper's method (subgradient prices, projected gradient, beta bisection)
``milp``          the joint MILP (setup + placement + routing + latency) with HiGHS or CBC
================= ========================================================================

Every method's Solution carries ``bound``, a proven upper bound on the optimum score, and so a
proven ``gap`` (the dual-price method and the baselines bound it by the Lagrangian setup bounds
of the exact search).

Solvers live in a registry: :func:`register_solver` adds a method (a callable
``f(problem, **options) -> Solution``, or a ``"module:function"`` path imported on first use)
without editing :func:`solve`. Every plan is re-verified here, whatever solver made it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..data.latency_table import envelope_notes
from ..errors import ValidationError
from ..optimize.solution import Solution
from ..problem import Problem

__all__ = ["METHODS", "SolverEntry", "register_solver", "solver_entry", "solve"]

SolverFn = Callable[..., Solution]


@dataclass(frozen=True)
class SolverEntry:
    """A registered method: the solver (callable or ``"module:function"``) and one line on it."""

    name: str
    target: SolverFn | str
    description: str

    def load(self) -> SolverFn:
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, SolverEntry] = {}


def register_solver(name: str, target: SolverFn | str, description: str = "", *,
                    replace_existing: bool = False) -> SolverEntry:
    """Make ``solve(problem, method=name)`` call ``target``."""
    if not isinstance(name, str) or not name:
        raise ValidationError("a solver needs a non-empty string name")
    if name in _REGISTRY and not replace_existing:
        raise ValidationError(f"solver {name!r} is registered already; pass "
                              f"replace_existing=True to replace it")
    if not (callable(target) or (isinstance(target, str) and ":" in target)):
        raise ValidationError(f"solver {name!r}: target must be a callable or 'module:function', "
                              f"got {target!r}")
    entry = SolverEntry(name, target, description)
    _REGISTRY[name] = entry
    return entry


def solver_entry(method: str) -> SolverEntry:
    try:
        return _REGISTRY[method]
    except KeyError:
        raise ValidationError(f"unknown method {method!r}; choose one of "
                              f"{tuple(_REGISTRY)}") from None


register_solver("auto", "routerwise.optimize.auto:solve_auto",
                "default: exact on small setup spaces, decomposition on large ones")
register_solver("exact", "routerwise.optimize.exact_search:solve_exact",
                "bounded search over retained setups, exact LP per setup (optimal)")
register_solver("decomposition", "routerwise.optimize.decomposition:solve_decomposition",
                "aggregate master MILP + shard placement check and cuts (optimal, scales)")
register_solver("dual-price", "routerwise.optimize.dual_price:solve_dual_price",
                "the paper's method: subgradient prices, projected gradient, beta bisection")
register_solver("milp", "routerwise.optimize.milp:solve_milp",
                "the joint MILP (setup, placement, routing, latency) with HiGHS or CBC")

METHODS = tuple(_REGISTRY)  # the built-in methods; register_solver adds more


def solve(problem: Problem, method: str = "auto", **options) -> Solution:
    """Solve ``problem``; an infeasible SLO gives ``status="infeasible"`` with a diagnosis."""
    if not isinstance(problem, Problem):
        raise ValidationError(f"solve() needs a routerwise.Problem, got {type(problem).__name__}")
    run = solver_entry(method).load()
    params = inspect.signature(run).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        known = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY
                 or (p.kind is p.POSITIONAL_OR_KEYWORD and n != "problem")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValidationError(f"unknown option(s) {unknown} for method {method!r}; it "
                                  f"accepts {known}")
    sol = run(problem, **options).verify(problem)
    # a curve an envelope raised over a dip in its data is an input the plan rests on
    return replace(sol, notes=sol.notes + tuple(f"input: {a}" for a in problem.assumptions)
                   + envelope_notes(problem, sol.setup))
