"""Fully-connected networks with a scalar output, and their layer-by-layer derivatives.

Architecture, for inputs x in R^d0 and hidden widths d1..dL::

    a^0 = x
    z^l = c_w^l W^l a^(l-1) + c_b b^l        l = 1..L+1   (W^l is d_l x d_(l-1))
    a^l = phi(z^l)                          l = 1..L
    f(x, w) = z^(L+1)                       (d_(L+1) = 1, no output activation)

Parameterizations (``sigma_w``, ``sigma_b`` from the spec; fan_in = d_(l-1)):

* ``ntk``: c_w = sigma_w / sqrt(fan_in), c_b = sigma_b; every W and b entry drawn N(0, 1).
* ``standard``: c_w = c_b = 1; W entries drawn N(0, sigma_w^2 / fan_in), b entries N(0, sigma_b^2).

Weight packing: for l = 1..L+1 in order, W^l flattened row-major (C order), then b^l when
biases are on. So p = sum_l d_l * (d_(l-1) + bias).

Derivatives: with delta^l = df/dz^l (backpropagated, n x d_l) the per-sample Jacobian block of
layer l is c_w delta^l_i (x) a^(l-1)_i (an outer product) plus c_b delta^l_i for the bias, so
the tangent kernel is a sum over layers of elementwise products of two n x n Gram matrices:
K = sum_l (D^l D^lT) o (c_w^2 A^(l-1) A^(l-1)T + c_b^2 11^T).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from lazycheck.models.activations import Activation, get_activation
from lazycheck.models.base import DifferenceProducts, Linearization, Model

__all__ = ["MLP"]

Array = np.ndarray

#: JVPs and VJPs by the formed J up to this many entries of J (n p): one BLAS call where the
#: layered products make a few numpy calls a layer. Measured (tanh, a JVP and a VJP): n p = 80
#: to 11,000, 20-22 us layer by layer against 2-5 us by J, and forming J at a point adds about
#: 40 us; at n p = 44,000 (past 128 KiB, where a new array is mapped afresh) 29 against 15 us,
#: but forming J took 320 us more, over what the ~18 products of an integrator step save.
SMALL_JACOBIAN = 1 << 14
#: from this many rows on, a layer whose fan-in is below its fan-out takes its products' GEMM
#: with the short side leading (:func:`_narrow_jvp`, :func:`_narrow_vjp`): faster from n ~ 200
#: on, slower at n = 50, mixed at n = 100 (width 1000 to 10,000, k = 10, one thread)
SHORT_SIDE_MIN_N = 128


@dataclass(frozen=True)
class _Layer:
    fan_in: int
    fan_out: int
    c_w: float
    c_b: float
    offset: int  # start of this layer's block in w
    bias: bool

    @property
    def size(self) -> int:
        return self.fan_out * (self.fan_in + int(self.bias))


class MLP(Model):
    """A fully-connected network with scalar output (see the module docstring)."""

    def __init__(
        self,
        input_dim: int,
        widths: tuple[int, ...] | list[int],
        activation: str | Activation = "tanh",
        parameterization: str = "ntk",
        bias: bool = False,
        sigma_w: float = 1.0,
        sigma_b: float = 1.0,
    ) -> None:
        self.input_dim = int(input_dim)
        self.widths = tuple(int(m) for m in widths)
        self.activation = (
            activation if isinstance(activation, Activation) else get_activation(activation)
        )
        if parameterization not in ("ntk", "standard"):
            raise ValueError(f"unknown parameterization {parameterization!r}")
        self.parameterization = parameterization
        self.bias = bool(bias)
        self.sigma_w = float(sigma_w)
        self.sigma_b = float(sigma_b)
        dims = (self.input_dim, *self.widths, 1)
        layers = []
        offset = 0
        for fan_in, fan_out in itertools.pairwise(dims):
            if parameterization == "ntk":
                c_w, c_b = self.sigma_w / math.sqrt(fan_in), self.sigma_b
            else:
                c_w, c_b = 1.0, 1.0
            layer = _Layer(fan_in, fan_out, c_w, c_b, offset, self.bias)
            layers.append(layer)
            offset += layer.size
        self.layers: tuple[_Layer, ...] = tuple(layers)
        self.n_params = offset
        self.smooth = self.activation.smooth
        self.depth = len(self.widths)

    def init(self, rng: np.random.Generator) -> Array:
        """Draw w0: N(0, 1) entries (ntk); N(0, sigma_w^2/fan_in), N(0, sigma_b^2) (standard)."""
        parts = []
        for layer in self.layers:
            if self.parameterization == "ntk":
                sw, sb = 1.0, 1.0
            else:
                sw, sb = self.sigma_w / math.sqrt(layer.fan_in), self.sigma_b
            parts.append(sw * rng.standard_normal(layer.fan_out * layer.fan_in))
            if self.bias:
                parts.append(sb * rng.standard_normal(layer.fan_out))
        return np.concatenate(parts)

    def unpack(self, w: Array) -> list[tuple[Array, Array | None]]:
        """Split the flat w into per-layer (W, b) views (b is None without biases)."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_params,):
            raise ValueError(f"expected weights of shape ({self.n_params},), got {w.shape}")
        out = []
        for layer in self.layers:
            nW = layer.fan_out * layer.fan_in
            W = w[layer.offset : layer.offset + nW].reshape(layer.fan_out, layer.fan_in)
            b = w[layer.offset + nW : layer.offset + layer.size] if self.bias else None
            out.append((W, b))
        return out

    def linearize(self, w: Array, X: Array) -> _MLPLinearization:
        params = self.unpack(w)
        X = np.asarray(X, dtype=np.float64)
        phi = self.activation
        inputs: list[Array] = []  # a^(l-1), n x fan_in
        slopes: list[Array] = []  # phi'(z^l) for hidden layers
        a = X
        for i, (layer, (W, b)) in enumerate(zip(self.layers, params, strict=True)):
            inputs.append(a)
            z = a @ W.T  # scaled in place: no second n x width temporary
            z *= layer.c_w
            if b is not None:
                z += layer.c_b * b
            if i < self.depth:
                a, slope = phi.fn_d1(z, out=z)  # one pass; phi(z) overwrites z
                slopes.append(slope)
            else:
                f = z[:, 0].copy()
        deltas = self._backward(params, slopes, X.shape[0])
        return _MLPLinearization(self, f, inputs, deltas, params)

    def _backward(
        self, params: list[tuple[Array, Array | None]], slopes: list[Array], n: int
    ) -> list[Array]:
        """delta^(L+1) = 1; delta^l = phi'(z^l) * (c_w^(l+1) delta^(l+1) W^(l+1)), each in
        the buffer of phi'(z^l) where that takes no GEMM (the last hidden layer: delta^(L+1)
        W^(L+1) is the row W^(L+1) repeated, the same products in the same order)."""
        deltas: list[Array] = [np.ones((n, 1))]
        for i in range(self.depth - 1, -1, -1):
            W_next = params[i + 1][0]
            c_w = self.layers[i + 1].c_w
            if i == self.depth - 1:  # delta^(L+1) = 1: a broadcast, no GEMM
                delta = np.multiply(slopes[i], W_next[0] * c_w, out=slopes[i])
            else:
                delta = deltas[-1] @ W_next
                delta *= c_w
                delta *= slopes[i]
            slopes[i] = delta  # phi'(z^l) is no longer needed: drop it
            deltas.append(delta)
        deltas.reverse()
        return deltas

    def describe(self) -> str:
        arch = " x ".join(str(m) for m in self.widths) or "no hidden layer"
        bias = ", biases" if self.bias else ""
        return (
            f"{self.activation.name} MLP, input {self.input_dim}, hidden {arch}, "
            f"{self.parameterization} parameterization{bias}, p = {self.n_params}"
        )


class _MLPLinearization(Linearization):
    def __init__(
        self,
        model: MLP,
        f: Array,
        inputs: list[Array],
        deltas: list[Array],
        params: list[tuple[Array, Array | None]],
    ) -> None:
        self.model = model
        self.f = f
        self.inputs = inputs
        self.deltas = deltas
        self.params = params  # the weights' views, layer by layer (for hvp)
        self._second: tuple[list[Array], list[Array]] | None = None
        self._J: Array | None = None  # J itself, for products, on a small network

    def hvp(self, a: Array, v: Array) -> Array | None:
        """sum_i a_i H_i(w) v exactly (:mod:`lazycheck.models.mlp_second`)."""
        if not self.model.smooth:
            return None
        from lazycheck.models.mlp_second import mlp_hvp

        return mlp_hvp(self, a, v)

    def second_order(self) -> tuple[list[Array], list[Array]]:
        """(phi'(z_i), phi''(z_i)) of every hidden layer at w, computed on first use."""
        if self._second is None:
            act = self.model.activation
            d1: list[Array] = []
            d2: list[Array] = []
            for i in range(self.model.depth):
                layer, A, (W, b) = self.model.layers[i], self.inputs[i], self.params[i]
                z = A @ W.T
                z *= layer.c_w
                if b is not None:
                    z += layer.c_b * b
                d1.append(act.d1(z))
                d2.append(act.d2(z))
            self._second = (d1, d2)
        return self._second

    def jvp(self, v: Array) -> Array:
        """J v: by the formed J on a small network (:meth:`_small_jacobian`), else layer by
        layer: sum over units of delta_ij (c a_i^T V_j + c_b vb_j), the contraction taken
        through the narrower side (D V, n x fan_in, when fan_in < fan_out:
        :func:`_narrow_jvp`; else A V^T, n x fan_out), so no n x width temporary is made where
        it can be avoided."""
        v = np.asarray(v, dtype=np.float64)
        J = self._small_jacobian()
        if J is not None:
            return J @ v
        out = np.zeros(self.f.shape[0])
        for layer, (V, vb), A, D in zip(
            self.model.layers, self.model.unpack(v), self.inputs, self.deltas, strict=True
        ):
            if V.shape[1] < V.shape[0]:
                DV, Dvb = _narrow_jvp(D, V, vb)
                out += layer.c_w * np.einsum("ik,ik->i", A, DV)
                if Dvb is not None:
                    out += layer.c_b * Dvb
                continue
            out += layer.c_w * np.einsum("ij,ij->i", D, A @ V.T)
            if vb is not None:
                out += layer.c_b * (D @ vb)
        return out

    def vjp(self, r: Array) -> Array:
        """J^T r: by the formed J on a small network (:meth:`_small_jacobian`), else layer by
        layer: c D^T diag(r) A, with r applied to the narrower of D and A (no n x width
        temporary where it can be avoided), and c_b D^T r for the biases (in the same GEMM
        when A is the narrower: :func:`_narrow_vjp`)."""
        r = np.asarray(r, dtype=np.float64)
        J = self._small_jacobian()
        if J is not None:
            return r @ J
        parts = []
        for layer, A, D in zip(self.model.layers, self.inputs, self.deltas, strict=True):
            if A.shape[1] < D.shape[1]:
                G, gb = _narrow_vjp(D, A, r, layer.bias)
                parts.append((layer.c_w * G).ravel())
                if gb is not None:
                    parts.append(layer.c_b * gb)
                continue
            G = (D * r[:, None]).T @ A
            G *= layer.c_w
            parts.append(G.ravel())
            if layer.bias:
                parts.append(layer.c_b * (D.T @ r))
        return np.concatenate(parts)

    def _small_jacobian(self) -> Array | None:
        """J, formed at the first product, where it has at most :data:`SMALL_JACOBIAN`
        entries: a product is then one BLAS call instead of a few per layer."""
        if self._J is None and self.f.shape[0] * self.model.n_params <= SMALL_JACOBIAN:
            self._J = self.jacobian()
        return self._J

    def jacobian(self) -> Array:
        n = self.f.shape[0]
        J = np.empty((n, self.model.n_params))
        for layer, A, D in zip(self.model.layers, self.inputs, self.deltas, strict=True):
            nW = layer.fan_out * layer.fan_in
            block = J[:, layer.offset : layer.offset + nW].reshape(n, layer.fan_out, layer.fan_in)
            np.multiply(D[:, :, None], A[:, None, :], out=block)
            block *= layer.c_w
            if layer.bias:
                J[:, layer.offset + nW : layer.offset + layer.size] = layer.c_b * D
        return J

    def kernel(self) -> Array:
        """K = sum_l (D^l D^lT) o (c_w^2 A^(l-1) A^(l-1)T + c_b^2): every Gram product a
        symmetric rank-k update (``dsyrk``, half a GEMM's flops) on one triangle, the
        Hadamard products and the sum on that triangle, mirrored once at the end."""
        n = self.f.shape[0]
        K = np.zeros((n, n), order="F")
        for layer, A, D in zip(self.model.layers, self.inputs, self.deltas, strict=True):
            G = _gram(A, layer.c_w**2)
            if layer.bias:
                G += layer.c_b**2
            if D.shape[1] > 1 or np.any(D != 1.0):  # the output layer's delta is 1
                G *= _gram(D)
            K += G
        return _mirror_upper(K)

    def cross_kernel(self, other: Linearization) -> Array:
        assert isinstance(other, _MLPLinearization)
        n, m = self.f.shape[0], other.f.shape[0]
        K = np.zeros((n, m))
        for layer, A, D, A2, D2 in zip(
            self.model.layers, self.inputs, self.deltas, other.inputs, other.deltas, strict=True
        ):
            G = layer.c_w**2 * (A @ A2.T)
            if layer.bias:
                G += layer.c_b**2
            K += (D @ D2.T) * G
        return K

    def difference_products(self, other: Linearization) -> DifferenceProducts | None:
        """(J_w - J_v) u and (J_w - J_v)^T a per layer from delta (x) a - delta' (x) a' =
        (delta - delta') (x) a + delta' (x) (a - a'), the two differences formed once: free of
        cancellation, and a term is dropped where its difference is zero (the first layer's
        inputs are X at both points, the output layer's delta is 1), so for one hidden layer
        each costs about one JVP or VJP instead of two."""
        if not isinstance(other, _MLPLinearization) or other.model is not self.model:
            return None
        if other.f.shape != self.f.shape:
            return None
        terms = []
        for layer, A, D, A2, D2 in zip(
            self.model.layers, self.inputs, self.deltas, other.inputs, other.deltas, strict=True
        ):
            dD, dA = D - D2, A - A2
            terms.append((layer, A, dD if np.any(dD) else None, D2, dA if np.any(dA) else None))
        return partial(_difference_jvp, self.model, terms), partial(_difference_vjp, terms)

    def difference_kernel(self, other: Linearization) -> Array:
        """(J_w - J_v)(J_w - J_v)^T per layer from delta (x) a - delta' (x) a'
        = (delta - delta') (x) a + delta' (x) (a - a'), with no cancellation; the symmetric
        Gram products by ``dsyrk`` on one triangle (see :meth:`kernel`)."""
        assert isinstance(other, _MLPLinearization)
        n = self.f.shape[0]
        K = np.zeros((n, n), order="F")
        for layer, A, D, A2, D2 in zip(
            self.model.layers, self.inputs, self.deltas, other.inputs, other.deltas, strict=True
        ):
            dD = D - D2
            dA = A - A2
            _add_difference_gram(
                K, layer, A, dD if np.any(dD) else None, D2, dA if np.any(dA) else None
            )
        return _mirror_upper(K)


def _add_difference_gram(
    K: Array, layer: _Layer, A: Array, dD: Array | None, D2: Array, dA: Array | None
) -> None:
    """Add one layer's part of (J_w - J_v)(J_w - J_v)^T to K's upper triangle: c_w^2 ((dD
    dD^T) o (A A^T) + 2 sym((dD D'^T) o (A dA^T)) + (D' D'^T) o (dA dA^T)) + c_b^2 dD dD^T.
    The terms of a zero difference (None: ``dD`` at the output layer, whose delta is 1;
    ``dA`` at the first layer, whose input is X at both points) are skipped, not computed as
    zeros: at the output layer that saves two of its three n^2 x width products. The sum is
    the same to the bit, as the skipped terms are exact zeros."""
    G = None
    if dA is not None:
        G = _gram(D2)
        G *= _gram(dA)
    if dD is None:
        if G is not None:
            K += layer.c_w**2 * G
        return
    DD = _gram(dD)
    term = DD * _gram(A)
    if G is not None:
        cross = (dD @ D2.T) * (A @ dA.T)
        both = cross + cross.T  # only its upper triangle is read: no triu
        both += G
        term += both
    K += layer.c_w**2 * term
    if layer.bias:
        K += layer.c_b**2 * DD


#: one layer's part of J_w - J_v (:meth:`_MLPLinearization.difference_products`): the layer,
#: a, delta - delta' (None where zero), delta', a - a' (None where zero)
_DifferenceTerm = tuple[_Layer, Array, Array | None, Array, Array | None]


def _difference_jvp(model: MLP, terms: list[_DifferenceTerm], v: Array) -> Array:
    """(J_w - J_v) v: per layer c (rows of dD . (A V^T) + rows of D' . (dA V^T)) + c_b dD vb."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros(terms[0][1].shape[0])
    for (layer, A, dD, D2, dA), (V, vb) in zip(terms, model.unpack(v), strict=True):
        for left, right in ((dD, A), (D2, dA)):
            if left is None or right is None:
                continue
            if V.shape[1] < V.shape[0]:
                out += layer.c_w * np.einsum("ik,ik->i", right, _narrow_jvp(left, V, None)[0])
            else:
                out += layer.c_w * np.einsum("ij,ij->i", left, right @ V.T)
        if vb is not None and dD is not None:
            out += layer.c_b * (dD @ vb)
    return out


def _difference_vjp(terms: list[_DifferenceTerm], r: Array) -> Array:
    """(J_w - J_v)^T r: per layer c (dD^T diag(r) A + D'^T diag(r) dA), c_b dD^T r."""
    r = np.asarray(r, dtype=np.float64)
    parts = []
    for layer, A, dD, D2, dA in terms:
        G = np.zeros((D2.shape[1], A.shape[1]))
        for left, right in ((dD, A), (D2, dA)):
            if left is None or right is None:
                continue
            if right.shape[1] < left.shape[1]:
                G += _narrow_vjp(left, right, r, False)[0]
            else:
                G += (left * r[:, None]).T @ right
        G *= layer.c_w
        parts.append(G.ravel())
        if layer.bias:
            parts.append(layer.c_b * (dD.T @ r) if dD is not None else np.zeros(D2.shape[1]))
    return np.concatenate(parts)


def _narrow_jvp(D: Array, V: Array, vb: Array | None) -> tuple[Array, Array | None]:
    """D V (n x k) and D vb for a layer whose fan-in k is below its fan-out. From
    :data:`SHORT_SIDE_MIN_N` rows on as ([V vb]^T D^T)^T: one GEMM with the short side leading
    and the bias's row riding along, one pass over D; on these skinny shapes OpenBLAS runs
    that orientation faster (width 2000, k = 10, one thread: J v 1.2x-1.4x at n = 400 to 1600,
    ``benchmarks/bench_kernel.py``, :func:`case_products`), below it slower (n = 50: 48 -> 61
    us at width 1000)."""
    if D.shape[0] < SHORT_SIDE_MIN_N:
        return D @ V, (D @ vb if vb is not None else None)
    k = V.shape[1]
    VT = np.empty((k + (vb is not None), V.shape[0]))
    VT[:k] = V.T
    if vb is not None:
        VT[k] = vb
    M = VT @ D.T
    return M[:k].T, (M[k] if vb is not None else None)


def _narrow_vjp(D: Array, A: Array, r: Array, bias: bool) -> tuple[Array, Array | None]:
    """D^T diag(r) A (fan-out x k) and D^T r (if ``bias``) for a layer whose fan-in k (A's
    columns) is below its fan-out; from :data:`SHORT_SIDE_MIN_N` rows on as
    ([A^T diag(r); r^T] D)^T, one GEMM, as :func:`_narrow_jvp` (J^T r 1.3x-1.9x there)."""
    if D.shape[0] < SHORT_SIDE_MIN_N:
        return D.T @ (A * r[:, None]), (D.T @ r if bias else None)
    k = A.shape[1]
    AR = np.empty((k + bias, A.shape[0]))
    np.multiply(A.T, r, out=AR[:k])
    if bias:
        AR[k] = r
    M = AR @ D
    return M[:k].T, (M[k] if bias else None)


def _gram(M: Array, scale: float = 1.0) -> Array:
    """scale M M^T on its upper triangle (the lower one is zero), by ``dsyrk`` on M^T, which
    is Fortran-ordered when M is C-ordered: no copy of M. The one product lazycheck runs on
    several threads when large (:func:`lazycheck.threads.blas_threads`): OpenBLAS's syrk gives
    the same bits on any number of threads, its gemm and LAPACK's eigensolvers do not."""
    from scipy.linalg.blas import dsyrk

    from lazycheck.threads import blas_threads

    with blas_threads(float(M.shape[0]) ** 2 * M.shape[1]):
        return dsyrk(scale, np.ascontiguousarray(M).T, trans=1)


def _mirror_upper(U: Array, block: int = 64) -> Array:
    """The symmetric matrix whose upper triangle is U's, as a C-ordered array, copied block
    row by block row (U's strict lower triangle is ignored): no n x n temporary besides the
    result, bit for bit U's entries."""
    n = U.shape[0]
    out = np.empty((n, n))
    for i in range(0, n, block):
        j = min(i + block, n)
        out[i:j, j:] = U[i:j, j:]
        out[j:, i:j] = U[i:j, j:].T
        D = U[i:j, i:j]
        out[i:j, i:j] = np.triu(D) + np.triu(D, 1).T
    return out
