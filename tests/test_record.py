"""Notebook number recording and the reproduction summary."""

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from routerwise.paper import record  # noqa: E402
from routerwise.errors import ValidationError  # noqa: E402
from routerwise.paper.reproduce import write_summary  # noqa: E402


def test_record_writes_clean_json_and_returns_a_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    import numpy as np
    t = record.record("nb", {"a": np.float64(1.5), "b": 3, "c": math.nan, "d": "x"},
                      labels={"a": "simulated"})
    data = json.loads((tmp_path / "numbers" / "nb.json").read_text())
    assert data["numbers"] == {"a": 1.5, "b": 3, "c": None, "d": "x"}
    assert t.loc["a", "kind"] == "simulated"
    assert record.load("nb") == data["numbers"]
    with pytest.raises(ValidationError, match="number"):
        record.record("nb", {"bad": [1, 2]})
    assert json.loads((tmp_path / "numbers" / "nb.json").read_text())["numbers"]["a"] == 1.5
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert record.save_figure(fig, "f").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(record.save_table(pd.DataFrame({"x": [1]}), "t"))) == 1


def test_summary_sets_our_numbers_beside_the_papers(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    record.record("03_score_variation", {"variation_pct_max": 13.26, "score_min": 0.615})
    text = write_summary(tmp_path).read_text()
    assert "| largest score variation across setups | 87% | 13.3% | 03_score_variation |" in text
    assert "n/a" in text            # notebooks that did not run are marked, not invented
