"""Typed errors. Each message says what was wrong and what to do about it.

Every error the kit raises on purpose derives from :class:`RouterWiseError`, so callers can
catch the family; the subclasses separate "your input is wrong" (:class:`ValidationError`),
"a data file is missing or corrupt" (:class:`DataError`), "no plan meets the SLO"
(:class:`InfeasibleSLO`), "the solver you named is not installed" (:class:`SolverUnavailable`),
"a solver returned something that does not check out" (:class:`VerificationError`) and "a
task of a sweep failed; here is what finished" (:class:`SweepFailed`) and "this needs an
optional extra that is not installed" (:class:`MissingDependency`).
"""

from __future__ import annotations

__all__ = ["RouterWiseError", "ValidationError", "DataError", "MissingDataFile",
           "ChecksumMismatch", "SolverUnavailable", "InfeasibleSLO", "VerificationError",
           "SweepFailed", "MissingDependency"]


class RouterWiseError(Exception):
    """Base class of every error the kit raises on purpose."""


class ValidationError(RouterWiseError, ValueError):
    """An input record is malformed (NaN scores, non-monotone curve, unknown model, ...)."""


class DataError(RouterWiseError):
    """A data file is missing, unreadable, or fails its checksum."""


class MissingDataFile(DataError, FileNotFoundError):
    """A registered data file was neither in the mirror nor downloadable."""


class ChecksumMismatch(DataError):
    """A data file's bytes differ from the sha256 recorded in the registry."""


class SolverUnavailable(RouterWiseError, RuntimeError):
    """The named solver backend is not installed or cannot be called."""


class InfeasibleSLO(RouterWiseError):
    """No deployment setup and routing meets the latency SLO.

    Carries the :class:`~routerwise.optimize.solution.Infeasibility` diagnosis (``.report``): the lowest
    latency any retained setup reaches, the setup that reaches it, and which limit binds.
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class VerificationError(RouterWiseError, AssertionError):
    """A solution failed :meth:`Solution.verify`: a solver bug, never a user error."""


class SweepFailed(RouterWiseError, RuntimeError):
    """A task of a sweep (:func:`routerwise.parallel.map_tasks`) failed, or its executor did.

    Nothing finished is lost: ``completed`` maps task index -> result for every task that
    finished (resumed from a checkpoint or computed), ``failed`` maps task index -> the
    exception, ``not_run`` lists the indices cancelled before they started, ``total`` counts
    all tasks. The first failure is also the ``__cause__``. Rerun the sweep with the same
    checkpoint folder (or a working executor) to compute only what is missing.
    """

    def __init__(self, message: str, *, completed=None, failed=None, not_run=(), total=0):
        super().__init__(message)
        self.completed = dict(completed or {})
        self.failed = dict(failed or {})
        self.not_run = tuple(not_run)
        self.total = int(total)


class MissingDependency(RouterWiseError, ImportError):
    """A command needs packages of an optional extra (``pip install -e ".[paper]"``) that are
    not installed; the message names the packages and the extra."""
