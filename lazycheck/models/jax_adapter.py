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
        self.leaves, self.treedef = jax.tree_util.tree_flatten(params64)
        self._w0 = np.asarray(flat, dtype=np.float64)
        self.n_params = int(self._w0.size)
        self.smooth = smooth  # type: ignore[assignment]
        self.smooth_reason = (
            "" if smooth is None else f"smoothness declared (smooth = {str(smooth).lower()})"
        )
        self._beta_bound = beta_bound
        self.per_sample: bool | None = None
        self._fns = _compile(apply, self.unravel, who)
        self._dense: dict[tuple[int, ...], Any] = {}

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

    def dense(self, X: Any) -> Any:
        """For inputs of X's shape: (plan, factors function, rest-rows function), or None when
        no leaf has a layerwise block (see :mod:`lazycheck.models.jax_dense`)."""
        key = tuple(X.shape)
        if key not in self._dense:
            self._dense[key] = _dense_functions(self, X) if self.per_sample else None
        return self._dense[key]

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
        self._fac: list[tuple[Array | None, Array]] | None = None

    def jvp(self, v: Array) -> Array:
        out = self.fns["jvp"](self.w, self.X, np.asarray(v, dtype=np.float64))
        return np.asarray(out, dtype=np.float64).reshape(self.n)

    def vjp(self, r: Array) -> Array:
        return np.asarray(self.fns["vjp"](self.w, self.X, np.asarray(r, dtype=np.float64)))

    def kernel(self) -> Array:
        return self._layerwise(self) if self.model.dense(self.X) else super().kernel()

    def cross_kernel(self, other: Any) -> Array:
        if isinstance(other, _JaxLinearization) and self.model.dense(self.X):
            return self._layerwise(other)
        return super().cross_kernel(other)

    def difference_kernel(self, other: Any) -> Array:
        if isinstance(other, _JaxLinearization) and self.model.dense(self.X):
            return self._layerwise(other, difference=True)
        return super().difference_kernel(other)

    def _factors(self) -> list[tuple[Array | None, Array]]:
        if self._fac is None:
            _, factors, _ = self.model.dense(self.X)
            self._fac = [
                (None if A is None else np.asarray(A), np.asarray(D))
                for A, D in factors(self.w, self.X)
            ]
        return self._fac

    def _layerwise(self, other: _JaxLinearization, difference: bool = False) -> Array:
        from lazycheck.models.rows import gram
        from lazycheck.models.torch_adapter import _linear_gram

        plan, _, rest = self.model.dense(self.X)
        K = np.zeros((self.n, other.n))
        for p, (A, D), (A2, D2) in zip(plan, self._factors(), other._factors(), strict=True):
            if A is None:  # a bias: D D'^T
                dD = D - D2
                K += p.scale**2 * (dD @ dD.T if difference else D @ D2.T)
            else:
                K += p.scale**2 * _linear_gram(A, D, A2, D2, False, difference)
        if rest is not None:
            mine = lambda lo, hi: np.asarray(rest(self.w, self.X[lo:hi]))  # noqa: E731
            theirs = lambda lo, hi: np.asarray(rest(other.w, other.X[lo:hi]))  # noqa: E731
            if difference:
                K += gram(lambda lo, hi: mine(lo, hi) - theirs(lo, hi), self.n, self.n_params)
            else:
                K += gram(mine, self.n, self.n_params, theirs, other.n)
        return K

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


def _dense_functions(model: JaxModel, X: Any) -> Any:
    """Plan, factors (w, X) -> [(A, D)] and rest rows (w, Xb) -> rows of the other leaves."""
    import jax
    import jax.numpy as jnp

    from lazycheck.models.jax_dense import find_dense, make_factors

    treedef, unravel = model.treedef, model.unravel
    apply = getattr(model.apply, "__wrapped__", model.apply)  # see through jax.jit

    def g(leaves: list[Any], X: Any) -> Any:
        return apply(jax.tree_util.tree_unflatten(treedef, leaves), X)

    closed = jax.make_jaxpr(g)(model.leaves, jnp.asarray(np.asarray(X, dtype=np.float64)))
    plan = find_dense(closed.jaxpr, len(model.leaves), int(X.shape[0]))
    if not plan:
        return None
    factors = make_factors(closed.jaxpr, list(closed.consts), plan)
    dense = {p.leaf for p in plan}
    rest_idx = [i for i in range(len(model.leaves)) if i not in dense]

    def leaves_of(w: Any) -> list[Any]:
        return jax.tree_util.tree_leaves(unravel(w))

    def fac(w: Any, X: Any) -> Any:
        return factors(leaves_of(w), X)

    def rest_rows(w: Any, Xb: Any) -> Any:
        leaves = leaves_of(w)

        def single(rest: list[Any], x: Any) -> Any:
            full = list(leaves)
            for i, leaf in zip(rest_idx, rest, strict=True):
                full[i] = leaf
            return g(full, x[None]).reshape(())

        def row(x: Any) -> Any:
            grads = jax.grad(single)([leaves[i] for i in rest_idx], x)
            return jnp.concatenate([gr.reshape(-1) for gr in grads])

        return jax.vmap(row)(Xb)

    return plan, jax.jit(fac), (jax.jit(rest_rows) if rest_idx else None)
