"""The paper's study, apart from the library: default instances from public data, the
experiments behind the notebooks, the headline explained (bounds, a second ladder, spread
sensitivity), plots (in one figure style), typed notebook parameters, recorded numbers with
their provenance, conclusions written from them, and the one-command reproduction."""

__all__ = ["instances", "experiments", "headline", "plots", "style", "params", "record",
           "provenance", "conclusions", "progress", "reproduce", "synthetic"]
