"""sigma_min and sigma_max of a Jacobian, the rank check of Assumption 1, and their accuracy.

Two methods, chosen by size:

* ``svd``: singular values of the full J (n x p) when it fits in ``max_jacobian_bytes``.
  Backward stable: each singular value is accurate to about ``eps * sigma_max`` in absolute
  terms, so sigma_min keeps relative accuracy ``eps * cond(J)``.
* ``kernel``: eigenvalues of the layerwise tangent kernel K = J J^T. Squaring costs accuracy:
  eigenvalues carry an absolute error of about ``n * eps * lambda_max``, so sigma_min carries
  ``min(sqrt(delta), delta / (2 sigma_min))`` with ``delta = n eps sigma_max^2``: relative
  accuracy ``eps * cond(J)^2``. The report states the figure.

Rank tolerance: J has rank n when sigma_min > tol, with ``tol = max(n, p) * eps * sigma_max``
for ``svd`` (numpy's ``matrix_rank`` default) and ``tol = sqrt(n * eps) * sigma_max`` for
``kernel`` (below it, sigma_min cannot be told from zero after squaring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lazycheck.models.base import Linearization

__all__ = ["Spectrum", "jacobian_spectrum", "kernel_sigma_range"]

_EPS = float(np.finfo(np.float64).eps)
DEFAULT_MAX_JACOBIAN_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Spectrum:
    """Singular values of J0 and the verdict on Assumption 1's rank condition.

    Attributes:
        sigma_min, sigma_max: extreme singular values of J (sigma_min over the n largest).
        singular_values: all n of them, descending.
        n, p: rows and columns of J.
        rank: numerical rank against ``tol``.
        tol: the rank tolerance on singular values.
        method: ``"svd"`` or ``"kernel"``.
        sigma_min_abs_error: the absolute accuracy of sigma_min the method gives.
        status: ``"ok"`` when rank J = n and p > n, else ``"rank_deficient"`` / ``"p_le_n"``.
        message: one line saying why.
    """

    sigma_min: float
    sigma_max: float
    singular_values: np.ndarray
    n: int
    p: int
    rank: int
    tol: float
    method: str
    sigma_min_abs_error: float
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def condition_number(self) -> float:
        return self.sigma_max / self.sigma_min if self.sigma_min > 0 else math.inf


def jacobian_spectrum(
    lin: Linearization,
    p: int,
    method: str = "auto",
    max_jacobian_bytes: int = DEFAULT_MAX_JACOBIAN_BYTES,
) -> Spectrum:
    """Extreme singular values of J at a linearization, with the rank check.

    ``method``: ``"svd"``, ``"kernel"`` or ``"auto"`` (svd when n*p*8 bytes fit the budget).
    """
    n = int(lin.f.shape[0])
    if method == "auto":
        method = "svd" if n * p * 8 <= max_jacobian_bytes else "kernel"
    if method == "svd":
        s = np.linalg.svd(lin.jacobian(), compute_uv=False)
        s = np.sort(s)[::-1][:n]
        if s.shape[0] < n:  # p < n: only p singular values; the rest are zero
            s = np.concatenate([s, np.zeros(n - s.shape[0])])
        smax = float(s[0]) if n else 0.0
        tol = max(n, p) * _EPS * smax
        err = tol
    elif method == "kernel":
        from lazycheck.resources import require_kernel

        require_kernel(n, "sigma_min, sigma_max from the tangent kernel")
        lam = np.linalg.eigvalsh(lin.kernel())[::-1]
        smax = math.sqrt(max(float(lam[0]), 0.0))
        s = np.sqrt(np.clip(lam, 0.0, None))
        delta = n * _EPS * smax**2
        tol = math.sqrt(n * _EPS) * smax
        smin_raw = float(s[-1])
        err = min(math.sqrt(delta), delta / (2 * smin_raw)) if smin_raw > 0 else math.sqrt(delta)
    else:
        raise ValueError(f"unknown method {method!r}; use auto, svd or kernel")
    rank = int(np.sum(s > tol))
    smin = float(s[-1])
    if p <= n:
        status = "p_le_n"
        message = (
            f"p = {p} <= n = {n}: Assumption 1 needs more parameters than data points, "
            "so J0 J0^T cannot be positive definite"
        )
    elif rank < n:
        status = "rank_deficient"
        message = (
            f"rank J0 = {rank} < n = {n} (sigma_min = {smin:.3g} <= tol = {tol:.3g}): "
            "duplicate inputs, a dead network or too few parameters; the theorem says nothing"
        )
    else:
        status = "ok"
        message = f"rank J0 = n = {n} < p = {p}; sigma_min = {smin:.6g} > tol = {tol:.3g}"
    return Spectrum(smin, smax, s, n, p, rank, tol, method, err, status, message)


def kernel_sigma_range(K: np.ndarray) -> tuple[float, float]:
    """(sigma_min, sigma_max) of J from its kernel K = J J^T (eigenvalues clipped at 0)."""
    lam = np.linalg.eigvalsh(K)
    return math.sqrt(max(float(lam[0]), 0.0)), math.sqrt(max(float(lam[-1]), 0.0))
