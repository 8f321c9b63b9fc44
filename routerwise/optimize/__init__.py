"""The optimizer: setup space and placement, latency envelopes, the routing LP, bounds and
diagnosis, the exact search, the paper's dual-price method, the MILP, baselines, and the
Solution record with its one verify()."""

__all__ = ["setup_space", "placement", "latency", "assignment", "fixed_setup", "bounds",
           "diagnosis", "exact_search", "dual_price", "milp", "baselines", "highs", "solution"]
