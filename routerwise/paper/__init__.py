"""The paper's study, apart from the library: default instances from public data, the
experiments behind the notebooks, plots, recorded numbers and the one-command reproduction."""

__all__ = ["instances", "experiments", "plots", "record", "reproduce", "synthetic"]
