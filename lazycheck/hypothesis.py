"""Theorem 2's hypothesis on alpha, solved exactly, and the radii of the proof.

The hypothesis reads ``alpha >= kappa * sqrt(L0(alpha))`` with
``kappa = 6 beta sqrt(8) sigma_max / sigma_min^3`` and ``L0(alpha) = ||alpha f(w0) - y||^2 / 2``
(theory-notes fact 1: L0 depends on alpha). For alpha > 0 both sides are non-negative, so it
is equivalent to the quadratic inequality

    g(alpha) = a alpha^2 + b alpha + c >= 0,
    a = 1 - kappa^2 ||f0||^2 / 2,   b = kappa^2 <f0, y>,   c = -kappa^2 ||y||^2 / 2.

Its solution set in (0, inf) is one interval: all alpha > 0 (kappa = 0, e.g. a linear model),
a half-line [alpha_min, inf) (a > 0, always the case for a centered model), a bounded
interval [alpha_min, alpha_max] (a < 0 with real roots: alpha f(w0) passes close to y, but the
initial loss outgrows alpha), or empty. The same form solves ``B'(alpha) <= r`` for any radius
r, with ``kappa = 3 sqrt(8) sigma_max / (sigma_min^2 r)``; with r = B = sigma_min / (2 beta)
the two coincide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AlphaSolution",
    "b_lin",
    "b_prime",
    "hypothesis_kappa",
    "initial_loss",
    "radius_kappa",
    "solve_alpha",
]

_SQRT8 = math.sqrt(8.0)


@dataclass(frozen=True)
class AlphaSolution:
    """The set of alpha > 0 with ``alpha >= kappa sqrt(L0(alpha))``.

    Attributes:
        status: ``"all"`` (every alpha > 0), ``"half_line"``, ``"interval"`` or ``"empty"``.
        alpha_min, alpha_max: the set is [alpha_min, alpha_max] (alpha_max may be inf;
            alpha_min is 0 for ``"all"``; both nan for ``"empty"``).
        kappa: the constant solved for.
        message: one line for a human.
    """

    status: str
    alpha_min: float
    alpha_max: float
    kappa: float
    message: str

    @property
    def feasible(self) -> bool:
        return self.status != "empty"

    def contains(self, alpha: float) -> bool:
        """True when ``alpha`` satisfies the inequality (exact interval test)."""
        return self.feasible and self.alpha_min <= alpha <= self.alpha_max


def initial_loss(alpha: float, f0: np.ndarray, y: np.ndarray) -> float:
    """L0(alpha) = ||alpha f(w0) - y||^2 / 2."""
    r = alpha * np.asarray(f0) - np.asarray(y)
    return 0.5 * float(r @ r)


def hypothesis_kappa(beta: float, sigma_min: float, sigma_max: float) -> float:
    """kappa = 6 beta sqrt(8) sigma_max / sigma_min^3 (inf when sigma_min = 0 or beta = inf)."""
    if beta == 0:
        return 0.0
    if sigma_min <= 0 or not math.isfinite(beta):
        return math.inf
    return 6.0 * beta * _SQRT8 * sigma_max / sigma_min**3


def radius_kappa(radius: float, sigma_min: float, sigma_max: float) -> float:
    """kappa for the condition B'(alpha) <= radius."""
    if math.isinf(radius):
        return 0.0
    if sigma_min <= 0 or radius <= 0:
        return math.inf
    return 3.0 * _SQRT8 * sigma_max / (sigma_min**2 * radius)


def b_prime(alpha: float, L0: float, sigma_min: float, sigma_max: float) -> float:
    """B'(alpha) = 3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2): Theorem 2's weight radius."""
    if sigma_min <= 0:
        return math.inf
    return 3.0 * math.sqrt(8.0 * sigma_max**2 * L0) / (alpha * sigma_min**2)


def b_lin(alpha: float, L0: float, sigma_min: float, sigma_max: float) -> float:
    """The linear model's radius (Lemma 5): sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2)."""
    if sigma_min <= 0:
        return math.inf
    return math.sqrt(2.0 * sigma_max**2 * L0) / (alpha * sigma_min**2)


def solve_alpha(kappa: float, f0: np.ndarray, y: np.ndarray) -> AlphaSolution:
    """Solve ``alpha >= kappa sqrt(L0(alpha))`` for alpha > 0 exactly (see the module doc)."""
    f0 = np.asarray(f0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if kappa == 0:
        return AlphaSolution("all", 0.0, math.inf, 0.0, "every alpha > 0 satisfies it (kappa = 0)")
    if not math.isfinite(kappa):
        return AlphaSolution(
            "empty",
            math.nan,
            math.nan,
            kappa,
            "no alpha satisfies it: the constant is infinite (beta = inf or sigma_min = 0)",
        )
    k2 = kappa * kappa
    ff, fy, yy = float(f0 @ f0), float(f0 @ y), float(y @ y)
    a = 1.0 - 0.5 * k2 * ff
    b = k2 * fy
    c = -0.5 * k2 * yy

    def ok(alpha: float) -> bool:
        return alpha >= kappa * math.sqrt(initial_loss(alpha, f0, y))

    roots = _quadratic_roots(a, b, c)
    pos = sorted(r for r in roots if r > 0)
    if a > 0 or (a == 0 and b > 0):
        # g -> +inf: feasible set in (0, inf) is [largest positive root, inf), or all alpha > 0
        if not pos:
            return AlphaSolution("all", 0.0, math.inf, kappa, "every alpha > 0 satisfies it")
        lo = _nudge_up(pos[-1], ok)
        return AlphaSolution("half_line", lo, math.inf, kappa, f"alpha >= {lo:.6g} (a half-line)")
    # a < 0 (or a == 0, b <= 0): g -> -inf, feasible set is [r1, r2] within (0, inf) if any
    if a < 0 and len(pos) == 2 and pos[0] <= pos[1]:
        lo = _nudge_up(pos[0], ok)
        hi = _nudge_down(pos[1], ok)
        if lo <= hi:
            return AlphaSolution(
                "interval",
                lo,
                hi,
                kappa,
                f"only {lo:.6g} <= alpha <= {hi:.6g}: beyond that, L0(alpha) grows like "
                f"alpha^2 ||f(w0)||^2 / 2 and outruns alpha; center the model or use a "
                "symmetric initialization for a half-line",
            )
    return AlphaSolution(
        "empty",
        math.nan,
        math.nan,
        kappa,
        f"no alpha satisfies it: f(w0) != 0 makes L0 grow like alpha^2 ||f(w0)||^2 / 2 "
        f"(kappa ||f(w0)|| / sqrt(2) = {kappa * math.sqrt(ff / 2):.3g} >= 1); "
        'set [model].center = true or [model].init = "symmetric" so that f(w0) = 0',
    )


def _quadratic_roots(a: float, b: float, c: float) -> list[float]:
    """Real roots of a x^2 + b x + c, computed without cancellation."""
    if a == 0:
        return [] if b == 0 else [-c / b]
    disc = b * b - 4.0 * a * c
    if disc < 0:
        return []
    q = -0.5 * (b + math.copysign(math.sqrt(disc), b))
    if q == 0:
        return [0.0]
    return sorted({q / a, c / q})


def _nudge_up(x: float, ok: object) -> float:
    """Move a root up by ulps until the inequality holds in floating point (at most 64)."""
    for _ in range(64):
        if ok(x):  # type: ignore[operator]
            return x
        x = math.nextafter(x, math.inf)
    return x


def _nudge_down(x: float, ok: object) -> float:
    for _ in range(64):
        if ok(x):  # type: ignore[operator]
            return x
        x = math.nextafter(x, -math.inf)
    return x
