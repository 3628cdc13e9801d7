"""JAX models: ``apply(params, X)`` with a params pytree, as a lazycheck :class:`Model`.

Install with ``pip install 'lazycheck[jax]'``. This module is imported only when a JAX model
is used. It turns on JAX's 64-bit mode (``jax_enable_x64``) before calling a spec's factory
and casts every params leaf to float64 (float32 params, e.g. created before x64 was on,
become a float64 w0 holding the same values); a model whose output is still float32 (it casts
internally) is refused.

Weights: the params pytree flattened by ``jax.flatten_util.ravel_pytree`` (leaves in pytree
order, each row-major), so ``w0`` is the params the factory returned. ``f``, JVP and VJP come
from ``jax.jvp`` / ``jax.vjp`` (jitted); rows of J are per-sample gradients
(``jax.vmap(jax.grad(...))`` over the rows of X, jitted) when the model treats rows
independently (checked once on two rows), else VJPs of the basis vectors; kernels are built
from blocks of rows by :func:`lazycheck.models.rows.gram`.

Smoothness: the jaxpr of one forward pass is searched (through nested calls, custom_jvp and
control flow) for primitives whose derivative jumps (``max``, ``min``, ``abs``, ``sign``,
comparisons and ``select_n``, rounding, ``argmax``...). One found makes the model non-smooth
(beta = inf), the report naming it; none found makes it smooth. A declared ``smooth`` (spec or
argument) overrides the search, and the report says it was declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Model
from lazycheck.models.rows import RowLinearization, check_output

__all__ = ["NONSMOOTH_PRIMITIVES", "JaxModel", "nonsmooth_primitives"]

Array = np.ndarray

#: primitives whose derivative is discontinuous (or zero almost everywhere and jumping)
NONSMOOTH_PRIMITIVES = frozenset(
    {
        "max", "min", "abs", "sign", "floor", "ceil", "round", "rem", "clamp",
        "select_n", "gt", "ge", "lt", "le", "eq", "ne", "argmax", "argmin",
        "reduce_max", "reduce_min", "reduce_precision", "sort", "top_k", "cumlogsumexp",
        "cummax", "cummin", "is_finite",
    }
)  # fmt: skip


class JaxModel(Model):
    """A JAX model ``apply(params, X) -> (n,)`` (or ``(n, 1)``) with its params pytree.

    ``smooth``: declared smoothness (None: detected from the jaxpr at the first use on data).
    ``beta_bound``: optional ``(X, w0, radius) -> float``, a certified bound on beta(radius).
    """

    def __init__(
        self,
        apply: Callable[..., Any],
        params: Any,
        *,
        smooth: bool | None = None,
        beta_bound: Callable[[Array, Array, float], float | None] | None = None,
        who: str = "JAX model",
    ) -> None:
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        jax.config.update("jax_enable_x64", True)
        self.who = who
        self.apply = apply
        leaves = jax.tree_util.tree_leaves(params)
        for leaf in leaves:
            dtype = np.asarray(leaf).dtype
            if not np.issubdtype(dtype, np.floating):
                raise LazycheckError(
                    f"{who}: params hold a leaf of dtype {dtype}; every leaf must be a "
                    "floating-point array (keep static settings out of params)"
                )
        params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float64), params)
        flat, self.unravel = ravel_pytree(params64)
        self._w0 = np.asarray(flat, dtype=np.float64)
        self.n_params = int(self._w0.size)
        self.smooth = smooth  # type: ignore[assignment]
        self.smooth_reason = (
            "" if smooth is None else f"smoothness declared (smooth = {str(smooth).lower()})"
        )
        self._beta_bound = beta_bound
        self.per_sample: bool | None = None
        self._fns = _compile(apply, self.unravel, who)

    def init(self, rng: np.random.Generator) -> Array:
        """The params the model was given, flattened (the factory drew them from its rng)."""
        return self._w0.copy()

    def settle_smoothness(self, X: Array) -> None:
        """Detect smoothness from the jaxpr on X (unless declared); check row independence."""
        import jax

        Xj = jax.numpy.asarray(np.asarray(X, dtype=np.float64)[:2])
        if self.per_sample is None:
            self.per_sample = self._rows_independent(Xj)
        if self.smooth is not None:
            return
        jaxpr = jax.make_jaxpr(self._fns["f"])(self._w0, Xj)
        found = nonsmooth_primitives(jaxpr.jaxpr)
        self.smooth = not found
        self.smooth_reason = (
            f"not smooth: the jaxpr holds {', '.join(sorted(found))} (declare smooth = true "
            "if they do not make the derivative jump)"
            if found
            else "smooth: no non-smooth primitive in the jaxpr"
        )

    def linearize(self, w: Array, X: Array) -> _JaxLinearization:
        if self.per_sample is None:
            self.settle_smoothness(X)
        return _JaxLinearization(self, w, X)

    def forward(self, w: Array, X: Array) -> Array:
        out = self._fns["f"](np.asarray(w, dtype=np.float64), X)
        return check_output(out, X.shape[0], self.who)

    def describe(self) -> str:
        name = getattr(self.apply, "__name__", "apply")
        return f"JAX model {name}, p = {self.n_params}"

    def beta_bound(self, X: Array, w0: Array, radius: float) -> float | None:
        return None if self._beta_bound is None else self._beta_bound(X, w0, radius)

    def _rows_independent(self, X2: Any) -> bool:
        if X2.shape[0] < 2:
            return True
        f = self._fns["f"]
        both = np.asarray(f(self._w0, X2)).reshape(-1)
        one = np.asarray(f(self._w0, X2[:1])).reshape(-1)
        return bool(np.allclose(both[:1], one, rtol=1e-12, atol=1e-300))


class _JaxLinearization(RowLinearization):
    def __init__(self, model: JaxModel, w: Array, X: Array) -> None:
        self.model = model
        self.fns = model._fns
        self.w = np.asarray(w, dtype=np.float64)
        self.X = X
        self.n_params = model.n_params
        self.f = check_output(self.fns["f"](self.w, X), X.shape[0], model.who)

    def jvp(self, v: Array) -> Array:
        out = self.fns["jvp"](self.w, self.X, np.asarray(v, dtype=np.float64))
        return np.asarray(out, dtype=np.float64).reshape(self.n)

    def vjp(self, r: Array) -> Array:
        return np.asarray(self.fns["vjp"](self.w, self.X, np.asarray(r, dtype=np.float64)))

    def rows(self, lo: int, hi: int) -> Array:
        if self.model.per_sample:
            return np.asarray(self.fns["rows"](self.w, self.X[lo:hi]))
        E = np.zeros((hi - lo, self.n))
        E[np.arange(hi - lo), np.arange(lo, hi)] = 1.0
        return np.asarray(self.fns["vjp_rows"](self.w, self.X, E))


def nonsmooth_primitives(jaxpr: Any) -> set[str]:
    """Names of non-smooth primitives anywhere in a jaxpr (nested jaxprs included)."""
    found: set[str] = set()
    stack = [jaxpr]
    while stack:
        jx = stack.pop()
        for eqn in jx.eqns:
            if eqn.primitive.name in NONSMOOTH_PRIMITIVES:
                found.add(eqn.primitive.name)
            for value in eqn.params.values():
                stack.extend(_subjaxprs(value))
    return found


def _subjaxprs(value: Any) -> list[Any]:
    if hasattr(value, "eqns"):
        return [value]
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        return [value.jaxpr]
    if isinstance(value, tuple | list):
        return [j for v in value for j in _subjaxprs(v)]
    return []


def _compile(apply: Callable[..., Any], unravel: Callable[[Any], Any], who: str) -> dict[str, Any]:
    """The jitted functions of a model: f, jvp, vjp, per-sample rows, rows by VJPs."""
    import jax

    def f(w: Any, X: Any) -> Any:
        out = apply(unravel(w), X)
        n = X.shape[0]
        shape, dtype = tuple(getattr(out, "shape", ())), getattr(out, "dtype", None)
        check_output(np.zeros(shape, dtype=dtype), n, who, "apply(params, X)")
        return out.reshape(n)

    def single(w: Any, x: Any) -> Any:
        return f(w, x[None])[0]

    def jvp(w: Any, X: Any, v: Any) -> Any:
        return jax.jvp(lambda u: f(u, X), (w,), (v,))[1]

    def vjp(w: Any, X: Any, r: Any) -> Any:
        return jax.vjp(lambda u: f(u, X), w)[1](r)[0]

    def vjp_rows(w: Any, X: Any, E: Any) -> Any:
        _, pull = jax.vjp(lambda u: f(u, X), w)
        return jax.vmap(lambda e: pull(e)[0])(E)

    return {
        "f": jax.jit(f),
        "jvp": jax.jit(jvp),
        "vjp": jax.jit(vjp),
        "rows": jax.jit(jax.vmap(jax.grad(single), in_axes=(None, 0))),
        "vjp_rows": jax.jit(vjp_rows),
    }
