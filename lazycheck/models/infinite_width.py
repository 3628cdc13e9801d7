"""The analytic infinite-width neural tangent kernel of the built-in MLP (:mod:`.mlp`).

For hidden widths d_1..d_L -> infinity the tangent kernel K(w0) = J0 J0^T of a randomly
initialized MLP converges to a deterministic kernel K_inf (Jacot, Gabriel & Hongler 2018; Lee
et al. 2019; Arora et al. 2019). In lazycheck's parameterization (``docs/infinite-width.md``
derives every line) it is given by the recursion, with s_w = sigma_w^2, s_b = sigma_b^2 when
biases are on (else 0) and (u, v) ~ N(0, [[S(x,x), S(x,x')], [S(x,x'), S(x',x')]]) at each layer::

    Q^0(x,x')     = <x, x'> / d_0
    S^l           = s_w Q^(l-1) + s_b                     (pre-activation covariance, l = 1..L+1)
    Q^l           = E[phi(u) phi(v)],   u, v ~ S^l        (l = 1..L)
    Sdot^l        = s_w E[phi'(u) phi'(v)]
    Theta^1       = T^1,   Theta^(l+1) = T^(l+1) + Theta^l o Sdot^l,    K_inf = Theta^(L+1)

with the per-layer term T^l = S^l under the ``ntk`` parameterization (a width-independent
limit), and T^l = d_(l-1) Q^(l-1) + [bias] under the ``standard`` one. There the gradient with
respect to a hidden weight matrix carries no 1/sqrt(fan_in), K0 grows linearly with the widths
and has no finite limit; the kernel returned is the deterministic equivalent at the spec's
widths (its leading order; E[K0] exactly for one hidden layer), so K0 / K_inf -> 1 and
||K0 - K_inf|| / ||K_inf|| = O(width^-1/2) as the widths grow in fixed proportions.

The Gaussian expectations are closed forms for ``relu`` (arc-cosine kernels, Cho & Saul 2009),
``erf`` (Williams 1997), ``sin`` and ``identity``. For ``tanh``, ``sigmoid``, ``softplus`` and
``gelu`` they are two-dimensional integrals over the correlated Gaussian, written with its
Cholesky factor (u = sqrt(a) x1, v = sqrt(b) (rho x1 + sqrt(1 - rho^2) x2), x1, x2 iid N(0, 1))
and computed by a product trapezoidal rule on [-8.5, 8.5]^2. For integrands analytic in a strip
the trapezoidal rule converges geometrically in 1/h (Trefethen & Weideman 2014), much faster
than Gauss-Hermite for activations with complex poles near the real axis (tanh at i pi/2): the
step is halved (h = 1/2, 1/4, ..., 1/32) per pair of points until two successive levels agree to
``rtol`` relative to sqrt(E[phi(u)^2] E[phi(v)^2]) (the Cauchy-Schwarz bound on the entry), and
that difference is reported as the error estimate. A Gauss-Hermite rule is kept as the
independent reference the tests compare with.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.activations import get_activation
from lazycheck.spec import ModelSpec

__all__ = [
    "CLOSED_FORMS",
    "GaussianMoments",
    "InfiniteWidthKernel",
    "gaussian_moments",
    "infinite_width_kernel",
    "infinite_width_ntk",
]

Array = np.ndarray
_TRAPEZOID_STEPS = (0.5, 0.25, 0.125, 0.0625, 0.03125)
_TRUNCATION = 8.5
_HERMITE_ORDERS = (32, 64, 128, 256, 512)
_CHUNK_POINTS = 2_000_000  # pairs x nodes^2 evaluated at once (16 MB per float64 array)


@dataclass(frozen=True)
class InfiniteWidthKernel:
    """K_inf and how it was computed.

    Attributes:
        theta: K_inf, (n, n), symmetric.
        nngp: S^(L+1), the covariance of the output at initialization in the limit (NNGP).
        parameterization: ``"ntk"`` (a width-independent limit) or ``"standard"`` (the
            deterministic equivalent at ``widths``; see the module docstring).
        widths: the hidden widths of one network (each half of a symmetric pair).
        method: ``"closed form"`` or ``"quadrature"``.
        max_nodes: the most quadrature nodes per dimension any entry needed (0: closed form).
        quadrature_error: the largest estimated relative error of a Gaussian expectation (the
            difference between the last two refinement levels, relative to its
            Cauchy-Schwarz scale); 0 for closed forms.
    """

    theta: Array
    nngp: Array
    parameterization: str
    widths: tuple[int, ...]
    method: str
    max_nodes: int
    quadrature_error: float

    @property
    def limit(self) -> str:
        """What K_inf is: the limit itself, or the deterministic equivalent at finite width."""
        if self.parameterization == "ntk":
            return "the width-independent limit"
        return "the deterministic equivalent at these widths (K0 grows with width, no finite limit)"


@dataclass(frozen=True)
class GaussianMoments:
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] over (u, v) ~ N(0, S), for every pair of points."""

    phi: Array
    dphi: Array
    max_nodes: int
    error: float


def infinite_width_kernel(spec: ModelSpec, X: np.ndarray) -> np.ndarray:
    """K_inf (n x n): the infinite-width tangent kernel of the MLP ``spec`` describes, on X.

    ``ntk`` parameterization: lim K(w0) as every hidden width -> infinity. ``standard``: the
    deterministic equivalent at the spec's widths (K0 itself diverges; see the module
    docstring). Raises :class:`LazycheckError` for models other than the built-in MLP.
    """
    return infinite_width_ntk(spec, X).theta.copy()


def infinite_width_ntk(
    spec: ModelSpec, X: np.ndarray, *, rtol: float = 1e-10, method: str = "auto"
) -> InfiniteWidthKernel:
    """:func:`infinite_width_kernel` with the NNGP kernel and the quadrature diagnostics.

    ``method``: ``"auto"`` (closed form when one exists), ``"closed"`` or ``"quadrature"``
    (forces the quadrature, e.g. to check a closed form; ``relu``'s kink makes it converge
    only algebraically). ``rtol``: the quadrature's target relative error per expectation.

    The last few results are cached (keyed by the architecture and a digest of X; under the
    ``ntk`` parameterization the widths do not enter), so a sweep over widths computes the
    limit once. The arrays returned are read-only.
    """
    _check_supported(spec)
    X = _check_inputs(X)
    widths = tuple(m // 2 for m in spec.widths) if spec.init == "symmetric" else spec.widths
    key_widths = (0,) * len(widths) if spec.parameterization == "ntk" else widths
    key = dataclasses.replace(spec, widths=key_widths, init="gaussian", center=False)
    digest = hashlib.blake2b(X.tobytes(), digest_size=16).hexdigest()
    out = _cached_kernel(key, digest, X.shape, rtol, method, _Inputs(X))
    return dataclasses.replace(out, widths=widths)


@dataclass(frozen=True)
class _Inputs:
    """X carried through the cache without being part of its key (the digest is)."""

    X: Array = dataclasses.field(compare=False)

    def __hash__(self) -> int:
        return 0


def gaussian_moments(
    activation: str, S: np.ndarray, *, rtol: float = 1e-10, method: str = "auto"
) -> GaussianMoments:
    """E[phi(u_i) phi(u_j)] and E[phi'(u_i) phi'(u_j)] for u ~ N(0, S) (S: n x n covariance).

    ``method``: ``"auto"``, ``"closed"`` (error for activations without one) or
    ``"quadrature"``.
    """
    S = np.asarray(S, dtype=np.float64)
    if method not in ("auto", "closed", "quadrature"):
        raise ValueError(f"unknown method {method!r}; use auto, closed or quadrature")
    closed = CLOSED_FORMS.get(activation)
    if method == "closed" and closed is None:
        raise LazycheckError(
            f"activation {activation!r} has no closed form; those that do: "
            f"{', '.join(CLOSED_FORMS)}"
        )
    d = np.diag(S).copy()
    if closed is not None and method != "quadrature":
        f, g = closed(d[:, None], d[None, :], S)
        return GaussianMoments(f, g, 0, 0.0)
    return _quadrature_moments(activation, S, d, rtol)


# ----------------------------------------------------------------------------- closed forms


def _relu_moments(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    # Cho & Saul's arc-cosine kernels of degree 1 and 0; theta = angle between u and v
    ab = a * b
    root = np.sqrt(ab)
    cos = np.divide(c, root, out=np.zeros(np.broadcast(a, b, c).shape), where=ab > 0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    f = root / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * np.cos(theta))
    g = np.where(ab > 0, (math.pi - theta) / (2 * math.pi), 0.0)  # relu'(0) = 0
    return f, g


def _erf_moments(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    # Williams (1997): E erf(u) erf(v) = 2/pi arcsin(2c / sqrt((1+2a)(1+2b)));
    # E phi'phi' = 4/pi E exp(-u^2 - v^2) = 4/pi det(I + 2S)^(-1/2)
    D = (1 + 2 * a) * (1 + 2 * b)
    f = 2 / math.pi * np.arcsin(np.clip(2 * c / np.sqrt(D), -1.0, 1.0))
    g = 4 / math.pi / np.sqrt(D - 4 * c * c)
    return f, g


def _sin_moments(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    # sin u sin v = (cos(u-v) - cos(u+v))/2 and E cos(t) = exp(-Var t / 2)
    e = np.exp(-0.5 * (a + b))
    return e * np.sinh(c), e * np.cosh(c)


def _identity_moments(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    return np.array(c, dtype=np.float64, copy=True), np.ones(np.broadcast(a, b, c).shape)


CLOSED_FORMS: dict[str, Callable[[Array, Array, Array], tuple[Array, Array]]] = {
    "relu": _relu_moments,
    "erf": _erf_moments,
    "sin": _sin_moments,
    "identity": _identity_moments,
}
"""Activations whose Gaussian moments (E phi phi, E phi' phi') have a closed form, given the
variances a, b and the covariance c (broadcast arrays)."""


# ----------------------------------------------------------------------------- quadrature


def _quadrature_moments(activation: str, S: Array, d: Array, rtol: float) -> GaussianMoments:
    n = S.shape[0]
    pair = _PAIRS.get(activation) or _pair_of(activation)
    # diagonal first: its values are the Cauchy-Schwarz scale of the off-diagonal entries
    idx = np.arange(n)
    diag, dnodes, derr = _adaptive(pair, d, d, d, None, rtol)
    scale_i = np.sqrt(np.abs(diag))
    iu, ju = np.triu_indices(n, k=1)
    scale = scale_i[:, iu] * scale_i[:, ju]
    off, onodes, oerr = _adaptive(pair, d[iu], d[ju], S[iu, ju], scale, rtol)
    out = np.empty((2, n, n))
    out[:, idx, idx] = diag
    out[:, iu, ju] = off
    out[:, ju, iu] = off
    return GaussianMoments(out[0], out[1], max(dnodes, onodes), max(derr, oerr))


def _adaptive(
    pair: Callable[[Array], tuple[Array, Array]],
    a: Array,
    b: Array,
    c: Array,
    scale: Array | None,
    rtol: float,
    rule: str = "trapezoid",
) -> tuple[Array, int, float]:
    """Per-pair product rule, refined until two successive levels agree to rtol * scale (None:
    relative to the value itself). Returns the values, the most nodes per dimension used and
    the largest estimated relative error."""
    P = a.shape[0]
    sa, sb = np.sqrt(np.maximum(a, 0.0)), np.sqrt(np.maximum(b, 0.0))
    denom = sa * sb
    rho = np.clip(np.divide(c, denom, out=np.zeros(P), where=denom > 0), -1.0, 1.0)
    s = np.sqrt(1.0 - rho * rho)
    result = np.zeros((2, P))
    err = np.full(P, np.inf)
    todo = np.arange(P)
    prev: Array | None = None
    used = 0
    tiny = np.finfo(np.float64).tiny
    for level in range(len(_TRAPEZOID_STEPS)):
        if todo.size == 0:
            break
        x, w = _nodes(rule, level)
        used = x.shape[0]
        cur = _product_rule(pair, sa[todo], sb[todo], rho[todo], s[todo], x, w)
        result[:, todo] = cur
        if prev is not None:
            ref = np.abs(cur) if scale is None else scale[:, todo]
            rel = np.max(np.abs(cur - prev) / np.maximum(ref, tiny), axis=0)
            err[todo] = rel
            keep = rel > rtol
            todo, prev = todo[keep], cur[:, keep]
        else:
            prev = cur
    finite = err[np.isfinite(err)]
    return result, used, float(finite.max()) if finite.size else 0.0


def _pair_of(activation: str) -> Callable[[Array], tuple[Array, Array]]:
    act = get_activation(activation)
    return lambda z: (act.fn(z), act.d1(z))


def _tanh_pair(z: Array) -> tuple[Array, Array]:
    t = np.tanh(z)
    return t, 1.0 - t * t  # absolute accuracy is what quadrature needs


def _sigmoid_pair(z: Array) -> tuple[Array, Array]:
    from scipy.special import expit

    e = expit(z)
    return e, e * (1.0 - e)


def _softplus_pair(z: Array) -> tuple[Array, Array]:
    from scipy.special import expit

    return np.logaddexp(0.0, z), expit(z)


def _gelu_pair(z: Array) -> tuple[Array, Array]:
    from scipy.special import ndtr

    Phi = ndtr(z)
    return z * Phi, Phi + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


#: phi and phi' evaluated together (one transcendental where possible); the other activations
#: fall back to lazycheck.models.activations
_PAIRS: dict[str, Callable[[Array], tuple[Array, Array]]] = {
    "tanh": _tanh_pair,
    "sigmoid": _sigmoid_pair,
    "softplus": _softplus_pair,
    "gelu": _gelu_pair,
}


def _nodes(rule: str, level: int) -> tuple[Array, Array]:
    """Nodes and weights for E[g(x)], x ~ N(0, 1), at a refinement level.

    ``trapezoid``: step h on [-T, T] with T = 8.5 (the Gaussian tail beyond is < 1e-16); for
    integrands analytic in a strip of half-width d the error falls like exp(-2 pi d / h), so
    halving h squares it. ``gauss-hermite``: the probabilists' Gauss-Hermite rule, whose
    error falls only like exp(-d sqrt(2N)) (kept as an independent reference).
    """
    if rule == "trapezoid":
        h = _TRAPEZOID_STEPS[level]
        x = np.arange(-_TRUNCATION, _TRUNCATION + 0.5 * h, h)
        return x, h * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    if rule == "gauss-hermite":
        from scipy.special import roots_hermitenorm

        x, w = roots_hermitenorm(_HERMITE_ORDERS[level])
        return x, w / w.sum()
    raise ValueError(f"unknown rule {rule!r}; use trapezoid or gauss-hermite")


def _product_rule(
    pair: Callable[[Array], tuple[Array, Array]],
    sa: Array,
    sb: Array,
    rho: Array,
    s: Array,
    x: Array,
    w: Array,
) -> Array:
    """E[g(u) g(v)] for g = phi and phi', u = sa x1, v = sb (rho x1 + s x2), x1, x2 iid N(0, 1)."""
    P, N = sa.shape[0], x.shape[0]
    out = np.empty((2, P))
    step = max(1, _CHUNK_POINTS // (N * N))
    for lo in range(0, P, step):
        sl = slice(lo, min(P, lo + step))
        u = sa[sl, None] * x[None, :]
        v = sb[sl, None, None] * (
            rho[sl, None, None] * x[None, :, None] + s[sl, None, None] * x[None, None, :]
        )
        for k, (gu, gv) in enumerate(zip(pair(u), pair(v), strict=True)):
            out[k, sl] = (gu * (gv @ w)) @ w  # over x2, then x1
    return out


def _check_supported(spec: ModelSpec) -> None:
    if spec.kind != "mlp":
        raise LazycheckError(
            f"[model].kind = {spec.kind!r}: the infinite-width kernel is known for the built-in "
            "MLP only (kind = 'mlp')"
        )
    get_activation(spec.activation)
    if spec.parameterization not in ("ntk", "standard"):
        raise LazycheckError(
            f"[model].parameterization = {spec.parameterization!r}: the infinite-width kernel "
            "is known for 'ntk' and 'standard'"
        )


def _check_inputs(X: np.ndarray) -> Array:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise LazycheckError(f"inputs X must be a non-empty (n, d) array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise LazycheckError("inputs X contain NaN or infinite values")
    return X


@functools.lru_cache(maxsize=8)
def _cached_kernel(
    spec: ModelSpec,
    digest: str,
    shape: tuple[int, ...],
    rtol: float,
    method: str,
    inputs: _Inputs,
) -> InfiniteWidthKernel:
    X = inputs.X
    d0 = X.shape[1]
    s_w = spec.sigma_w**2
    bias = 1.0 if spec.bias else 0.0
    s_b = spec.sigma_b**2 * bias
    ntk = spec.parameterization == "ntk"
    Q = (X @ X.T) / d0
    S = s_w * Q + s_b
    theta = S.copy() if ntk else d0 * Q + bias
    nodes, err, used = 0, 0.0, "closed form"
    for width in spec.widths:
        mom = gaussian_moments(spec.activation, S, rtol=rtol, method=method)
        if mom.max_nodes:
            used = "quadrature"
        nodes, err = max(nodes, mom.max_nodes), max(err, mom.error)
        Q = mom.phi
        S = s_w * Q + s_b
        theta = theta * (s_w * mom.dphi) + (S if ntk else width * Q + bias)
    theta = 0.5 * (theta + theta.T)
    nngp = 0.5 * (S + S.T)
    theta.flags.writeable = False
    nngp.flags.writeable = False
    return InfiniteWidthKernel(theta, nngp, spec.parameterization, spec.widths, used, nodes, err)
