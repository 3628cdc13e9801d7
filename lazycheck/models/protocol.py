"""Hand-written numpy models: write ``f`` and a derivative product, get everything else.

A subclass of :class:`NumpyModel` defines::

    n_params: int                      # p
    smooth: bool | None                # w -> J_w Lipschitz? None: the spec's `smooth` decides
    def init(self, rng) -> w0          # (p,)
    def f(self, w, X) -> (n,)          # outputs
    def vjp(self, w, X, r) -> (p,)     # J_w^T r      } at least one of vjp and jacobian
    def jacobian(self, w, X) -> (n, p) # J_w          }
    def jvp(self, w, X, v) -> (n,)     # J_w v        optional (from J or its rows otherwise)
    def beta_bound(self, X, w0, radius) -> float | None   # optional, see below

and gets the tangent, cross and difference kernels from :class:`RowLinearization`: the rows of
J come from ``jacobian`` when given, else from one ``vjp`` per row (``J^T e_i``), and the
kernels are built in memory-bounded blocks (J is held whole only when it fits in a quarter of
the memory limit). The full Jacobian of a linearization is cached once computed.

``beta_bound(X, w0, radius)`` may return a *certified* upper bound on
``sup_{0 < ||w - w0|| <= radius} ||J_w - J_0|| / ||w - w0||`` (for example from a bound on the
model's Hessians over the ball); ``lazycheck bound`` then reports it as ``beta[certified]``
and rests the verdict on it. Return None (the default) where no bound is known: the sampled
search (a lower bound) and a given beta are what there is then, and the verdict says so.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from lazycheck import resources
from lazycheck.errors import LazycheckError
from lazycheck.models.base import Model
from lazycheck.models.rows import _SHARE, RowLinearization, check_output

__all__ = ["NumpyModel"]

Array = np.ndarray


class NumpyModel(Model):
    """Base class of hand-written models (see the module docstring for the protocol)."""

    n_params: int
    #: True / False as the user declares; None: decided by the spec's ``[model].smooth``
    smooth: bool | None = None  # type: ignore[assignment]
    #: why the model is (not) smooth, shown in reports
    smooth_reason: str = ""

    @abstractmethod
    def f(self, w: Array, X: Array) -> Array:
        """The outputs f(w) on every row of X, shape (n,)."""

    def beta_bound(self, X: Array, w0: Array, radius: float) -> float | None:
        """A certified upper bound on beta(radius), or None (the default: none known)."""
        return None

    def linearize(self, w: Array, X: Array) -> _NumpyLinearization:
        return _NumpyLinearization(self, np.asarray(w, dtype=np.float64), X)

    def forward(self, w: Array, X: Array) -> Array:
        return check_output(self.f(np.asarray(w, dtype=np.float64), X), X.shape[0], self.name)

    def describe(self) -> str:
        return f"{self.name} (hand-written numpy model), p = {self.n_params}"

    @property
    def name(self) -> str:
        return type(self).__name__

    def _defines(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(NumpyModel, method)


class _NumpyLinearization(RowLinearization):
    def __init__(self, model: NumpyModel, w: Array, X: Array) -> None:
        self.model = model
        self.w = w
        self.X = X
        self.n_params = int(model.n_params)
        self.has_jac = model._defines("jacobian")
        self.has_vjp = model._defines("vjp")
        self.has_jvp = model._defines("jvp")
        if not (self.has_jac or self.has_vjp):
            raise LazycheckError(
                f"{model.name}: a NumpyModel defines vjp(w, X, r) or jacobian(w, X) "
                "(and optionally jvp(w, X, v)); it defines neither"
            )
        self.f = model.forward(w, X)
        self._J: Array | None = None

    def jvp(self, v: Array) -> Array:
        v = np.asarray(v, dtype=np.float64)
        if self.has_jvp:
            out = self.model.jvp(self.w, self.X, v)
            return check_output(out, self.n, self.model.name, "jvp(w, X, v)")
        if self._J is not None or self.has_jac:
            return self.jacobian() @ v
        return np.concatenate([self.rows(lo, hi) @ v for lo, hi in self._blocks()])

    def vjp(self, r: Array) -> Array:
        r = np.asarray(r, dtype=np.float64)
        if self.has_vjp:
            out = self.model.vjp(self.w, self.X, r)
            return check_output(out, self.n_params, self.model.name, "vjp(w, X, r)")
        return self.jacobian().T @ r

    def jacobian(self) -> Array:
        if self._J is None:
            if self.has_jac:
                J = np.asarray(self.model.jacobian(self.w, self.X), dtype=np.float64)
                if J.shape != (self.n, self.n_params):
                    raise LazycheckError(
                        f"{self.model.name}: jacobian(w, X) has shape {J.shape}; expected "
                        f"({self.n}, {self.n_params})"
                    )
                self._J = J
            else:
                self.check_jacobian_memory()
                self._J = self._vjp_rows(0, self.n)
        return self._J

    def rows(self, lo: int, hi: int) -> Array:
        if self._J is not None or self.has_jac or self._fits():
            return self.jacobian()[lo:hi]
        return self._vjp_rows(lo, hi)

    def _vjp_rows(self, lo: int, hi: int) -> Array:
        out = np.empty((hi - lo, self.n_params))
        e = np.zeros(self.n)
        for i in range(lo, hi):
            e[i] = 1.0
            out[i - lo] = self.vjp(e)
            e[i] = 0.0
        return out

    def _fits(self) -> bool:
        return resources.fits(8.0 * self.n * self.n_params * _SHARE)

    def _blocks(self) -> list[tuple[int, int]]:
        k = max(1, min(self.n, 256))
        return [(lo, min(lo + k, self.n)) for lo in range(0, self.n, k)]
