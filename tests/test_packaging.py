"""Packaging: conda environment, pip package and lock file agree; the core install stays lean."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCKED_EXTRAS = ("paper", "profiling", "test", "live")   # what `make install` installs from the lock


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return canonicalize_name(m.group(1)), m.group(2).replace(" ", "")


def _pip_reqs(extras) -> list[str]:
    reqs = list(PYPROJECT["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["optional-dependencies"][extra]
    return reqs


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements-lock.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_environment_yml_matches_pyproject():
    extras = tuple(PYPROJECT["optional-dependencies"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_reqs = dict(_split(d) for d in conda if not d.startswith(("python", "pip")))
    assert dict(_split(r) for r in _pip_reqs(extras)) == conda_reqs
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip_section == ["-e ."]          # the kit itself comes from this checkout
    python_floor = [d for d in conda if d.startswith("python")][0]
    assert python_floor.replace("python", "") == PYPROJECT["requires-python"]


def test_lock_pins_every_requirement_within_its_range():
    pins = _lock()
    for req in map(Requirement, _pip_reqs(LOCKED_EXTRAS)):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is required but not pinned in requirements-lock.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements-lock.txt pins {req.name}=={pins[name]}, outside {req.specifier}"


def test_core_import_does_not_pull_extras():
    """Solving and simulating need none of the notebook, plotting or GPU-profiling packages."""
    code = ("import sys, routerwise, routerwise.optimize.milp, routerwise.serving.curve_grid, "
            "routerwise.data.scores, routerwise.planning.replay\n"
            "print(' '.join(sorted(m for m in ('matplotlib', 'papermill', 'httpx', 'pynvml', "
            "'ipykernel') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.strip()
    assert out == ""
