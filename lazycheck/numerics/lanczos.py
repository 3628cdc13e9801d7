"""The top eigenpair of a symmetric operator by Lanczos (the largest eigenvalue, or the one of
largest magnitude), stopping as soon as it has converged.

ARPACK (``scipy.sparse.linalg.eigsh``) builds its whole basis of ``ncv`` vectors before it
tests convergence, so a warm start from a nearly right vector still costs ``ncv + 1`` products.
A search over nearby points (the sampled beta: each point's top singular vector starts the next
run) converges in a few products; this Lanczos tests the residual after every product.

Full reorthogonalization (twice, "twice is enough"), so the basis stays orthonormal to working
precision; the Ritz pair's residual norm ``beta_k |s_k|`` is the classical bound on
``||A x - theta x||`` for the unit Ritz vector x, and ``theta`` is within that residual of an
eigenvalue of A.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["RitzPair", "top_eigenpair"]

Array = np.ndarray


@dataclass(frozen=True)
class RitzPair:
    """The top Ritz pair: ``value`` theta, unit ``vector`` x, ``residual`` ||A x - theta x||
    (the Lanczos bound), ``products`` the operator products used, ``converged`` whether the
    residual met the tolerance."""

    value: float
    vector: Array
    residual: float
    products: int
    converged: bool


def top_eigenpair(
    matvec: Callable[[Array], Array],
    v0: Array,
    tol: float,
    maxiter: int | None = None,
    which: str = "LA",
) -> RitzPair:
    """The largest eigenvalue of the symmetric operator ``matvec`` (n x n) and its vector;
    with ``which="LM"`` the eigenvalue of largest magnitude (of either sign) instead.

    Starts from ``v0`` (any non-zero vector) and stops when the residual is at most
    ``tol * |theta|``, after ``maxiter`` products (default ``min(n, 60)``), or when the Krylov
    space is invariant (then the pair is exact to rounding).
    """
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', got {which!r}")
    n = int(v0.shape[0])
    limit = min(n, 60) if maxiter is None else max(1, min(int(maxiter), n))
    q = np.asarray(v0, dtype=np.float64) / float(np.linalg.norm(v0))
    Q = np.empty((limit, n))
    alphas: list[float] = []
    betas: list[float] = []
    theta, s, res = 0.0, np.ones(1), math.inf
    for k in range(limit):
        Q[k] = q
        w = np.asarray(matvec(q), dtype=np.float64).reshape(n)
        alphas.append(float(q @ w))
        basis = Q[: k + 1]
        for _ in range(2):  # full reorthogonalization, twice
            w -= basis.T @ (basis @ w)
        b = float(np.linalg.norm(w))
        theta, s = _top_of_tridiagonal(alphas, betas, which)
        res = b * abs(float(s[-1]))
        scale = max(abs(theta), float(np.max(np.abs(alphas))), 1e-300)
        if res <= tol * abs(theta) or b <= 1e-14 * scale:
            return RitzPair(theta, _ritz_vector(Q[: k + 1], s), res, k + 1, True)
        if k + 1 < limit:
            betas.append(b)
            q = w / b
    return RitzPair(theta, _ritz_vector(Q[:limit], s), res, limit, False)


def _top_of_tridiagonal(
    alphas: list[float], betas: list[float], which: str = "LA"
) -> tuple[float, Array]:
    from scipy.linalg import eigh_tridiagonal

    k = len(alphas)
    if k == 1:
        return alphas[0], np.ones(1)
    d, e = np.asarray(alphas), np.asarray(betas[: k - 1])
    if which == "LM":  # both ends (k is small), the larger in magnitude
        vals, vecs = eigh_tridiagonal(d, e)
        i = int(np.argmax(np.abs(vals)))
        return float(vals[i]), vecs[:, i]
    vals, vecs = eigh_tridiagonal(d, e, select="i", select_range=(k - 1, k - 1))
    return float(vals[0]), vecs[:, 0]


def _ritz_vector(Q: Array, s: Array) -> Array:
    x = Q.T @ s
    return x / float(np.linalg.norm(x))
