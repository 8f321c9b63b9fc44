"""In CI a missing data mirror fails the tests that need it; elsewhere they skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEEDS = "tests/test_profile_grid.py::test_a_measured_step_table_replaces_the_fitted_steps"


def _pytest(tmp_path, ci: str | None):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(ROUTERWISE_DATA_MIRROR=str(tmp_path / "no-mirror"), PYTHONPATH=str(REPO),
               ROUTERWISE_CACHE_DIR=str(tmp_path / "cache"))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rsE", NEEDS], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.timeout(240)
def test_missing_mirror_fails_in_ci_and_skips_elsewhere(tmp_path):
    ci = _pytest(tmp_path, "true")
    assert ci.returncode == 1, ci.stdout
    assert "1 error" in ci.stdout and "in CI (CI=true) the mirror is required" in ci.stdout
    local = _pytest(tmp_path, None)
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout and "no data mirror" in local.stdout
