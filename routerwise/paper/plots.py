"""Plotting glue for the notebooks (matplotlib). Each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["BASELINE_STYLE", "setup_space", "latency_profiles", "score_variation",
           "solver_comparison", "replay", "mix_shift", "headroom_frontier"]

BASELINE_STYLE = {"equal-split": ("s", "tab:orange"), "size-proportional": ("^", "tab:green"),
                  "isolated": ("D", "tab:purple")}


def setup_space(df: pd.DataFrame):
    """Setups surviving each filter vs cluster size (log scale), one panel per ladder."""
    stages = ["utilization", "memory_ffd_paper", "memory_exact", "memory_compute_ours"]
    models = sorted(df["models"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, M in zip(axes[0], models):
        d = df[df["models"] == M].sort_values("gpus")
        for st, mk in zip(stages, "os^D"):
            ax.plot(d["gpus"], d[st].clip(lower=0.8), marker=mk, label=st)
        ax.set_yscale("log")
        ax.set_xlabel("GPUs (G)")
        ax.set_ylabel("setups retained")
        ax.set_title(f"{M} models")
        ax.set_xticks(d["gpus"])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def latency_profiles(table: pd.DataFrame, models, tp_degrees=(1, 2, 4), shares=(0.3, 0.6, 1.0),
                     metric: str = "ttft_mean"):
    """Latency against load, one panel per model; colour = tp, line style = compute share;
    solid markers for measured curves, hollow for simulated ones."""
    col = f"{metric}_ms"
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    styles = ["-", "--", ":", "-."]
    colors = {1: "tab:blue", 2: "tab:orange", 4: "tab:green", 8: "tab:red"}
    for ax, m in zip(axes[0], models):
        for tp in tp_degrees:
            for share, ls in zip(shares, styles):
                d = table[(table["model"] == m) & (table["tp"] == tp)
                          & np.isclose(table["compute_share"], share) & ~table["saturated"]]
                if d.empty:
                    continue
                measured = (d["source"] == "measured").all()
                ax.plot(d["load_rps"], d[col], ls, color=colors.get(tp, "k"),
                        marker="o", ms=3, mfc=None if measured else "none",
                        label=f"tp{tp} rho{share:.1f}")
        ax.set_yscale("log")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("load (req/s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric.replace('_', ' ')} (ms)")
    axes[0][0].legend(fontsize=7, ncol=1)
    fig.tight_layout()
    return fig


def score_variation(result: dict, ax=None, title: str | None = None):
    """Every setup's best score against the compute given to the largest model (tp * rho, in
    GPUs), with the baselines and the optimum marked. Each setup's best plan sits on its SLO
    when the SLO binds, so latency would not separate the setups; compute does."""
    df, best, base = result["setups"], result["best"], result["baselines"]
    s = result["summary"]
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.5, 4))
    large = [c for c in df.columns if c.startswith("tp[")][-1][3:-1]
    f = df[df["feasible"]]
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(f))
    ax.scatter(f[f"tp[{large}]"] * f[f"rho[{large}]"] + jitter, f["score"], s=10, alpha=0.5,
               color="tab:blue", label=f"retained setups ({len(f)} feasible of {len(df)})")

    def gpus(sol):
        return sol.setup.per_model[-1].compute_units_tenths / 10

    for name, sol in base.items():
        if sol.feasible:
            mk, c = BASELINE_STYLE[name]
            ax.scatter([gpus(sol)], [sol.score], marker=mk, s=70, color=c, edgecolor="k",
                       label=name, zorder=3)
    if best.feasible:
        ax.scatter([gpus(best)], [best.score], marker="*", s=200, color="gold", edgecolor="k",
                   label="optimum", zorder=4)
    ax.set_xlabel(f"compute given to {large} (tp x rho, GPUs)")
    ax.set_ylabel("best predicted average score")
    ax.set_title(title or f"{s['instance']} @ {s['rate_rps']:g} req/s, mean TTFT <= "
                          f"{s['slo_ms']:g} ms", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax.figure


def solver_comparison(df: pd.DataFrame):
    """Score gap to the MILP optimum and time, per solver and panel."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    piv = df.pivot_table(index="panel", columns="solver", values="gap_to_milp_pct")
    piv.plot.bar(ax=a)
    a.set_ylabel("gap to MILP optimum (%)")
    a.grid(alpha=0.3)
    tv = df.pivot_table(index="panel", columns="solver", values="time_s")
    tv.plot.bar(ax=b, logy=True)
    b.set_ylabel("time (s)")
    b.grid(alpha=0.3)
    for ax in (a, b):
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def replay(rep):
    """Predicted vs simulated latency per routed model."""
    d = rep.per_model
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(d))
    ax.bar(x - 0.2, d["predicted_ms"], 0.4, label="predicted (profile)")
    ax.bar(x + 0.2, d["simulated_ms"], 0.4, label="simulated (routed prompts)")
    ax.set_xticks(x, [f"{m}\n{s}" for m, s in zip(d["model"], d["setup"])], fontsize=7)
    ax.set_ylabel(f"{rep.metric} (ms)")
    ax.set_title(f"plan mean: predicted {rep.predicted_ms:.0f} ms, simulated "
                 f"{rep.simulated_mean_ms:.0f} ms, simulated p99 {rep.simulated_p99_ms:.0f} ms",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def mix_shift(df: pd.DataFrame, slo_ms: float):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ok = df["meets_slo"]
    ax.scatter(df.loc[ok, "max_task_share"], df.loc[ok, "latency_ms"], label="meets SLO")
    ax.scatter(df.loc[~ok, "max_task_share"], df.loc[~ok, "latency_ms"], color="tab:red",
               label="violates SLO")
    ax.axhline(slo_ms, color="k", ls="--", lw=1)
    ax.set_xlabel("largest task share in the shifted mix")
    ax.set_ylabel("latency with the plan's prices (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def headroom_frontier(df: pd.DataFrame):
    """Score given up vs load increase and mix shifts survived, one point per headroom."""
    d = df[df["feasible"]]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(d["score_given_up_pct"], d["load_increase_survived_pct"], "o-",
            label="load increase survived (%)")
    ax.plot(d["score_given_up_pct"], d["mix_shifts_survived_pct"], "s--",
            label="task-mix shifts meeting the SLO (%)")
    for _, r in d.iterrows():
        ax.annotate(f"{r['headroom']:g}", (r["score_given_up_pct"], r["load_increase_survived_pct"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("predicted score given up vs no headroom (%)")
    ax.set_ylabel("robustness (%)")
    ax.set_title("headroom frontier (labels: load cap as a fraction of saturation)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
