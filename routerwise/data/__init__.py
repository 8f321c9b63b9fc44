"""Data in: the registry of public files, score matrices, the score predictor, latency tables,
request traces and measured online serving runs. Imports nothing above ``routerwise.problem``."""

__all__ = ["registry", "scores", "score_predictor", "latency_table", "traces", "measured_runs", "reports"]
