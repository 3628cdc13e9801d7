"""The rounding floor of the residual: where a loss stops being resolved in float64."""

from __future__ import annotations

import numpy as np

from lazycheck.models.base import Linearization

__all__ = ["probe_signs", "residual_floor"]

Array = np.ndarray
_EPS = float(np.finfo(np.float64).eps)
_NOISE = 16.0  # rounding floor, in units of the estimated rounding of r and w


def probe_signs(p: int) -> Array:
    """A fixed (seeded) vector of p random signs for :func:`residual_floor`."""
    return np.random.default_rng(12345).choice([-1.0, 1.0], size=p)


def residual_floor(
    lin: Linearization, w: Array, alpha: float, y: Array, signs: Array | None = None
) -> float:
    """The residual's rounding floor: how far below it r = alpha f(w) - y cannot be resolved.

    Storing w rounds each w_i by up to eps |w_i|, and a forward pass rounds its sums by about
    eps sum_i |w_i df/dw_i|; both move alpha f by about alpha eps ||J_w (w o s)|| for random
    signs s (one JVP); forming alpha f - y adds eps (alpha ||f|| + ||y||). The integrators work
    to ``16`` times this (their error estimates are themselves computed from rounded
    residuals), so losses below (1/2) floor^2 are rounding noise.
    """
    s = probe_signs(w.shape[0]) if signs is None else signs
    return _floor(_probe(lin, w, alpha, s), lin, alpha, y)


def _probe(lin: Linearization, w: Array, alpha: float, signs: Array) -> float:
    """alpha ||J_w (w o s)||, the forward pass's rounding term of :func:`residual_floor`."""
    return alpha * float(np.linalg.norm(lin.jvp(w * signs)))


def _floor(probe: float, lin: Linearization, alpha: float, y: Array) -> float:
    """:func:`residual_floor` from its probe term."""
    return _NOISE * _EPS * (probe + alpha * float(np.linalg.norm(lin.f)) + float(np.linalg.norm(y)))


# ----------------------------------------------------------------------------- helpers
