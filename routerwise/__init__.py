"""RouterWise: joint GPU resource allocation and prompt routing for multi-model LLM serving.

The package's layers, lowest first (``tests/test_architecture.py`` keeps imports pointing
down): foundations (errors, io, settings) and the problem records; ``data`` (registry, scores,
latency tables, measured runs); ``serving`` (the serving model and simulator); ``optimize``
(setup space, routing, solvers, ``Solution``); ``planning`` (problem files, ``solve``, the online
router, replay, consistency, cost) with this facade re-exporting it; ``paper`` (the paper's
study); the command line.
"""

from .errors import (
    ChecksumMismatch,
    DataError,
    InfeasibleSLO,
    MissingDataFile,
    RouterWiseError,
    SolverUnavailable,
    ValidationError,
    VerificationError,
)
from .optimize.headroom import with_headroom
from .optimize.setup_space import enumerate_setups
from .optimize.solution import Solution
from .planning.consistency import plan_consistently, replay_record
from .planning.cost import GpuPrices, cheapest_cluster, pareto_frontier
from .planning.online_router import OnlineRouter
from .planning.problem_file import load_problem, read_problem_file
from .planning.solve import METHODS, register_solver, solve
from .problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSetup,
    ModelSpec,
    Problem,
    SetupSpace,
    SystemSetup,
    Workload,
)

__version__ = "0.3.0"

__all__ = ["ChecksumMismatch", "DataError", "InfeasibleSLO", "MissingDataFile", "RouterWiseError",
           "SolverUnavailable", "ValidationError", "VerificationError", "SLO", "Cluster", "GPUType",
           "LatencyCurve", "LatencyProfiles", "ModelSetup", "ModelSpec", "Problem", "SetupSpace",
           "SystemSetup", "Workload", "OnlineRouter", "enumerate_setups", "Solution", "METHODS",
           "solve", "register_solver", "load_problem", "read_problem_file", "with_headroom",
           "replay_record", "plan_consistently", "GpuPrices", "cheapest_cluster",
           "pareto_frontier"]
