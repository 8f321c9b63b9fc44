"""One figure style for every notebook: paper widths, font sizes, a colour-blind palette, labels.

Figures are drawn at the size they are printed, so text keeps its point size in the paper:

* widths: :data:`COLUMN_WIDTH_IN` (3.35 in, one column of a two-column ACM/IEEE page) and
  :data:`PAGE_WIDTH_IN` (7.0 in, both columns); heights default to a 0.62 aspect per panel row
  and never exceed :data:`MAX_HEIGHT_IN` (8.5 in: a page's text height, about 9 in, less room
  for a caption); the saved PDF's page is the figure's size (a 0.02 in margin around the tight
  bounding box), so a column figure prints at 3.35 in;
* titles: :func:`wrap` breaks a title into lines that fit a width, so no title widens a figure;
* text: :data:`FONT_SIZE_PT` (8 pt labels and ticks), :data:`SMALL_FONT_SIZE_PT` (7 pt legends);
* colours: the Okabe-Ito palette (:data:`PALETTE`), distinguishable with the common colour-vision
  deficiencies and in greyscale together with the marker shapes of :data:`MARKERS`;
* labels: :func:`label` turns the kit's column names (``ttft_mean_ms``, ``memory_ffd_paper``)
  into axis and legend text with units; :data:`LABELS` is the table;
* marks: :data:`MARKS` styles the points a figure must not pass off as ordinary data
  (saturated, infeasible, dropped beyond the profiled load, optimum).

Plot functions run under :func:`styled` (a ``matplotlib.rc_context``), so importing this module
changes no global matplotlib state. :func:`legend_below` puts a legend under the axes, off the
data. ``routerwise.paper.record.save_figure`` writes each figure as PDF (vector, for the paper)
and PNG.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt

__all__ = ["COLUMN_WIDTH_IN", "PAGE_WIDTH_IN", "MAX_HEIGHT_IN", "ROW_ASPECT", "FONT_SIZE_PT", "SMALL_FONT_SIZE_PT",
           "PNG_DPI", "PALETTE", "SERIES", "MARKERS", "MARKS", "LABELS", "RC", "label", "color", "styled",
           "figure", "wrap", "legend_below", "log_axis", "include_x"]

COLUMN_WIDTH_IN = 3.35
PAGE_WIDTH_IN = 7.0
MAX_HEIGHT_IN = 8.5        # a page's text height (~9 in) less a caption's lines
ROW_ASPECT = 0.62          # panel height / panel width for one row of panels
FONT_SIZE_PT = 8.0
SMALL_FONT_SIZE_PT = 7.0
PNG_DPI = 300

# Okabe & Ito (2008), "Color Universal Design": black first for the reference series.
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
           "#CC79A7")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

# How a figure marks points that are not ordinary data (keyword arguments for Axes.scatter).
MARKS = {
    "saturated": {"marker": "x", "color": PALETTE[6], "s": 18, "linewidths": 1.0},
    "infeasible": {"marker": "x", "color": PALETTE[6], "s": 18, "linewidths": 1.0},
    "dropped": {"marker": "^", "facecolors": "none", "edgecolors": PALETTE[6], "s": 22,
                "linewidths": 0.9},
    "optimum": {"marker": "*", "color": PALETTE[4], "edgecolor": "k", "s": 110,
                "linewidths": 0.6, "zorder": 4},
}

LABELS = {
    # setup space (notebook 01)
    "utilization": "utilization filter (sum of tp x share = G)",
    "memory_ffd_paper": "+ memory, first-fit decreasing (paper's check)",
    "memory_exact": "+ memory placed exactly",
    "memory_compute_ours": "+ memory and compute placed exactly (ours)",
    "gpus": "GPUs in the cluster (G)",
    # latency metrics (any table in routerwise.data.latency_table's schema)
    "ttft_mean": "mean TTFT (ms)", "ttft_p99": "p99 TTFT (ms)", "ttft_p50": "median TTFT (ms)",
    "tpot_mean": "mean TPOT (ms)", "tpot_p99": "p99 TPOT (ms)", "e2e_mean": "mean end-to-end latency (ms)",
    "ttft_mean_ms": "mean TTFT (ms)", "ttft_p99_ms": "p99 TTFT (ms)",
    "tpot_mean_ms": "mean TPOT (ms)", "tpot_p99_ms": "p99 TPOT (ms)",
    "load_rps": "offered load (requests/s)", "rate_rps": "offered rate (requests/s)",
    "latency_ms": "latency (ms)",
    # solvers (notebook 04)
    "gap_to_milp_pct": "score gap to the MILP optimum (%)", "time_s": "solve time (s)",
    "milp[HiGHS]": "MILP (HiGHS, proven optimum)", "dual-price (paper)": "dual-price (paper's method)",
    "routerwise-exact (default)": "bounded exact search (kit default)",
    # baselines
    "equal-split": "equal split", "size-proportional": "size-proportional", "isolated": "isolated",
    # models
    "llama-3.2-3b-instruct": "Llama-3.2-3B", "llama-3.1-8b-instruct": "Llama-3.1-8B",
    "mistral-small-24b-instruct-2501-bf16": "Mistral-Small-24B",
    "llama-3.3-70b-instruct": "Llama-3.3-70B",
}

RC = {
    "font.size": FONT_SIZE_PT, "axes.titlesize": FONT_SIZE_PT, "axes.labelsize": FONT_SIZE_PT,
    "xtick.labelsize": SMALL_FONT_SIZE_PT, "ytick.labelsize": SMALL_FONT_SIZE_PT,
    "legend.fontsize": SMALL_FONT_SIZE_PT, "legend.frameon": False,
    "figure.titlesize": FONT_SIZE_PT,
    "axes.prop_cycle": plt.cycler(color=[PALETTE[i] for i in (1, 2, 3, 5, 6, 7, 4, 0)]),
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "axes.linewidth": 0.6, "lines.linewidth": 1.1, "lines.markersize": 3.5,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": 110, "savefig.dpi": PNG_DPI,
    # bbox_inches="tight" adds this around the drawn content: matplotlib's 0.1 in default made
    # every figure 0.2 in wider than the width it was drawn at (a 3.35 in column figure 3.47 in)
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42, "ps.fonttype": 42,          # TrueType in the PDF: editable, journal-safe
    "figure.constrained_layout.use": True,
}


def label(name: str) -> str:
    """Readable text (with units) for a column, metric, solver or model name; the name itself
    with underscores as spaces when it is not in :data:`LABELS`."""
    return LABELS.get(name, str(name).replace("_", " "))


# Series order: yellow last, it is the palette's weakest contrast on white.
SERIES = tuple(PALETTE[i] for i in (1, 2, 3, 5, 6, 7, 4))


def color(i: int) -> str:
    """The i-th series colour (:data:`SERIES`, cycling)."""
    return SERIES[i % len(SERIES)]


def styled(fn):
    """Run a plot function under :data:`RC` (no global state changed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def figure(nrows: int = 1, ncols: int = 1, *, width: str | float = "column",
           height_in: float | None = None, **kwargs):
    """``plt.subplots`` at print size: ``width`` is "column", "page" or inches; the height
    defaults to :data:`ROW_ASPECT` of one panel's width per row (plus room for a legend
    below) and is capped at :data:`MAX_HEIGHT_IN` (many rows get shorter panels rather than a
    figure taller than the page). Returns (fig, axes) with ``squeeze=False``."""
    if isinstance(width, str):
        if width not in ("column", "page"):
            raise ValueError(f"width must be 'column', 'page' or inches, got {width!r}")
        width_in = COLUMN_WIDTH_IN if width == "column" else PAGE_WIDTH_IN
    else:
        width_in = float(width)
    if height_in is None:
        height_in = nrows * ROW_ASPECT * width_in / ncols + 0.5
    height_in = min(height_in, MAX_HEIGHT_IN)
    with plt.rc_context(RC):
        return plt.subplots(nrows, ncols, figsize=(width_in, height_in), squeeze=False, **kwargs)


def wrap(text: str, width_in: float, size: float = FONT_SIZE_PT) -> str:
    """``text`` with line breaks at spaces so that no line is wider than ``width_in`` at
    ``size`` pt (measured in the style's font): a title that fits its panel does not widen the
    saved figure's tight bounding box. Existing line breaks are kept."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    with plt.rc_context(RC):
        prop = FontProperties(size=size)
    measure = TextToPath()

    def width(s: str) -> float:     # points
        return measure.get_text_width_height_descent(s, prop, ismath=False)[0]

    out = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if line and width(cand) > 72 * width_in:
                out.append(line)
                line = word
            else:
                line = cand
        out.append(line)
    return "\n".join(out)


def legend_below(owner, *, ncol: int = 2, **kwargs):
    """A legend under the axes (``owner`` an Axes) or under all panels (``owner`` a Figure:
    one entry per label over every panel), off the data. Needs constrained layout for a
    Figure (``figure()`` and :data:`RC` use it)."""
    from matplotlib.figure import Figure

    axes = owner.axes if isinstance(owner, Figure) else [owner]
    handles, labels, seen = [], [], set()
    for a in axes:
        for h, lab in zip(*a.get_legend_handles_labels()):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    kwargs.setdefault("frameon", False)
    if isinstance(owner, Figure):
        return owner.legend(handles, labels, loc="outside lower center", ncol=ncol, **kwargs)
    return owner.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.25),
                        ncol=ncol, **kwargs)


def log_axis(ax, axis: str = "y") -> None:
    """Log scale with plain tick labels (20, 30, 100, not 2 x 10^1)."""
    from matplotlib import ticker

    class Plain(ticker.LogFormatter):   # matplotlib picks which ticks get a label; we write it
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    getattr(ax, f"set_{axis}scale")("log")
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(Plain())
    a.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def include_x(ax, xs, pad: float = 0.03) -> None:
    """Widen the x range to hold ``xs`` (marks drawn in axes coordinates do not autoscale)."""
    xs = [float(x) for x in xs]
    if not xs:
        return
    lo, hi = ax.get_xlim()
    span = max(hi - lo, 1e-12)
    ax.set_xlim(min(lo, min(xs) - pad * span), max(hi, max(xs) + pad * span))
