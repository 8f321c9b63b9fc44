"""Step-cost fit: time to fit, in-sample error and leave-one-model-out error.

    ROUTERWISE_DATA_MIRROR=/path/to/mirror python benchmarks/bench_stepcost.py

Prints the fit time (median of 3 uncached fits), the fitted parameters, the in-sample median
absolute percentage error per (source, GPU, model), and the leave-one-model-out table: for each
model, the fit without any of its rows predicts them (median / mean APE per source and GPU).
"""

from __future__ import annotations

import json
import statistics
import time

import pandas as pd

from routerwise.serving import stepcost


def main() -> None:
    pd.set_option("display.width", 200)
    t0 = time.perf_counter()
    meas = stepcost.load_measurements()
    load_s = time.perf_counter() - t0
    times, params = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        params = stepcost.fit_params(meas)
        times.append(time.perf_counter() - t0)
    used = meas.used()
    print(f"measured rows: {len(meas.rows)} read, {len(used)} used, "
          f"{len(meas.rows) - len(used)} excluded with a reason; load {load_s:.2f} s")
    print("excluded rows by reason:")
    reasons = meas.rows.loc[meas.rows["excluded"] != "", "excluded"]
    kinds = reasons.str.replace(r"[0-9][0-9.,]*", "#", regex=True).str.slice(0, 90)
    print(kinds.value_counts().to_string())
    print(f"fit time: median {statistics.median(times):.2f} s over {len(times)} fits "
          f"({', '.join(f'{t:.2f}' for t in times)})")
    print("fitted parameters:")
    print(json.dumps({"family": params.family, "engine": params.engine, "q": params.q},
                     indent=1, default=lambda v: round(v, 4)))

    ins = stepcost.in_sample_errors(params, meas)
    print("\nin-sample error (fit on all rows):")
    print(ins.round(2).to_string(index=False))
    print(f"in-sample: median of group medians {ins['median_ape_pct'].median():.2f}%")

    t0 = time.perf_counter()
    lomo = stepcost.leave_one_model_out(meas)
    lomo_s = time.perf_counter() - t0
    print(f"\nleave-one-model-out error ({lomo['model'].nunique()} models, {lomo_s:.1f} s):")
    print(lomo.sort_values(["source", "gpu", "model"]).round(2).to_string(index=False))
    weighted = (lomo["median_ape_pct"] * lomo["rows"]).sum() / lomo["rows"].sum()
    print(f"LOMO: median of (source, GPU, model) medians {lomo['median_ape_pct'].median():.2f}% "
          f"(target < 15%); worst group {lomo['median_ape_pct'].max():.2f}%; "
          f"row-weighted mean of medians {weighted:.2f}%")
    by_source = lomo.groupby("source")["median_ape_pct"].median()
    print("LOMO median by source: " + ", ".join(f"{k} {v:.2f}%" for k, v in by_source.items()))


if __name__ == "__main__":
    main()
