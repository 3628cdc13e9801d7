"""Two wrappers that make ``f(w0) = 0`` exactly.

:class:`CenteredModel` (``f(x, w) - f(x, w0)``) and :class:`SymmetricModel` (two copies of a
network with opposite output signs, started equal).
"""

from __future__ import annotations

import math

import numpy as np

from lazycheck.models.base import DifferenceProducts, Linearization, Model

__all__ = ["CenteredModel", "SymmetricModel"]

Array = np.ndarray


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
        # the p of the pair, as `info` and every report count it (each half has half of it)
        half, pair = f"p = {self.base.n_params}", f"p = {self.n_params}"
        base = self.base.describe()
        if base.endswith(half):
            return f"symmetric pair of {base[: -len(half)]}{pair} ({half} per half)"
        return f"symmetric pair of {base}; {pair} in all"


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

    def hvp(self, a: Array, v: Array) -> Array | None:
        return self.inner.hvp(a, v)  # the offset is constant: the same Hessians

    def kernel(self) -> Array:
        return self.inner.kernel()

    def cross_kernel(self, other: Linearization) -> Array:
        return self.inner.cross_kernel(_unwrap_shift(other))

    def difference_products(self, other: Linearization) -> DifferenceProducts | None:
        return self.inner.difference_products(_unwrap_shift(other))

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

    def hvp(self, a: Array, v: Array) -> Array | None:
        q = v.shape[0] // 2  # block-diagonal: each half's Hessians, with the output's sign
        ha, hb = self.a.hvp(a, v[:q]), self.b.hvp(a, v[q:])
        if ha is None or hb is None:
            return None
        return np.concatenate([ha, -hb]) * _INV_SQRT2

    def kernel(self) -> Array:
        return 0.5 * (self.a.kernel() + self.b.kernel())

    def cross_kernel(self, other: Linearization) -> Array:
        assert isinstance(other, _SymmetricLinearization)
        return 0.5 * (self.a.cross_kernel(other.a) + self.b.cross_kernel(other.b))

    def difference_products(self, other: Linearization) -> DifferenceProducts | None:
        assert isinstance(other, _SymmetricLinearization)
        da, db = self.a.difference_products(other.a), self.b.difference_products(other.b)
        if da is None or db is None:
            return None
        (jvp_a, vjp_a), (jvp_b, vjp_b) = da, db

        def jvp(v: Array) -> Array:
            q = v.shape[0] // 2
            return (jvp_a(v[:q]) - jvp_b(v[q:])) * _INV_SQRT2

        def vjp(r: Array) -> Array:
            return np.concatenate([vjp_a(r), -vjp_b(r)]) * _INV_SQRT2

        return jvp, vjp

    def difference_kernel(self, other: Linearization) -> Array:
        assert isinstance(other, _SymmetricLinearization)
        return 0.5 * (self.a.difference_kernel(other.a) + self.b.difference_kernel(other.b))
