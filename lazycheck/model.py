"""The model interface every model family implements, and the two zero-output wrappers.

A model maps a flat weight vector ``w`` (shape ``(p,)``) and inputs ``X`` (shape ``(n, d)``)
to outputs ``f(w)`` (shape ``(n,)``). All derivative work goes through
:meth:`Model.linearize`, which runs one forward and one backward pass at ``w`` and returns a
:class:`Linearization` holding what is needed for every derivative product at that point:
``J v`` (JVP), ``J^T r`` (VJP), the full Jacobian ``J`` (n x p), the tangent kernel
``K = J J^T``, the cross kernel ``J_w J_v^T`` and the difference kernel
``(J_w - J_v)(J_w - J_v)^T``. Kernels are computed without forming ``J``.

Two wrappers make ``f(w0) = 0`` exactly: :class:`CenteredModel` (``f(x, w) - f(x, w0)``) and
:class:`SymmetricModel` (two copies of a network with opposite output signs, started equal).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

__all__ = ["CenteredModel", "Linearization", "Model", "SymmetricModel"]

Array = np.ndarray


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


class CenteredModel(Model):
    """f_c(x, w) = f(x, w) - f(x, w_ref): the same Jacobian, and f_c(w_ref) = 0 exactly.

    The offset is evaluated on the inputs the model is linearized on, so it is exact on the
    training set (and on any other input set passed in).
    """

    def __init__(self, base: Model, w_ref: Array) -> None:
        self.base = base
        self.w_ref = np.array(w_ref, dtype=np.float64, copy=True)
        self.n_params = base.n_params
        self.smooth = base.smooth
        self._offset_cache: tuple[Array, Array] | None = None

    def init(self, rng: np.random.Generator) -> Array:
        return self.w_ref.copy()

    def linearize(self, w: Array, X: Array) -> Linearization:
        inner = self.base.linearize(w, X)
        return _ShiftedLinearization(inner, self._offset(X))

    def describe(self) -> str:
        return f"centered {self.base.describe()}"

    def _offset(self, X: Array) -> Array:
        # one-entry cache: the training inputs are evaluated again and again
        cached = self._offset_cache
        if cached is not None and cached[0] is X:
            return cached[1]
        off = self.base.forward(self.w_ref, X)
        self._offset_cache = (X, off)
        return off


class SymmetricModel(Model):
    """f(x, (a, b)) = (g(x, a) - g(x, b)) / sqrt(2), initialized with b = a so f(w0) = 0.

    ``g`` is the ``base`` network (each half). Weights are packed as ``[a, b]``. At
    initialization the tangent kernel is the average of the two halves' kernels.
    """

    def __init__(self, base: Model) -> None:
        self.base = base
        self.n_params = 2 * base.n_params
        self.smooth = base.smooth

    def init(self, rng: np.random.Generator) -> Array:
        a = self.base.init(rng)
        return np.concatenate([a, a])

    def linearize(self, w: Array, X: Array) -> Linearization:
        q = self.base.n_params
        return _SymmetricLinearization(self.base.linearize(w[:q], X), self.base.linearize(w[q:], X))

    def describe(self) -> str:
        return f"symmetric pair of {self.base.describe()}"


class _ShiftedLinearization(Linearization):
    def __init__(self, inner: Linearization, offset: Array) -> None:
        self.inner = inner
        self.f = inner.f - offset

    def jvp(self, v: Array) -> Array:
        return self.inner.jvp(v)

    def vjp(self, r: Array) -> Array:
        return self.inner.vjp(r)

    def jacobian(self) -> Array:
        return self.inner.jacobian()

    def kernel(self) -> Array:
        return self.inner.kernel()

    def cross_kernel(self, other: Linearization) -> Array:
        return self.inner.cross_kernel(_unwrap_shift(other))

    def difference_kernel(self, other: Linearization) -> Array:
        return self.inner.difference_kernel(_unwrap_shift(other))


def _unwrap_shift(lin: Linearization) -> Linearization:
    return lin.inner if isinstance(lin, _ShiftedLinearization) else lin


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class _SymmetricLinearization(Linearization):
    def __init__(self, a: Linearization, b: Linearization) -> None:
        self.a = a
        self.b = b
        self.f = (a.f - b.f) * _INV_SQRT2

    def jvp(self, v: Array) -> Array:
        q = v.shape[0] // 2
        return (self.a.jvp(v[:q]) - self.b.jvp(v[q:])) * _INV_SQRT2

    def vjp(self, r: Array) -> Array:
        return np.concatenate([self.a.vjp(r), -self.b.vjp(r)]) * _INV_SQRT2

    def jacobian(self) -> Array:
        return np.hstack([self.a.jacobian(), -self.b.jacobian()]) * _INV_SQRT2

    def kernel(self) -> Array:
        return 0.5 * (self.a.kernel() + self.b.kernel())

    def cross_kernel(self, other: Linearization) -> Array:
        assert isinstance(other, _SymmetricLinearization)
        return 0.5 * (self.a.cross_kernel(other.a) + self.b.cross_kernel(other.b))

    def difference_kernel(self, other: Linearization) -> Array:
        assert isinstance(other, _SymmetricLinearization)
        return 0.5 * (self.a.difference_kernel(other.a) + self.b.difference_kernel(other.b))
