"""The extreme eigenvalues of a tangent kernel K_w = J_w J_w^T without forming it.

``verify`` needs sigma_min(J_w) and sigma_max(J_w) at every recorded time of the flow and at the
sampled points of Lemma 6's ball. Forming K_w costs O(n^2 p) and its eigenvalues O(n^3): at
n = 1600 (width 2000) 0.27 s and 0.45 s, against 26 ms for one product K_w v = J_w (J_w^T v)
(a VJP and a JVP). Both points lie near w0, so K_w is close to K0, whose eigendecomposition
K0 = Q diag(lam) Q^T the linear flow has computed anyway. :class:`KernelExtremes` uses it as a
model of K_w in Davidson's method with Olsen's correction (the one-step Jacobi-Davidson
correction; Saad, *Numerical Methods for Large Eigenvalue Problems*, 2011, sec. 8.3):

* the search space V starts from a guess of the wanted eigenvector (K0's, or the last point's
  Ritz vector, which along a path is the better one);
* Rayleigh-Ritz on V gives the Ritz pair (theta, x) of the wanted end, its residual
  r = K_w x - theta x;
* V grows by the correction t = -M^{-1} r + eps M^{-1} x, with M = K0 - theta I and eps such
  that t is orthogonal to x (M^{-1} through K0's eigendecomposition, O(n^2)); with M = K_w this
  is Newton's method on the eigenproblem, so the closer K_w is to K0 the faster it converges.

Stopping rule. A Ritz value with residual rho lies within rho of an eigenvalue of K_w, and within
rho^2 / gap of it, gap being the distance to the rest of the spectrum (estimated from K0's). The
iteration stops when rho^2 / gap <= rtol * theta (rtol = 1e-12), or when rho reaches the rounding
floor of the products (64 eps lambda_max), where a dense eigensolver's eigenvalues are no better
(its absolute error is also of order eps lambda_max). The error estimate min(rho, rho^2 / gap) is
returned with each value. When the iteration has not converged within ``max_pairs`` products, the
point falls back to the dense route (kernel and eigendecomposition); along a path that kernel
then replaces K0 as the model, so a path that leaves K0 behind pays for a dense point now and
then, not at every time.

Measured on ``benchmarks/specs/wide_tanh.toml`` (alpha = 1e4, 201 recorded times, every value
compared with ``eigvalsh`` of the formed kernel): n = 400, 2.1 products pairs per time for
lambda_min and 1.1 for lambda_max, worst relative deviation 2.7e-11; far from the lazy regime
(``samples/deep_tanh.toml`` at alpha = 1, where the path leaves K0 behind) 8.3 and 3.1 pairs,
worst deviation 5.9e-13.

The values are computed to the stated accuracy (not certified bounds): a Ritz value of the
smallest end is never below lambda_min(K_w), and lies within its error estimate of an eigenvalue
of K_w; which eigenvalue is taken on trust in the starting vector (the tests compare with the
dense eigensolver along flows near and far from the lazy regime).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lazycheck.models.base import Linearization
from lazycheck.numerics.spectrum import sym_eig

__all__ = ["MATRIX_FREE_MIN_N", "Extremes", "KernelExtremes"]

Array = np.ndarray
End = Literal["min", "max"]

#: the sigma's along a path are computed matrix-free from this n on (below it a kernel and its
#: eigenvalues cost less than the products. wide_tanh, per recorded time: at n = 100 the dense
#: route 4.1 ms against about 5.3 ms for three product pairs of 1.76 ms; at n = 400 43 ms
#: against 14 ms measured in verify's profile, 193 calls)
MATRIX_FREE_MIN_N = 256
#: relative accuracy asked of each eigenvalue (through rho^2 / gap)
RTOL = 1e-12
#: products K_w v per end before the dense fallback
MAX_PAIRS = 12
_EPS = float(np.finfo(np.float64).eps)
_FLOOR = 64.0  # rounding floor of a residual, in units of eps lambda_max


@dataclass(frozen=True)
class Extremes:
    """lambda_min, lambda_max of one kernel, each with an error estimate (absolute), the
    number of products K v spent and how they were computed (``"davidson"`` or ``"dense"``)."""

    lam_min: float
    lam_max: float
    err_min: float
    err_max: float
    products: int
    method: str

    @property
    def sigma_min(self) -> float:
        return math.sqrt(max(self.lam_min, 0.0))

    @property
    def sigma_max(self) -> float:
        return math.sqrt(max(self.lam_max, 0.0))


class KernelExtremes:
    """lambda_min and lambda_max of kernels near a model K0 = Q diag(lam) Q^T (module
    docstring). ``track``: start each call from the last call's Ritz vectors (points along a
    path); otherwise from K0's extreme eigenvectors (scattered points).

    Call it with a linearization; ``products``, ``fallbacks`` and ``max_rel_err`` (the largest
    relative error estimate so far) accumulate over calls."""

    def __init__(
        self,
        lam: Array,
        Q: Array,
        *,
        track: bool = True,
        rtol: float = RTOL,
        max_pairs: int = MAX_PAIRS,
    ) -> None:
        self.lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
        self.Q = np.asarray(Q, dtype=np.float64)
        self.track, self.rtol, self.max_pairs = track, rtol, max_pairs
        self._start = {"min": self.Q[:, 0].copy(), "max": self.Q[:, -1].copy()}
        self.products = 0
        self.fallbacks = 0
        self.max_rel_err = 0.0

    def __call__(self, lin: Linearization) -> Extremes:
        def kv(v: Array) -> Array:
            return lin.jvp(lin.vjp(v))

        lo = self._refine(kv, "min")
        hi = self._refine(kv, "max") if lo is not None else None
        if lo is None or hi is None:
            return self._dense(lin)
        (lmin, emin, xmin, pmin), (lmax, emax, xmax, pmax) = lo, hi
        if self.track:
            self._start = {"min": xmin, "max": xmax}
        self.products += 2 * (pmin + pmax)
        for lam, err in ((lmin, emin), (lmax, emax)):
            if lam > 0:
                self.max_rel_err = max(self.max_rel_err, err / lam)
        return Extremes(lmin, lmax, emin, emax, 2 * (pmin + pmax), "davidson")

    # ------------------------------------------------------------------ helpers

    def _refine(
        self, kv: Callable[[Array], Array], end: End
    ) -> tuple[float, float, Array, int] | None:
        """Davidson-Olsen for one end: (theta, error estimate, Ritz vector, products), or
        None when ``max_pairs`` products did not converge."""
        x = self._start[end] / np.linalg.norm(self._start[end])
        V, AV = x[:, None], kv(x)[:, None]
        floor = _FLOOR * _EPS * float(self.lam[-1])
        for pairs in range(1, self.max_pairs + 1):
            theta, x, Ax = _ritz(V, AV, end)
            r = Ax - theta * x
            rho = float(np.linalg.norm(r))
            gap = self._gap(theta, end)
            if rho <= floor or rho * rho <= self.rtol * abs(theta) * gap:
                return theta, min(rho, rho * rho / gap) + floor, x, pairs
            if pairs == self.max_pairs:
                break
            t = self._correction(theta, x, r, V)
            if t is None:  # the search space cannot grow: take the value as it stands
                return theta, rho + floor, x, pairs
            V = np.column_stack([V, t])
            AV = np.column_stack([AV, kv(t)])
        return None

    def _gap(self, theta: float, end: End) -> float:
        """Distance from theta to the model's spectrum without its wanted end."""
        rest = self.lam[1:] if end == "min" else self.lam[:-1]
        if rest.size == 0:
            return max(abs(theta), _EPS)
        return max(float(np.min(np.abs(rest - theta))), _FLOOR * _EPS * float(self.lam[-1]))

    def _correction(self, theta: float, x: Array, r: Array, V: Array) -> Array | None:
        """Olsen's correction t = -M^-1 r + eps M^-1 x, t orthogonal to x, with
        M = K0 - theta I, orthonormalised against V (twice); None if nothing is left."""
        d = self.lam - theta
        tiny = _FLOOR * _EPS * float(self.lam[-1])
        d = np.where(np.abs(d) < tiny, np.where(d < 0, -tiny, tiny), d)
        a = self.Q @ ((self.Q.T @ r) / d)
        b = self.Q @ ((self.Q.T @ x) / d)
        xb = float(x @ b)
        t = -a + (float(x @ a) / xb) * b if xb != 0 else -a
        for _ in range(2):
            t = t - V @ (V.T @ t)
        nt = float(np.linalg.norm(t))
        if not (math.isfinite(nt) and nt > 0):
            return None
        return t / nt

    def _dense(self, lin: Linearization) -> Extremes:
        """The fallback: the kernel and its eigendecomposition, which along a path (``track``)
        also becomes the model for the points that follow."""
        K = lin.kernel()
        lam, Q = sym_eig(0.5 * (K + K.T))
        self.fallbacks += 1
        if self.track:  # the path has left the model behind: this kernel is the new model
            self.lam, self.Q = np.maximum(lam, 0.0), Q
            self._start = {"min": Q[:, 0].copy(), "max": Q[:, -1].copy()}
        err = lam.shape[0] * _EPS * max(float(lam[-1]), 0.0)
        return Extremes(float(lam[0]), float(lam[-1]), err, err, 0, "dense")


def _ritz(V: Array, AV: Array, end: End) -> tuple[float, Array, Array]:
    """The Ritz pair of the wanted end on span(V) (V orthonormal, AV = K V) and K x."""
    H = V.T @ AV
    th, Y = np.linalg.eigh(0.5 * (H + H.T))
    j = 0 if end == "min" else -1
    y = Y[:, j]
    return float(th[j]), V @ y, AV @ y
