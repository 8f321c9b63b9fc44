"""The machine-speed index recorded beside every real-engine load point."""

from __future__ import annotations

import math
import os

from profiling.engine_check import speed_index_ms


def test_the_speed_index_is_cpu_time_and_leaves_the_affinity_as_it_was():
    before = os.sched_getaffinity(0)
    one = sorted(before)[:1]
    a = speed_index_ms(one, repeats=3)
    assert math.isfinite(a) and a > 0
    assert os.sched_getaffinity(0) == before
    # CPU time of a fixed workload: the same order of magnitude from one call to the next
    # (a core shared with another process would stretch wall time, not this)
    b = speed_index_ms(repeats=3)
    assert 0.2 < a / b < 5.0
