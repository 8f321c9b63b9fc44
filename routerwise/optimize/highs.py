"""HiGHS instances for the kit's own LPs: silent, and without the once-per-process banner.

HiGHS prints a copyright banner to the process's stdout (file descriptor 1, below Python) the
first time an instance is created; in a notebook that lands in a cell's output. The first
instance is therefore created with fd 1 pointed at /dev/null. Thread counts are left to HiGHS:
its scheduler is global, and asking one instance for a different count fails the solve.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["consume_banner", "new_highs"]

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
