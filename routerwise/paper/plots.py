"""The notebooks' figures (matplotlib), drawn at print size in one style.

Every function returns the figure, drawn under :mod:`routerwise.paper.style` (column or page
width, 7-8 pt text, the Okabe-Ito palette, legends below the data, readable labels with units).
Points that are not ordinary data are marked, never dropped silently: saturated loads,
infeasible panels and shifted mixes whose load lies beyond the profiled curve (drawn on the
top edge with their count in the legend). Titles say what the panel shows in words.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import style
from .style import MARKS, label, styled

__all__ = ["BASELINE_STYLE", "setup_space", "latency_profiles", "score_variation",
           "score_variation_panels", "solver_comparison", "replay", "mix_shift",
           "headroom_frontier", "latency_validation", "run_name", "cost_frontier", "headline_sensitivity", "scale",
           "calibration"]

# a column figure's axes are about this wide (the y label takes the rest): titles wrap to it, so
# a title never widens the saved figure beyond the column
COLUMN_TITLE_IN = style.COLUMN_WIDTH_IN - 0.75

BASELINE_STYLE = {"equal-split": ("s", style.PALETTE[1]), "size-proportional": ("^", style.PALETTE[3]),
                  "isolated": ("D", style.PALETTE[7])}


def _model(name: str) -> str:
    return label(name)


def _and(items) -> str:
    """'3', '3 and 4', '3, 4 and 5'."""
    items = [f"{x:g}" if isinstance(x, float) else str(x) for x in items]
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


@styled
def setup_space(df: pd.DataFrame):
    """Setups surviving each filter vs cluster size (log scale), one panel per ladder.

    Filters often keep the same setups (the two memory checks agree on most ladders), so their
    lines lie on each other: each filter has its own line style and marker (the exact memory
    check hollow and larger, around the paper's check's), and the legend names the ladders
    where a line coincides with the previous filter's."""
    stages = ["utilization", "memory_ffd_paper", "memory_exact", "memory_compute_ours"]
    looks = [{"marker": "o", "ls": "-"}, {"marker": "s", "ls": ":"},
             {"marker": "D", "ls": "--", "mfc": "none", "markersize": 5.5, "mew": 0.9},
             {"marker": "^", "ls": "-"}]
    short = {"utilization": "utilization", "memory_ffd_paper": "the paper's check",
             "memory_exact": "exact memory"}
    models = sorted(df["models"].unique())
    same = {st: [M for M in models
                 if np.array_equal(df.loc[df["models"] == M].sort_values("gpus")[st].to_numpy(),
                                   df.loc[df["models"] == M].sort_values("gpus")[prev].to_numpy())]
            for prev, st in zip(stages, stages[1:])}
    fig, axes = style.figure(1, len(models), width="page" if len(models) > 1 else "column",
                             height_in=2.6)
    for ax, M in zip(axes[0], models):
        d = df[df["models"] == M].sort_values("gpus")
        for i, (st, look) in enumerate(zip(stages, looks)):
            y = d[st].astype(float)
            on = same.get(st)
            name = label(st) + (f" (same as {short[stages[i - 1]]} at {_and(on)} models)"
                                if on else "")
            ax.plot(d["gpus"], y.where(y > 0), color=style.color(i), label=name, **look)
            zero = d[y <= 0]
            if len(zero):   # log scale: a filter that keeps nothing is marked on the axis
                ax.scatter(zero["gpus"], np.full(len(zero), 1.0), clip_on=False,
                           label="none retained (drawn at 1)", **MARKS["infeasible"])
        style.log_axis(ax)
        ax.set_xlabel(label("gpus"))
        ax.set_ylabel("setups retained")
        ax.set_title(f"{M} models share the cluster")
        ax.set_xticks(d["gpus"])
    style.legend_below(fig, ncol=2)
    return fig


@styled
def latency_profiles(table: pd.DataFrame, models, tp_degrees=(1, 2, 4), shares=(0.3, 0.6, 1.0),
                     metric: str = "ttft_mean", marked_loads_rps=None):
    """Latency against load, one panel per model; colour = tp, line style = compute share;
    filled markers for measured curves, hollow for simulated ones. The load where a curve
    saturates (its latency unbounded from there on) is a cross at the panel's top edge in the
    curve's colour, joined to the curve's last finite point in its line style, so each mark
    says which curve saturates; the saturated loads beyond it are not drawn again.
    ``marked_loads_rps``: loads drawn as dotted vertical lines (e.g. the load points a
    measurement asked for, when the curves come from the simulated grid instead)."""
    col = f"{metric}_ms"
    n = len(models)
    ncols = min(n, 2)
    nrows = (n + ncols - 1) // ncols
    fig, axes = style.figure(nrows, ncols, width="page" if ncols > 1 else "column",
                             height_in=2.1 * nrows + 0.8, sharey=False)
    styles = ["-", "--", ":", "-."]
    colors = {tp: style.color(i) for i, tp in enumerate((1, 2, 4, 8))}
    for ax, m in zip(axes.ravel(), models):
        saturating = []   # (colour, line style, finite (x, y) before or None, saturated load)
        drawn_tp, drawn_share = {}, {}
        for tp in tp_degrees:
            for share, ls in zip(shares, styles):
                d = table[(table["model"] == m) & (table["tp"] == tp)
                          & np.isclose(table["compute_share"], share)]
                d = d.sort_values("load_rps")
                c = colors.get(tp, "k")
                flags = d["saturated"].to_numpy(bool)
                for i in np.flatnonzero(flags & ~np.r_[False, flags[:-1]]):   # onsets
                    before = None if i == 0 else (d["load_rps"].iloc[i - 1], d[col].iloc[i - 1])
                    saturating.append((c, ls, before, d["load_rps"].iloc[i]))
                d = d[~flags]
                if d.empty:
                    continue
                measured = (d["source"] == "measured").all()
                ax.plot(d["load_rps"], d[col], ls, color=c,
                        marker="o", mfc=None if measured else "none", label="_curve")
                drawn_tp.setdefault(tp, c)
                drawn_share.setdefault(share, ls)
        # one legend entry per colour (tp) and per line style (share), not one per curve: a
        # column-wide legend of every pair was wider than the column
        for tp, c in drawn_tp.items():
            ax.plot([], [], "-", color=c, label=f"tp {tp}")
        for share, ls in sorted(drawn_share.items()):
            ax.plot([], [], ls, color="0.3", label=f"compute share {share:.1f}")
        style.log_axis(ax)
        for i, x in enumerate(marked_loads_rps or ()):
            ax.axvline(x, color="grey", ls=":", lw=0.8,
                       label="requested loads\n(not simulated there)" if i == 0 else None)
        if saturating:
            style.include_x(ax, [x for *_, x in saturating])
            lo, top = ax.get_ylim()
            mark = {k: v for k, v in MARKS["saturated"].items() if k != "color"}
            for c, ls, before, x in saturating:
                if before is not None:    # the curve runs on to the load where it saturates
                    ax.plot([before[0], x], [before[1], top], ls, color=c, lw=0.7,
                            clip_on=False, label="_saturating")
                ax.scatter([x], [top], color=c, clip_on=False, zorder=3, **mark)
            ax.set_ylim(lo, top)
            ax.scatter([], [], color="0.3", label="saturates: latency unbounded\n"
                       "from this load on (x in\nits curve's colour)", **mark)
        ax.set_title(_model(m))
        ax.set_xlabel(label("load_rps"))
        ax.set_ylabel(label(metric))
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    style.legend_below(fig, ncol=3 if ncols > 1 else 2)
    return fig


def score_variation(result: dict, ax=None, title: str | None = None):
    """Every setup's best score against the compute given to the largest model (tp * rho, in
    GPUs), with the baselines and the optimum marked. Each setup's best plan sits on its SLO
    when the SLO binds, so latency would not separate the setups; compute does. A baseline
    with no feasible plan has no mark: the title says so."""
    with plt.rc_context(style.RC):
        return _score_variation(result, ax, title)


def _no_plan_note(result) -> str:
    """'no plan: isolated (baseline)' for the baselines with no feasible plan, else ''."""
    missing = [label(n) for n, sol in result["baselines"].items() if not sol.feasible]
    return f"no plan: {', '.join(missing)} (baseline{'s' if len(missing) > 1 else ''})" if missing else ""


def _score_variation(result, ax, title):
    df, best, base = result["setups"], result["best"], result["baselines"]
    s = result["summary"]
    own = ax is None
    if own:
        fig, axes = style.figure(1, 1, width="column", height_in=2.8)
        ax = axes[0][0]
    large = [c for c in df.columns if c.startswith("tp[")][-1][3:-1]
    f = df[df["feasible"]]
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(f))
    ax.scatter(f[f"tp[{large}]"] * f[f"rho[{large}]"] + jitter, f["score"], s=5, alpha=0.5,
               color=style.PALETTE[5], linewidths=0, label="retained setup (best routing)")

    def gpus(sol):
        return sol.setup.per_model[-1].compute_units_tenths / 10

    for name, sol in base.items():
        if sol.feasible:
            mk, c = BASELINE_STYLE[name]
            ax.scatter([gpus(sol)], [sol.score], marker=mk, s=30, color=c, edgecolor="k",
                       linewidths=0.5, label=f"{label(name)} (baseline)", zorder=3)
    if best.feasible:
        ax.scatter([gpus(best)], [best.score], label="optimum", **MARKS["optimum"])
    else:
        ax.text(0.5, 0.5, "no setup meets the SLO", transform=ax.transAxes, ha="center",
                color=MARKS["infeasible"]["color"])
    ax.set_xlabel(f"GPUs of compute for {_model(large)} (tp x share)")
    ax.set_ylabel("best predicted mean score")
    if title is None:
        title = (f"{len(f)} of {len(df)} setups feasible: {s['rate_rps']:g} req/s, "
                 f"mean TTFT <= {s['slo_ms']:g} ms, G = {_gpus_of(s['instance'])}")
        title = "\n".join(t for t in (title, _no_plan_note(result)) if t)
    if own:
        title = style.wrap(title, COLUMN_TITLE_IN)
    ax.set_title(title)
    if own:
        style.legend_below(ax.figure, ncol=2)
    return ax.figure


def _gpus_of(instance: str) -> str:
    tail = str(instance).rsplit("-G", 1)
    return tail[1] if len(tail) == 2 else "?"


SAME_SCORE_TOL = 1e-3   # panels whose every setup's score agrees within this draw the same


def _same_panel(a: dict, b: dict) -> bool:
    """True when two panels would draw the same picture: the same setups feasible, every
    feasible setup's score, the optimum's and each baseline's within :data:`SAME_SCORE_TOL`."""
    da, db = a["setups"], b["setups"]
    if len(da) != len(db) or not (da["feasible"].to_numpy() == db["feasible"].to_numpy()).all():
        return False
    f = da["feasible"].to_numpy()
    if not np.allclose(da["score"].to_numpy()[f], db["score"].to_numpy()[f], atol=SAME_SCORE_TOL,
                       rtol=0):
        return False
    sols = [(a["best"], b["best"])] + [(a["baselines"][k], b["baselines"].get(k))
                                       for k in a["baselines"]]
    for x, y in sols:
        if y is None or x.feasible != y.feasible:
            return False
        if x.feasible and (abs(x.score - y.score) > SAME_SCORE_TOL
                           or x.setup.per_model[-1].compute_units_tenths
                           != y.setup.per_model[-1].compute_units_tenths):
            return False
    return True


def _merge_slo_panels(results):
    """Group panels that differ only in the SLO and draw the same (:func:`_same_panel`):
    [(problem, result, [slo_ms, ...])], in the order given."""
    groups = []
    for p, r in results:
        for g in groups:
            q, rg, slos = g
            if ((q.num_models, q.cluster.num_gpus, q.arrival_rate_rps)
                    == (p.num_models, p.cluster.num_gpus, p.arrival_rate_rps)
                    and _same_panel(rg, r)):
                slos.append(p.slo.latency_ms)
                break
        else:
            groups.append((p, r, [p.slo.latency_ms]))
    return groups


@styled
def score_variation_panels(results):
    """:func:`score_variation` for every (problem, result) of ``experiments.panels``: one panel
    at column width, more two a row at page width; one legend below; one y range for all.

    Panels that differ only in their SLO and draw the same (every setup's score within
    :data:`SAME_SCORE_TOL`, the same setups feasible: the SLO does not bind) are drawn once,
    titled with each SLO. Baselines with no feasible plan are named in the panel's title."""
    groups = _merge_slo_panels(results)
    n = len(groups)
    ncols = 1 if n == 1 else 2
    nrows = (n + ncols - 1) // ncols
    width = style.COLUMN_WIDTH_IN if ncols == 1 else style.PAGE_WIDTH_IN
    fig, axes = style.figure(nrows, ncols, width="column" if ncols == 1 else "page",
                             height_in=2.0 * nrows + (1.0 if ncols == 1 else 0.6), sharey=True)
    for ax, (p, r, slos) in zip(axes.ravel(), groups):
        s = r["summary"]
        same = {2: ", the same at both SLOs"}.get(len(slos), ", the same at every SLO")
        lines = [f"{p.num_models} models, G = {p.cluster.num_gpus}, {p.arrival_rate_rps:g} req/s, "
                 f"SLO {' or '.join(f'{t:g}' for t in slos)} ms",
                 f"{s['feasible']} of {s['setups']} setups feasible" + (same if len(slos) > 1 else ""),
                 _no_plan_note(r)]
        title = "\n".join(style.wrap(t, width / ncols - 0.3) for t in lines if t)
        _score_variation(r, ax, title)
    for ax in axes[:, 1:].ravel():
        ax.set_ylabel("")    # one y label per row: the range is shared
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    style.legend_below(fig, ncol=2 if ncols == 1 else 3)
    return fig


@styled
def solver_comparison(df: pd.DataFrame):
    """Score gap to the MILP optimum and solve time, per solver and panel; a solver with no
    feasible plan on a panel is marked with a cross."""
    fig, (row,) = style.figure(1, 2, width="page", height_in=2.5)
    a, b = row
    panels = list(dict.fromkeys(df["panel"]))
    solvers = list(dict.fromkeys(df["solver"]))
    x = np.arange(len(panels))
    w = 0.8 / len(solvers)
    for i, s in enumerate(solvers):
        d = df[df["solver"] == s].set_index("panel").reindex(panels)
        off = x - 0.4 + w * (i + 0.5)
        gap = d["gap_to_milp_pct"]
        # |gap| below 1e-6 % is floating-point noise of the LP/MILP tolerances: drawn as 0
        a.bar(off, gap.where(gap.abs() > 1e-6, 0.0).fillna(0), w, color=style.color(i),
              label=label(s))
        b.bar(off, d["time_s"], w, color=style.color(i))
        bad = d["gap_to_milp_pct"].isna().to_numpy()
        if bad.any():
            a.scatter(off[bad], np.zeros(bad.sum()), label="no feasible plan", **MARKS["infeasible"])
    lo, hi = a.get_ylim()
    a.set_ylim(min(lo, 0.0), max(hi, 0.1))   # all-zero gaps still show a readable axis
    a.set_ylabel(label("gap_to_milp_pct"))
    a.set_title("score lost against the proven optimum")
    style.log_axis(b)
    b.set_ylabel(label("time_s") + ", log scale")
    b.set_title("wall-clock time on this machine")
    for ax in (a, b):
        ax.set_xticks(x, [p.replace("m G", " models, G = ") for p in panels])
        ax.set_xlabel("panel")
    style.legend_below(fig, ncol=3)
    return fig


@styled
def replay(rep):
    """Predicted vs simulated latency per routed model, on a log axis: one plan's models
    differ by 50x (80 ms beside 4,500 ms), and a linear axis flattens the short bars."""
    d = rep.per_model
    fig, axes = style.figure(1, 1, width="column", height_in=2.6)
    ax = axes[0][0]
    x = np.arange(len(d))
    ax.bar(x - 0.2, d["predicted_ms"], 0.4, color=style.color(0),
           label="predicted (curve of the whole mix)")
    ax.bar(x + 0.2, d["simulated_ms"], 0.4, color=style.color(3),
           label="simulated (prompts the plan routes)")
    style.log_axis(ax)
    vals = pd.concat([d["predicted_ms"], d["simulated_ms"]]).astype(float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals):   # bars start at the axis' bottom: half a decade below the shortest
        ax.set_ylim(vals.min() / 3, vals.max() * 1.5)
    ax.set_xticks(x, [f"{_model(m)}\n{s}" for m, s in zip(d["model"], d["setup"])])
    ax.set_ylabel(label(rep.metric) + ", log scale")
    ax.set_title("\n".join(style.wrap(t, COLUMN_TITLE_IN) for t in (
        f"plan mean: predicted {rep.predicted_ms:.0f} ms,",
        f"simulated {rep.simulated_mean_ms:.0f} ms (p99 {rep.simulated_p99_ms:.0f} ms)")))
    ax.grid(axis="x", visible=False)
    style.legend_below(fig, ncol=1)
    return fig


@styled
def mix_shift(df: pd.DataFrame, slo_ms: float):
    """Latency of the plan under each shifted task mix; shifts that push a model beyond its
    profiled load (infinite latency) are drawn on the top edge and counted in the legend."""
    fig, axes = style.figure(1, 1, width="column", height_in=2.7)
    ax = axes[0][0]
    lat = df["latency_ms"].astype(float)
    finite = np.isfinite(lat)
    ok = df["meets_slo"] & finite
    bad = ~df["meets_slo"] & finite
    ax.scatter(df.loc[ok, "max_task_share"], lat[ok], s=14, color=style.color(2),
               label=f"meets the SLO ({int(ok.sum())})")
    ax.scatter(df.loc[bad, "max_task_share"], lat[bad], s=14, color=style.color(4), marker="s",
               label=f"misses the SLO ({int(bad.sum())})")
    if (~finite).any():
        ax.scatter(df.loc[~finite, "max_task_share"], np.full((~finite).sum(), 1.0),
                   transform=ax.get_xaxis_transform(), clip_on=False,
                   label=f"beyond the profiled load: latency unknown ({int((~finite).sum())})",
                   **MARKS["dropped"])
        style.include_x(ax, df.loc[~finite, "max_task_share"])
    ax.axhline(slo_ms, color="k", ls="--", lw=0.8, label=f"SLO {slo_ms:g} ms")
    ax.set_xlim(left=0)
    ax.set_xlabel("largest task share in the shifted mix")
    ax.set_ylabel("plan latency, mean TTFT (ms)")
    ax.set_title(style.wrap(f"{len(df)} random task mixes, routed with the plan's prices",
                            COLUMN_TITLE_IN))
    style.legend_below(fig, ncol=1)
    return fig


@styled
def headroom_frontier(df: pd.DataFrame):
    """Score given up vs load increase and mix shifts survived, one point per headroom;
    headrooms with no feasible plan are listed in the title."""
    d = df[df["feasible"]]
    fig, axes = style.figure(1, 1, width="column", height_in=2.8)
    ax = axes[0][0]
    ax.plot(d["score_given_up_pct"], d["load_increase_survived_pct"], "o-", color=style.color(0),
            label="arrival-rate increase survived (%)")
    ax.plot(d["score_given_up_pct"], d["mix_shifts_survived_pct"], "s--", color=style.color(3),
            label="task-mix shifts meeting the SLO (%)")
    for _, r in d.iterrows():
        ax.annotate(f"{r['headroom']:g}", (r["score_given_up_pct"], r["load_increase_survived_pct"]),
                    fontsize=style.SMALL_FONT_SIZE_PT - 1, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("predicted score given up vs no headroom (%)")
    ax.set_ylabel("robustness (%)")
    infeasible = df.loc[~df["feasible"], "headroom"].tolist()
    ax.set_title(style.wrap("headroom frontier (labels: load cap / saturation)"
                            + (f"; infeasible at {', '.join(f'{h:g}' for h in infeasible)}"
                               if infeasible else ""), COLUMN_TITLE_IN))
    style.legend_below(fig, ncol=1)
    return fig


def run_name(meta) -> str:
    """A measured run as a reader names it: model, tp and GPU (marked when the GPU was assumed),
    engine and version, and the engine's sequence limit when set, from its metadata
    (:class:`routerwise.data.measured_runs.RunMeta`), never its internal id."""
    model = str(meta.model).split("/")[-1]
    model = re.sub(r"(-Instruct)?(-hf)?$", "", model)
    model = re.sub(r"-(\d+(?:\.\d+)?)b\b", lambda m: f"-{m.group(1)}B", model)
    gpu = f"{meta.gpu} (assumed)" if "assumed" in (getattr(meta, "gpu_note", "") or "") else meta.gpu
    engine = {"vllm": "vLLM", "sglang": "SGLang"}.get(str(meta.engine).lower(), str(meta.engine))
    version = re.sub(r"^vllm-openai:", "", str(meta.engine_version))
    version = version.split(" ")[0] if version[:1].isdigit() else version
    parts = [model, f"tp {meta.tp} on {gpu}", f"{engine} {version}".strip()]
    if getattr(meta, "max_num_seqs", None):
        parts.append(f"max {meta.max_num_seqs} seqs")
    return ", ".join(parts)


@styled
def latency_validation(levels: pd.DataFrame, sats: pd.DataFrame, runs=None):
    """Measured vs simulated (held-out) mean and p99 TTFT and TPOT against the offered rate,
    one row of two panels per measured run, titled with :func:`run_name` of its metadata
    (``runs``: the :class:`~routerwise.data.measured_runs.MeasuredRun` objects or their
    ``meta``; without them, the run id) and the rates drawn; the measured saturation rate is a
    grey line. Burst levels far off the rate axis (> 20x the median rate) are not drawn: the
    row title counts them. Rows share the page: at most :data:`style.MAX_HEIGHT_IN` tall."""
    use = levels[levels["usable"]]
    ids = list(use["run_id"].unique())
    metas = {m.run_id: m for m in (getattr(r, "meta", r) for r in (runs or ()))}
    height = min(1.55 * len(ids) + 0.45, style.MAX_HEIGHT_IN)
    fig = plt.figure(figsize=(style.PAGE_WIDTH_IN, height))
    rows = np.atleast_1d(fig.subfigures(len(ids), 1))
    for k, (sub, rid) in enumerate(zip(rows, ids)):
        row = sub.subplots(1, 2)
        d = use[use["run_id"] == rid].sort_values("rate_rps")
        far = d["rate_rps"] >= 20 * d["rate_rps"].median()
        d = d[~far]
        name = run_name(metas[rid]) if rid in metas else str(rid)
        note = (f"; {int(far.sum())} burst level{'s' if far.sum() > 1 else ''} not drawn"
                if far.any() else "")
        rates = f"{d['rate_rps'].min():.2g}-{d['rate_rps'].max():.2g} req/s" if len(d) else "no rates"
        sub.suptitle(style.wrap(f"{name}; {rates}{note}", style.PAGE_WIDTH_IN - 0.3),
                     fontsize=style.FONT_SIZE_PT)
        for ax, metric in zip(row, ("ttft", "tpot")):
            ax.plot(d["rate_rps"], d[f"meas_{metric}_mean_ms"], "o-", color=style.color(0),
                    label="measured mean")
            ax.plot(d["rate_rps"], d[f"sim_{metric}_mean_ms"], "s--", color=style.color(3),
                    label="simulated mean (held out)")
            ax.plot(d["rate_rps"], d[f"meas_{metric}_p99_ms"], "o:", color=style.color(0),
                    alpha=0.5, label="measured p99")
            ax.plot(d["rate_rps"], d[f"sim_{metric}_p99_ms"], "s:", color=style.color(3),
                    alpha=0.5, label="simulated p99")
            sat = sats.loc[sats["run_id"] == rid, "meas_saturation_rps"].iloc[0]
            if np.isfinite(sat) and sat < d["rate_rps"].max() * 1.5:
                ax.axvline(sat, color="grey", lw=0.8, label="measured saturation rate")
            style.log_axis(ax)
            ax.set_ylabel(f"{metric.upper()} (ms)")
            if k == len(ids) - 1:     # one axis label under the last row: every row's x is a rate
                ax.set_xlabel(label("rate_rps"))
    style.legend_below(fig, ncol=5)
    return fig


@styled
def calibration(doc: dict, title: str = ""):
    """Measured vs predicted mean TTFT and mean TPOT per load level of a ``routerwise calibrate``
    result (``doc``: its JSON), before (the engine profile's values) and after calibration; the
    levels used for the fit are ringed, measured-saturated ones drawn hollow."""
    lv = sorted(doc["levels"], key=lambda x: x["rate_rps"])
    rate = np.array([x["rate_rps"] for x in lv])
    fig, axes = plt.subplots(1, 2, figsize=(style.PAGE_WIDTH_IN, 2.3))
    for ax, metric in zip(axes, ("ttft_mean_ms", "tpot_mean_ms")):
        meas = np.array([x["measured"][metric] for x in lv])
        sat = np.array([x["measured_saturated"] for x in lv])
        ax.plot(rate[~sat], meas[~sat], "o", color=style.color(0), label="measured")
        if sat.any():
            ax.plot(rate[sat], meas[sat], "o", mfc="none", color=style.color(0),
                    label="measured (saturated: not fitted, not scored)")
        ax.plot(rate, [x["predicted_uncalibrated"][metric] for x in lv], "s:", color=style.color(1),
                label="predicted, uncalibrated (modelled)")
        ax.plot(rate, [x["predicted"][metric] for x in lv], "s--", color=style.color(3),
                label="predicted, calibrated (modelled)")
        fit = np.array([x["used_for_fit"] for x in lv])
        ax.plot(rate[fit], meas[fit], "o", ms=9, mfc="none", color="grey", label="fit level")
        style.log_axis(ax)
        ax.set_xlabel(label("rate_rps"))
        ax.set_ylabel(f"mean {metric.split('_')[0].upper()} (ms)")
    if title:
        fig.suptitle(style.wrap(title, style.PAGE_WIDTH_IN - 0.3), fontsize=style.FONT_SIZE_PT)
    style.legend_below(fig, ncol=3)
    return fig


@styled
def cost_frontier(frontier: pd.DataFrame, *, unlimited_capacity_score: float | None = None,
                  quality_floor: float | None = None, gpu: str = "GPUs", title: str = ""):
    """Score vs cluster size: the optimum, each baseline at the same size, the Pareto-optimal
    sizes circled; sizes where no plan exists are marked on the axis, not dropped."""
    fig, axes = style.figure(1, 1, width="column", height_in=3.6)
    ax = axes[0][0]
    x = frontier["num_gpus"].to_numpy()
    ax.plot(x, frontier["score"], "o-", color=style.PALETTE[0], label="RouterWise optimum")
    for b, (mk, col) in BASELINE_STYLE.items():
        if f"{b}_score" in frontier:
            ax.plot(x, frontier[f"{b}_score"], mk + "--", color=col, alpha=0.8, label=label(b))
    on = frontier[frontier["pareto_optimal"]]
    ax.scatter(on["num_gpus"], on["score"], s=90, facecolors="none", edgecolors=style.PALETTE[6],
               label="Pareto-optimal size")
    none = frontier[frontier["score"].isna()]
    if len(none):
        ax.scatter(none["num_gpus"], np.zeros(len(none)), transform=ax.get_xaxis_transform(),
                   clip_on=False, label="no plan at this size", **MARKS["infeasible"])
    if unlimited_capacity_score is not None:
        ax.axhline(unlimited_capacity_score, color="grey", lw=0.8, ls=":",
                   label="unlimited capacity")
    if quality_floor is not None:
        ax.axhline(quality_floor, color=style.PALETTE[5], lw=0.8, ls="-.", label="quality floor")
    ax.set_xticks(x)
    ax.set_xlabel(f"cluster size ({gpu})")
    ax.set_ylabel("mean predicted score")
    ax.set_title(style.wrap(title or "quality bought by each extra GPU", COLUMN_TITLE_IN))
    style.legend_below(fig, ncol=2)
    return fig


@styled
def headline_sensitivity(sensitivity: dict, paper_variation_pct: float = 87.0):
    """Variation across setups vs the spread of model means, one panel per ladder: measured
    (setups solved), the most the scores allow ((U - L) / L, clipped to the axis and marked when
    clipped), the data itself (k = 1) and the paper's headline."""
    fig, axes = style.figure(1, len(sensitivity), width="page", height_in=2.9)
    top = 300.0
    for ax, (name, t) in zip(axes[0], sensitivity.items()):
        ax.plot(t["mean_gap"], t["measured_variation_pct"], "o-", color=style.color(0),
                label="measured (every setup solved)")
        allowed = t["max_variation_allowed_pct"]
        ax.plot(t["mean_gap"], allowed.clip(upper=top), "s--", color=style.color(2),
                label="most the scores allow, (U - L) / L")
        over = t[allowed > top]
        if len(over):
            ax.scatter(over["mean_gap"], np.full(len(over), top), clip_on=False,
                       label="allowed beyond the axis", **MARKS["dropped"])
        data = t[np.isclose(t["factor"], 1.0)]
        ax.scatter(data["mean_gap"], data["measured_variation_pct"], label="the data (k = 1)",
                   **MARKS["optimum"])
        ax.axhline(paper_variation_pct, color=style.PALETTE[6], lw=0.8, ls=":",
                   label=f"paper's headline ({paper_variation_pct:g}%)")
        ax.set_ylim(0, top)
        ax.set_xlabel("best minus weakest model mean (predicted score)")
        ax.set_ylabel("score variation across setups (%)")
        ax.set_title(f"{name} ladder")
    style.legend_below(fig, ncol=3)
    return fig


@styled
def scale(table: pd.DataFrame, gap_target_pct: float = 1.0):
    """Solve time (log) and proven gap per instance size, coloured by the method ``auto`` chose;
    a size that stopped at its time limit is marked."""
    fig, axes = style.figure(1, 2, width="page", height_in=2.6)
    ax1, ax2 = axes[0]
    x = np.arange(len(table))
    names = [f"{m} x {g}" for m, g in zip(table["models"], table["gpus"])]
    methods = list(dict.fromkeys(table["method"]))
    colors = [style.color(methods.index(k)) for k in table["method"]]
    ax1.bar(x, table["time_s"], color=colors)
    style.log_axis(ax1)
    ax1.set_ylabel("solve time (s, measured)")
    ax1.set_title("time to a proven plan")
    gaps = table["gap_pct"].fillna(0.0)
    ax2.bar(x, gaps, color=colors)
    for xi, gap in zip(x, table["gap_pct"]):
        ax2.annotate("no plan" if pd.isna(gap) else f"{gap:.3f}%", (xi, 0 if pd.isna(gap) else gap),
                     ha="center", va="bottom", fontsize=style.SMALL_FONT_SIZE_PT)
    ax2.axhline(gap_target_pct, color="grey", ls="--", lw=0.8, label=f"{gap_target_pct:g}% gap")
    ax2.set_ylim(0, max(1.2 * gap_target_pct, 1.2 * float(gaps.max())))
    ax2.set_ylabel("proven gap, (bound - score) / bound (%)")
    ax2.set_title("proven optimality gap")
    limited = table["status"] == "time_limit"
    for ax in (ax1, ax2):
        ax.set_xticks(x, names)
        ax.set_xlabel("models x GPUs (synthetic ladder, modelled)")
    if limited.any():
        ax1.scatter(x[limited.to_numpy()], table.loc[limited, "time_s"], label="stopped at its time limit",
                    **MARKS["infeasible"])
    for k in methods:
        ax1.bar([0], [0], color=style.color(methods.index(k)), label=f"method chosen: {k}")
    style.legend_below(fig, ncol=3)
    return fig
