"""The gradient flow of the linearized model, in closed form.

The linear model is f0(u) = f(w0) + J0 (u - w0) and its flow is
u' = -alpha J0^T (alpha f0(u) - y), u(0) = w0. Its residual r = alpha f0(u) - y obeys
r' = -alpha^2 K0 r with the tangent kernel K0 = J0 J0^T (Lemma 3, with the factor alpha^2 the
lecture notes drop). With the eigendecomposition K0 = Q Lambda Q^T and r0 = alpha f(w0) - y:

    r(t)        = Q exp(-alpha^2 Lambda t) Q^T r0
    u(t) - u0   = -(1/alpha) J0^T Q diag(e(lambda, alpha^2 t)) Q^T r0,
    e(lambda, s) = (1 - exp(-lambda s)) / lambda = s phi1(-lambda s),

since the integral of r over [0, t] is Q diag(e) Q^T r0 / alpha^2. The function e is evaluated
with ``expm1`` (and a Taylor series for tiny lambda s), so a zero or denormal eigenvalue gives
its limit e -> s = alpha^2 t instead of 0/0. Eigenvalues below zero (rounding in K0) are clipped
to zero: they belong to directions in which J0 vanishes to working precision.

The distance travelled needs no p-vector: ||J0^T c||^2 = c^T K0 c, so with c_hat = Q^T c,

    ||u(t) - u0|| = (1/alpha) sqrt(sum_i lambda_i e(lambda_i, s)^2 (Q^T r0)_i^2),

and as t -> infinity (all lambda_i > 0) ||u - u0|| -> (1/alpha) sqrt(r0^T K0^{-1} r0), which is
sqrt(y^T K0^{-1} y) / alpha for a centered model (f(w0) = 0).

This module also holds the phi-functions phi_j(z) = sum_k z^k / (k + j)! on z <= 0 used by the
exponential integrator in :mod:`lazycheck.numerics.flow`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lazycheck.models.base import Linearization
from lazycheck.numerics.spectrum import sym_eig

__all__ = ["LinearFlow", "linear_flow", "phi", "phi_table", "phi_weights"]

Array = np.ndarray

_SERIES_TERMS = 30  # phi_j(-x) series for x < 2: the first omitted term is below 1e-23
_SERIES_BELOW = 2.0


@dataclass(frozen=True)
class LinearFlow:
    """The exact gradient flow of the linear model f0 at scale ``alpha``.

    Attributes:
        alpha: the output scale.
        lam: eigenvalues of K0 (ascending, clipped at 0), shape (n,).
        Q: orthonormal eigenvectors of K0 (columns), shape (n, n).
        r0: initial residual alpha f(w0) - y, shape (n,).
        lin0: the linearization at w0 (used only to apply J0^T).
    """

    alpha: float
    lam: Array
    Q: Array
    r0: Array
    lin0: Linearization

    @property
    def r0_hat(self) -> Array:
        """Q^T r0: the initial residual in the eigenbasis of K0."""
        return self.Q.T @ self.r0

    def residual(self, t: Array | float) -> Array:
        """r(t) = alpha f0(u(t)) - y; shape (m, n) for m times (or (n,) for a scalar t)."""
        tt, scalar = _times(t)
        decay = np.exp(-np.outer(self.alpha**2 * tt, self.lam))
        out = (decay * self.r0_hat) @ self.Q.T
        return out[0] if scalar else out

    def loss(self, t: Array | float) -> Array:
        """L(alpha f0(u(t))) = 1/2 sum_i exp(-2 alpha^2 lambda_i t) (Q^T r0)_i^2."""
        tt, scalar = _times(t)
        decay = np.exp(-2.0 * np.outer(self.alpha**2 * tt, self.lam))
        out = 0.5 * (decay @ self.r0_hat**2)
        return out[0] if scalar else out

    def coefficients(self, t: Array | float) -> Array:
        """c(t) = Q diag(e(lambda, alpha^2 t)) Q^T r0, so that u(t) - u0 = -(1/alpha) J0^T c(t)."""
        tt, scalar = _times(t)
        e = phi_weights(self.alpha**2 * tt, self.lam, 1)
        out = (e * self.r0_hat) @ self.Q.T
        return out[0] if scalar else out

    def displacement(self, t: Array | float) -> Array:
        """u(t) - u0: shape (p,) for a scalar t, (m, p) for m times; one VJP with J0 each."""
        c = self.coefficients(t)
        if c.ndim == 1:
            return -self.lin0.vjp(c) / self.alpha
        return np.stack([-self.lin0.vjp(ck) / self.alpha for ck in c])

    def displacement_norm(self, t: Array | float) -> Array:
        """||u(t) - u0|| from the kernel alone: (1/alpha) sqrt(c_hat^T Lambda c_hat)."""
        tt, scalar = _times(t)
        e = phi_weights(self.alpha**2 * tt, self.lam, 1)
        sq = (self.lam * e**2) @ self.r0_hat**2
        out = np.sqrt(np.maximum(sq, 0.0)) / self.alpha
        return out[0] if scalar else out

    def displacement_limit(self) -> float:
        """lim ||u(t) - u0|| as t -> infinity: sqrt(r0^T K0^+ r0) / alpha (the pseudo-inverse:
        components of r0 in the kernel's null space never move u)."""
        pos = self.lam > 0
        return math.sqrt(float(np.sum(self.r0_hat[pos] ** 2 / self.lam[pos]))) / self.alpha

    def rate_bound(self, t: Array | float, L0: float) -> Array:
        """Lemma 4 for the linear model: L0 exp(-2 alpha^2 sigma_min^2 t)."""
        tt, scalar = _times(t)
        out = L0 * np.exp(-2.0 * self.alpha**2 * self.lam[0] * tt)
        return out[0] if scalar else out


def linear_flow(lin0: Linearization, y: Array, alpha: float) -> LinearFlow:
    """The linear flow started at the linearization ``lin0`` (at w0) with targets ``y``."""
    K0 = lin0.kernel()
    lam, Q = sym_eig(0.5 * (K0 + K0.T))
    lam = np.maximum(lam, 0.0)
    r0 = alpha * np.asarray(lin0.f, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return LinearFlow(float(alpha), lam, Q, r0, lin0)


def phi(j: int, x: Array | float) -> Array:
    """phi_j(-x) for x >= 0, elementwise: phi_0(z) = e^z, phi_{j+1}(z) = (phi_j(z) - 1/j!)/z.

    Accurate to a few ulps for every x >= 0 (see :func:`phi_table`).
    """
    return phi_table(j, x)[j]


def phi_table(jmax: int, x: Array | float) -> Array:
    """phi_j(-x) for j = 0..jmax, stacked: shape (jmax + 1, *shape(x)), for x >= 0.

    Below x = 2, where the upward recurrence phi_{j+1} = (1/j! - phi_j(-x))/x would cancel,
    phi_jmax comes from its Taylor series and the others from the stable downward recurrence
    phi_j(-x) = 1/j! - x phi_{j+1}(-x); above it, the upward recurrence from
    phi_1(-x) = -expm1(-x)/x loses nothing.
    """
    if not 0 <= jmax <= 15:
        raise ValueError(f"phi_j is implemented for 0 <= j <= 15, got {jmax}")
    xx = np.asarray(x, dtype=np.float64)
    if np.any(xx < 0) or np.any(np.isnan(xx)):
        raise ValueError("phi(j, x) is for x >= 0 (phi_j(-x))")
    out = np.empty((jmax + 1, *xx.shape))
    out[0] = np.exp(-xx)
    if jmax == 0:
        return out
    small = xx < _SERIES_BELOW
    if np.all(small):
        out[1:] = _phi_small(jmax, xx)
        return out
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        val = -np.expm1(-xx) / xx
        out[1] = val
        for i in range(1, jmax):
            val = (_INV_FACT[i] - val) / xx
            out[i + 1] = val
    if np.any(small):
        out[1:, small] = _phi_small(jmax, xx[small])
    return out


def phi_weights(s: Array | float, lam: Array, j: int) -> Array:
    """s^j phi_j(-lambda s) for every (s, lambda): shape (len(s), len(lam)) for an array s.

    For j = 1 this is e(lambda, s) = (1 - exp(-lambda s)) / lambda, equal to s at lambda = 0.
    """
    ss = np.asarray(s, dtype=np.float64)
    lamc = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    x = np.multiply.outer(ss, lamc)
    return (ss**j)[..., None] * phi(j, x) if ss.ndim else ss**j * phi(j, x)


def _times(t: Array | float) -> tuple[Array, bool]:
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim > 1:
        raise ValueError("times must be a scalar or a 1-D array")
    if np.any(tt < 0) or not np.all(np.isfinite(tt)):
        raise ValueError("times must be finite and >= 0")
    return np.atleast_1d(tt), tt.ndim == 0


_INV_FACT = [1.0 / math.factorial(k) for k in range(_SERIES_TERMS + 16)]


def _phi_small(jmax: int, x: Array) -> Array:
    """phi_1..phi_jmax at -x for 0 <= x < 2: series for phi_jmax, then downward recurrence."""
    acc = np.full_like(x, _INV_FACT[_SERIES_TERMS + jmax])
    for k in range(_SERIES_TERMS - 1, -1, -1):
        acc = acc * (-x) + _INV_FACT[k + jmax]
    out = np.empty((jmax, *x.shape))
    out[jmax - 1] = acc
    for j in range(jmax - 1, 0, -1):
        acc = _INV_FACT[j] - x * acc
        out[j - 1] = acc
    return out
