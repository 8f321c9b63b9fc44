"""What every solver returns: a :class:`Solution`, checked by one :meth:`Solution.verify`.

A solution is a deployment setup (with a shard placement), routing fractions w, prices alpha
for the online router, the predicted score S(w), the system latency L(Theta, w), and how it
was found: solver name, status, proven bound and gap when the solver has them, solve time and
an iteration history. An infeasible SLO is a *result*, not a crash: ``status="infeasible"``
with an :class:`Infeasibility` diagnosis (the lowest latency any retained setup reaches, the
setup reaching it, and which limit binds). :meth:`Solution.raise_if_infeasible` turns it into
an :class:`~routerwise.errors.InfeasibleSLO` for scripts that prefer exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InfeasibleSLO, VerificationError
from ..problem import Problem, SystemSetup, beyond_range
from .assignment import group_scores, prompt_shares, score_of_fractions
from .latency import per_model_latency_ms, plan_latency_ms
from .placement import ShardDemand, gpu_usage

__all__ = ["STATUSES", "Infeasibility", "Solution"]

STATUSES = ("optimal", "feasible", "time_limit", "infeasible")


@dataclass(frozen=True)
class Infeasibility:
    """Why no plan meets the SLO."""

    binding: str                     # "capacity" | "latency" | "setup_space"
    message: str
    min_latency_ms: float            # lowest L over retained setups and fractions (inf if none)
    best_setup: SystemSetup | None = None
    best_fractions: np.ndarray | None = None
    stage: str | None = None         # for "setup_space": the filter that removed every setup


@dataclass(frozen=True)
class Solution:
    setup: SystemSetup | None
    fractions: np.ndarray | None
    prices: np.ndarray | None
    score: float                      # predicted average score S(w)
    latency_ms: float                 # L(Theta, w) under the SLO's metric and aggregate
    solver: str
    status: str
    bound: float | None = None        # proven upper bound on the optimum score, if any
    solve_time_s: float = 0.0
    history: pd.DataFrame | None = None
    infeasibility: Infeasibility | None = None
    notes: tuple[str, ...] = ()
    stats: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        # The default dataclass repr prints the history table and every array (~150 kB for a
        # real plan); this one fits a line. The fields stay available as attributes.
        parts = [f"{self.solver!r}", self.status]
        if self.feasible and np.isfinite(self.score):
            parts.append(f"score={self.score:.4f}")
        if self.feasible and np.isfinite(self.latency_ms):
            parts.append(f"latency_ms={self.latency_ms:.1f}")
        if self.gap is not None:
            parts.append(f"gap={100 * self.gap:.3g}%")
        if self.setup is not None:
            parts.append(f"setup={self.setup.label()!r}")
        if self.fractions is not None:
            parts.append("fractions=[" + ", ".join(f"{w:.3f}" for w in self.fractions) + "]")
        if self.infeasibility is not None:
            parts.append(f"binding={self.infeasibility.binding!r}")
        parts.append(f"solve_time_s={self.solve_time_s:.2f}")
        if self.notes:
            parts.append(f"notes={len(self.notes)}")
        return f"Solution({', '.join(parts)})"

    @property
    def gap(self) -> float | None:
        """(bound - score) / bound, or None without a bound."""
        if self.bound is None or self.status == "infeasible" or not np.isfinite(self.score):
            return None     # no bound, or no plan (a time limit before the first one)
        return max(0.0, (self.bound - self.score) / max(abs(self.bound), 1e-12))

    @property
    def feasible(self) -> bool:
        return self.status != "infeasible"

    def raise_if_infeasible(self) -> Solution:
        if not self.feasible:
            raise InfeasibleSLO(self.infeasibility.message, self.infeasibility)
        return self

    def per_model_latency_ms(self, problem: Problem) -> np.ndarray:
        curves = [problem.curve(i, s) for i, s in enumerate(self.setup.per_model)]
        return per_model_latency_ms(curves, self.fractions, problem.arrival_rate_rps)

    def realized_score(self, problem: Problem) -> float | None:
        """Mean TRUE score of the exact assignment at these fractions (None without truths)."""
        t = problem.workload.true_scores
        if t is None or not self.feasible:
            return None
        share = prompt_shares(group_scores(problem.workload.scores), self.fractions)
        return float(np.sum(share * t) / problem.workload.num_prompts)

    def summary(self, problem: Problem) -> dict:
        d = {"solver": self.solver, "status": self.status, "score": self.score,
             "latency_ms": self.latency_ms, "bound": self.bound, "gap": self.gap,
             "solve_time_s": self.solve_time_s}
        if self.feasible:
            d["setup"] = self.setup.label()
            for name, w in zip(problem.model_names, self.fractions):
                d[f"w[{name}]"] = float(w)
        return d

    def verify(self, problem: Problem, *, score_atol: float = 1e-6,
               latency_rtol: float = 1e-6) -> Solution:
        """Check the solution against ``problem`` from scratch; raise VerificationError if not."""
        def fail(msg):
            raise VerificationError(f"{self.solver}: {msg}")

        if self.status not in STATUSES:
            fail(f"unknown status {self.status!r}")
        if not self.feasible:
            inf = self.infeasibility
            if inf is None:
                fail("infeasible without a diagnosis")
            if inf.min_latency_ms <= problem.slo.latency_ms * (1 - latency_rtol) and \
                    problem.slo.aggregate == "mean" and inf.binding == "latency":
                fail(f"declared infeasible but a setup reaches {inf.min_latency_ms:.3f} ms <= "
                     f"tau = {problem.slo.latency_ms} ms")
            return self
        if self.status == "time_limit" and self.setup is None and self.fractions is None:
            return self     # stopped before any plan was found: nothing to check but the bound
        M = problem.num_models
        setup, w = self.setup, np.asarray(self.fractions, dtype=float)
        if setup is None or len(setup.per_model) != M:
            fail("setup must give one ModelSetup per model")
        sp, cl = problem.space, problem.cluster
        G = cl.num_gpus
        types = []
        for i, s in enumerate(setup.per_model):
            m = problem.models[i]
            if s.gpu and not cl.is_mixed and s.gpu != cl.gpu.name:
                fail(f"model {m.name}: {s.label()} names GPU type {s.gpu!r}, the cluster has "
                     f"{cl.gpu.name!r}")
            if cl.is_mixed and s.gpu not in [t.name for t in cl.gpu_types]:
                fail(f"model {m.name}: {s.label()} must name one of the cluster's GPU types "
                     f"{[t.name for t in cl.gpu_types]}")
            t = cl.gpu_type(s.gpu if cl.is_mixed else "")
            types.append(t)
            if s.tp not in sp.tp_degrees or s.compute_tenths not in sp.compute_tenths \
                    or s.tp > cl.count(t.name):
                fail(f"model {m.name}: {s.label()} is outside the setup space")
            if problem.curve(i, s) is None:
                fail(f"model {m.name}: no latency curve for {s.label()}")
            if abs(s.mem_share - min(1.0, m.mem_gb(s.tp) / t.mem_gb)) > 1e-9:
                fail(f"model {m.name}: memory share {s.mem_share} != need / GPU memory")
        units = setup.compute_units_tenths
        if not (round(10 * G * sp.rho_min - 1e-9) <= units <= 10 * G):
            fail(f"utilization {units / 10:g} GPUs outside [{G * sp.rho_min:g}, {G}]")
        for t, n in cl.pools:
            used = sum(s.compute_units_tenths for s, u in zip(setup.per_model, types) if u == t)
            if used > 10 * n:
                fail(f"utilization on {t.name}: {used / 10:g} GPUs > its {n} GPUs")
        if setup.placement is None:
            fail("no shard placement")
        demands = [ShardDemand(s.tp, s.compute_tenths, problem.models[i].mem_gb(s.tp))
                   for i, s in enumerate(setup.per_model)]
        if any(g < 0 or g >= G for p in setup.placement for g in p):
            fail(f"placement uses a GPU outside 0..{G - 1}: {setup.placement}")
        for i, (p, t) in enumerate(zip(setup.placement, types)):
            wrong = [g for g in p if cl.gpu_of(g) != t]
            if wrong:
                fail(f"model {problem.models[i].name}: shards on GPUs {wrong}, which are not "
                     f"{t.name}")
        comp, mem, _ = gpu_usage(demands, setup.placement, G)
        if sp.check_compute and max(comp) > 10:
            fail(f"GPU compute oversubscribed: {[c / 10 for c in comp]}")
        if sp.check_memory and any(mem[g] > cl.gpu_of(g).mem_gb + 1e-9 for g in range(G)):
            fail(f"GPU memory oversubscribed: {mem} GB")
        if w.shape != (M,) or not np.all(np.isfinite(w)) or w.min() < -1e-9 \
                or abs(w.sum() - 1) > 1e-6:
            fail(f"fractions must be {M} non-negative numbers summing to 1, got {w}")
        w = np.clip(w, 0, None)
        curves = [problem.curve(i, s) for i, s in enumerate(setup.per_model)]
        lam, tau = problem.arrival_rate_rps, problem.slo.latency_ms
        for i, c in enumerate(curves):
            if w[i] > 1e-12 and beyond_range(lam * w[i], c.max_load_rps):
                fail(f"model {c.model} gets {lam * w[i]:.3f} req/s beyond its profiled "
                     f"{c.max_load_rps:.3f} req/s")
        L = plan_latency_ms(curves, w, lam, problem.slo.aggregate)
        if not np.isfinite(L):
            fail(f"latency is {L} ms: a routed model's load lies beyond its curve")
        if abs(L - self.latency_ms) > latency_rtol * max(1.0, L) + 1e-6:
            fail(f"reported latency {self.latency_ms:.6f} ms, recomputed {L:.6f} ms")
        if L > tau * (1 + latency_rtol) + 1e-9:
            fail(f"latency {L:.4f} ms violates the SLO tau = {tau} ms")
        S = score_of_fractions(group_scores(problem.workload.scores), w).score
        if abs(S - self.score) > score_atol:
            fail(f"reported score {self.score:.8f}, recomputed S(w) = {S:.8f}")
        if self.bound is not None and self.bound < self.score - score_atol:
            fail(f"bound {self.bound} below the score {self.score}")
        if self.prices is not None and np.asarray(self.prices).shape != (M,):
            fail("prices must have one entry per model")
        return self
