"""GPU sampler as a process: SIGTERM writes the table, kill -9 keeps the periodic flushes
whole, and bad arguments are typed errors (no NVML needed: rows then say why)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from profiling.__main__ import main
from profiling.sampler import GPUSampler
from routerwise.errors import ValidationError

REPO = Path(__file__).resolve().parents[1]
INTERVAL_S, FLUSH_S = 0.05, 0.3


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "profiling", "sample", "--out", str(out),
                             "--interval-s", str(INTERVAL_S), "--flush-every-s", str(FLUSH_S)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sampler_start(proc, out: Path) -> float:
    """When the sampler started (monotonic clock), from its first write: an upper bound
    (detection lags the write), so lifetimes computed from it are over- not under-estimates."""
    deadline = time.monotonic() + 30
    while not out.is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sampler wrote nothing within 30 s"
        time.sleep(0.02)
    seen = time.monotonic()
    return seen - pd.read_csv(out)["elapsed_s"].max()


@pytest.mark.timeout(60)
def test_sigterm_writes_every_sample(tmp_path):
    out = tmp_path / "gpu.csv"
    proc = _start(out)
    _sampler_start(proc, out)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    taken = int(re.search(r"(\d+) samples ->", stdout).group(1))
    df = pd.read_csv(out)
    # everything sampled up to the signal is on disk: the sampler's own count, not a time
    # bound (a starved sampler on a busy machine samples less, and still writes all of it)
    assert taken >= 1 and df["sample"].nunique() == taken and df["sample"].max() + 1 == taken


@pytest.mark.timeout(60)
def test_kill_9_keeps_every_periodic_flush_whole(tmp_path):
    """The sampler flushes while it runs, so kill -9 keeps what it flushed, whole. Watched by
    its file's content, not by wall time: a starved sampler flushes late and is still right
    (the size of the loss in seconds is a timing claim, not a unit test's)."""
    out = tmp_path / "gpu.csv"
    proc = _start(out)
    _sampler_start(proc, out)
    first = len(pd.read_csv(out))
    deadline = time.monotonic() + 30
    while len(pd.read_csv(out)) == first:  # a later flush, before any exit: periodic
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sampler flushed only once within 30 s"
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    df = pd.read_csv(out)  # whole: written atomically
    assert len(df) > first
    assert df["sample"].is_monotonic_increasing and df["elapsed_s"].notna().all()


def test_sample_arguments_are_checked_before_sampling(tmp_path, capsys):
    for args, msg in ((["--duration-s", "-1"], "--duration-s must be a positive"),
                      (["--interval-s", "0"], "--interval-s must be a positive"),
                      (["--flush-every-s", "nan"], "--flush-every-s must be a positive")):
        assert main(["sample", "--out", str(tmp_path / "x.csv"), *args]) == 2
        assert msg in capsys.readouterr().err
    assert main(["sample", "--out", str(tmp_path), "--duration-s", "1"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(ValidationError, match="flush_every_s"):
        GPUSampler(tmp_path / "x.csv", flush_every_s=0)
    with pytest.raises(ValidationError, match="is a folder"):
        GPUSampler(tmp_path)
