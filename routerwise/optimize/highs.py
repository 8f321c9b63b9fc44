"""HiGHS instances for the kit's own LPs: silent, and without the once-per-process banner;
and the solvers' time limits (:class:`Deadline`, :func:`pulp_highs`).

HiGHS prints a copyright banner to the process's stdout (file descriptor 1, below Python) the
first time an instance is created; in a notebook that lands in a cell's output. The first
instance is therefore created with fd 1 pointed at /dev/null. Thread counts are left to HiGHS:
its scheduler is global, and asking one instance for a different count fails the solve.

A solver's ``time_limit_s`` is for its whole run: every HiGHS call gets what is left of it
when HiGHS starts, not the whole limit again. What runs between the clock checks cannot be
interrupted (building a model, PuLP copying it into HiGHS, one LP), so a limit can be overrun
by about one such step.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable

__all__ = ["Deadline", "consume_banner", "new_highs", "pulp_highs"]


class Deadline:
    """``limit_s`` seconds from creation on ``clock`` (None: no limit).

    ``clock`` returns seconds (default ``time.perf_counter``); solvers take one so that the
    deadline logic can be tested with a clock that does not wait.
    """

    def __init__(self, limit_s: float | None, clock: Callable[[], float] = time.perf_counter):
        self.limit_s = None if limit_s is None else float(limit_s)
        self.clock = clock
        self.start = clock()

    def left(self) -> float | None:
        """Seconds left (may be negative once past), or None without a limit."""
        return None if self.limit_s is None else self.limit_s - (self.clock() - self.start)

    def expired(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

_banner_consumed = False


@contextlib.contextmanager
def _quiet_fd1():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def consume_banner() -> None:
    """Create (and drop) the process's first HiGHS instance quietly."""
    global _banner_consumed
    if not _banner_consumed:
        import highspy
        with _quiet_fd1():
            highspy.Highs()
        _banner_consumed = True


def new_highs():
    """A HiGHS instance with all output off."""
    import highspy
    consume_banner()
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("output_flag", False)
    return h


@functools.cache
def _deadline_highs_class():
    import pulp

    class DeadlineHiGHS(pulp.HiGHS):
        """PuLP's HiGHS with its time limit set to what a :class:`Deadline` leaves at the
        moment HiGHS starts, after PuLP has copied the model in (seconds on large models,
        which HiGHS's own clock does not count)."""

        deadline: Deadline | None = None
        start: dict | None = None     # PuLP variable -> value: a MIP start (warm start)

        def callSolver(self, lp):
            left = None if self.deadline is None else self.deadline.left()
            if left is not None:
                lp.solverModel.setOptionValue("time_limit", max(0.0, left))
            if self.start:
                import numpy as np
                idx = np.array([v.index for v in self.start], dtype=np.int32)
                val = np.array([float(x) for x in self.start.values()], dtype=float)
                lp.solverModel.setSolution(idx.size, idx, val)
            super().callSolver(lp)

    return DeadlineHiGHS


def pulp_highs(deadline: Deadline | None = None, start: dict | None = None, **options):
    """A PuLP HiGHS solver (``options`` as for ``pulp.HiGHS``) stopped by ``deadline``.

    ``start`` ({PuLP variable: value}, a partial assignment is fine) is handed to HiGHS as a
    MIP start (``Highs.setSolution``): HiGHS completes and checks it, and uses it as its first
    incumbent when it is feasible (an infeasible start is ignored, never trusted).
    """
    s = _deadline_highs_class()(**options)
    s.deadline = deadline
    s.start = start
    return s
