"""The model interface every model family implements, and the two zero-output wrappers.

A model maps a flat weight vector ``w`` (shape ``(p,)``) and inputs ``X`` (shape ``(n, d)``)
to outputs ``f(w)`` (shape ``(n,)``). All derivative work goes through
:meth:`Model.linearize`, which runs one forward and one backward pass at ``w`` and returns a
:class:`Linearization` holding what is needed for every derivative product at that point:
``J v`` (JVP), ``J^T r`` (VJP), the full Jacobian ``J`` (n x p), the tangent kernel
``K = J J^T``, the cross kernel ``J_w J_v^T`` and the difference kernel
``(J_w - J_v)(J_w - J_v)^T``. Kernels are computed without forming ``J``.

The wrappers that make ``f(w0) = 0`` live in :mod:`lazycheck.models.wrappers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

__all__ = ["DifferenceProducts", "Linearization", "Model"]

Array = np.ndarray
#: (jvp, vjp) of a difference of Jacobians J_w - J_v (:meth:`Linearization.difference_products`)
DifferenceProducts = tuple[Callable[[Array], Array], Callable[[Array], Array]]


class Linearization(ABC):
    """Everything about a model at one weight vector ``w`` on a fixed input set ``X``."""

    #: outputs f(w), shape (n,)
    f: Array

    @abstractmethod
    def jvp(self, v: Array) -> Array:
        """J_w v for v of shape (p,); returns shape (n,)."""

    @abstractmethod
    def vjp(self, r: Array) -> Array:
        """J_w^T r for r of shape (n,); returns shape (p,)."""

    @abstractmethod
    def jacobian(self) -> Array:
        """The full Jacobian J_w, shape (n, p). Needs n*p*8 bytes."""

    @abstractmethod
    def kernel(self) -> Array:
        """The tangent kernel K(w) = J_w J_w^T, shape (n, n), without forming J."""

    @abstractmethod
    def cross_kernel(self, other: Linearization) -> Array:
        """J_w J_v^T where ``other`` is the linearization at v (same model, same X)."""

    def hvp(self, a: Array, v: Array) -> Array | None:
        """sum_i a_i H_i(w) v (H_i the Hessian of f(x_i, .) at w), i.e. the derivative of
        J_w^T a along v, shape (p,); None (the default) where the model has no exact
        second-order product: callers then difference the VJP."""
        return None

    def difference_products(self, other: Linearization) -> DifferenceProducts | None:
        """(u -> (J_w - J_v) u, a -> (J_w - J_v)^T a) where ``other`` is the linearization at v
        (same model, same X), each at about the cost of one product and free of cancellation
        when J_w is close to J_v; None (the default) where the model has no such form:
        callers then subtract the two linearizations' products."""
        return None

    def difference_kernel(self, other: Linearization) -> Array:
        """(J_w - J_v)(J_w - J_v)^T. The default subtracts kernels; implementations override
        it with a form free of cancellation when J_w is close to J_v."""
        c = self.cross_kernel(other)
        return self.kernel() - c - c.T + other.kernel()


class Model(ABC):
    """A scalar-output model f(x, w) with flat weights w in R^p."""

    #: number of parameters p
    n_params: int
    #: True when w -> J_w is Lipschitz (every activation has a bounded second derivative)
    smooth: bool

    @abstractmethod
    def init(self, rng: np.random.Generator) -> Array:
        """Draw initial weights w0 (shape (p,)) from ``rng``."""

    @abstractmethod
    def linearize(self, w: Array, X: Array) -> Linearization:
        """One forward and backward pass at w on the inputs X (n, d)."""

    @abstractmethod
    def describe(self) -> str:
        """A one-line human description."""

    # Convenience wrappers: each runs a fresh pass.
    def forward(self, w: Array, X: Array) -> Array:
        """f(w) on every row of X, shape (n,)."""
        return self.linearize(w, X).f

    def jvp(self, w: Array, X: Array, v: Array) -> Array:
        """J_w v."""
        return self.linearize(w, X).jvp(v)

    def vjp(self, w: Array, X: Array, r: Array) -> Array:
        """J_w^T r."""
        return self.linearize(w, X).vjp(r)

    def jacobian(self, w: Array, X: Array) -> Array:
        """J_w, shape (n, p)."""
        return self.linearize(w, X).jacobian()

    def kernel(self, w: Array, X: Array) -> Array:
        """K(w) = J_w J_w^T."""
        return self.linearize(w, X).kernel()

    def cross_kernel(self, w: Array, v: Array, X: Array) -> Array:
        """J_w J_v^T."""
        return self.linearize(w, X).cross_kernel(self.linearize(v, X))
