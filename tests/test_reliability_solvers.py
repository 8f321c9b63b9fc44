"""The cost command on mixed clusters and with exact methods, and solver time limits: the
deadline logic runs on an injected clock (no assertion here depends on wall time)."""

import json

import pytest

import routerwise as rw
from routerwise import cli
from routerwise.cost import cheapest_cluster
from test_cost import example_with
from test_mixed_gpus import _mixed_example


# ----------------------------------------------------------------------------- cost command

def test_cost_frontier_on_a_mixed_cluster_problem_file(tmp_path, capsys):
    f = _mixed_example(tmp_path, '[cluster]\ngpus = {"A100-80GB" = 2, "H100-80GB" = 2}\n')
    out = tmp_path / "cost.json"
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--max-gpus", "4", "--frontier",
                   "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    # the frontier covers the compositions the search tried, each named by its types
    assert sorted(r["gpus"] for r in d["frontier"]) == sorted(r["gpus"] for r in d["trials"])
    assert "2 x A100-80GB + 2 x H100-80GB" in {r["gpus"] for r in d["frontier"]}
    best = max((r for r in d["frontier"] if r["score"] is not None), key=lambda r: r["score"])
    assert d["plan"]["score"] == pytest.approx(best["score"], abs=1e-7)


def test_decomposition_is_an_exact_method_in_the_cost_search(tmp_path, capsys):
    f = example_with(tmp_path, "")
    out = tmp_path / "cost.json"
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--max-gpus", "4",
                   "--method", "decomposition", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "cheapest:" in printed
    assert "not proven" not in printed and "heuristic" not in printed
    d = json.loads(out.read_text())
    assert d["proven"] and all(t["proven"] for t in d["trials"])
    # the dual-price method is still labelled a heuristic
    p = rw.with_headroom(rw.read_problem_file(f).problem)
    res = cheapest_cluster(p, quality_floor=0.5, max_gpus=4, method="dual-price")
    assert any("heuristic" in n for n in res.notes)


def test_a_repeated_price_names_the_type(tmp_path, capsys):
    f = example_with(tmp_path, "")
    rc = cli.main(["cost", str(f), "--quality-floor", "0.5", "--price", "A100-80GB=2",
                   "--price", "A100-80GB=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "'A100-80GB' twice" in err
