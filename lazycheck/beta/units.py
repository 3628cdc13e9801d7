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
rests on the same split). :meth:`UnitSplit.best_part` finds that unit: the (k + 1) x (k + 1)
Gram matrices D_j^T D_j of all units (one pass over n x width, by blocks of units), an upper
bound on each one's top eigenvalue, and the exact eigenvalue for the units whose bound is
above the best found, in decreasing order of the bounds. The sampled search
(:mod:`lazycheck.beta.sampled`) records that part as a point of its own, its ratio computed as
every other point's, so the value recorded is attained as before. Measured on
``samples/iris.toml``: the search's best point lies 99.88% (of its squared norm) in one unit,
whose part has the same ratio, 3.5405; another unit's part, 0.11% of the norm, has 3.7699.
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
        self._gg = (G[:, :, None] * G[:, None, :]).reshape(G.shape[0], k * k)  # rows g_i g_i^T
        self.index = np.hstack(index)  # (m, k + 1): unit j's positions in w

    @classmethod
    def of(cls, model: Model, X: Array, w0: Array) -> UnitSplit | None:
        """The split for a smooth MLP with one hidden layer, plain or centered; None for
        any other model (deeper, a symmetric pair, a Python model, a non-smooth activation)."""
        base = model.base if isinstance(model, CenteredModel) else model
        if not isinstance(base, MLP) or base.depth != 1 or not base.smooth:
            return None
        return cls(base, X, w0)

    def best_part(self, d: Array, floor: float) -> tuple[Array, float] | None:
        """d's part in the unit whose ratio ||D_j(d_j)|| / ||d_j|| is largest, with that ratio,
        when it exceeds ``floor``; None otherwise (parts below :data:`_MIN_PART` of d are left
        out). Every unit's Gram matrix is formed (one product
        with the rows g_i g_i^T) and its top eigenvalue bounded from above; the exact ratios
        are computed in decreasing order of the bounds, :data:`_EXACT_BATCH` at a time, until
        no bound left exceeds the best ratio found (branch and bound: the maximum)."""
        parts = d[self.index]  # (m, k + 1)
        norms = np.sqrt(np.einsum("jk,jk->j", parts, parts))
        norms[norms < _MIN_PART * float(np.linalg.norm(d))] = 0.0  # left out: see _MIN_PART
        upper = np.zeros(norms.shape)
        for s, e in _unit_blocks(self.G.shape[0], norms.shape[0]):
            M = self._grams(parts, np.arange(s, e))
            # lambda_max(M) <= ||M^2||_F^(1/2) = (sum lambda^4)^(1/4): tight where one
            # eigenvalue dominates, as it does for most units
            M2 = M @ M
            top = np.sqrt(np.sqrt(np.einsum("jab,jab->j", M2, M2)))
            with np.errstate(divide="ignore", invalid="ignore"):
                upper[s:e] = np.where(norms[s:e] > 0, np.sqrt(top) / norms[s:e], 0.0)
        # exact ratios in decreasing order of the bound, until no bound left reaches the best
        order = np.argsort(-upper, kind="stable")
        best, j_best = floor, -1
        for s in range(0, order.size, _EXACT_BATCH):
            units = order[s : s + _EXACT_BATCH]
            units = units[upper[units] > best]
            if units.size == 0:
                break
            top = np.linalg.eigvalsh(self._grams(parts, units))[:, -1]
            ratios = np.sqrt(np.maximum(top, 0.0)) / norms[units]
            i = int(np.argmax(ratios))
            if ratios[i] > best:
                best, j_best = float(ratios[i]), int(units[i])
        if j_best < 0:
            return None
        out = np.zeros_like(d)
        out[self.index[j_best]] = parts[j_best]
        return out, best

    def _columns(self, parts: Array, units: Array) -> tuple[Array, Array]:
        """A = c2 (phi(z') - phi(z)) and B = c2 ((v + dv) phi'(z') - v phi'(z)), n x units."""
        k = self.G.shape[1]
        theta, dtheta = self.theta[units], parts[units, :k]
        z = self.G @ theta.T
        z_new = self.G @ (theta + dtheta).T
        phi, d1 = self.act.fn_d1(z)
        phi_new, d1_new = self.act.fn_d1(z_new)
        v = self.v[units]
        A = self.c2 * (phi_new - phi)
        B = self.c2 * ((v + parts[units, k]) * d1_new - v * d1)
        return A, B

    def _grams(self, parts: Array, units: Array) -> Array:
        """D_j^T D_j for the ``units``, (units, k + 1, k + 1)."""
        k = self.G.shape[1]
        A, B = self._columns(parts, units)
        M = np.empty((units.size, k + 1, k + 1))
        M[:, :k, :k] = ((B * B).T @ self._gg).reshape(units.size, k, k)
        M[:, :k, k] = (A * B).T @ self.G
        M[:, k, :k] = M[:, :k, k]
        M[:, k, k] = np.einsum("ij,ij->j", A, A)
        return M


#: a unit's part smaller than this fraction of the move is left out: its ratio would rest on
#: differences phi(z') - phi(z) near their rounding (a part of 1e-12 of a move of 0.1 changes
#: z by ~1e-13, and the difference keeps a few digits), which can make it look large
_MIN_PART = 1e-3
#: units whose exact ratio is computed at a time, in decreasing order of their bound
_EXACT_BATCH = 32
#: units are taken in blocks of about this many n x unit elements (a few MB of temporaries)
_BLOCK_ELEMENTS = 1 << 18


def _unit_blocks(n: int, m: int) -> list[tuple[int, int]]:
    size = max(1, _BLOCK_ELEMENTS // max(n, 1))
    return [(s, min(s + size, m)) for s in range(0, m, size)]
