"""The online router: each prompt goes to argmax_i (s_i(x) - alpha_i) with the plan's prices.

Prices from an exact plan sit at a kink of the score function, where some prompts are tied
between models and the plan splits them. A plain argmax would send every tied prompt to one
model and drift from the planned fractions (and so from the planned latency). Ties, within
``tie_tol``, therefore go to the tied model whose realized share lags its planned share the
most: a deterministic, stateful rule that keeps realized fractions close to the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ValidationError

__all__ = ["OnlineRouter"]


@dataclass
class OnlineRouter:
    model_names: tuple[str, ...]
    prices: np.ndarray
    planned_fractions: np.ndarray
    tie_tol: float = 1e-9
    counts: np.ndarray = field(init=False)

    def __post_init__(self):
        self.prices = np.asarray(self.prices, dtype=float)
        self.planned_fractions = np.asarray(self.planned_fractions, dtype=float)
        M = len(self.model_names)
        if self.prices.shape != (M,) or self.planned_fractions.shape != (M,):
            raise ValidationError(f"router needs {M} prices and {M} planned fractions")
        self.counts = np.zeros(M)

    @classmethod
    def from_solution(cls, solution, model_names) -> OnlineRouter:
        if not solution.feasible:
            raise ValidationError(f"cannot route with an infeasible plan: "
                                  f"{solution.infeasibility.message}")
        return cls(tuple(model_names), solution.prices, solution.fractions)

    def route(self, scores) -> int:
        """Index of the model for one prompt with per-model scores ``scores``."""
        s = np.asarray(scores, dtype=float)
        if s.shape != self.prices.shape or not np.all(np.isfinite(s)):
            raise ValidationError(f"expected {self.prices.size} finite scores, got {s}")
        v = s - self.prices
        tied = np.flatnonzero(v >= v.max() - self.tie_tol)
        if tied.size > 1:
            total = max(self.counts.sum(), 1.0)
            lag = self.planned_fractions[tied] - self.counts[tied] / total
            i = int(tied[np.argmax(lag)])
        else:
            i = int(tied[0])
        self.counts[i] += 1
        return i

    def route_name(self, scores) -> str:
        return self.model_names[self.route(scores)]

    def route_batch(self, scores: np.ndarray) -> np.ndarray:
        return np.array([self.route(row) for row in np.asarray(scores, dtype=float)], dtype=int)

    @property
    def realized_fractions(self) -> np.ndarray:
        return self.counts / max(self.counts.sum(), 1.0)
