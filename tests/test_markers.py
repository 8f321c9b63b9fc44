"""Every test that starts a real engine carries the `alone` marker.

`make unit` runs the suite in several processes and then the `alone` tests with nothing beside
them: an engine pinned to a core and timed beside another test's work would measure that work.
A test starts a real engine when it calls `_need_engine()` (tests/test_real_engine.py), or when
it runs notebook 07 (which measures the engine where one is installed).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_alone_marker(node: ast.expr) -> bool:
    # @pytest.mark.alone
    return (isinstance(node, ast.Attribute) and node.attr == "alone"
            and isinstance(node.value, ast.Attribute) and node.value.attr == "mark")


def _starts_engine(fn: ast.FunctionDef) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "_need_engine":
                return True
            if (isinstance(f, ast.Name) and f.id == "run" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("07_")):
                return True
    return False


def engine_tests_without_marker(folder: Path) -> list[str]:
    missing = []
    for path in sorted(folder.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                    and _starts_engine(node)
                    and not any(_is_alone_marker(d) for d in node.decorator_list)):
                missing.append(f"{path.name}::{node.name}")
    return missing


def test_every_test_that_starts_a_real_engine_runs_alone():
    assert engine_tests_without_marker(TESTS) == []


def test_the_check_finds_an_unmarked_engine_test(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.alone\ndef test_marked():\n    _need_engine()\n\n"
        "@pytest.mark.slow\ndef test_unmarked():\n    _need_engine()\n\n"
        "def test_notebook(results):\n    run('07_measure_latencies', results)\n\n"
        "def test_other_notebook(results):\n    run('02_latency_profiles', results)\n")
    assert engine_tests_without_marker(tmp_path) == ["test_x.py::test_unmarked",
                                                     "test_x.py::test_notebook"]
