"""Activation functions with their first and second derivatives.

Each :class:`Activation` carries phi, phi' and phi'', whether it is smooth (phi' Lipschitz, so
that w -> J_w is Lipschitz), and the critical points needed to bound |phi'| and |phi''| on an
interval exactly (used by the certified bound on beta in :mod:`lazycheck.beta.certified`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ACTIVATIONS", "Activation", "get_activation"]

Array = np.ndarray
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@dataclass(frozen=True)
class Activation:
    """A scalar activation applied elementwise.

    Attributes:
        name: the spec name.
        fn, d1, d2: phi, phi' and phi'' (vectorized, float64).
        smooth: True when phi' is Lipschitz (phi'' bounded), so the Jacobian map is Lipschitz.
        d1_critical, d2_critical: finite lists of the points where phi'' (resp. phi''') vanish;
            sup |phi'| (resp. |phi''|) on an interval is attained at an endpoint or at one of
            them. ``None`` means periodic (sin), handled separately.
    """

    name: str
    fn: Callable[[Array], Array]
    d1: Callable[[Array], Array]
    d2: Callable[[Array], Array]
    smooth: bool
    d1_critical: tuple[float, ...] | None = ()
    d2_critical: tuple[float, ...] | None = ()
    fused: Callable[[Array, Array, Array, Array], None] | None = None

    def fn_d1(self, z: Array, out: Array | None = None) -> tuple[Array, Array]:
        """``(phi(z), phi'(z))``, in one pass where the activation shares their work
        (:attr:`fused`: tanh, sigmoid, softplus, gelu), else ``(fn(z), d1(z))``.

        The fused pass runs over blocks of :data:`_BLOCK` elements with one block of scratch
        space, so it makes no temporary of z's size. phi is written into ``out`` when given (a
        C-contiguous float64 array of z's shape, which may be z itself), phi' into a new array.
        tanh, sigmoid and gelu give ``fn`` and ``d1`` bit for bit (the same operations);
        softplus, from one exp(-|z|), agrees with them to a few ulps.
        """
        if self.fused is None:
            phi, d1 = self.fn(z), self.d1(z)  # both before out is written: out may be z
            if out is None:
                return phi, d1
            out[...] = phi
            return out, d1
        return _run_fused(self.fused, z, out)

    def sup_abs_d1(self, lo: Array, hi: Array) -> Array:
        """An upper bound on sup |phi'| over each interval [lo, hi] (elementwise arrays).

        Exact up to floating point, and rounded up: the interval is widened by a few ulps,
        the value inflated by a few ulps plus an absolute floor of ~1e-15 of the global sup
        of |phi'| (so a value that underflows, or cancels near a zero of phi', still gives an
        upper bound), and a nan endpoint gives inf.
        """
        return _sup_abs(self.d1, lo, hi, self.d1_critical, shift=0.0)

    def sup_abs_d1_d2(self, lo: Array, hi: Array) -> tuple[Array, Array]:
        """``(sup_abs_d1(lo, hi), sup_abs_d2(lo, hi))``, equal to the two calls bit for bit,
        widening the intervals once and evaluating phi' and phi'' together where the
        activation shares their work (tanh), block by block over intervals of one shape (each
        entry's operations are the same: only the working set shrinks to the cache)."""
        if not self.smooth:
            return self.sup_abs_d1(lo, hi), self.sup_abs_d2(lo, hi)
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if lo.ndim == 0 or lo.shape != hi.shape or lo.size <= _SUP_BLOCK:
            return self._sup_abs_d1_d2(lo, hi)
        s1, s2 = np.empty(lo.shape), np.empty(lo.shape)
        lf, hf, f1, f2 = lo.reshape(-1), hi.reshape(-1), s1.reshape(-1), s2.reshape(-1)
        for i in range(0, lf.size, _SUP_BLOCK):
            j = i + _SUP_BLOCK
            f1[i:j], f2[i:j] = self._sup_abs_d1_d2(lf[i:j], hf[i:j])
        return s1, s2

    def _sup_abs_d1_d2(self, lo: Array, hi: Array) -> tuple[Array, Array]:
        lo, hi, unknown = _widen(lo, hi)
        joint = _JOINT.get(self.name)
        with np.errstate(all="ignore"):
            owned = self.d1_critical is not None and self.d2_critical is not None
            lo_c, hi_c = _clip(lo, owned), _clip(hi, owned)
            if joint is not None and joint[0] is self.d1 and joint[1] is self.d2:
                (a1, a2), (b1, b2) = joint[2](lo_c), joint[2](hi_c)
                ends1, ends2 = _abs_max(a1, b1), _abs_max(a2, b2)  # fresh arrays: in place
            else:
                a1, a2, b1, b2 = self.d1(lo_c), self.d2(lo_c), self.d1(hi_c), self.d2(hi_c)
                ends1 = np.maximum(np.abs(a1), np.abs(b1))
                ends2 = np.maximum(np.abs(a2), np.abs(b2))
        return (
            _finish(self.d1, ends1, lo, hi, unknown, self.d1_critical, 0.0),
            _finish(self.d2, ends2, lo, hi, unknown, self.d2_critical, 0.5 * math.pi),
        )

    def sup_abs_d2(self, lo: Array, hi: Array) -> Array:
        """An upper bound on sup |phi''| over each interval (as :meth:`sup_abs_d1`); inf when
        phi'' is unbounded."""
        if not self.smooth:
            return np.full(np.shape(lo), np.inf)
        return _sup_abs(self.d2, lo, hi, self.d2_critical, shift=0.5 * math.pi)


def get_activation(name: str) -> Activation:
    """The activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[name]


_EPS = float(np.finfo(np.float64).eps)
_SUP_BLOCK = 16384  # intervals per block of sup_abs_d1_d2: its temporaries stay in cache
_CLIP = 1e150  # |phi'|, |phi''| are monotone beyond the outermost critical point: evaluate there
_ABS_FLOOR = 4e-15  # absolute rounding floor, relative to the global sup of |g|


def _sup_abs(
    g: Callable[[Array], Array],
    lo: Array,
    hi: Array,
    critical: tuple[float, ...] | None,
    shift: float,
) -> Array:
    lo, hi, unknown = _widen(lo, hi)
    with np.errstate(all="ignore"):
        owned = critical is not None
        ends = np.maximum(np.abs(g(_clip(lo, owned))), np.abs(g(_clip(hi, owned))))
    return _finish(g, ends, lo, hi, unknown, critical, shift)


def _widen(lo: Array, hi: Array) -> tuple[Array, Array, Array]:
    """The intervals widened by a few ulps (the caller's endpoints carry rounding), nan
    endpoints replaced by 0, and where they were."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    unknown = np.isnan(lo) | np.isnan(hi)
    if lo.ndim and hi.ndim and lo.shape == hi.shape:  # the same values, fewer temporaries
        t, u = np.abs(lo), np.abs(hi)
        t *= 4 * _EPS
        u *= 4 * _EPS
        lo, hi = np.subtract(lo, t, out=t), np.add(hi, u, out=u)
    else:
        lo = lo - 4 * _EPS * np.abs(lo)
        hi = hi + 4 * _EPS * np.abs(hi)
    if unknown.any():
        lo, hi = np.where(unknown, 0.0, lo), np.where(unknown, 0.0, hi)
    return lo, hi, unknown


def _abs_max(a: Array, b: Array) -> Array:
    """max(|a|, |b|), overwriting a and b when they are arrays of one shape."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim and a.shape == b.shape:
        np.abs(a, out=a)
        return np.maximum(a, np.abs(b, out=b), out=a)
    return np.maximum(np.abs(a), np.abs(b))


def _clip(z: Array, owned: bool = False) -> Array:
    """z clipped to +-_CLIP; in place when the caller owns z and no later test can tell
    (the critical points all lie well inside +-_CLIP; sin's peak count needs z unclipped)."""
    if owned and isinstance(z, np.ndarray) and z.ndim:
        return np.clip(z, -_CLIP, _CLIP, out=z)
    return np.clip(z, -_CLIP, _CLIP)


def _finish(
    g: Callable[[Array], Array],
    ends: Array,
    lo: Array,
    hi: Array,
    unknown: Array,
    critical: tuple[float, ...] | None,
    shift: float,
) -> Array:
    """sup |g| on [lo, hi] from its larger endpoint value ``ends``: the critical points
    inside, then rounded up (the inflation and floor described in sup_abs_d1)."""
    if critical is None:
        # sin: |cos| peaks at k*pi (shift 0), |sin| at pi/2 + k*pi (shift pi/2); both peak at 1.
        # k*pi is rounded: count a peak as inside when within a relative 1e-12 of the interval.
        slack = 1e-12 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        k = np.ceil((lo - slack - shift) / math.pi)
        inside = shift + k * math.pi <= hi + slack
        best = np.where(inside, 1.0, ends)
        top = 1.0
    else:
        best = ends  # owned by the caller's computation: updated in place
        top, peaks = _peaks(g, tuple(critical))
        for c, peak in zip(critical, peaks, strict=True):
            inside = (lo <= c) & (c <= hi)
            if isinstance(best, np.ndarray) and best.ndim:
                np.maximum(best, peak, out=best, where=inside)
            else:
                best = np.where(inside, np.maximum(best, peak), best)
    if isinstance(best, np.ndarray) and best.ndim:
        best *= 1.0 + 16 * _EPS
    else:
        best = best * (1.0 + 16 * _EPS)
    best += _ABS_FLOOR * top
    bad = unknown | np.isnan(best)
    return np.where(bad, np.inf, best) if bad.any() else np.asarray(best)


@functools.lru_cache(maxsize=64)
def _peaks(g: Callable[[Array], Array], critical: tuple[float, ...]) -> tuple[float, tuple]:
    """max |g| over the critical points and +-1e3 (the scale of the absolute floor), and
    |g| at each critical point."""
    top = float(np.max(np.abs(g(np.array([*critical, -1e3, 1e3])))))
    return top, tuple(abs(float(g(np.array(c)))) for c in critical)


def _sigmoid(z: Array) -> Array:
    from scipy.special import expit

    return expit(z)


def _sigmoid_d1(z: Array) -> Array:
    # s (1 - s) with 1 - s = sigmoid(-z): no cancellation when the unit saturates
    return _sigmoid(z) * _sigmoid(-np.asarray(z))


def _sigmoid_d2(z: Array) -> Array:
    # s (1 - s) (1 - 2 s), and 1 - 2 s = -tanh(z / 2)
    return -_sigmoid_d1(z) * np.tanh(0.5 * np.asarray(z))


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


def _tanh_d1(z: Array) -> Array:
    # sech^2 z = 4 e / (1 + e)^2 with e = exp(-2|z|): accurate when saturated (1 - tanh^2
    # would cancel), and no overflow. In place: the same operations, fewer temporaries.
    e = -2.0 * np.abs(z)
    e = np.exp(e, out=e) if isinstance(e, np.ndarray) else np.exp(e)
    den = 1.0 + e
    den *= den
    e *= 4.0
    e /= den
    return e


def _tanh_d2(z: Array) -> Array:
    return -2.0 * np.tanh(z) * _tanh_d1(z)


def _tanh_d12(z: Array) -> tuple[Array, Array]:
    """(phi', phi'') of tanh sharing phi': bit for bit _tanh_d1 and _tanh_d2."""
    d1 = _tanh_d1(z)
    d2 = np.tanh(z)
    if not isinstance(d2, np.ndarray):
        return d1, -2.0 * d2 * d1
    d2 *= -2.0  # in place: the same products in the same order
    d2 *= d1
    return d1, d2


_BLOCK = 16384  # elements per block of a fused pass: operands and scratch stay in cache


def _run_fused(
    kernel: Callable[[Array, Array, Array, Array], None], z: Array, out: Array | None
) -> tuple[Array, Array]:
    """Run a fused kernel(z, phi, d1, scratch) block by block over flat views."""
    z = np.asarray(z, dtype=np.float64)
    zf = np.ascontiguousarray(z).reshape(-1)
    if out is None:
        phi = np.empty(z.shape)
    elif out.shape != z.shape or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float64 array of z's shape")
    else:
        phi = out
    pf, d1 = phi.reshape(-1), np.empty(z.shape)
    df = d1.reshape(-1)
    tmp = np.empty(min(zf.size, _BLOCK))
    for i in range(0, zf.size, _BLOCK):
        j = min(i + _BLOCK, zf.size)
        kernel(zf[i:j], pf[i:j], df[i:j], tmp[: j - i])
    return phi, d1


def _tanh_fused(z: Array, phi: Array, d1: Array, tmp: Array) -> None:
    """tanh and sech^2 = 4 e / (1 + e)^2 (e = exp(-2|z|)): bit for bit np.tanh and _tanh_d1,
    the same operations on a block in cache (phi' first: phi may be z). Measured faster than
    the one-transcendental form from u = expm1(2|z|), tanh = u / (u + 2), sech^2 =
    4 (u + 1) / (u + 2)^2 (numpy's tanh and exp are vectorized, its expm1 is not)."""
    np.abs(z, out=d1)
    d1 *= -2.0
    np.exp(d1, out=d1)
    np.add(d1, 1.0, out=tmp)
    tmp *= tmp
    d1 *= 4.0
    d1 /= tmp
    np.tanh(z, out=phi)


def _sigmoid_fused(z: Array, phi: Array, d1: Array, tmp: Array) -> None:
    """sigmoid z and sigmoid' = sigmoid(z) sigmoid(-z) sharing sigmoid(z): bit for bit the
    separate functions (phi' first: phi may be z)."""
    from scipy.special import expit

    np.negative(z, out=tmp)
    expit(tmp, out=d1)
    expit(z, out=phi)
    d1 *= phi


def _softplus_fused(z: Array, phi: Array, d1: Array, tmp: Array) -> None:
    """softplus z = max(z, 0) + log1p(e) and softplus' = sigmoid z (1 / (1 + e) for z >= 0,
    e / (1 + e) below) from one e = exp(-|z|): a few ulps from the separate functions,
    which evaluate exp three times."""
    np.abs(z, out=tmp)
    np.negative(tmp, out=tmp)
    np.exp(tmp, out=tmp)  # e
    np.add(tmp, 1.0, out=d1)
    np.reciprocal(d1, out=d1)  # sigmoid |z|
    np.multiply(tmp, d1, out=d1, where=z < 0)  # sigmoid z
    np.log1p(tmp, out=tmp)
    np.maximum(z, 0.0, out=phi)  # phi may be z: z is not read after this
    phi += tmp


def _gelu_fused(z: Array, phi: Array, d1: Array, tmp: Array) -> None:
    """gelu z = z Phi(z) and gelu' = Phi(z) + z phi(z) sharing Phi(z), bit for bit the
    separate functions (the same operations in the same order)."""
    from scipy.special import ndtr

    ndtr(z, out=tmp)
    np.multiply(z, z, out=d1)
    d1 *= -0.5
    np.exp(d1, out=d1)
    d1 *= _INV_SQRT_2PI
    d1 *= z
    d1 += tmp
    np.multiply(z, tmp, out=phi)


def _phi(z: Array) -> Array:
    return _INV_SQRT_2PI * np.exp(-0.5 * np.asarray(z) ** 2)


def _Phi(z: Array) -> Array:
    from scipy.special import ndtr

    return ndtr(z)


def _gelu(z: Array) -> Array:
    return z * _Phi(z)


def _gelu_d1(z: Array) -> Array:
    return _Phi(z) + z * _phi(z)


def _gelu_d2(z: Array) -> Array:
    return _phi(z) * (2.0 - z * z)


def _erf(z: Array) -> Array:
    from scipy.special import erf

    return erf(z)


def _erf_d1(z: Array) -> Array:
    return _TWO_OVER_SQRT_PI * np.exp(-(np.asarray(z) ** 2))


def _erf_d2(z: Array) -> Array:
    return -2.0 * z * _erf_d1(z)


def _identity(z: Array) -> Array:
    return np.asarray(z, dtype=np.float64).copy()


def _ones(z: Array) -> Array:
    return np.ones_like(np.asarray(z, dtype=np.float64))


def _zeros(z: Array) -> Array:
    return np.zeros_like(np.asarray(z, dtype=np.float64))


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_d1(z: Array) -> Array:
    return (np.asarray(z) > 0).astype(np.float64)


_T3 = math.atanh(1.0 / math.sqrt(3.0))  # zeros of tanh'''
_S3 = math.log((3.0 + math.sqrt(3.0)) / (3.0 - math.sqrt(3.0)))  # zeros of sigmoid'''

ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", np.tanh, _tanh_d1, _tanh_d2, True, (0.0,), (-_T3, _T3), _tanh_fused),
    "sigmoid": Activation(
        "sigmoid", _sigmoid, _sigmoid_d1, _sigmoid_d2, True, (0.0,), (-_S3, _S3), _sigmoid_fused
    ),
    "softplus": Activation(
        "softplus", _softplus, _sigmoid, _sigmoid_d1, True, (), (0.0,), _softplus_fused
    ),
    "gelu": Activation(
        "gelu", _gelu, _gelu_d1, _gelu_d2, True, (-_SQRT2, _SQRT2), (-2.0, 0.0, 2.0), _gelu_fused
    ),
    "erf": Activation("erf", _erf, _erf_d1, _erf_d2, True, (0.0,), (-1.0 / _SQRT2, 1.0 / _SQRT2)),
    "sin": Activation("sin", np.sin, np.cos, lambda z: -np.sin(z), True, None, None),
    "identity": Activation("identity", _identity, _ones, _zeros, True, (), ()),
    "relu": Activation("relu", _relu, _relu_d1, _zeros, False, (), ()),
}
"""Every activation a spec may name."""


def _sigmoid_d12(z: Array) -> tuple[Array, Array]:
    """(phi', phi'') of sigmoid sharing phi': bit for bit _sigmoid_d1 and _sigmoid_d2."""
    d1 = _sigmoid_d1(z)
    return d1, -d1 * np.tanh(0.5 * np.asarray(z))


def _softplus_d12(z: Array) -> tuple[Array, Array]:
    """(phi', phi'') of softplus sharing sigmoid(z): bit for bit _sigmoid and _sigmoid_d1."""
    s = _sigmoid(z)
    return s, s * _sigmoid(-np.asarray(z))


def _gelu_d12(z: Array) -> tuple[Array, Array]:
    """(phi', phi'') of gelu sharing the normal density: bit for bit _gelu_d1 and _gelu_d2."""
    p = _phi(z)
    return _Phi(z) + z * p, p * (2.0 - z * z)


def _erf_d12(z: Array) -> tuple[Array, Array]:
    """(phi', phi'') of erf sharing phi': bit for bit _erf_d1 and _erf_d2."""
    d1 = _erf_d1(z)
    return d1, -2.0 * z * d1


# phi' and phi'' evaluated together, for the activations whose two share work
_JOINT: dict[str, tuple[Callable, Callable, Callable[[Array], tuple[Array, Array]]]] = {
    "tanh": (_tanh_d1, _tanh_d2, _tanh_d12),
    "sigmoid": (_sigmoid_d1, _sigmoid_d2, _sigmoid_d12),
    "softplus": (_sigmoid, _sigmoid_d1, _softplus_d12),
    "gelu": (_gelu_d1, _gelu_d2, _gelu_d12),
    "erf": (_erf_d1, _erf_d2, _erf_d12),
}
