"""Figures at print size: widths, font sizes, legends off the data, marked special points."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from routerwise.paper import plots, style  # noqa: E402

COUNTS = pd.DataFrame({"models": [3, 3, 4, 4], "gpus": [4, 8, 4, 8],
                       "utilization": [669, 141, 16660, 7764],
                       "memory_ffd_paper": [274, 136, 4148, 6845],
                       "memory_exact": [274, 136, 4600, 6845],
                       "memory_compute_ours": [55, 0, 354, 534]})
SHIFTS = pd.DataFrame({"max_task_share": [0.2, 0.3, 0.4, 0.5, 0.6],
                       "latency_ms": [300.0, 700.0, np.inf, np.inf, np.inf],
                       "meets_slo": [True, False, False, False, False]})
SOLVERS = pd.DataFrame({"panel": ["3m G4"] * 3 + ["4m G8"] * 3,
                        "solver": ["milp[HiGHS]", "dual-price (paper)",
                                   "routerwise-exact (default)"] * 2,
                        "gap_to_milp_pct": [0.0, 0.03, -2e-13, 0.0, np.nan, 0.0],
                        "time_s": [3.0, 9.0, 0.2, 4.0, 12.0, 0.3]})


def figures():
    return {"setup_space": plots.setup_space(COUNTS), "mix_shift": plots.mix_shift(SHIFTS, 600.0),
            "solver_comparison": plots.solver_comparison(SOLVERS)}


@pytest.mark.parametrize("name", ["setup_space", "mix_shift", "solver_comparison"])
def test_figures_are_print_size_with_readable_text_and_legends_off_the_data(name):
    fig = figures()[name]
    fig.canvas.draw()
    width_in = fig.get_size_inches()[0]
    assert width_in in (style.COLUMN_WIDTH_IN, style.PAGE_WIDTH_IN)
    # what bbox_inches="tight" saves stays within the page width
    assert fig.get_tightbbox().width <= style.PAGE_WIDTH_IN + 0.05
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(sizes) >= style.SMALL_FONT_SIZE_PT - 1e-9
    legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
    assert legends
    r = fig.canvas.get_renderer()
    for leg in legends:
        lb = leg.get_window_extent(r)
        for ax in fig.axes:
            if ax.get_visible():
                assert not lb.overlaps(ax.get_window_extent(r)), f"{name}: legend over the data"
    texts = " ".join(t.get_text() for leg in legends for t in leg.get_texts())
    assert "_" not in texts, f"raw column names in the legend: {texts}"


def test_special_points_are_marked_and_counted():
    fig = plots.mix_shift(SHIFTS, 600.0)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "beyond the profiled load: latency unknown (3)" in labels
    assert "misses the SLO (1)" in labels and "meets the SLO (1)" in labels
    fig = plots.setup_space(COUNTS)
    assert "none retained (drawn at 1)" in [t.get_text() for t in fig.legends[0].get_texts()]
    fig = plots.solver_comparison(SOLVERS)
    assert "no feasible plan" in [t.get_text() for t in fig.legends[0].get_texts()]
    # a -2e-13 % gap is LP tolerance noise: drawn as 0, the axis still reads in %
    gaps = [p.get_height() for p in fig.axes[0].patches]
    assert min(gaps) == 0.0 and max(gaps) == pytest.approx(0.03)


def test_labels_have_units_and_plain_names():
    assert style.label("ttft_mean") == "mean TTFT (ms)"
    assert style.label("load_rps") == "offered load (requests/s)"
    assert style.label("memory_ffd_paper") == "+ memory, first-fit decreasing (paper's check)"
    assert style.label("some_new_column") == "some new column"
    assert len(set(style.PALETTE)) == len(style.PALETTE) == 8


def test_saved_pdfs_embed_no_type3_fonts(tmp_path, monkeypatch):
    """Venue checks reject Type 3 fonts: save_figure must write TrueType (Type 42) text."""
    from routerwise.paper import record
    monkeypatch.setenv("ROUTERWISE_RESULTS_DIR", str(tmp_path))
    pdf = record.save_figure(figures()["setup_space"], "fonts", formats=("pdf",))
    data = pdf.read_bytes()
    assert b"/Subtype /Type3" not in data
    assert b"/Subtype /TrueType" in data or b"/FontFile2" in data
