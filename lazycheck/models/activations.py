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
        fused: phi and phi' in one pass over blocks (:meth:`fn_d1`), where they share work.
        even: |phi'| and |phi''| are even in z, |phi'| falls as |z| grows (d1_critical = (0,))
            and |phi''| rises from 0 at z = 0 to its peak at d2_critical's positive point and
            falls beyond (tanh, sigmoid, erf): what :meth:`interval_sup_maxima` needs.
    """

    name: str
    fn: Callable[[Array], Array]
    d1: Callable[[Array], Array]
    d2: Callable[[Array], Array]
    smooth: bool
    d1_critical: tuple[float, ...] | None = ()
    d2_critical: tuple[float, ...] | None = ()
    fused: Callable[[Array, Array, Array, Array], None] | None = None
    even: bool = False

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

    def d1_d2(self, z: Array) -> tuple[Array, Array]:
        """``(phi'(z), phi''(z))``, sharing their work where the two do (tanh, sigmoid,
        softplus, gelu, erf): bit for bit ``(d1(z), d2(z))``."""
        joint = _JOINT.get(self.name)
        if joint is not None and joint[0] is self.d1 and joint[1] is self.d2:
            return joint[2](z)
        return self.d1(z), self.d2(z)

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
                (a1, a2), (b1, b2) = self.d1_d2(lo_c), self.d1_d2(hi_c)
                ends1, ends2 = _abs_max(a1, b1), _abs_max(a2, b2)  # fresh arrays: in place
            else:
                a1, a2, b1, b2 = self.d1(lo_c), self.d2(lo_c), self.d1(hi_c), self.d2(hi_c)
                ends1 = np.maximum(np.abs(a1), np.abs(b1))
                ends2 = np.maximum(np.abs(a2), np.abs(b2))
        return (
            _finish(self.d1, ends1, lo, hi, unknown, self.d1_critical, 0.0),
            _finish(self.d2, ends2, lo, hi, unknown, self.d2_critical, 0.5 * math.pi),
        )

    def interval_sup_maxima(self, z: Array, spread: Array) -> tuple[Array, Array, Array] | None:
        """Maxima of :meth:`sup_abs_d1_d2` over the intervals [z - spread, z + spread] (n x m
        arrays, spread >= 0): (max over axis 1 of sup |phi'|, max over axis 0 of sup |phi'|,
        max over axis 0 of sup |phi''|), without phi' or phi'' at every interval.

        For an :attr:`even` activation; None otherwise, or where a centre or a spread is not
        finite (:meth:`sup_abs_d1_d2` gives those their infinite or global sups). In |z| an
        interval is [near, far] = [max(|z| - spread, 0), |z| + spread]. |phi'| falls with |z|,
        so its sup over a union of intervals is phi' at the least near end; |phi''| rises to its
        peak c and falls beyond, so its sup over a union is the peak if an interval holds c,
        else the larger of |phi''| at the greatest far end below c and at the least near end
        above it. The intervals are reduced first (comparisons only) and phi', phi'' evaluated
        at n + 3m points. The ends are widened, the peaks taken and the values rounded up as
        :meth:`sup_abs_d1_d2` does it, so each maximum is its maximum to the last bit, except
        where ends of different intervals lie within an ulp of each other (the computed phi'
        need not fall between them) or within ~1e-8 of the peak of |phi''| (where the computed
        |phi''| is flat and may exceed its value at the peak): there within 2 ulps. An upper
        bound either way, as the extreme end itself is evaluated and rounded up.
        """
        if not self.even or not self.d1_critical or not self.d2_critical:
            return None
        ends = _interval_ends(z, spread, float(self.d2_critical[-1]))
        if ends is None:
            return None
        near_min, far_min, ends2, holds_peak = ends
        n, m = z.shape
        with np.errstate(all="ignore"):
            # each maximum is also taken at ends next in line (the least far end for phi'; the
            # other side's ends for phi''): values sup_abs_d1_d2 takes too, which catch where
            # the computed function does not fall over an interval a few ulps wide
            s1 = np.maximum(np.abs(self.d1(_clip(near_min))), np.abs(self.d1(_clip(far_min))))
            ends2 = np.abs(self.d2(_clip(ends2.ravel()))).reshape(4, m)
        top1, (peak1,) = _peaks(self.d1, tuple(self.d1_critical))
        top2, peaks2 = _peaks(self.d2, tuple(self.d2_critical))
        np.maximum(s1, peak1, out=s1, where=near_min <= 0.0)
        s2 = ends2.max(axis=0)
        np.maximum(s2, max(peaks2), out=s2, where=holds_peak)
        for s, top in ((s1, top1), (s2, top2)):
            s *= 1.0 + 16 * _EPS
            s += _ABS_FLOOR * top
        return s1[:n], s1[n:], s2

    def sup_maxima(self, z: Array, spread: Array) -> tuple[Array, Array, Array]:
        """The maxima of :meth:`interval_sup_maxima` for any activation: by reduction where it
        applies, else from :meth:`sup_abs_d1_d2` at every interval (the same values)."""
        reduced = self.interval_sup_maxima(z, spread)
        if reduced is not None:
            return reduced
        s1, s2 = self.sup_abs_d1_d2(z - spread, z + spread)
        return s1.max(axis=1), s1.max(axis=0), s2.max(axis=0)

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


def _interval_ends(z: Array, spread: Array, c: float) -> tuple[Array, Array, Array, Array] | None:
    """For :meth:`Activation.interval_sup_maxima`: the intervals [near, far] in |z|, widened
    as :func:`_widen` widens them, reduced. Returns the least near and far ends per row then
    per column (n + m each), the ends of each column's intervals next to c ((4, m): the
    greatest far and near ends below c, 0 if none; the least near and far ends above, or a
    number above 1e307 if none), and whether a column's interval holds c; None unless every
    |z| and spread is finite. The widening, x -> x -/+ 4 eps x with 4 eps = 2^-50 (an exact
    product), is monotone in x, so it is applied to the reduced ends and the tests against c
    compare the bare ends with the thresholds that are exactly equivalent
    (:func:`_widened_thresholds`). In blocks of about :data:`_SUP_BLOCK` intervals (a few rows
    of contiguous pieces), so the temporaries stay in cache; masks enter as products (a
    masked np.where is several times slower), which the finite ends make exact."""
    if not (np.isfinite(z).all() and np.isfinite(spread).all()):
        return None
    n, m = z.shape
    c_far, c_near = _widened_thresholds(c)
    row_near, row_far = np.full(n, np.inf), np.full(n, np.inf)
    col_near, col_far = np.full(m, np.inf), np.full(m, np.inf)
    ends = np.array([[0.0], [0.0], [np.inf], [np.inf]]).repeat(m, axis=1)
    outside = np.ones(m, dtype=bool)
    width = min(m, _SUP_BLOCK // 4)  # contiguous pieces of rows, a few rows a block
    height = max(1, _SUP_BLOCK // max(width, 1))
    for a, b, e, f in _blocks(n, m, height, width):
        zabs = np.abs(z[a:b, e:f])
        far = np.add(zabs, spread[a:b, e:f])
        near = np.subtract(zabs, spread[a:b, e:f], out=zabs)
        np.maximum(near, 0.0, out=near)
        np.minimum(row_near[a:b], near.min(axis=1), out=row_near[a:b])
        np.minimum(row_far[a:b], far.min(axis=1), out=row_far[a:b])
        np.minimum(col_near[e:f], near.min(axis=0), out=col_near[e:f])
        np.minimum(col_far[e:f], far.min(axis=0), out=col_far[e:f])
        left, not_right = far < c_far, near <= c_near
        tmp = far * left  # far where far < c, else 0 (= |phi''|'s zero: raises no bound)
        np.maximum(ends[0, e:f], tmp.max(axis=0), out=ends[0, e:f])
        np.multiply(near, left, out=tmp)
        np.maximum(ends[1, e:f], tmp.max(axis=0), out=ends[1, e:f])
        big = not_right * _NOT_ABOVE  # 0 where near > c: the ends above c unchanged
        np.add(big, near, out=tmp)
        np.minimum(ends[2, e:f], tmp.min(axis=0), out=ends[2, e:f])
        np.add(big, far, out=tmp)
        np.minimum(ends[3, e:f], tmp.min(axis=0), out=ends[3, e:f])
        np.logical_or(left, ~not_right, out=left)
        outside[e:f] &= left.all(axis=0)
    four_eps = 4 * _EPS
    near_min = np.concatenate([row_near, col_near])
    near_min -= near_min * four_eps
    far_min = np.concatenate([row_far, col_far])
    far_min += far_min * four_eps
    ends[[1, 2]] -= ends[[1, 2]] * four_eps
    ends[[0, 3]] += ends[[0, 3]] * four_eps
    return near_min, far_min, ends, ~outside


#: added to the near and far ends of the intervals not above c before the least is taken
_NOT_ABOVE = 1e308


@functools.lru_cache(maxsize=16)
def _widened_thresholds(c: float) -> tuple[float, float]:
    """(t_far, t_near) with, for every float x >= 0, x + 4 eps x < c (computed) exactly when
    x < t_far, and x - 4 eps x <= c exactly when x <= t_near: both maps are non-decreasing,
    so each threshold is found by stepping a float at a time from c / (1 +/- 4 eps)."""
    four_eps = 4 * _EPS

    def up(x: float) -> float:
        return x + x * four_eps

    def down(x: float) -> float:
        return x - x * four_eps

    t_far = c / (1 + four_eps)
    while up(t_far) >= c:  # the least x with up(x) >= c
        t_far = float(np.nextafter(t_far, 0.0))
    while up(t_far) < c:
        t_far = float(np.nextafter(t_far, np.inf))
    t_near = c / (1 - four_eps)
    while down(t_near) > c:  # the greatest x with down(x) <= c
        t_near = float(np.nextafter(t_near, 0.0))
    while down(float(np.nextafter(t_near, np.inf))) <= c:
        t_near = float(np.nextafter(t_near, np.inf))
    return t_far, t_near


def _blocks(n: int, m: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(row start, row end, column start, column end) of the blocks covering n x m."""
    return [
        (a, min(a + height, n), e, min(e + width, m))
        for a in range(0, n, height)
        for e in range(0, m, width)
    ]


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
    "tanh": Activation(
        "tanh", np.tanh, _tanh_d1, _tanh_d2, True, (0.0,), (-_T3, _T3), _tanh_fused, even=True
    ),
    "sigmoid": Activation(
        "sigmoid",
        _sigmoid,
        _sigmoid_d1,
        _sigmoid_d2,
        True,
        (0.0,),
        (-_S3, _S3),
        _sigmoid_fused,
        even=True,
    ),
    "softplus": Activation(
        "softplus", _softplus, _sigmoid, _sigmoid_d1, True, (), (0.0,), _softplus_fused
    ),
    "gelu": Activation(
        "gelu", _gelu, _gelu_d1, _gelu_d2, True, (-_SQRT2, _SQRT2), (-2.0, 0.0, 2.0), _gelu_fused
    ),
    "erf": Activation(
        "erf", _erf, _erf_d1, _erf_d2, True, (0.0,), (-1.0 / _SQRT2, 1.0 / _SQRT2), even=True
    ),
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
