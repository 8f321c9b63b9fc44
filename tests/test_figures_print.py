"""Every figure at its printed size: the saved PDF's page fits a column (3.35 in) or the page
width (7 in) and is no taller than a page's text (8.5 in, room left for a caption); titles do
not widen it; what a reviewer must read off each figure is drawn so it can be read."""

import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from test_plots import SHIFTS, SOLVERS  # noqa: E402

from routerwise.data.measured_runs import RunMeta  # noqa: E402
from routerwise.paper import plots, record  # noqa: E402

COLUMN_PT, PAGE_PT, MAX_HEIGHT_PT = 3.35 * 72, 7.0 * 72, 8.5 * 72
TOL_PT = 0.5

COUNTS = pd.DataFrame({"models": [3, 3, 3, 4, 4, 4], "gpus": [4, 6, 8, 4, 6, 8],
                       "utilization": [669, 300, 141, 16660, 9000, 7764],
                       "memory_ffd_paper": [274, 200, 136, 4148, 5000, 6845],
                       "memory_exact": [274, 200, 136, 4600, 5100, 6845],
                       "memory_compute_ours": [55, 20, 0, 354, 400, 534]})


def _profiles(models=("llama-3.1-8b-instruct", "mistral-small-24b-instruct-2501-bf16",
                      "llama-3.3-70b-instruct")):
    rows = []
    for m in models:
        for tp in (1, 2, 4):
            for share in (0.3, 0.6, 1.0):
                cap = 4.0 * tp * share
                for load in (0.5, 1, 2, 4, 8, 16):
                    sat = load > cap
                    rows.append({"model": m, "tp": tp, "compute_share": share, "load_rps": load,
                                 "ttft_mean_ms": np.inf if sat else 50 / (1 - load / (cap * 1.01)),
                                 "saturated": sat, "source": "simulated"})
    return pd.DataFrame(rows)


def _solution(gpus, score, feasible=True):
    setup = SimpleNamespace(per_model=[SimpleNamespace(compute_units_tenths=int(10 * gpus))])
    return SimpleNamespace(feasible=feasible, score=score, setup=setup)


def _panel(models, G, rate, slo, shift=0.0, isolated=True):
    rng = np.random.default_rng(G + models)
    n = 40
    tp = rng.choice([1, 2, 4], n)
    rho = rng.choice([0.2, 0.5, 1.0], n)
    df = pd.DataFrame({"tp[a]": tp[::-1], "rho[a]": rho[::-1], "tp[b]": tp, "rho[b]": rho,
                       "feasible": rho * tp >= 0.4, "score": 0.6 + 0.1 * rng.random(n) + shift})
    f = df[df["feasible"]]
    problem = SimpleNamespace(num_models=models, cluster=SimpleNamespace(num_gpus=G),
                              arrival_rate_rps=rate, slo=SimpleNamespace(latency_ms=slo))
    base = {"equal-split": _solution(1.0, 0.65 + shift), "size-proportional": _solution(2.0, 0.66),
            "isolated": _solution(4.0, 0.64, feasible=isolated)}
    summary = {"instance": f"routeprofile-{models}m-G{G}", "rate_rps": rate, "slo_ms": slo,
               "setups": n, "feasible": len(f)}
    return problem, {"setups": df, "best": _solution(2.0, float(f["score"].max())),
                     "baselines": base, "summary": summary}


# the notebook's grid: two SLOs that change nothing (identical panels), two loads, two sizes,
# the 4-model panel where the isolated baseline has no plan
PANELS = [_panel(3, G, rate, slo, isolated=rate < 50) for G in (4, 8) for rate in (35.8, 57.3)
          for slo in (400, 800)] + [_panel(4, 4, 70.9, 800, shift=-0.05, isolated=False)]

RUN_IDS = ["llmd-exp-0", "isim-jan20-codellama-prefill-1", "isim-jan20-codellama-train-1",
           "isim-jan20-prefill-llama7b-tp1-1", "isim-jan21-llama7b-train-1"]


def _runs():
    def meta(rid, model, gpu, tp, version, seqs):
        return SimpleNamespace(meta=RunMeta(run_id=rid, source_keys=(), engine="vllm",
                                            engine_version=version, model=model, gpu=gpu, tp=tp,
                                            max_num_seqs=seqs))
    return [meta(RUN_IDS[0], "meta-llama/Llama-3.1-70B-Instruct", "A100-80GB", 2,
                 "vllm-openai:latest (2025-05-02)", None),
            meta(RUN_IDS[1], "codellama/CodeLlama-34b-Instruct-hf", "H100-80GB", 1, "0.11.0 (V1)", 32),
            meta(RUN_IDS[2], "codellama/CodeLlama-34b-Instruct-hf", "H100-80GB", 1, "0.11.0 (V1)", 256),
            meta(RUN_IDS[3], "codellama/CodeLlama-34b-Instruct-hf", "H100-80GB", 1, "0.11.0 (V1)", 256),
            meta(RUN_IDS[4], "meta-llama/Llama-2-7b-hf", "H100-80GB", 1, "0.11.0 (V1)", 256)]


def _levels():
    rows = []
    for k, rid in enumerate(RUN_IDS):
        for rate in (0.5, 0.7, 0.9, 1.1, 1.3 + k):
            row = {"run_id": rid, "usable": True, "rate_rps": rate}
            for n, base in (("ttft", 300.0), ("tpot", 30.0)):
                for w, f in (("meas", 1.0), ("sim", 1.1)):
                    row[f"{w}_{n}_mean_ms"] = f * base * (1 + rate)
                    row[f"{w}_{n}_p99_ms"] = 2 * f * base * (1 + rate)
            rows.append(row)
    sats = pd.DataFrame({"run_id": RUN_IDS, "meas_saturation_rps": [1.0, 1.1, np.nan, 1.2, 1.7]})
    return pd.DataFrame(rows), sats


def _replay():
    per_model = pd.DataFrame({"model": ["llama-3.1-8b-instruct", "mistral-small-24b-instruct-2501-bf16",
                                        "llama-3.3-70b-instruct"],
                              "setup": ["tp4/rho0.5", "tp2/rho0.4", "tp4/rho1.0"],
                              "predicted_ms": [80.0, 450.0, 4500.0],
                              "simulated_ms": [82.0, 430.0, 4400.0]})
    return SimpleNamespace(per_model=per_model, metric="ttft_mean", predicted_ms=3987.4,
                           simulated_mean_ms=3876.2, simulated_p99_ms=14876.3)


HEADROOM = pd.DataFrame({"headroom": [1.0, 0.9, 0.8, 0.7, 0.6], "feasible": [True] * 4 + [False],
                         "score_given_up_pct": [0.0, 0.4, 1.1, 2.5, np.nan],
                         "load_increase_survived_pct": [0.0, 10.0, 24.0, 41.0, np.nan],
                         "mix_shifts_survived_pct": [5.0, 30.0, 60.0, 90.0, np.nan]})
FRONTIER = pd.DataFrame({"num_gpus": [2, 4, 6, 8], "score": [np.nan, 0.66, 0.70, 0.71],
                         "equal-split_score": [np.nan, 0.64, 0.69, 0.70],
                         "pareto_optimal": [False, True, True, False]})
SENSITIVITY = {name: pd.DataFrame({"factor": [0.5, 1.0, 2.0, 4.0], "mean_gap": [0.02, 0.04, 0.08, 0.16],
                                   "measured_variation_pct": [4.0, 8.0, 17.0, 35.0],
                                   "max_variation_allowed_pct": [40.0, 90.0, 200.0, 500.0]})
               for name in ("RouteProfile", "synthetic")}
SCALE = pd.DataFrame({"models": [3, 4, 6], "gpus": [4, 8, 16], "method": ["exact", "exact", "milp"],
                      "time_s": [0.3, 2.0, 60.0], "gap_pct": [0.0, 0.2, np.nan],
                      "status": ["optimal", "optimal", "time_limit"]})

# name -> (builder, the width it prints at)
FIGURES = {
    "setup_space": (lambda: plots.setup_space(COUNTS), PAGE_PT),
    "latency_profiles": (lambda: plots.latency_profiles(_profiles(), list(_profiles()["model"].unique())),
                         PAGE_PT),
    "setup_latencies": (lambda: plots.latency_profiles(_profiles(["llama-3.1-8b-instruct"]),
                                                       ["llama-3.1-8b-instruct"],
                                                       marked_loads_rps=[1.0, 2.0, 4.0, 8.0]),
                        COLUMN_PT),
    "score_variation": (lambda: plots.score_variation_panels(PANELS), PAGE_PT),
    "score_variation_one": (lambda: plots.score_variation(PANELS[0][1]), COLUMN_PT),
    "exact_vs_dual": (lambda: plots.solver_comparison(SOLVERS), PAGE_PT),
    "replay": (lambda: plots.replay(_replay()), COLUMN_PT),
    "mix_shift": (lambda: plots.mix_shift(SHIFTS, 600.0), COLUMN_PT),
    "headroom_frontier": (lambda: plots.headroom_frontier(HEADROOM), COLUMN_PT),
    "latency_validation": (lambda: plots.latency_validation(*_levels(), runs=_runs()), PAGE_PT),
    "cost_frontier": (lambda: plots.cost_frontier(FRONTIER, unlimited_capacity_score=0.75,
                                                  quality_floor=0.6), COLUMN_PT),
    "headline_sensitivity": (lambda: plots.headline_sensitivity(SENSITIVITY), PAGE_PT),
    "scale": (lambda: plots.scale(SCALE), PAGE_PT),
}


def _media_box(pdf: bytes) -> tuple[float, float]:
    m = re.search(rb"/MediaBox\s*\[\s*([\d.\-]+)\s+([\d.\-]+)\s+([\d.\-]+)\s+([\d.\-]+)\s*\]", pdf)
    assert m, "no MediaBox in the PDF"
    x0, y0, x1, y1 = (float(v) for v in m.groups())
    return x1 - x0, y1 - y0


@pytest.mark.parametrize("name", list(FIGURES))
def test_saved_pdf_page_fits_its_print_width_and_a_page_height(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    build, width_pt = FIGURES[name]
    fig = build()
    pdf = record.save_figure(fig, name, formats=("pdf",))
    plt.close(fig)
    w, h = _media_box(pdf.read_bytes())
    assert w <= width_pt + TOL_PT, f"{name}: {w:.0f} pt wide, the print width is {width_pt:.0f} pt"
    assert h <= MAX_HEIGHT_PT + TOL_PT, f"{name}: {h:.0f} pt tall, at most {MAX_HEIGHT_PT:.0f} pt"


def _visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def _legend_texts(fig):
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_score_variation_shows_each_distinct_panel_once_on_one_y_range():
    fig = plots.score_variation_panels(PANELS)
    axes = _visible_axes(fig)
    # 9 results, of which the 400 and 800 ms SLO panels of each (G, load) are identical
    assert len(axes) == 5
    titles = [a.get_title() for a in axes]
    assert sum("400 or 800 ms" in t and "same" in t for t in titles) == 4, titles
    assert len({a.get_ylim() for a in axes}) == 1, "panels must share one y range"
    # the isolated baseline has no plan in three of the five panels: said, not silently missing
    notes = " ".join(titles + _legend_texts(fig))
    assert "isolated" in notes and "no plan" in notes
    plt.close(fig)
    # an SLO that changes which setups are feasible keeps its own panel
    problem, result = PANELS[0]
    other = dict(result, setups=result["setups"].assign(feasible=result["setups"]["rho[b]"] >= 0.5))
    slo = SimpleNamespace(**{**vars(problem), "slo": SimpleNamespace(latency_ms=800)})
    fig = plots.score_variation_panels([(problem, result), (slo, other)])
    assert len(_visible_axes(fig)) == 2
    plt.close(fig)


def test_replay_bars_of_80_ms_are_visible_beside_4500_ms():
    fig = plots.replay(_replay())
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    # the shortest bar spans a visible part of the axis (1% on the old linear axis)
    assert (np.log10(80.0) - np.log10(lo)) / (np.log10(hi) - np.log10(lo)) > 0.15
    plt.close(fig)


def test_latency_validation_titles_name_model_gpu_and_engine_not_run_ids():
    fig = plots.latency_validation(*_levels(), runs=_runs())
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    joined = " ".join(texts)
    for rid in RUN_IDS:
        assert rid not in joined, f"internal run id {rid!r} shown"
    for name in ("Llama-3.1-70B", "CodeLlama-34B", "Llama-2-7B", "A100-80GB", "H100-80GB", "vLLM 0.11"):
        assert name in joined, f"{name!r} missing from the titles"
    plt.close(fig)


def test_latency_profiles_saturation_marks_have_their_curves_colour_and_a_legend_entry():
    fig = plots.latency_profiles(_profiles(["llama-3.1-8b-instruct"]), ["llama-3.1-8b-instruct"])
    ax = fig.axes[0]
    curve_colors = {to_hex(line.get_color()) for line in ax.get_lines() if len(line.get_xdata()) > 2}
    marks = [c for c in ax.collections if c.get_offsets().shape[0]]
    assert marks, "saturated loads are not marked"
    mark_colors = {to_hex(c) for coll in marks for c in coll.get_edgecolors()} | \
                  {to_hex(c) for coll in marks for c in coll.get_facecolors()}
    # every tp degree's curve saturates in this table: each has marks in its own colour
    assert curve_colors <= mark_colors
    assert any("saturate" in t for t in _legend_texts(fig))
    plt.close(fig)


def test_setup_space_coinciding_lines_are_told_apart():
    fig = plots.setup_space(COUNTS)
    ax = fig.axes[0]     # 3 models: the two memory checks keep the same setups
    lines = {line.get_label(): line for line in ax.get_lines()}
    ffd = next(v for k, v in lines.items() if "first-fit" in k)
    exact = next(v for k, v in lines.items() if "placed exactly" in k and "compute" not in k)
    np.testing.assert_allclose(ffd.get_ydata(), exact.get_ydata())
    distinct = (ffd.get_linestyle() != exact.get_linestyle()
                and (ffd.get_marker() != exact.get_marker()
                     or ffd.get_markerfacecolor() != exact.get_markerfacecolor()))
    said = any("coincide" in t or "same as" in t for t in _legend_texts(fig))
    assert distinct or said
    plt.close(fig)
