"""The paper's study, apart from the library: default instances from public data, the
experiments behind the notebooks, the headline explained (bounds, a second ladder, spread
sensitivity), plots, recorded numbers and the one-command reproduction."""

__all__ = ["instances", "experiments", "headline", "plots", "record", "reproduce", "synthetic"]
