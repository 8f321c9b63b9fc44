"""The serving model: GPU catalogue, architectures, memory, compute share, fitted step costs,
engine profiles, the discrete-event simulator, simulated latency curves and their validation
against measured runs."""

__all__ = ["hardware", "architectures", "memory", "compute_share", "stepcost", "engine",
           "simulator", "curve_grid", "latency_validation"]
