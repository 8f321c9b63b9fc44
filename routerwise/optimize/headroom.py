"""Headroom: keep every model's planned load a fraction below its saturation rate.

A latency curve of the profile grid ends at the highest load its replica carried without
saturating (``routerwise.serving.curve_grid``: points up to 0.98 of the bisected saturation load).
The last stretch is the knee: TTFT there is steep in load, a plan that
parks a model there breaks on a few percent more load or a slightly heavier prompt mix, and
its mean latency cannot be predicted to 10% from a curve profiled with other random arrivals.

:func:`with_headroom` returns the problem with every curve cut at ``load_fraction`` of its
last profiled load (the end point is interpolated on the curve). The solvers then plan on the
cut curves: they stay exact for the problem they solve, and the cut is recorded in
``problem.assumptions`` (so it reaches every plan's notes). ``DEFAULT_LOAD_FRACTION = 0.8``
(0.8 x 0.98 = 0.78 of the bisected saturation load): below the knee of the default grid's
curves, leaving room for load growth and for a routed mix heavier than the profiled one.
``benchmarks/bench_plans.py`` and notebook 05 (the headroom frontier) print how far each
fraction's plans move from their replays and what they give up in score.
``load_fraction = 1`` is the paper's behaviour (no headroom).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ValidationError
from ..problem import LatencyCurve, LatencyProfiles, Problem

__all__ = ["DEFAULT_LOAD_FRACTION", "cut_curve", "with_headroom"]

DEFAULT_LOAD_FRACTION = 0.8


def cut_curve(curve: LatencyCurve, load_fraction: float) -> LatencyCurve:
    """The curve up to ``load_fraction`` of its last load (interpolated end point)."""
    end = load_fraction * curve.max_load_rps
    keep = curve.x < end * (1 - 1e-12)
    x = np.r_[curve.x[keep], end]
    y = np.r_[curve.y[keep], float(np.interp(end, curve.x, curve.y))]
    prov = (curve.provenance + "; " if curve.provenance else "") + \
        f"cut at {load_fraction:g} x its last profiled load (headroom)"
    return replace(curve, load_rps=tuple(x), latency_ms=tuple(y), provenance=prov)


def with_headroom(problem: Problem, load_fraction: float = DEFAULT_LOAD_FRACTION) -> Problem:
    """``problem`` with every curve cut at ``load_fraction`` of its saturation-free range."""
    if not (isinstance(load_fraction, (int, float)) and 0 < load_fraction <= 1):
        raise ValidationError(f"headroom load_fraction must be in (0, 1] (1 = no headroom), "
                              f"got {load_fraction!r}")
    if load_fraction == 1:
        return problem
    prof = problem.profiles
    curves = tuple(cut_curve(c, load_fraction) for c in prof.curves)
    note = (f"headroom: each model's load capped at {load_fraction:g} x the highest load its "
            f"curve carried without saturation (modelled safety margin)")
    return replace(problem, profiles=LatencyProfiles(curves, prof.metric),
                   assumptions=problem.assumptions + (note,))
