"""The package tree is the architecture: imports point one way, and every module says what it exports.

Layers, lowest first. A module may import from its own layer or lower ones, never higher:

    foundations  errors, io, settings, redact, parallel, uncertainty
    records      problem
    data         routerwise.data.*        registry, score matrices, predictor, latency tables
    serving      routerwise.serving.*     hardware, architectures, step costs, simulator, curves
    optimize     routerwise.optimize.*    setup space, routing LP, solvers, verification
    facade       routerwise.planning.*   problem files, solve, router, replay, consistency, cost;
                 and the package __init__
    paper        routerwise.paper.*       the paper's instances, experiments, plots, reproduction
    live         routerwise.live.*        serving a plan: the router app, its server, live checks
    front door   cli, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "routerwise"
LAYERS = [
    ("foundations", {"routerwise.errors", "routerwise.io", "routerwise.settings",
                     "routerwise.redact", "routerwise.parallel", "routerwise.uncertainty"}),
    ("records", {"routerwise.problem"}),
    ("data", {"routerwise.data"}),
    ("serving", {"routerwise.serving"}),
    ("optimize", {"routerwise.optimize"}),
    ("facade", {"routerwise", "routerwise.planning"}),
    ("paper", {"routerwise.paper"}),
    ("live", {"routerwise.live"}),
    ("front door", {"routerwise.cli", "routerwise.__main__"}),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def layer_of(mod: str) -> int:
    best = None
    for rank, (_, members) in enumerate(LAYERS):
        for m in members:
            if mod == m or (m != "routerwise" and mod.startswith(m + ".")):
                if best is None or len(m) > best[1]:
                    best = (rank, len(m))
    if best is None:
        raise AssertionError(f"{mod} belongs to no layer: add it to LAYERS in {__file__}")
    return best[0]


def imports_of(mod: str, path: Path) -> set[str]:
    """Absolute names of the routerwise modules that ``mod`` imports (module level or not)."""
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    known = modules()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - (node.level - 1)]
                target = ".".join(stem + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                cand = f"{target}.{a.name}"
                out.add(cand if cand in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {t for t in out if t.split(".")[0] == "routerwise" and t in known}


def violations() -> list[str]:
    bad = []
    for mod, path in sorted(modules().items()):
        me = layer_of(mod)
        for tgt in sorted(imports_of(mod, path)):
            if layer_of(tgt) > me:
                bad.append(f"{mod} ({LAYERS[me][0]}) imports {tgt} ({LAYERS[layer_of(tgt)][0]})")
    return bad


def test_imports_point_down_the_layers():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The walker sees relative imports: a data module importing a solver is reported."""
    fake = PKG / "data" / "_upward_probe.py"
    fake.write_text("from ..optimize import milp\n")
    try:
        assert any("_upward_probe" in v and "optimize" in v for v in violations())
    finally:
        fake.unlink()


def test_no_import_cycles():
    known = modules()
    graph = {m: {t for t in imports_of(m, p) if t != m and not known[t].name == "__init__.py"}
             for m, p in known.items()}
    seen, stack, cycles = {}, [], []

    def visit(v):
        seen[v] = "open"
        stack.append(v)
        for w in sorted(graph[v]):
            if seen.get(w) == "open":
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in seen:
                visit(w)
        stack.pop()
        seen[v] = "done"

    for v in sorted(graph):
        if v not in seen:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("mod", sorted(m for m, p in modules().items() if p.name != "__main__.py"))
def test_every_module_declares_all(mod):
    tree = ast.parse(modules()[mod].read_text())
    names = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)]
    assert "__all__" in names, f"{mod} does not declare __all__"
