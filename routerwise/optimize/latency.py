"""System latency and its piecewise-linear envelopes.

For model i with curve l_i (ms, piecewise linear in load) and routing fraction w_i, the
*latency mass* is

    phi_i(w) = w * l_i(lambda * w)                                   [ms]

and the system latency is L(Theta, w) = sum_i phi_i(w_i) (the paper's w-weighted mean).
On a curve segment l = y_k + b_k (x - x_k) the mass is the quadratic
phi(w) = (y_k - b_k x_k) w + b_k lambda w^2, convex because curves are non-decreasing (b_k >= 0).
So phi is convex on [0, w_max] whenever l is convex (slopes non-decreasing).

Linear solvers need phi as piecewise-linear. :func:`mass_secants` places breakpoints so that the
chords (secants) over-estimate phi by at most ``tol_ms``: a plan that meets tau under the
secant model meets it under the exact model (conservative), and the exact optimum at
``tau - M * tol_ms`` is never lost. The grid stops where phi first exceeds tau (no plan can
route more to that model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..problem import LatencyCurve, beyond_range

__all__ = ["mass_at", "system_latency_ms", "per_model_latency_ms", "plan_latency_ms",
           "latency_gradient", "project_fractions", "max_fraction",
           "fraction_where_latency_reaches", "fraction_where_mass_reaches", "MassSecants",
           "mass_secants", "CurveBank"]


def mass_at(curve: LatencyCurve, w, arrival_rate_rps: float):
    """phi(w) = w * l(lambda w); 0 at w = 0 (an idle model adds no latency), inf beyond range."""
    w = np.asarray(w, dtype=float)
    lat = curve.latency_at(arrival_rate_rps * w)
    out = np.where(w > 0, w * np.where(np.isfinite(lat), lat, np.inf), 0.0)
    return float(out) if out.ndim == 0 else out


def system_latency_ms(curves, fractions, arrival_rate_rps: float) -> float:
    """L = sum_i w_i l_i(lambda w_i) over models with w_i > 0 (inf if any is beyond its range)."""
    return float(sum(mass_at(c, w, arrival_rate_rps) for c, w in zip(curves, fractions) if w > 0))


def per_model_latency_ms(curves, fractions, arrival_rate_rps: float) -> np.ndarray:
    """l_i(lambda w_i) for every model (NaN where w_i = 0)."""
    return np.array([c.latency_at(arrival_rate_rps * w) if w > 0 else np.nan
                     for c, w in zip(curves, fractions)], dtype=float)


def plan_latency_ms(curves, fractions, arrival_rate_rps: float, aggregate: str) -> float:
    """L under an SLO aggregate: "mean" is sum_i w_i l_i(lambda w_i); "max" the worst routed
    model's l_i(lambda w_i) (0 when nothing is routed)."""
    w = np.asarray(fractions, dtype=float)
    if aggregate == "mean":
        return system_latency_ms(curves, w, arrival_rate_rps)
    per = per_model_latency_ms(curves, w, arrival_rate_rps)
    return float(np.nanmax(per)) if np.any(w > 0) else 0.0


def latency_gradient(curves, fractions, arrival_rate_rps: float) -> np.ndarray:
    """dL/dw_i = l_i + lambda * w_i * dl_i/dload (slope of the active linear piece)."""
    lam = arrival_rate_rps
    return np.array([c.latency_at(lam * w) + lam * w * c.slope_at(lam * w)
                     for c, w in zip(curves, fractions)], dtype=float)


def project_fractions(fractions, w_top) -> np.ndarray:
    """Fractions back inside {sum w = 1, 0 <= w <= w_top} after an LP's feasibility noise.

    An LP solver returns w within its feasibility tolerance (HiGHS: 1e-7) of its bounds, and
    renormalising w / sum(w) can push a model whose w sits at ``w_top`` (its curve's end) past
    it. Clip to [0, w_top], then give any deficit to the models with room, in proportion to
    their room (a move of the order of the tolerance). Requires sum(w_top) >= 1.
    """
    w = np.clip(np.asarray(fractions, dtype=float), 0.0, None)
    top = np.asarray(w_top, dtype=float)
    w = np.minimum(w / w.sum() if w.sum() > 0 else w, top)
    deficit = 1.0 - w.sum()
    if deficit > 0:
        room = top - w
        if room.sum() > 0:
            w = w + room * min(1.0, deficit / room.sum())
    return w


def max_fraction(curve: LatencyCurve, arrival_rate_rps: float) -> float:
    """Largest w the curve covers: min(1, max profiled load / lambda)."""
    return min(1.0, curve.max_load_rps / arrival_rate_rps)


def fraction_where_latency_reaches(curve: LatencyCurve, limit_ms: float,
                                   arrival_rate_rps: float) -> float:
    """Largest w with l(lambda w) <= limit_ms (per-model SLO cap), within the curve's range."""
    x, y = curve.x, curve.y
    if y[0] > limit_ms:
        return 0.0
    if y[-1] <= limit_ms:
        return max_fraction(curve, arrival_rate_rps)
    k = int(np.searchsorted(y, limit_ms, side="right"))  # first point above the limit
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    load = x0 + (limit_ms - y0) * (x1 - x0) / (y1 - y0) if y1 > y0 else x0
    return min(1.0, load / arrival_rate_rps)


def fraction_where_mass_reaches(curve: LatencyCurve, limit_ms: float,
                                arrival_rate_rps: float) -> float:
    """Largest w in the curve's range with phi(w) <= limit_ms (phi is increasing in w)."""
    lam = arrival_rate_rps
    wmax = max_fraction(curve, lam)
    if mass_at(curve, wmax, lam) <= limit_ms:
        return wmax
    # Breakpoints in w (plus wmax), then solve the quadratic on the crossing segment.
    wb = np.concatenate([[0.0], curve.x[curve.x / lam < wmax] / lam, [wmax]])
    wb = np.unique(wb)
    phi = np.array([mass_at(curve, v, lam) for v in wb])
    k = int(np.argmax(phi > limit_ms))
    lo, hi = wb[k - 1], wb[k]
    a, q = _segment_coeffs(curve, 0.5 * (lo + hi), lam)
    if q <= 1e-15:
        return float(min(hi, limit_ms / a)) if a > 0 else float(hi)
    root = (-a + np.sqrt(a * a + 4 * q * limit_ms)) / (2 * q)
    return float(np.clip(root, lo, hi))


def _segment_coeffs(curve: LatencyCurve, w: float, lam: float) -> tuple[float, float]:
    """(a, q) with phi = a w + q w^2 on the curve segment containing load lambda w."""
    x, y = curve.x, curve.y
    load = lam * w
    if x.size == 1 or load <= x[0]:
        return float(y[0]), 0.0
    k = int(np.clip(np.searchsorted(x, load, side="right") - 1, 0, x.size - 2))
    b = (y[k + 1] - y[k]) / (x[k + 1] - x[k])
    return float(y[k] - b * x[k]), float(b * lam)


@dataclass(frozen=True)
class MassSecants:
    """Piecewise-linear upper envelope of phi on [0, w_top]: breakpoints (w, phi_hat)."""

    w: np.ndarray
    phi: np.ndarray
    convex: bool          # phi_hat convex: the MILP may use max-of-lines without binaries
    w_top: float          # largest usable fraction (range end, or where phi reaches tau)

    @property
    def slopes(self) -> np.ndarray:
        return np.diff(self.phi) / np.diff(self.w)

    @property
    def intercepts(self) -> np.ndarray:
        return self.phi[:-1] - self.slopes * self.w[:-1]


def mass_secants(curve: LatencyCurve, arrival_rate_rps: float, tau_ms: float,
                 tol_ms: float) -> MassSecants:
    """Breakpoints whose chords over-estimate phi by at most ``tol_ms`` on [0, w_top].

    On a quadratic piece phi = a w + q w^2 a chord of width h over-estimates by q h^2 / 4, so
    each curve segment is split into pieces of width <= 2 sqrt(tol / q).
    """
    lam = arrival_rate_rps
    w_top = min(max_fraction(curve, lam), fraction_where_mass_reaches(curve, tau_ms, lam))
    if w_top <= 0:
        return MassSecants(np.array([0.0]), np.array([0.0]), True, 0.0)
    knots = np.unique(np.concatenate([[0.0], curve.x[(curve.x / lam) < w_top] / lam, [w_top]]))
    pts = [0.0]
    for lo, hi in zip(knots[:-1], knots[1:]):
        _, q = _segment_coeffs(curve, 0.5 * (lo + hi), lam)
        n = 1 if q <= 0 else int(np.ceil((hi - lo) / (2.0 * np.sqrt(tol_ms / q))))
        pts.extend(np.linspace(lo, hi, n + 1)[1:])
    w = np.asarray(pts)
    phi = np.asarray(mass_at(curve, w, lam), dtype=float)
    s = np.diff(phi) / np.diff(w) if w.size > 1 else np.array([])
    convex = bool(np.all(np.diff(s) >= -1e-9 * max(1.0, float(np.abs(s).max(initial=0.0)))))
    return MassSecants(w, phi, convex, float(w_top))


@dataclass(frozen=True)
class CurveBank:
    """Many curves in padded arrays, for evaluating latency of many setups at once.

    Row o holds curve o's points; entries past ``npts[o]`` repeat the last point.
    """

    X: np.ndarray     # (O, K) loads, req/s
    Y: np.ndarray     # (O, K) latency, ms
    npts: np.ndarray  # (O,)

    @classmethod
    def from_curves(cls, curves) -> CurveBank:
        curves = list(curves)
        K = max(c.x.size for c in curves)
        X = np.empty((len(curves), K))
        Y = np.empty((len(curves), K))
        for o, c in enumerate(curves):
            n = c.x.size
            X[o, :n], Y[o, :n] = c.x, c.y
            X[o, n:], Y[o, n:] = c.x[-1], c.y[-1]
        return cls(X, Y, np.array([c.x.size for c in curves]))

    @property
    def max_load_rps(self) -> np.ndarray:
        return self.X[np.arange(self.X.shape[0]), self.npts - 1]

    def _segment(self, opt, load):
        opt = np.asarray(opt)
        load = np.asarray(load, dtype=float)
        X, Y = self.X[opt], self.Y[opt]                       # (..., K)
        n = self.npts[opt]
        k = np.clip(np.sum(X <= load[..., None], axis=-1) - 1, 0, np.maximum(n - 2, 0))
        x0 = np.take_along_axis(X, k[..., None], -1)[..., 0]
        y0 = np.take_along_axis(Y, k[..., None], -1)[..., 0]
        k1 = np.minimum(k + 1, n - 1)
        x1 = np.take_along_axis(X, k1[..., None], -1)[..., 0]
        y1 = np.take_along_axis(Y, k1[..., None], -1)[..., 0]
        slope = np.where(x1 > x0, (y1 - y0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0)
        below = load < X[..., 0]
        return x0, y0, np.where(below, 0.0, slope), below, beyond_range(load, self.max_load_rps[opt])

    def latency(self, opt, load) -> np.ndarray:
        """l_o(load) for arrays of option ids and loads (broadcast); inf beyond range."""
        x0, y0, slope, below, beyond = self._segment(opt, load)
        lat = np.where(below, self.Y[np.asarray(opt), 0], y0 + slope * (np.asarray(load) - x0))
        return np.where(beyond, np.inf, lat)

    def slope(self, opt, load) -> np.ndarray:
        """dl/dload of the active piece (0 below the first point)."""
        return self._segment(opt, load)[2]
