"""Atomic writes: complete files only, the previous copy kept on failure, the usual file mode."""

import os
import stat

import pytest

from routerwise.io import atomic_write, atomic_write_with


def test_written_files_get_the_umask_mode_not_the_temporary_files_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "table.csv", "a,b\n1,2\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_explicit_mode_is_kept(tmp_path):
    from routerwise.io import atomic_path
    with atomic_path(tmp_path / "key", mode=0o600) as tmp:
        tmp.write_bytes(b"k")
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_previous_copy_and_leaves_no_temporary_file(tmp_path):
    path = atomic_write(tmp_path / "t.csv", "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write_with(path, broken)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_blank_counts_empty_and_missing_text_as_empty(tmp_path):
    import pandas as pd

    from routerwise.io import blank
    mixed = pd.Series(["", None, "timeout", float("nan"), " "], dtype=object)
    assert blank(mixed).tolist() == [True, True, False, True, False]
    # a CSV column whose values are all empty reads back as float NaN: every row is blank
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1, 2], "error": ["", ""]}).to_csv(path, index=False)
    col = pd.read_csv(path)["error"]
    assert col.dtype.kind == "f" and blank(col).tolist() == [True, True]
