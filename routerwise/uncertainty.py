"""How far a measured mean may sit from the true one: one rule for every measured figure.

Measurements here come in runs whose consecutive requests share queues, so their spread alone
understates the uncertainty of their mean. Callers cut a run into independent-enough pieces
(time blocks of a live check, batches of a load level) and pass the pieces' means:
:func:`half_width_95` is Student's t over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["half_width_95"]


def half_width_95(means: Sequence[float]) -> float:
    """The 95% half-width of the mean of ``means`` (Student's t with ``n - 1`` degrees of
    freedom times the standard error); NaN for fewer than two values."""
    from scipy import stats

    v = np.asarray(means, dtype=float)
    if v.size < 2:
        return math.nan
    return float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
