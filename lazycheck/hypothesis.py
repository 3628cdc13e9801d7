"""Theorem 2's hypothesis on alpha, solved exactly, and the radii of the proof.

The hypothesis reads ``alpha >= kappa * sqrt(L0(alpha))`` with
``kappa = 6 beta sqrt(8) sigma_max / sigma_min^3`` and ``L0(alpha) = ||alpha f(w0) - y||^2 / 2``
(docs/theory.md, item 1: L0 depends on alpha). For alpha > 0 both sides are non-negative, so it
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
import sys
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "AlphaSolution",
    "b_lin",
    "b_prime",
    "hypothesis_kappa",
    "initial_loss",
    "radius_kappa",
    "safe_norm",
    "solve_alpha",
    "solve_alpha_on_ball",
]

_SQRT8 = math.sqrt(8.0)
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class AlphaSolution:
    """The set of alpha > 0 with ``alpha >= kappa sqrt(L0(alpha))``.

    Attributes:
        status: ``"all"`` (every alpha > 0), ``"half_line"``, ``"interval"``, ``"empty"``, or
            ``"not_computable"`` (an input or the answer is not finite in float64: overflow).
        alpha_min, alpha_max: the set is [alpha_min, alpha_max] (alpha_max may be inf;
            alpha_min is 0 for ``"all"``; both nan for ``"empty"`` and ``"not_computable"``).
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
        """Some alpha is known to satisfy the inequality (False when not computable)."""
        return self.status in ("all", "half_line", "interval")

    def contains(self, alpha: float) -> bool:
        """True when ``alpha`` satisfies the inequality (exact interval test; never for a
        non-finite alpha)."""
        return self.feasible and math.isfinite(alpha) and self.alpha_min <= alpha <= self.alpha_max


def initial_loss(alpha: float, f0: np.ndarray, y: np.ndarray) -> float:
    """L0(alpha) = ||alpha f(w0) - y||^2 / 2 (inf when it overflows float64)."""
    r = alpha * np.asarray(f0) - np.asarray(y)
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * float(r @ r)


def hypothesis_kappa(beta: float, sigma_min: float, sigma_max: float) -> float:
    """kappa = 6 beta sqrt(8) sigma_max / sigma_min^3 (inf when sigma_min = 0 or beta = inf;
    nan, i.e. not computable, when an input is nan or the product overflows float64)."""
    if any(math.isnan(v) for v in (beta, sigma_min, sigma_max)):
        return math.nan
    if beta == 0:
        return 0.0
    if sigma_min <= 0 or not math.isfinite(beta):
        return math.inf
    kappa = 6.0 * _SQRT8 * beta * (sigma_max / sigma_min) / sigma_min**2
    return kappa if math.isfinite(kappa) else math.nan  # overflow: not computable, not empty


def radius_kappa(radius: float, sigma_min: float, sigma_max: float) -> float:
    """kappa for the condition B'(alpha) <= radius."""
    if any(math.isnan(v) for v in (radius, sigma_min, sigma_max)):
        return math.nan
    if math.isinf(radius):
        return 0.0
    if sigma_min <= 0 or radius <= 0:
        return math.inf
    kappa = 3.0 * _SQRT8 * (sigma_max / sigma_min) / (sigma_min * radius)
    return kappa if math.isfinite(kappa) else math.nan  # overflow: not computable


def b_prime(alpha: float, L0: float, sigma_min: float, sigma_max: float) -> float:
    """B'(alpha) = 3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2): Theorem 2's weight radius
    (inf when sigma_min = 0 or L0 = inf, nan when an input is nan)."""
    if any(math.isnan(v) for v in (alpha, L0, sigma_min, sigma_max)):
        return math.nan
    if sigma_min <= 0 or math.isinf(L0):
        return math.inf
    return 3.0 * _SQRT8 * sigma_max * math.sqrt(L0) / (alpha * sigma_min**2)


def b_lin(alpha: float, L0: float, sigma_min: float, sigma_max: float) -> float:
    """The linear model's radius (Lemma 5): sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2)."""
    if any(math.isnan(v) for v in (alpha, L0, sigma_min, sigma_max)):
        return math.nan
    if sigma_min <= 0 or math.isinf(L0):
        return math.inf
    return math.sqrt(2.0) * sigma_max * math.sqrt(L0) / (alpha * sigma_min**2)


def solve_alpha(kappa: float, f0: np.ndarray, y: np.ndarray) -> AlphaSolution:
    """Solve ``alpha >= kappa sqrt(L0(alpha))`` for alpha > 0 exactly (see the module doc).

    Solved in the scaled variable tau = alpha / (kappa ||y||), where the inequality reads
    ``(2 - m^2) tau^2 + 2 m c tau - 1 >= 0`` with ``m = kappa ||f(w0)||`` and ``c`` the cosine
    between f(w0) and y: every coefficient is O(1), so neither a large kappa nor large targets
    overflow on the way. A non-finite input, or an answer beyond float64, is ``not_computable``:
    a non-finite number never satisfies an inequality.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if math.isnan(kappa) or not (np.all(np.isfinite(f0)) and np.all(np.isfinite(y))):
        return _not_computable(kappa, "kappa (overflow?), f(w0) or y is not finite")
    if kappa == 0:
        return AlphaSolution("all", 0.0, math.inf, 0.0, "every alpha > 0 satisfies it (kappa = 0)")
    if math.isinf(kappa):
        return AlphaSolution(
            "empty",
            math.nan,
            math.nan,
            kappa,
            "the constant kappa is infinite (beta = inf or sigma_min = 0)",
        )
    nf, ny = safe_norm(f0), safe_norm(y)
    if not (math.isfinite(nf) and math.isfinite(ny)):
        return _not_computable(kappa, "||f(w0)|| or ||y|| overflows float64")
    m = kappa * nf
    if not math.isfinite(m):
        return _not_computable(kappa, "kappa ||f(w0)|| overflows float64")
    if ny == 0:  # L0 = alpha^2 ||f0||^2 / 2: the inequality does not depend on alpha
        if m <= _SQRT2:
            return AlphaSolution("all", 0.0, math.inf, kappa, "every alpha > 0 satisfies it")
        return _empty(kappa, m)
    cos = float((f0 / nf) @ (y / ny)) if nf > 0 else 0.0
    taus = _tau_set(2.0 - m * m, 2.0 * m * cos)
    if taus is None:
        return _empty(kappa, m)
    scale = kappa * ny
    lo, hi = taus[0] * scale, taus[1] * scale
    if not math.isfinite(lo) or math.isnan(hi):
        return _not_computable(kappa, f"alpha_min = {taus[0]:.6g} * {scale:.6g} overflows float64")

    def ok(alpha: float) -> bool:  # the inequality as evaluated in floating point
        L0 = initial_loss(alpha, f0, y)
        if math.isfinite(L0):
            return alpha >= kappa * math.sqrt(L0)
        return alpha >= kappa * safe_norm(alpha * f0 - y) / _SQRT2

    lo = _nudge_up(lo, ok)
    if math.isinf(hi) and math.isfinite(taus[1]):
        hi = sys.float_info.max  # the interval ends beyond float64: every float alpha above lo
    if math.isinf(hi):
        return AlphaSolution("half_line", lo, math.inf, kappa, f"alpha >= {lo:.6g} (a half-line)")
    hi = _nudge_down(hi, ok)
    if lo > hi:
        return _empty(kappa, m)
    return AlphaSolution(
        "interval",
        lo,
        hi,
        kappa,
        f"only {lo:.6g} <= alpha <= {hi:.6g}: beyond that, L0(alpha) grows like "
        f"alpha^2 ||f(w0)||^2 / 2 and outruns alpha; center the model or use a "
        "symmetric initialization for a half-line",
    )


def solve_alpha_on_ball(
    beta: float,
    radius: float,
    sigma_min: float,
    sigma_max: float,
    f0: np.ndarray,
    y: np.ndarray,
) -> AlphaSolution:
    """The alpha with B'(alpha) <= min(R, B), B = sigma_min / (2 beta), for a beta that holds on
    the ball of radius R only.

    The proof of Theorem 2 needs ||J_w - J_0|| <= sigma_min / 2 wherever the flow goes, i.e.
    within B' of w0. With ||J_w - J_0|| <= beta ||w - w0|| known for ||w - w0|| <= R, that
    holds when B' <= min(R, B). With R >= B (or R = inf) this is Theorem 2's hypothesis
    itself; with R < B it asks for a larger alpha.
    """
    if math.isnan(radius) or radius >= _ball_B(beta, sigma_min):
        return solve_alpha(hypothesis_kappa(beta, sigma_min, sigma_max), f0, y)
    sol = solve_alpha(radius_kappa(radius, sigma_min, sigma_max), f0, y)
    return replace(sol, message=f"{sol.message} (B' <= R = {radius:.4g}, beta's ball)")


def safe_norm(v: np.ndarray) -> float:
    """The Euclidean norm without overflow or underflow of the squares (inf/nan propagate)."""
    v = np.asarray(v, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    scale = float(np.max(np.abs(v)))
    if scale == 0 or not math.isfinite(scale):
        return scale
    u = v / scale
    return scale * math.sqrt(float(u @ u))


def _ball_B(beta: float, sigma_min: float) -> float:
    return sigma_min / (2.0 * beta) if beta > 0 else math.inf


def _tau_set(a: float, b: float) -> tuple[float, float] | None:
    """{tau > 0 : a tau^2 + b tau - 1 >= 0} as (lo, hi) (hi may be inf), or None if empty."""
    if a == 0:
        return (1.0 / b, math.inf) if b > 0 else None
    disc = b * b + 4.0 * a
    if disc < 0:
        return None
    q = -0.5 * (b + math.copysign(math.sqrt(disc), b))  # roots q / a and -1 / q
    roots = sorted(r for r in ((q / a) if a else math.nan, -1.0 / q if q else math.nan) if r > 0)
    if a > 0:  # one positive root (product -1/a < 0)
        return (roots[-1], math.inf) if roots else None
    if len(roots) == 2:  # a < 0: both positive exactly when b > 0
        return roots[0], roots[1]
    return None


def _empty(kappa: float, m: float) -> AlphaSolution:
    return AlphaSolution(
        "empty",
        math.nan,
        math.nan,
        kappa,
        "f(w0) != 0 makes L0 grow like alpha^2 ||f(w0)||^2 / 2 "
        f"(kappa ||f(w0)|| / sqrt(2) = {m / _SQRT2:.3g} >= 1); "
        'set [model].center = true or [model].init = "symmetric" so that f(w0) = 0',
    )


def _not_computable(kappa: float, why: str) -> AlphaSolution:
    return AlphaSolution(
        "not_computable",
        math.nan,
        math.nan,
        kappa,
        f"not computable in float64: {why}; no alpha is certified",
    )


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
