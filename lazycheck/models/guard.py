"""Errors raised inside a user's model become one-line :class:`LazycheckError` messages.

:class:`GuardedModel` wraps a model built from user code (``[model] kind = "python"``) so that
an exception from its forward pass or derivative products reads, on the command line,
``lazycheck: error: [model].entry 'net.py:make_model': f raised ValueError: ...`` with exit 2
instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import DifferenceProducts, Linearization, Model

__all__ = ["GuardedModel", "user_error"]

Array = np.ndarray
T = TypeVar("T")


def user_error(who: str, what: str, exc: BaseException) -> LazycheckError:
    """``who: what raised Type: message`` (the message on one line)."""
    msg = " ".join(str(exc).split()) or "(no message)"
    return LazycheckError(f"{who}: {what} raised {type(exc).__name__}: {msg}")


class GuardedModel(Model):
    """The same model; every exception from it other than LazycheckError is reported as user
    code failing, naming ``who`` (the entry)."""

    def __init__(self, inner: Model, who: str) -> None:
        self.inner = inner
        self.who = who
        self.n_params = inner.n_params
        self.smooth = inner.smooth
        self.smooth_reason = getattr(inner, "smooth_reason", "")

    def init(self, rng: np.random.Generator) -> Array:
        return self._call("init", self.inner.init, rng)

    def linearize(self, w: Array, X: Array) -> Linearization:
        return _GuardedLinearization(self._call("linearize", self.inner.linearize, w, X), self)

    def forward(self, w: Array, X: Array) -> Array:
        return self._call("f", self.inner.forward, w, X)

    def describe(self) -> str:
        return self.inner.describe()

    def beta_bound(self, X: Array, w0: Array, radius: float) -> float | None:
        """The inner model's certified bound: its own ``beta_bound``, or lazycheck's for a
        built-in model (an MLP passed to ``Problem.from_arrays``)."""
        from lazycheck.beta.certified import certified_beta

        value = self._call("beta_bound", certified_beta, self.inner, X, w0, radius)
        if value is None:
            return None
        v = float(value)
        if not (v >= 0):
            raise LazycheckError(f"{self.who}: beta_bound returned {value!r}; expected >= 0")
        return v

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except LazycheckError:
            raise
        except Exception as exc:
            raise user_error(self.who, what, exc) from exc


class _GuardedLinearization(Linearization):
    def __init__(self, inner: Linearization, model: GuardedModel) -> None:
        self.inner = inner
        self.model = model
        self.f = inner.f

    def jvp(self, v: Array) -> Array:
        return self.model._call("jvp", self.inner.jvp, v)

    def vjp(self, r: Array) -> Array:
        return self.model._call("vjp", self.inner.vjp, r)

    def jacobian(self) -> Array:
        return self.model._call("jacobian", self.inner.jacobian)

    def hvp(self, a: Array, v: Array) -> Array | None:
        return self.model._call("the Hessian-vector product", self.inner.hvp, a, v)

    def kernel(self) -> Array:
        return self.model._call("the kernel", self.inner.kernel)

    def cross_kernel(self, other: Linearization) -> Array:
        return self.model._call("the cross kernel", self.inner.cross_kernel, _unwrap(other))

    def difference_products(self, other: Linearization) -> DifferenceProducts | None:
        prods = self.model._call(
            "the difference products", self.inner.difference_products, _unwrap(other)
        )
        if prods is None:
            return None
        jvp, vjp = prods
        return (
            lambda v: self.model._call("jvp", jvp, v),
            lambda r: self.model._call("vjp", vjp, r),
        )

    def difference_kernel(self, other: Linearization) -> Array:
        return self.model._call(
            "the difference kernel", self.inner.difference_kernel, _unwrap(other)
        )


def _unwrap(lin: Linearization) -> Linearization:
    return lin.inner if isinstance(lin, _GuardedLinearization) else lin
