"""Sampled lower bounds on beta(R): the largest ratio ||J_w - J_0|| / ||w - w0|| found.

Each ratio is computed exactly (through the difference kernel, without forming J). The search:
alternating power iteration for the worst direction of the derivative of J at w0, a radius scan
along it, random directions, then projected gradient ascent on the ratio. A lower bound of the
true constant: an alpha computed from it is optimistic (theory-notes fact 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lazycheck.beta.estimate import BetaEstimate
from lazycheck.beta.estimate import radius_consistent as _consistent
from lazycheck.models.base import Linearization, Model

__all__ = ["critical_radius", "jacobian_change", "sampled_beta"]

Array = np.ndarray


def jacobian_change(model: Model, X: Array, lin0: Linearization, w: Array) -> float:
    """||J_w - J_0||_op, exactly (to floating point), through the difference kernel."""
    D = model.linearize(w, X).difference_kernel(lin0)
    return math.sqrt(max(float(np.linalg.eigvalsh(D)[-1]), 0.0))


def sampled_beta(
    model: Model,
    X: Array,
    w0: Array,
    sigma_min: float,
    rng: np.random.Generator,
    radius: str | float = "auto",
    samples: int = 48,
    iterations: int = 30,
    progress: Callable[[float], None] | None = None,
) -> BetaEstimate:
    """A sampled lower bound on beta(R) (see the module docstring for the search).

    ``radius = "auto"`` grows R until it is consistent with the bound found
    (R >= sigma_min / (2 beta)); at most five rounds.
    """
    search = _BetaSearch(model, X, w0, rng)
    h, beta_dir, pit, pconv = search.worst_direction(iterations)
    total_iters = pit
    if isinstance(radius, str):
        R = sigma_min / (2.0 * beta_dir) if beta_dir > 0 and sigma_min > 0 else 1.0
        fixed = False
    else:
        R, fixed = float(radius), True
    converged = pconv
    for _round in range(5):
        search.scan(h, R)
        search.random_directions(R, samples)
        it, conv = search.ascend(R, iterations)
        total_iters += it
        converged = converged and conv
        if progress is not None:
            progress(min(1.0, (_round + 1) / 2))
        best = search.best_ratio(R)
        if fixed or best <= 0 or sigma_min <= 0 or sigma_min / (2.0 * best) <= R:
            break
        R = sigma_min / (2.0 * best)
    best = search.best_ratio(R)
    consistent = _consistent(R, best, sigma_min) if best > 0 else None
    msg = (
        f"max of ||J_w - J_0|| / ||w - w0|| over {search.count} points in the ball of radius "
        f"{R:.4g}; a lower bound (an alpha from it is optimistic)"
    )
    if consistent is False:
        msg += "; R < B = sigma_min/(2 beta): the radius is smaller than the theorem needs"
    return BetaEstimate(
        best,
        "sampled lower bound",
        R,
        consistent,
        "power iteration on dJ at w0, radius scan, random directions, projected ascent",
        msg,
        samples=search.count,
        iterations=total_iters,
        converged=converged,
        direction=search.best_direction(R),
    )


def critical_radius(
    model: Model,
    X: Array,
    lin0: Linearization,
    w0: Array,
    direction: Array,
    target: float,
    s_max: float,
) -> float:
    """The smallest s in (0, s_max] with ||J_{w0 + s h} - J_0|| = target along the unit
    direction h (a scan on a geometric grid, then Brent's method); inf if not reached."""
    from scipy.optimize import brentq

    h = direction / np.linalg.norm(direction)

    def gap(s: float) -> float:
        return jacobian_change(model, X, lin0, w0 + s * h) - target

    grid = s_max * np.geomspace(1e-6, 1.0, 61)
    prev = 0.0
    for s in grid:
        if gap(float(s)) >= 0:
            return (
                float(brentq(gap, prev, float(s), xtol=1e-12 * s, rtol=1e-12)) if prev else float(s)
            )
        prev = float(s)
    return math.inf


class _BetaSearch:
    """Keeps every exactly-evaluated point (distance, ratio, direction) of a beta search."""

    def __init__(self, model: Model, X: Array, w0: Array, rng: np.random.Generator) -> None:
        self.model, self.X, self.w0, self.rng = model, X, w0, rng
        self.lin0 = model.linearize(w0, X)
        self.points: list[tuple[float, float, Array]] = []
        scale = float(np.linalg.norm(w0)) / math.sqrt(max(w0.size, 1))
        self.eps = 1e-5 * max(scale, 1e-3)

    @property
    def count(self) -> int:
        return len(self.points)

    def ratio(self, d: Array) -> float:
        """||J_{w0+d} - J_0|| / ||d||, recorded."""
        dist = float(np.linalg.norm(d))
        r = jacobian_change(self.model, self.X, self.lin0, self.w0 + d) / dist
        self.points.append((dist, r, d / dist))
        return r

    def best_ratio(self, R: float) -> float:
        vals = [r for dist, r, _ in self.points if dist <= R * (1 + 1e-12)]
        return max(vals, default=0.0)

    def best_direction(self, R: float) -> Array | None:
        cand = [(r, h) for dist, r, h in self.points if dist <= R * (1 + 1e-12)]
        return max(cand, key=lambda t: t[0])[1] if cand else None

    def _dJ_kernel_top(self, h: Array) -> tuple[float, Array, Linearization, Linearization]:
        """Top singular value and left vector of dJ[h] ~ (J(w0+eps h) - J(w0-eps h)) / 2eps."""
        lp = self.model.linearize(self.w0 + self.eps * h, self.X)
        lm = self.model.linearize(self.w0 - self.eps * h, self.X)
        D = lp.difference_kernel(lm) / (4 * self.eps**2)
        lam, vec = np.linalg.eigh(D)
        return math.sqrt(max(float(lam[-1]), 0.0)), vec[:, -1], lp, lm

    def _hvp(self, a: Array, b: Array) -> Array:
        """sum_i a_i H_i b by central differences of J^T a."""
        gp = self.model.linearize(self.w0 + self.eps * b, self.X).vjp(a)
        gm = self.model.linearize(self.w0 - self.eps * b, self.X).vjp(a)
        return (gp - gm) / (2 * self.eps)

    def worst_direction(self, iterations: int) -> tuple[Array, float, int, bool]:
        """Alternating power iteration for max over unit h of ||dJ_{w0}[h]||."""
        h = self.rng.standard_normal(self.w0.size)
        h /= np.linalg.norm(h)
        val = 0.0
        for k in range(1, iterations + 1):
            new, a, lp, lm = self._dJ_kernel_top(h)
            b = (lp.vjp(a) - lm.vjp(a)) / (2 * self.eps)
            nb = np.linalg.norm(b)
            if nb == 0:
                return h, 0.0, k, True
            g = self._hvp(a, b / nb)
            ng = np.linalg.norm(g)
            if ng == 0:
                return h, new, k, True
            h = g / ng
            if abs(new - val) <= 1e-6 * max(new, 1e-300):
                return h, new, k, True
            val = new
        return h, val, iterations, False

    def scan(self, h: Array, R: float) -> None:
        for s in R * np.geomspace(1e-2, 1.0, 7):
            self.ratio(s * h)
            self.ratio(-s * h)

    def random_directions(self, R: float, samples: int) -> None:
        for _ in range(samples):
            d = self.rng.standard_normal(self.w0.size)
            d *= R * self.rng.uniform(0.05, 1.0) ** (1.0 / 2) / np.linalg.norm(d)
            self.ratio(d)

    def ascend(self, R: float, iterations: int) -> tuple[int, bool]:
        """Projected gradient ascent on the ratio from the best point within radius R."""
        cand = [(r, dist, h) for dist, r, h in self.points if dist <= R * (1 + 1e-12)]
        if not cand:
            return 0, True
        r, dist, h = max(cand, key=lambda t: t[0])
        d = dist * h
        step = 0.25 * R
        for k in range(1, iterations + 1):
            lin = self.model.linearize(self.w0 + d, self.X)
            Dk = lin.difference_kernel(self.lin0)
            lam, vec = np.linalg.eigh(Dk)
            sig = math.sqrt(max(float(lam[-1]), 0.0))
            if sig == 0:
                return k, True
            a = vec[:, -1]
            b = (lin.vjp(a) - self.lin0.vjp(a)) / sig  # right singular vector of J_w - J_0
            gp = self.model.linearize(self.w0 + d + self.eps * b, self.X).vjp(a)
            gm = self.model.linearize(self.w0 + d - self.eps * b, self.X).vjp(a)
            grad_sig = (gp - gm) / (2 * self.eps)
            nd = float(np.linalg.norm(d))
            grad = grad_sig / nd - sig * d / nd**3
            gn = float(np.linalg.norm(grad))
            if gn == 0:
                return k, True
            improved = False
            while step > 1e-8 * R:
                trial = d + step * grad / gn
                tn = float(np.linalg.norm(trial))
                if tn > R:
                    trial *= R / tn
                rt = self.ratio(trial)
                if rt > r * (1 + 1e-9):
                    d, r, improved = trial, rt, True
                    step *= 1.5
                    break
                step *= 0.5
            if not improved:
                return k, True
        return iterations, False
