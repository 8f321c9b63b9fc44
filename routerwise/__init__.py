"""RouterWise: joint GPU resource allocation and prompt routing for multi-model LLM serving."""

from .errors import (ChecksumMismatch, DataError, InfeasibleSLO, MissingDataFile,
                     RouterWiseError, SolverUnavailable, ValidationError, VerificationError)
from .problem import (SLO, Cluster, GPUType, LatencyCurve, LatencyProfiles, ModelSetup,
                      ModelSpec, Problem, SetupSpace, SystemSetup, Workload)

__version__ = "0.1.0"
