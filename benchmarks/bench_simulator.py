"""Simulator speed: one 10,000-request load point, and the default 4-model profile grid.

    ROUTERWISE_DATA_MIRROR=/path/to/mirror python benchmarks/bench_simulator.py

Prints (1) the wall time of one load point of 10,000 requests (Llama-3.1-8B, tp 1, full
A100-80GB, RouteProfile lengths) at 25/50/90% of its saturation load, median of 5 runs each,
against the 0.5 s target, for the default engine profile (vllm-v1: chunked prefill, paged KV)
and the legacy replica; (2) the wall time of the whole default grid (4 models x tp {1,2,4} x
rho 0.1..1.0 on A100-80GB, 2 worker processes, empty cache; the step-cost fit is done before
the clock starts) against the 2-minute target.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from routerwise.serving import curve_grid as pg
from routerwise.serving import engine as eng
from routerwise.serving import simulator as sim
from routerwise.serving import stepcost

TARGET_POINT_S = 0.5
TARGET_GRID_S = 120.0


def main() -> None:
    params = stepcost.fit()
    model = "llama-3.1-8b-instruct"
    lengths = pg.routeprofile_lengths([model])[model]
    opts = pg.GridOptions()
    for profile in (opts.engine_profile, "legacy"):
        o = pg.GridOptions(engine_profile=profile)
        steps = stepcost.replica_step_times(model, "A100-80GB", 1, 1.0,
                                            params=eng.profile_step_params(params, profile),
                                            max_batched_tokens=8192)
        cfg = pg.grid_setup(steps, model, "A100-80GB", 1, 1.0, o)
        lam = pg._saturation_load(steps, lengths, cfg, o)
        print(f"{model}, tp 1, A100-80GB, rho 1.0, profile {profile}: saturation load "
              f"{lam:.2f} req/s")
        for frac in (0.25, 0.5, 0.9):
            req = sim.poisson_requests(frac * lam, 10_000, lengths.prompt_tokens,
                                       lengths.output_tokens, seed=0)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                res = eng.simulate_engine(steps, req, cfg, load_rps=frac * lam)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(f"  10,000 requests at {frac:.0%} load ({frac * lam:.2f} req/s): median "
                  f"{med:.3f} s over 5 runs ({med / TARGET_POINT_S:.2f} x the 0.5 s target); "
                  f"ttft mean {res.stats_ms['ttft_mean']:.1f} ms, saturated {res.saturated}")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        df = pg.build_profile_table(pg.DEFAULT_MODELS, "A100-80GB", (1, 2, 4), range(1, 11),
                                    params=params, workers=2, progress=False,
                                    cache_dir=Path(tmp))
        grid_s = time.perf_counter() - t0
    curves = df.groupby(["model", "tp", "compute_share"]).ngroups
    print(f"default grid (profile {opts.engine_profile}): {curves} curves, {len(df)} load points "
          f"({opts.num_requests} requests each), skipped {len(df.attrs['skipped'])} "
          f"(model, tp): {[(s['model'], s['tp']) for s in df.attrs['skipped']]}")
    print(f"  wall time {grid_s:.1f} s on 2 workers ({grid_s / TARGET_GRID_S:.2f} x the "
          f"2-minute target)")


if __name__ == "__main__":
    main()
