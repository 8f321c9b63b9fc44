"""The paper's study, apart from the library: default instances from public data, the
experiments behind the notebooks, plots (in one figure style), typed notebook parameters,
recorded numbers with their provenance, conclusions written from them, and the one-command
reproduction."""

__all__ = ["instances", "experiments", "plots", "style", "params", "record", "provenance",
           "conclusions", "progress", "reproduce", "synthetic"]
