"""Tiny hand-solvable problems shared by the solver tests."""

from __future__ import annotations

import numpy as np

from routerwise.problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
)


def two_model_problem(scores, curves: dict, *, rate=10.0, tau=300.0, num_gpus=1,
                      tenths=(5,), tp=(1,), rho_min=1.0, aggregate="mean", metric="ttft_mean",
                      check=True):
    """Models 'a' and 'b' (or as many as columns) on one GPU; ``curves[name] = (loads, lats)``
    used for every (tp, rho) option listed."""
    scores = np.asarray(scores, dtype=float)
    names = tuple("abcdefgh"[: scores.shape[1]])
    models = tuple(ModelSpec(n, 1.0 + i, tuple((t, 10.0) for t in (1, 2, 4, 8)))
                   for i, n in enumerate(names))
    cs = tuple(LatencyCurve(n, t, r, tuple(curves[n][0]), tuple(curves[n][1]), metric, "synthetic")
               for n in names for t in tp for r in tenths)
    return Problem(models, Cluster(GPUType("toy-80GB", 80.0), num_gpus),
                   Workload(scores, rate, names), LatencyProfiles(cs, metric),
                   SLO(tau, metric, aggregate),
                   SetupSpace(tp_degrees=tp, compute_tenths=tenths, rho_min=rho_min,
                              check_memory=check, check_compute=check))
