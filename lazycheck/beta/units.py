"""One hidden layer, unit by unit: a move's part in each hidden unit, and the best of them.

With one hidden layer, f(x, w) = c2 sum_j v_j phi(z_j(x)) (+ c_b2 b2) with z_j(x) = g(x) . theta_j
and g(x) = (c1 x, c_b1): unit j's parameters (theta_j: input weights and bias; v_j: output
weight) enter only its own k + 1 columns of J (k = d, or d + 1 with biases). For any move d,

    J_{w0+d} - J_0 = [D_1(d_1), ..., D_m(d_m), 0],
    row i of D_j = c2 [((v_j + dv_j) phi'(z'_ij) - v_j phi'(z_ij)) g_i,  phi(z'_ij) - phi(z_ij)],

with z'_ij = z_ij + g_i . dtheta_j, and ||J_{w0+d} - J_0||^2 <= sum_j ||D_j||^2 together with
||d||^2 >= sum_j ||d_j||^2 give

    ||J_{w0+d} - J_0|| / ||d|| <= max_j ||D_j(d_j)|| / ||d_j||:

some unit's part of d does at least as well as d itself (the certified neuron-by-neuron bound
rests on the same split). So the sup of the ratio over a ball is the best unit's sup over moves
of that unit alone, which :mod:`lazycheck.beta.unit_search` searches. :class:`UnitSplit` holds
what that takes at w0: the rows g_i, each unit's theta_j and v_j and its positions in w, and
the Gram matrices of n x (k + 1) matrices with rows [s_ij g_i, l_ij] (D_j(d_j) and dD_j[h] are
such), several units at once.
"""

from __future__ import annotations

import numpy as np

from lazycheck.models.base import Model
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel

__all__ = ["UnitSplit"]

Array = np.ndarray


class UnitSplit:
    """The per-unit structure of a one-hidden-layer MLP at w0 (see the module docstring)."""

    def __init__(self, mlp: MLP, X: Array, w0: Array) -> None:
        (W1, b1), (W2, _b2) = mlp.unpack(w0)
        first, second = mlp.layers
        m, d = W1.shape
        G = first.c_w * np.asarray(X, dtype=np.float64)
        theta = W1
        index = [first.offset + np.arange(m)[:, None] * d + np.arange(d)[None, :]]
        if mlp.bias:
            assert b1 is not None
            G = np.hstack([G, np.full((G.shape[0], 1), first.c_b)])
            theta = np.hstack([W1, b1[:, None]])
            index.append(first.offset + m * d + np.arange(m)[:, None])
        index.append(second.offset + np.arange(m)[:, None])
        self.act = mlp.activation
        self.G, self.theta, self.v, self.c2 = G, theta, W2[0].copy(), second.c_w
        k = G.shape[1]
        self.gg = (G[:, :, None] * G[:, None, :]).reshape(G.shape[0], k * k)  # rows g_i g_i^T
        self.index = np.hstack(index)  # (m, k + 1): unit j's positions in w
        self.p = int(w0.size)

    @classmethod
    def of(cls, model: Model, X: Array, w0: Array) -> UnitSplit | None:
        """The split for a smooth MLP with one hidden layer, plain or centered; None for
        any other model (deeper, a symmetric pair, a Python model, a non-smooth activation)."""
        base = model.base if isinstance(model, CenteredModel) else model
        if not isinstance(base, MLP) or base.depth != 1 or not base.smooth:
            return None
        return cls(base, X, w0)

    def unit_of(self, d: Array) -> int | None:
        """The one unit a move changes (None when it changes none, several, or a parameter of
        no unit: the output bias)."""
        touched = np.flatnonzero(np.any(d[self.index] != 0, axis=1))
        if touched.size != 1:
            return None
        outside = np.ones(d.size, dtype=bool)
        outside[self.index.ravel()] = False
        return None if np.any(d[outside]) else int(touched[0])

    def embed(self, unit: int, part: Array) -> Array:
        """The move of the whole network's parameters that changes ``unit`` by ``part``
        (input weights, bias, output weight) and nothing else."""
        out = np.zeros(self.p)
        out[self.index[unit]] = part
        return out

    def row_grams(self, scale: Array, last: Array) -> Array:
        """The Gram matrices of the n x (k + 1) matrices with rows [scale_ij g_i, last_ij], one
        per column j of ``scale`` and ``last`` (n x columns): D_j(d_j) has them with scale B and
        last A, dD_j[h] with the Hessian rows' alpha and beta."""
        k, u = self.G.shape[1], scale.shape[1]
        M = np.empty((u, k + 1, k + 1))
        M[:, :k, :k] = ((scale * scale).T @ self.gg).reshape(u, k, k)
        M[:, :k, k] = (scale * last).T @ self.G
        M[:, k, :k] = M[:, :k, k]
        M[:, k, k] = np.einsum("ij,ij->j", last, last)
        return M


#: units are taken in blocks of about this many n x unit elements (a few MB of temporaries)
_BLOCK_ELEMENTS = 1 << 18


def unit_blocks(n: int, m: int) -> list[tuple[int, int]]:
    """Blocks [s, e) of the m units, about :data:`_BLOCK_ELEMENTS` n x unit elements each."""
    size = max(1, _BLOCK_ELEMENTS // max(n, 1))
    return [(s, min(s + size, m)) for s in range(0, m, size)]
