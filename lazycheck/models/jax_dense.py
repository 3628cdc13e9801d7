"""Layerwise kernel blocks for the dense layers of a JAX model, found in its jaxpr.

A params leaf W that reaches one ``dot_general`` with a (batch, features) activation A, only
through reshapes, transposes and multiplications or divisions by constant scalars c, has the
per-sample Jacobian ``c * (A_i (x) D_i)`` up to a permutation of entries, with D_i the gradient
of f_i at the dot's output. Its block of J_w J_v^T is therefore ``c^2 (D D'^T) o (A A'^T)``,
O(n^2 width) instead of O(n^2 p) (neural-tangents calls this "structured derivatives"). A leaf
that reaches an ``add`` as a bias broadcast over the batch gives ``c^2 D D'^T``. D comes from
one reverse pass through a copy of the jaxpr with zero probes added at those outputs (rows of
X are independent, so the gradient of sum_i f_i is per sample). Every other leaf goes through
per-sample gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DenseLeaf", "find_dense", "make_factors"]

_RELABEL = {
    "transpose", "reshape", "squeeze", "expand_dims", "convert_element_type", "copy", "copy_p",
}  # fmt: skip


@dataclass(frozen=True)
class DenseLeaf:
    """Leaf ``leaf`` reaches equation ``eqn`` (operand ``act`` is the activation, or -1 for a
    bias add); ``scale`` is c; ``transpose_out``: the output is (out, batch)."""

    leaf: int
    eqn: int
    act: int
    scale: float
    transpose_out: bool = False


def find_dense(jaxpr: Any, n_leaves: int, n: int) -> list[DenseLeaf]:
    """The leaves of a jaxpr (invars ``[*leaves, X]``) with a layerwise kernel block."""
    from jax.extend.core import Literal

    uses: dict[Any, list[int]] = {}
    for k, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not isinstance(v, Literal):
                uses.setdefault(v, []).append(k)
    outs = {v for v in jaxpr.outvars if not isinstance(v, Literal)}
    found = []
    for i, var in enumerate(jaxpr.invars[:n_leaves]):
        hit = _follow(jaxpr, uses, outs, var, n, Literal)
        if hit is not None:
            k, act, scale, tr = hit
            found.append(DenseLeaf(i, k, act, scale, tr))
    return found


def make_factors(jaxpr: Any, consts: list[Any], plan: list[DenseLeaf]) -> Callable[..., Any]:
    """A function (leaves, X) -> [(A, D) per planned leaf] (A is None for a bias)."""
    import jax
    import jax.numpy as jnp

    probes = {p.eqn: j for j, p in enumerate(plan)}

    def run(eps: list[Any], leaves: list[Any], X: Any) -> tuple[Any, list[Any]]:
        out, acts = _interpret(jaxpr, consts, [*leaves, X], probes, eps, plan)
        return jnp.sum(out), acts

    def factors(leaves: list[Any], X: Any) -> list[tuple[Any, Any]]:
        shapes = [jaxpr.eqns[p.eqn].outvars[0].aval.shape for p in plan]
        eps = [jnp.zeros(s, dtype=jnp.float64) for s in shapes]
        grads, acts = jax.grad(run, has_aux=True)(eps, leaves, X)
        result = []
        for p, g, a in zip(plan, grads, acts, strict=True):
            D = g.T if p.transpose_out else g
            D = D.reshape(D.shape[0], -1) if D.ndim > 1 else D[:, None]
            result.append((a, D))
        return result

    return factors


def _follow(
    jaxpr: Any, uses: dict[Any, list[int]], outs: set[Any], var: Any, n: int, Literal: type
) -> tuple[int, int, float, bool] | None:
    scale = 1.0
    while True:
        if var in outs or len(uses.get(var, [])) != 1:
            return None
        k = uses[var][0]
        eqn = jaxpr.eqns[k]
        name = eqn.primitive.name
        if name in _RELABEL or (name == "broadcast_in_dim" and _bias_shape(eqn)):
            var = eqn.outvars[0]
            continue
        if name in ("mul", "div"):
            other = eqn.invars[1] if eqn.invars[0] is var else eqn.invars[0]
            if not isinstance(other, Literal) or np.ndim(other.val) != 0:
                return None
            if name == "div" and eqn.invars[0] is not var:
                return None
            c = float(other.val)
            scale *= c if name == "mul" else 1.0 / c
            var = eqn.outvars[0]
            continue
        if name == "dot_general":
            return _dense_dot(eqn, k, var, n, scale)
        if name == "add":
            other = eqn.invars[1] if eqn.invars[0] is var else eqn.invars[0]
            shp, oshp = tuple(var.aval.shape), tuple(other.aval.shape)
            out = tuple(eqn.outvars[0].aval.shape)
            if len(oshp) == 2 and oshp[0] == n and out == oshp and shp == (1, oshp[1]):
                return k, -1, scale, False
            return None
        return None


def _bias_shape(eqn: Any) -> bool:
    """broadcast_in_dim of a vector (m,) to (1, m)."""
    shp = tuple(eqn.outvars[0].aval.shape)
    return len(shp) == 2 and shp[0] == 1 and tuple(eqn.params["broadcast_dimensions"]) == (1,)


def _dense_dot(
    eqn: Any, k: int, var: Any, n: int, scale: float
) -> tuple[int, int, float, bool] | None:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb or len(lc) != 1:
        return None
    pos = 0 if eqn.invars[0] is var else 1
    if eqn.invars[1 - pos] is var:  # the leaf on both sides
        return None
    act = eqn.invars[1 - pos]
    ashape, pshape = tuple(act.aval.shape), tuple(var.aval.shape)
    a_contract = (lc if pos == 1 else rc)[0]
    if len(ashape) != 2 or ashape[0] != n or a_contract != 1 or len(pshape) not in (1, 2):
        return None
    if pos == 0 and len(pshape) != 2:
        return None
    return k, 1 - pos, scale, pos == 0


def _interpret(
    jaxpr: Any,
    consts: list[Any],
    args: list[Any],
    probes: dict[int, int],
    eps: list[Any],
    plan: list[DenseLeaf],
) -> tuple[Any, list[Any]]:
    from jax.extend.core import Literal

    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts, strict=True):
        env[v] = val
    for v, val in zip(jaxpr.invars, args, strict=True):
        env[v] = val
    acts: list[Any] = [None] * len(plan)
    for k, eqn in enumerate(jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        bound = eqn.primitive.get_bind_params(eqn.params)
        subfuns, params = bound if isinstance(bound, tuple) else ([], bound)
        out = eqn.primitive.bind(*subfuns, *invals, **params)
        outs = out if eqn.primitive.multiple_results else [out]
        j = probes.get(k)
        if j is not None:
            p = plan[j]
            acts[j] = invals[p.act] if p.act >= 0 else None
            outs = [outs[0] + eps[j], *outs[1:]]
        for v, val in zip(eqn.outvars, outs, strict=True):
            env[v] = val
    return read(jaxpr.outvars[0]), acts
