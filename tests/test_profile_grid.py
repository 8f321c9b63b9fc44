"""Simulated profile tables: schema, skipped setups, resume after interruption, monotone curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mirror

from routerwise.data import latency_table as profiles
from routerwise.serving import curve_grid as pg

MODEL = "llama-3.2-3b-instruct"
LENGTHS = pg.LengthSample(np.array([60, 200, 450, 900]), np.array([1, 40, 150, 300]),
                          "test lengths")
OPTS = pg.GridOptions(num_requests=300)


def _build(tmp_path, **kw):
    return pg.build_profile_table([MODEL], "A100-80GB", (1, 2), (5, 10), LENGTHS, options=OPTS,
                                  workers=1, progress=False, cache_dir=tmp_path, **kw)


def test_plan_skips_shards_that_do_not_fit():
    curves, skipped = pg.plan_curves(["llama-3.3-70b-instruct"], "A100-80GB", (1, 2, 4), (10,))
    assert [(c.tp, c.tenths) for c in curves] == [(2, 10), (4, 10)]
    assert skipped[0]["tp"] == 1 and "A100-80GB" in skipped[0]["reason"]


@needs_mirror
def test_tiny_grid_matches_the_schema_and_gives_monotone_curves(tmp_path):
    df = _build(tmp_path)
    assert df.equals(profiles.normalize(df))
    assert set(df["source"]) == {"simulated"}
    assert set(zip(df["tp"], df["compute_share"])) == {(1, 0.5), (1, 1.0), (2, 0.5), (2, 1.0)}
    prov = df["provenance"].iloc[0]
    assert "step-cost" in prov and "compute share" in prov and "seed 0" in prov
    for _, g in df.groupby(["tp", "compute_share"]):
        assert len(g) == len(pg.LOAD_FRACTIONS) and g["saturated"].iloc[-1]
        assert (g["num_requests"] == 270).all()
    prof = profiles.to_profiles(df)  # raises on any dip
    assert len(prof) == 4
    for c in prof.curves:
        assert np.all(np.diff(c.latency_ms) >= 0) and len(c.load_rps) >= 8
    # a smaller compute share saturates at a lower load
    cap = {(c.tp, c.compute_tenths): c.max_load_rps for c in prof.curves}
    assert cap[(1, 5)] < cap[(1, 10)] and cap[(2, 5)] < cap[(2, 10)]
    again = _build(tmp_path)  # cached: read back, not rebuilt
    assert again.equals(df)


@needs_mirror
def test_build_resumes_after_an_interruption(tmp_path, monkeypatch):
    real = pg._build_curve
    calls = []

    def crash_on_third(task):
        calls.append(task[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(pg, "_build_curve", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path)
    finished = {p.name for p in tmp_path.glob("profiles/*/chunks/*.csv")}
    assert len(finished) == 2

    calls.clear()
    monkeypatch.setattr(pg, "_build_curve", lambda task: calls.append(task[0]) or real(task))
    df = _build(tmp_path)
    assert len(calls) == 2 and not {c.chunk_name for c in calls} & finished
    assert df.groupby(["tp", "compute_share"]).ngroups == 4


@needs_mirror
def test_a_measured_step_table_replaces_the_fitted_steps(tmp_path):
    rows = []
    for b in (1, 2, 4, 8):
        for L in (128, 512, 1024):
            rows.append((MODEL, "prefill", b, L, 1.0, 2.0 + 0.004 * b * L))
            rows.append((MODEL, "decode", b, L, 1.0, 4.0 + 0.05 * b + 1e-5 * b * L))
    table = pd.DataFrame(rows, columns=["model", "phase", "batch_size", "context_len",
                                        "compute_share", "step_ms_median"])
    df = pg.build_profile_table([MODEL], "A100-80GB", (1, 2), (10,), LENGTHS, options=OPTS,
                                measured_steps=table, workers=1, progress=False,
                                cache_dir=tmp_path)
    prov = df.groupby("tp")["provenance"].first()
    assert "measured step table" in prov[1] and "measured step table" not in prov[2]


# --- cache integrity and concurrent builds ---------------------------------------------------

def _grid_root(tmp_path):
    (root,) = tmp_path.glob("profiles/*")
    return root


def _count_builds(monkeypatch):
    real, calls = pg._build_curve, []
    monkeypatch.setattr(pg, "_build_curve", lambda task: calls.append(task[0]) or real(task))
    return calls


def _flip_bit(path, offset):
    b = bytearray(path.read_bytes())
    b[offset] ^= 0x01
    path.write_bytes(bytes(b))


def _cut_at_row(path):
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-3]))


def _cut_mid_row(path):
    b = path.read_bytes()
    path.write_bytes(b[: len(b) - 40])


CORRUPTIONS = {
    # a digit of the first data row's latency columns: parses fine, changes a number
    "flipped bit": lambda root: _flip_bit(root / "table.csv",
                                          (root / "table.csv").read_bytes().index(b"\n") + 60),
    "cut at a row boundary": lambda root: _cut_at_row(root / "table.csv"),
    "cut mid-row": lambda root: _cut_mid_row(root / "table.csv"),
    "empty table": lambda root: (root / "table.csv").write_bytes(b""),
    "garbage table": lambda root: (root / "table.csv").write_bytes(b"\x00\xff garbage,\n\"x"),
    "manifest not JSON": lambda root: (root / "manifest.json").write_text("{not json"),
    "manifest a list": lambda root: (root / "manifest.json").write_text("[1, 2]"),
    "manifest without checksum": lambda root: (root / "manifest.json").write_text(
        f'{{"version": "{pg.GRID_VERSION}", "skipped": []}}'),
}


@needs_mirror
@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_cached_table_is_rebuilt_from_its_chunks_and_says_so(tmp_path, monkeypatch,
                                                                       case):
    good = _build(tmp_path)
    root = _grid_root(tmp_path)
    CORRUPTIONS[case](root)
    with pytest.raises(pg.DataError, match=str(root)):
        pg.read_cached(root)
    calls = _count_builds(monkeypatch)
    with pytest.warns(RuntimeWarning, match=f"{root} fails its integrity check.*Rebuilding"):
        again = _build(tmp_path)
    assert calls == []  # the chunks were intact: nothing simulated again
    pd.testing.assert_frame_equal(again, good)
    assert again.attrs["skipped"] == good.attrs["skipped"]
    pd.testing.assert_frame_equal(pg.read_cached(root), good)  # and the cache is whole again


@needs_mirror
def test_a_corrupt_chunk_is_simulated_again(tmp_path, monkeypatch):
    good = _build(tmp_path)
    root = _grid_root(tmp_path)
    (root / "table.csv").unlink()
    chunk = sorted((root / "chunks").glob("*.csv"))[1]
    _flip_bit(chunk, chunk.read_bytes().index(b"\n") + 30)
    calls = _count_builds(monkeypatch)
    with pytest.warns(RuntimeWarning, match="incomplete"):
        again = _build(tmp_path)
    assert [c.chunk_name for c in calls] == [chunk.name]
    pd.testing.assert_frame_equal(again, good)


@needs_mirror
def test_concurrent_builds_of_one_grid_simulate_each_curve_once(tmp_path, monkeypatch):
    import threading
    import time

    real, calls = pg._build_curve, []

    def slow(task):
        calls.append(task[0])
        time.sleep(0.05)  # keep the first builder busy while the second one arrives
        return real(task)

    monkeypatch.setattr(pg, "_build_curve", slow)
    results, errors = [None, None], []

    def build(i):
        try:
            results[i] = _build(tmp_path)
        except Exception as e:  # noqa: BLE001 - re-raised below in the test thread
            errors.append(e)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(calls) == 4 and len({c.chunk_name for c in calls}) == 4
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(pg.read_cached(_grid_root(tmp_path)), results[0])
