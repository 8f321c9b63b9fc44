"""RouterWise: joint GPU resource allocation and prompt routing for multi-model LLM serving."""

from .errors import (ChecksumMismatch, DataError, InfeasibleSLO, MissingDataFile,
                     RouterWiseError, SolverUnavailable, ValidationError, VerificationError)
from .problem import (SLO, Cluster, GPUType, LatencyCurve, LatencyProfiles, ModelSetup,
                      ModelSpec, Problem, SetupSpace, SystemSetup, Workload)
from .online_router import OnlineRouter
from .optimize.setup_space import enumerate_setups
from .optimize.solution import Solution
from .solve import METHODS, solve

__version__ = "0.1.0"

__all__ = ["ChecksumMismatch", "DataError", "InfeasibleSLO", "MissingDataFile", "RouterWiseError",
           "SolverUnavailable", "ValidationError", "VerificationError", "SLO", "Cluster", "GPUType",
           "LatencyCurve", "LatencyProfiles", "ModelSetup", "ModelSpec", "Problem", "SetupSpace",
           "SystemSetup", "Workload", "OnlineRouter", "enumerate_setups", "Solution", "METHODS",
           "solve"]
