"""Exact Hessian-vector products of the built-in MLP: sum_i a_i H_i(w) v without differencing.

H_i is the Hessian of f(x_i, .) at w; sum_i a_i H_i v is the derivative of J_w^T a along v.
It is computed by forward-over-reverse differentiation of the backward pass that gives
J_w^T a (the notation of :mod:`lazycheck.models.mlp`: layer i maps its input A_i (n x fan_in)
to z_i = c_i A_i W_i^T + cb_i b_i, hidden layers apply phi, the last is linear):

* forward tangent: zdot_i = c_i (Adot_i W_i^T + A_i V_i^T) + cb_i vb_i, and
  Adot_(i+1) = phi'(z_i) o zdot_i (Adot_0 = 0: the data do not move);
* backward, with delta_out = a (one column) and deltadot_out = 0 (f is linear in the output
  layer's z): P_i = c_(i+1) delta_(i+1) W_(i+1), delta_i = phi'(z_i) o P_i, and
  deltadot_i = phi''(z_i) o zdot_i o P_i + phi'(z_i) o c_(i+1) (deltadot_(i+1) W_(i+1) +
  delta_(i+1) V_(i+1));
* the gradient's tangent per layer: c_i (deltadot_i^T A_i + delta_i^T Adot_i) for W_i and
  cb_i deltadot_i^T 1 for b_i.

phi'(z) and phi''(z) are computed once per linearization. With one hidden layer the output
layer's deltas are rank one (a w_1^T), which :func:`_one_hidden_layer` uses: two elementwise
passes over n x width and three products, against about twelve passes for the general
recursion (which costs about what the central differences it replaces cost). Measured on the
scaling benchmark's network (width 2000, d = 10, one BLAS thread, best of 5 interleaved, the
machine loaded) against central differences of the VJP (two forward/backward passes and two
VJPs): n = 100, 7.4 ms against 22.7 ms; n = 400, 25 ms against 70 ms; n = 1600, 92 ms against
313 ms. Tested against Richardson-extrapolated central differences, a dense Hessian and its
symmetry (tests/test_models_mlp_second.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lazycheck.models.mlp import _MLPLinearization

__all__ = ["mlp_hvp"]

Array = np.ndarray


def mlp_hvp(lin: _MLPLinearization, a: Array, v: Array) -> Array:
    """sum_i a_i H_i(w) v for the MLP linearized in ``lin`` (a: (n,), v: (p,)); shape (p,)."""
    model = lin.model
    a = np.asarray(a, dtype=np.float64)
    V = model.unpack(np.asarray(v, dtype=np.float64))
    d1, d2 = lin.second_order()
    if model.depth == 1:
        return _one_hidden_layer(lin, a, V, d1[0], d2[0])
    return _recursion(lin, a, V, d1, d2)


# ----------------------------------------------------------------------------- helpers


def _recursion(
    lin: _MLPLinearization,
    a: Array,
    V: list[tuple[Array, Array | None]],
    d1: list[Array],
    d2: list[Array],
) -> Array:
    """The forward-over-reverse recursion of the module docstring, any depth."""
    model = lin.model
    zdots, adots = _forward_tangent(lin, V, d1)
    depth = model.depth
    delta = a[:, None]  # n x 1: the output layer's delta
    ddot: Array | None = None  # its tangent: zero
    parts: list[Array] = []
    for i in range(depth, -1, -1):
        layer, A = model.layers[i], lin.inputs[i]
        if i < depth:  # a hidden layer: its deltas from the layer above
            W_up, V_up = lin.params[i + 1][0], V[i + 1][0]
            c_up = model.layers[i + 1].c_w
            P = c_up * (delta @ W_up)
            Pdot = c_up * (delta @ V_up)
            if ddot is not None:
                Pdot += c_up * (ddot @ W_up)
            new_delta = d1[i] * P
            P *= d2[i]
            P *= zdots[i]
            Pdot *= d1[i]
            P += Pdot
            delta, ddot = new_delta, P
        G = np.zeros((layer.fan_out, layer.fan_in))
        if ddot is not None:
            G += ddot.T @ A
        if adots[i] is not None:
            G += delta.T @ adots[i]
        G *= layer.c_w
        gb = None
        if layer.bias:
            gb = layer.c_b * (ddot.sum(axis=0) if ddot is not None else np.zeros(layer.fan_out))
        parts.append(G.ravel() if gb is None else np.concatenate([G.ravel(), gb]))
    parts.reverse()
    return np.concatenate(parts)


def _one_hidden_layer(
    lin: _MLPLinearization, a: Array, V: list[tuple[Array, Array | None]], d1: Array, d2: Array
) -> Array:
    """The same product for one hidden layer, with the rank-one structure of the output
    layer's deltas used: P = c_1 a w_1^T and Pdot = c_1 a v_1^T are never formed, so
    deltadot^T [X, 1] = c_1 (diag(w_1) (phi'' o zdot)^T + diag(v_1) phi'^T) [a o X, a]:
    two elementwise passes over n x width and three products that read one n x width array
    each (the general recursion makes about twelve passes). Every hidden unit's part is its
    own, so at a large n x width the units are taken in blocks (:func:`_unit_blocks`): no
    temporary the size of the layer is mapped afresh."""
    model = lin.model
    l0, l1 = model.layers
    (W1, _b1), (V0, vb0), (V1, _vb1) = lin.params[1], V[0], V[1]
    X = lin.inputs[0]
    aX = X * a[:, None]
    if l0.bias:
        aX = np.hstack([aX, l0.c_b / l0.c_w * a[:, None]])  # the bias column, scaled as c_w
    width = V0.shape[0]
    G = np.empty((width, aX.shape[1]))
    out_w = np.empty(width)
    for s, e in _unit_blocks(X.shape[0], width):
        zdot = X @ V0[s:e].T
        zdot *= l0.c_w
        if vb0 is not None:
            zdot += l0.c_b * vb0[s:e]
        adot = d1[:, s:e] * zdot  # the hidden layer's output tangent
        out_w[s:e] = l1.c_w * (a @ adot)  # the output layer's weights: delta^T adot, delta = a
        zdot *= d2[:, s:e]  # phi'' o zdot, in place
        G[s:e] = (l0.c_w * l1.c_w) * (
            W1[0][s:e, None] * (zdot.T @ aX) + V1[0][s:e, None] * (d1[:, s:e].T @ aX)
        )
    parts = [G[:, : X.shape[1]].ravel()]
    if l0.bias:
        parts.append(G[:, X.shape[1]])
    parts.append(out_w)
    if l1.bias:
        parts.append(np.zeros(1))  # f is linear in the output bias
    return np.concatenate(parts)


#: the units are taken in blocks when an n x width array has more elements than this
#: (32 MB: above it glibc maps every new array afresh, and each page costs a fault); below, in
#: one piece. Measured (one thread, best of 7): n = 50, width 1e5, 68.5 -> 42 ms a product;
#: n = 6400, width 2000, 7-10% faster; blocked at n = 100 to 1600 (width 2000), 2-10% slower
_BLOCK_MIN_ELEMENTS = 1 << 22
#: elements of an n x block temporary when blocked (4 MB; 1 MB and 8 MB measured slower)
_BLOCK_ELEMENTS = 1 << 19


def _unit_blocks(n: int, width: int) -> list[tuple[int, int]]:
    """[start, end) ranges over the hidden units: one piece up to
    :data:`_BLOCK_MIN_ELEMENTS` elements of n x width, else about :data:`_BLOCK_ELEMENTS` / n
    units a block (at least 64: narrower blocks cost more in calls than they save)."""
    if n * width <= _BLOCK_MIN_ELEMENTS:
        return [(0, width)]
    size = max(64, _BLOCK_ELEMENTS // max(n, 1))
    return [(s, min(s + size, width)) for s in range(0, width, size)]


def _forward_tangent(
    lin: _MLPLinearization, V: list[tuple[Array, Array | None]], d1: list[Array]
) -> tuple[list[Array], list[Array | None]]:
    """zdot_i for the hidden layers and Adot_i (the tangent of each layer's input; None for
    the data)."""
    model = lin.model
    zdots: list[Array] = []
    adots: list[Array | None] = [None]
    for i in range(model.depth):
        layer, A, (W, _b), (Vw, vb) = model.layers[i], lin.inputs[i], lin.params[i], V[i]
        zdot = A @ Vw.T
        adot = adots[i]
        if adot is not None:
            zdot += adot @ W.T
        zdot *= layer.c_w
        if vb is not None:
            zdot += layer.c_b * vb
        zdots.append(zdot)
        adots.append(d1[i] * zdot)
    return zdots, adots
