"""The conda environment and the pip package name the same dependencies and floors."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_reqs = list(py["dependencies"])
    for extra in ("test", "lab"):
        pip_reqs += py["optional-dependencies"][extra]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_reqs = dict(_split(d) for d in conda if not d.startswith(("python", "pip")))
    assert dict(_split(r) for r in pip_reqs) == conda_reqs
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip_section == ["-e ."]          # the kit itself comes from this checkout
    python_floor = [d for d in conda if d.startswith("python")][0]
    assert python_floor.replace("python", "") == py["requires-python"]
