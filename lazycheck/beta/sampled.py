"""Sampled lower bounds on beta(R): the largest ratio ||J_w - J_0|| / ||w - w0|| found.

The search (measured on every sample and the scaling benchmark's specs, see the README's
"Benchmarks"): the worst direction of the derivative of J at w0 (an alternating Lanczos search,
below), a radius scan along it, then projected gradient ascent on the ratio. Random directions
never raised the final value on any of them, so they are drawn only when the scan along the
worst direction finds nothing (``samples`` of them, as starting points for the ascent).

With one hidden layer the same steps run unit by unit instead
(:mod:`lazycheck.beta.unit_search`): some unit's part of a move always does at least as well
as the move (:mod:`lazycheck.beta.units`), so the sup over the ball is the best unit's, and
each unit's problem has k + 1 parameters. The whole-network search ended in one unit's local
maximum; the unit search compares every unit. Side by side on the same balls (every
one-hidden-layer sample and the scaling benchmark's cases), it found the same value or a
higher one on each: +1.6e-7 to +1.9e-4 (relative), and +20.5% on ``iris`` (3.7814 -> 4.5565),
in 2x to 10x less time (docs/benchmarks.md, round 9). It is a search too, not a maximum: on
24 random networks with n p above 2e5 it ended below the whole-network search on 6 (by up to
28%) and above it on 15 (by up to 49%); on 60 smaller ones, below on 5 with 16 candidates and
on none with the small layer's 64 candidates and random starts. So up to n p =
:data:`WHOLE_TOO_MAX_NP` (milliseconds) the whole-network search runs as well, on the ball the
unit search chose, and the better point is kept. Each round records the best move
found at its ratio computed as below, so the value stays attained.

A lower bound of the true constant: an alpha computed from it is optimistic (docs/theory.md,
item 4).

Every recorded ratio is a value attained at a recorded point, computed one of two ways:

* ``dense`` (small n): sqrt of the top eigenvalue of the difference kernel
  (J_w - J_0)(J_w - J_0)^T, formed without J and without cancellation (exact to rounding);
* ``lanczos`` (large n, or when the n x n kernel does not fit the memory limit): Lanczos
  (:mod:`lazycheck.numerics.lanczos`, which stops as soon as it has converged) on the operator
  a -> (J_w - J_0)(J_w - J_0)^T a, one JVP and one VJP at each of w and w0 per product
  (O(n p), no n x n matrix), to relative residual :data:`LANCZOS_TOL`, warm-started from the
  previous point's singular vector. The value recorded is ||(J_w - J_0)^T x|| for the final
  unit Ritz vector x: attained by x, so a true lower bound of ||J_w - J_0|| whatever the
  convergence.

The worst direction: max over unit h of ||dJ[h]|| equals max over unit a, h of
sum_i a_i h^T H_i h (H_i the Hessian of f(x_i, .), symmetric), i.e. max over unit a of the
largest |eigenvalue| of H(a) = sum_i a_i H_i. The search alternates a <- the top left singular
vector of dJ[h] (by central differences at w0 +/- eps h; by Lanczos to the loose
:data:`STEER_TOL` on the large-n route, warm-started) and h <- the eigenvector of H(a) of
largest magnitude, by Lanczos (:func:`lazycheck.numerics.lanczos.top_eigenpair`, ``which="LM"``) on
Hessian-vector products, started from h. The products are exact where the model provides them
(``Linearization.hvp``: the built-in MLP, :mod:`lazycheck.models.mlp_second`, about 3x
cheaper than differencing on a wide network), else central differences of a VJP at
w0 +/- eps v; the ascent's gradient uses them the same way. Until issue 9 the h-step was one
power step, h <- H(a) b with b the right singular vector, which never converged in its 30
iterations on a wide network (the power method on H(a)^2, whose top eigenvalues cluster), and
the ascent had to climb the rest. Measured on ``wide_tanh.toml`` (width 2000, one BLAS
thread; forward/backward passes counted, the final beta after the ascent):

======  ===========================  ===========================  =======================
n       power iteration (before)     alternating Lanczos          and exact products
======  ===========================  ===========================  =======================
100     171 passes, beta 0.029758    102 passes, beta 0.030229    26 passes, same beta
400     169 passes, beta 0.052692    91 passes, beta 0.052700     27 passes, same beta
1600    146 passes, beta 0.096649    105 passes, beta 0.096759    33 passes, same beta
======  ===========================  ===========================  =======================

(4.99 s -> 2.03 s at n = 400 for the alternation, the machine loaded; wall times with the exact
products are in the README's benchmarks.) On the samples the alternation alone
ended in a lower local maximum on one of eight (``two_layer_tanh``: 0.0985 against 0.1049),
and higher on ``uncentered`` (1.863 against 1.677); so where J is small
(n p <= :data:`BOTH_SEARCHES_MAX_NP`, milliseconds) the power iteration runs as well from the
same start and the better direction is kept: every sample's beta is then the old one or
higher, but for ``numpy_model`` at -4e-5 relative (0.1052097 against 0.1052136: where the
ascent stopped).
The ascent stops when an iteration raises the ratio by less than :data:`ASCENT_TOL`. (SS-HOPM,
a <- (h^T H_i h)_i without a singular value problem, was tried: cheaper per step, but it
settled on directions 6-16% worse on two samples.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lazycheck.beta.estimate import BetaEstimate
from lazycheck.beta.estimate import radius_consistent as _consistent
from lazycheck.beta.unit_search import UnitSearch, change_along
from lazycheck.beta.units import UnitSplit
from lazycheck.models.base import Linearization, Model
from lazycheck.numerics.spectrum import sym_eig, sym_eigvals

__all__ = ["LANCZOS_TOL", "critical_radius", "jacobian_change", "sampled_beta"]

Array = np.ndarray
#: relative residual tolerance of the Lanczos norms: the eigenvalue sigma^2 is then accurate to
#: about the tolerance squared where the top eigenvalue is separated, and the value recorded is
#: attained whatever the convergence (module docstring)
LANCZOS_TOL = 1e-6
#: with one hidden layer, up to this many Jacobian entries n p the whole network's search runs
#: too, on the ball the unit search chose, and the better point is kept: it costs milliseconds
#: there, and the unit search, a better search on the samples and the scaling benchmark's
#: cases, ended below it on random networks (module docstring)
WHOLE_TOO_MAX_NP = 200_000
#: the worst-direction searches stop when their value changes by less than this (relative)
POWER_TOL = 1e-4
#: Lanczos tolerance of the singular pair that steers the searches (their direction
#: only: the values recorded as ratios are computed to :data:`LANCZOS_TOL`)
STEER_TOL = 1e-3
#: the ascent stops when an iteration raises the ratio by less than this (relative); measured
#: on wide_tanh at n = 400, the 20 iterations past that point added 1.5e-4 together
ASCENT_TOL = 1e-4
#: the alternating search's Lanczos on sum_i a_i H_i: residual tolerance (relative) and the
#: most Hessian-vector products per alternation
HESSIAN_LANCZOS_TOL = 1e-2
HESSIAN_LANCZOS_MAX = 40
#: up to this many Jacobian entries n p the power iteration runs too (it costs milliseconds
#: there), and the better direction is kept: on one sample of eight it found a better one
BOTH_SEARCHES_MAX_NP = 1_000_000
#: the radius scan along the worst direction, as fractions of R, both signs
SCAN_FRACTIONS = (0.01, 0.1, 0.3, 1.0)
#: the scan for a smooth model: R alone. Measured on every smooth sample and on wide_tanh at
#: n = 100 and 400, the final value is the same to the last digit with the scan at R alone
#: (the ascent starts from the best scanned point, which was the one at R every time); the
#: smaller radii matter for a non-smooth model, where the ratio grows as the radius shrinks
#: near a kink (relu sample: 1.386 with them, 0.132 without)
SMOOTH_SCAN_FRACTIONS = (1.0,)
#: above this n the norms are computed by Lanczos (the dense route costs n^2 (width) + n^3 a
#: point, Lanczos a few O(n p) products; measured on wide_tanh: dense faster at n = 100,
#: Lanczos 2x faster at n = 200 and 1.4x at n = 400)
DENSE_MAX_N = 150


def jacobian_change(
    model: Model, X: Array, lin0: Linearization, w: Array, method: str = "auto"
) -> float:
    """||J_w - J_0||_op: ``dense`` exact (to floating point) through the difference kernel, or
    ``lanczos`` a lower bound attained by a Ritz vector (module docstring); ``auto`` picks
    dense for n <= :data:`DENSE_MAX_N` when the kernel fits the memory limit."""
    return _JacobianNorm(model, X, lin0, method)(w)[0]


def sampled_beta(
    model: Model,
    X: Array,
    w0: Array,
    sigma_min: float,
    rng: np.random.Generator,
    radius: str | float = "auto",
    samples: int = 48,
    iterations: int = 30,
    progress: Callable[[float], None] | None = None,
) -> BetaEstimate:
    """A sampled lower bound on beta(R) (see the module docstring for the search).

    ``radius = "auto"`` grows R until it is consistent with the bound found
    (R >= sigma_min / (2 beta)); at most five rounds. ``samples``: random directions tried
    when the scan along the worst direction finds no change of J. ``progress(fraction)`` is
    called as the search advances.
    """
    report = _forward(progress)
    search = _BetaSearch(model, X, w0, rng)
    how, total_iters, converged = _WHOLE, 0, True
    if search.units is not None:  # one hidden layer: the search unit by unit
        alone = search.lin0.f.shape[0] * w0.size > WHOLE_TOO_MAX_NP
        found = _by_unit(
            search, sigma_min, radius, iterations, report if alone else lambda f: report(0.2 * f)
        )
        if found is not None and alone:
            return found
        if found is not None:  # small: the whole network's search too, on the same ball
            radius, how = found.radius, f"{_UNITS}; and {_WHOLE} on the same ball"
            total_iters, converged = found.iterations, found.converged
            report = _from(report, 0.2)
    h, beta_dir, pit, conv = search.worst_direction(iterations, report)
    total_iters, converged = total_iters + pit, converged and conv

    def on_ball(R: float) -> tuple[int, bool]:
        search.scan(h, R)
        if search.best_ratio(R) == 0:  # the worst direction found nothing: try at random
            search.random_directions(R, samples)
        return search.ascend(R, iterations, lambda k: report(0.3 + 0.7 * k / iterations))

    rounds = _rounds(search, *_first_radius(radius, beta_dir, sigma_min), sigma_min, on_ball)
    assert rounds is not None
    R, its, conv = rounds
    report(1.0)
    return _estimate(search, R, sigma_min, total_iters + its, converged and conv, how)


def critical_radius(
    model: Model,
    X: Array,
    lin0: Linearization,
    w0: Array,
    direction: Array,
    target: float,
    s_max: float,
    progress: Callable[[float], None] | None = None,
    s_min: float = 0.0,
) -> float:
    """The smallest s in (0, s_max] with ||J_{w0 + s h} - J_0|| = target along the unit
    direction h (a scan on a geometric grid of ten points a decade from s_max 1e-6, then
    Brent's method); inf if not reached. ``s_min``: a radius below which the norm is known to
    stay under the target (from a certified beta: beta R < target on the ball of radius R), where
    the scan starts instead. ``progress(fraction)``: the fraction of the grid scanned."""
    from lazycheck.numerics.roots import brent_root

    h = direction / np.linalg.norm(direction)
    norm = _change_along(model, X, lin0, w0, h)

    known = {0.0: -target}  # J_{w0} - J_0 = 0; every value is computed once, so Brent's
    # method sees at the bracket's ends the signs the scan saw (a Lanczos norm warm-started
    # from another point's vector can differ in its last bits between two calls)

    def gap(s: float) -> float:
        if s not in known:
            known[s] = norm(s) - target
        return known[s]

    start = min(max(1e-6 * s_max, s_min), s_max)
    decades = math.log10(s_max / start)
    grid = np.geomspace(start, s_max, max(2, math.ceil(10 * decades) + 1))
    lo = 0.0
    for i, s in enumerate(grid.tolist()):
        if progress is not None:
            progress(i / grid.size)
        if gap(s) >= 0:
            return float(brent_root(gap, lo, s, xtol=1e-12 * s, rtol=1e-12))
        lo = s
    return math.inf


# ----------------------------------------------------------------------------- helpers

_WHOLE = "power iteration on dJ at w0, radius scan, projected ascent"
_UNITS = (
    "unit by unit (one hidden layer): the units' worst directions of dJ at w0, projected "
    "ascent in the best units"
)


def _change_along(
    model: Model, X: Array, lin0: Linearization, w0: Array, h: Array
) -> Callable[[float], float]:
    """s -> ||J_{w0 + s h} - J_0||: unit-wise where h moves one unit of a one-hidden-layer MLP
    (an n x (k + 1) matrix, :func:`lazycheck.beta.unit_search.change_along`), else by
    :class:`_JacobianNorm`."""
    split = UnitSplit.of(model, X, w0)
    unit = split.unit_of(h) if split is not None else None
    if split is not None and unit is not None:
        return change_along(split, unit, h[split.index[unit]])
    norm = _JacobianNorm(model, X, lin0)
    return lambda s: norm(w0 + s * h)[0]


def _forward(progress: Callable[[float], None] | None) -> Callable[[float], None]:
    """``progress`` told only fractions above the last one told (the searches' stages and
    radius rounds each count from their own start)."""
    if progress is None:
        return lambda _f: None
    told = [0.0]

    def report(fraction: float) -> None:
        if fraction > told[0] or fraction == 1.0:
            told[0] = max(told[0], fraction)
            progress(fraction)

    return report


def _from(report: Callable[[float], None], start: float) -> Callable[[float], None]:
    """``report`` for the rest of a search that has done ``start`` of its work."""
    return lambda f: report(start + (1.0 - start) * f)


def _first_radius(radius: str | float, beta_dir: float, sigma_min: float) -> tuple[float, bool]:
    """The first round's radius (sigma_min / (2 beta) from the worst direction's value for
    ``auto``) and whether it is fixed."""
    if isinstance(radius, str):
        return (sigma_min / (2.0 * beta_dir) if beta_dir > 0 and sigma_min > 0 else 1.0), False
    return float(radius), True


def _by_unit(
    search: _BetaSearch,
    sigma_min: float,
    radius: str | float,
    iterations: int,
    report: Callable[[float], None],
) -> BetaEstimate | None:
    """The search of a one-hidden-layer MLP, unit by unit (:mod:`lazycheck.beta.unit_search`):
    each round records the best move found in the ball at its ratio computed as every other
    point's. None when no unit's move changes J (the whole-network search then runs)."""
    assert search.units is not None
    units = UnitSearch(search.units, search.rng, iterations)
    report(0.3)
    _h, beta_dir = units.worst_direction()
    split = search.units

    def on_ball(R: float) -> tuple[int, bool] | None:
        move, used, done = units.best_move(R, iterations)
        if move.ratio <= 0:
            return None
        search.ratio(split.embed(move.unit, move.part))
        return used, done

    rounds = _rounds(search, *_first_radius(radius, beta_dir, sigma_min), sigma_min, on_ball)
    if rounds is None:
        return None
    R, steps, converged = rounds  # (the alternation only starts the ascent: its steps count)
    report(1.0)
    return _estimate(search, R, sigma_min, units.steps + steps, converged, _UNITS)


def _rounds(
    search: _BetaSearch,
    R: float,
    fixed: bool,
    sigma_min: float,
    on_ball: Callable[[float], tuple[int, bool] | None],
) -> tuple[float, int, bool] | None:
    """Up to five rounds of ``on_ball(R)`` (a search of the ball of radius R: its steps and
    whether it converged; None to give up), each followed, unless R is fixed, by R <-
    sigma_min / (2 beta) where the best ratio found says R < B. The last R, with the steps
    and convergence of all rounds."""
    steps, converged = 0, True
    for _round in range(5):
        found = on_ball(R)
        if found is None:
            return None
        steps, converged = steps + found[0], converged and found[1]
        best = search.best_ratio(R)
        if fixed or best <= 0 or sigma_min <= 0 or sigma_min / (2.0 * best) <= R:
            break
        R = sigma_min / (2.0 * best)
    return R, steps, converged


def _estimate(
    search: _BetaSearch, R: float, sigma_min: float, iterations: int, converged: bool, how: str
) -> BetaEstimate:
    best = search.best_ratio(R)
    consistent = _consistent(R, best, sigma_min) if best > 0 else None
    norms = "the difference kernel" if search.norm.method == "dense" else "Lanczos"
    points = f"{search.count} point" + ("s" if search.count != 1 else "")
    msg = (
        f"max of ||J_w - J_0|| / ||w - w0|| over {points} in the ball of radius "
        f"{R:.4g} (norms by {norms}); a lower bound (an alpha from it is optimistic)"
    )
    if consistent is False:
        msg += "; R < B = sigma_min/(2 beta): the radius is smaller than the theorem needs"
    return BetaEstimate(
        best,
        "sampled lower bound",
        R,
        consistent,
        how,
        msg,
        samples=search.count,
        iterations=iterations,
        converged=converged,
        direction=search.best_direction(R),
    )


class _JacobianNorm:
    """||J_w - J_0|| with its top left singular vector: dense or Lanczos (module docstring).

    Returns (value, unit left singular vector a, linearization at w); Lanczos runs start from
    the previous call's vector.
    """

    def __init__(self, model: Model, X: Array, lin0: Linearization, method: str = "auto") -> None:
        from lazycheck.numerics.spectrum import kernel_bytes
        from lazycheck.resources import fits

        self.model, self.X, self.lin0 = model, X, lin0
        n = int(lin0.f.shape[0])
        if method == "auto":
            method = "dense" if n <= DENSE_MAX_N and fits(kernel_bytes(n)) else "lanczos"
        if method not in ("dense", "lanczos"):
            raise ValueError(f"unknown method {method!r}; use auto, dense or lanczos")
        self.method = method
        self.warm: Array | None = None

    def __call__(self, w: Array, vector: bool = False) -> tuple[float, Array | None, Linearization]:
        lin = self.model.linearize(w, self.X)
        if self.method == "dense" and not vector:
            D = lin.difference_kernel(self.lin0)
            return math.sqrt(max(float(sym_eigvals(D)[-1]), 0.0)), None, lin
        return (*self.top_pair(lin, self.lin0), lin)

    def top_pair(
        self, lin: Linearization, lin0: Linearization, tol: float = LANCZOS_TOL
    ) -> tuple[float, Array]:
        """||J_lin - J_lin0|| and its unit left singular vector, by the chosen method (``tol``:
        the Lanczos residual tolerance)."""
        if self.method == "dense":
            lam, vec = sym_eig(lin.difference_kernel(lin0))
            return math.sqrt(max(float(lam[-1]), 0.0)), vec[:, -1]
        return self._lanczos(lin, lin0, tol)

    def _lanczos(
        self, lin: Linearization, lin0: Linearization, tol: float = LANCZOS_TOL
    ) -> tuple[float, Array]:
        from lazycheck.numerics.spectrum import difference_norm

        n = int(lin0.f.shape[0])
        v0 = self.warm if self.warm is not None else np.ones(n) / math.sqrt(n)
        value, self.warm = difference_norm(lin, lin0, v0, tol)
        return value, self.warm


class _BetaSearch:
    """Keeps every evaluated point (distance, ratio, direction) of a beta search."""

    def __init__(self, model: Model, X: Array, w0: Array, rng: np.random.Generator) -> None:
        self.model, self.X, self.w0, self.rng = model, X, w0, rng
        self.lin0 = model.linearize(w0, X)
        self.norm = _JacobianNorm(model, X, self.lin0)
        self.points: list[tuple[float, float, Array]] = []
        scale = float(np.linalg.norm(w0)) / math.sqrt(max(w0.size, 1))
        self.eps = 1e-5 * max(scale, 1e-3)
        self._last: tuple[Array, float, Array | None, Linearization] | None = None
        self.ascending = False  # trials of the ascent keep their singular vector
        self.units = UnitSplit.of(model, X, w0)  # one hidden layer: the split by unit

    @property
    def count(self) -> int:
        return len(self.points)

    def ratio(self, d: Array) -> float:
        """||J_{w0+d} - J_0|| / ||d||, recorded (the evaluation is kept for the ascent)."""
        dist = float(np.linalg.norm(d))
        sig, a, lin = self.norm(self.w0 + d, vector=self.ascending or self.norm.method != "dense")
        self._last = (d, sig, a, lin)
        r = sig / dist
        self.points.append((dist, r, d / dist))
        return r

    def best_point(self, R: float) -> tuple[float, float, Array] | None:
        """(ratio, distance, unit direction) of the first point with the largest ratio within
        radius R; None when there is none."""
        cand = [(r, dist, h) for dist, r, h in self.points if dist <= R * (1 + 1e-12)]
        return max(cand, key=lambda t: t[0]) if cand else None

    def best_ratio(self, R: float) -> float:
        best = self.best_point(R)
        return best[0] if best is not None else 0.0

    def best_direction(self, R: float) -> Array | None:
        best = self.best_point(R)
        return best[2] if best is not None else None

    def worst_direction(
        self, iterations: int, report: Callable[[float], None]
    ) -> tuple[Array, float, int, bool]:
        """A unit h with large ||dJ_{w0}[h]||, and that value: the alternating Lanczos search
        (:meth:`_alternate`) and, for a small J (n p <= :data:`BOTH_SEARCHES_MAX_NP`), the
        power iteration (:meth:`_power`) as well, both from the same random start; the better
        of the two is kept (module docstring)."""
        h0 = self.rng.standard_normal(self.w0.size)
        h0 /= np.linalg.norm(h0)
        h, val, its, conv = self._alternate(h0, iterations, report)
        if self.lin0.f.shape[0] * self.w0.size <= BOTH_SEARCHES_MAX_NP:
            hp, vp, itp, convp = self._power(h0, iterations, report)
            its += itp
            if vp > val:
                h, val, conv = hp, vp, convp
        return h, val, its, conv

    def _alternate(
        self, h: Array, iterations: int, report: Callable[[float], None]
    ) -> tuple[Array, float, int, bool]:
        """max over unit a, h of sum_i a_i h^T H_i h by alternation: a <- the top left
        singular vector of dJ[h] (central differences at w0 +/- eps h, to :data:`STEER_TOL`),
        then h <- the eigenvector of sum_i a_i H_i of largest magnitude by Lanczos on
        Hessian-vector products (:meth:`_hvp`), started from h, to
        :data:`HESSIAN_LANCZOS_TOL`. Stops when ||dJ[h]|| changes by less than
        :data:`POWER_TOL`; returns the last h measured and its ||dJ[h]||."""
        from lazycheck.numerics.lanczos import top_eigenpair

        val = 0.0
        for k in range(1, iterations + 1):
            new, a, _lp, _lm = self._steer(h)
            report(0.3 * k / iterations)
            if new == 0 or abs(new - val) <= POWER_TOL * new:
                return h, new, k, True
            val = new
            if k == iterations:
                break
            pair = top_eigenpair(
                lambda v, a=a: self._hvp(a, v),
                h,
                HESSIAN_LANCZOS_TOL,
                maxiter=HESSIAN_LANCZOS_MAX,
                which="LM",
            )
            if pair.value == 0:
                return h, val, k, True
            h = pair.vector
        return h, val, iterations, False

    def _power(
        self, h: Array, iterations: int, report: Callable[[float], None]
    ) -> tuple[Array, float, int, bool]:
        """Alternating power iteration for max over unit h of ||dJ_{w0}[h]||: the top singular
        pair (a, b) of dJ[h] ~ (J(w0 + eps h) - J(w0 - eps h)) / 2 eps, then h <- H(a) b.
        The singular pair only steers the iteration: by Lanczos it is solved to the loose
        :data:`STEER_TOL`, warm-started from the previous iteration's vector."""
        val = 0.0
        for k in range(1, iterations + 1):
            new, a, lp, lm = self._steer(h)
            b = (lp.vjp(a) - lm.vjp(a)) / (2 * self.eps)
            nb = np.linalg.norm(b)
            if nb == 0:
                return h, 0.0, k, True
            g = self._hvp(a, b / nb)
            ng = np.linalg.norm(g)
            report(0.3 * k / iterations)
            if ng == 0:
                return h, new, k, True
            h = g / ng
            if abs(new - val) <= POWER_TOL * max(new, 1e-300):
                return h, new, k, True
            val = new
        return h, val, iterations, False

    def _steer(self, h: Array) -> tuple[float, Array, Linearization, Linearization]:
        """||dJ[h]|| and its top left singular vector a, dJ[h] by central differences at
        w0 +/- eps h (to :data:`STEER_TOL` on the Lanczos route), with both linearizations."""
        lp = self.model.linearize(self.w0 + self.eps * h, self.X)
        lm = self.model.linearize(self.w0 - self.eps * h, self.X)
        value, a = self.norm.top_pair(lp, lm, tol=STEER_TOL)
        return value / (2 * self.eps), a, lp, lm

    def _hvp(
        self, a: Array, b: Array, lin: Linearization | None = None, d: Array | None = None
    ) -> Array:
        """sum_i a_i H_i b at w0 + d (``lin`` its linearization; w0 by default): exact where
        the model provides it (the built-in MLP), else by central differences of J^T a."""
        exact = (self.lin0 if lin is None else lin).hvp(a, b)
        if exact is not None:
            return exact
        w = self.w0 if d is None else self.w0 + d
        gp = self.model.linearize(w + self.eps * b, self.X).vjp(a)
        gm = self.model.linearize(w - self.eps * b, self.X).vjp(a)
        return (gp - gm) / (2 * self.eps)

    def scan(self, h: Array, R: float) -> None:
        fractions = SMOOTH_SCAN_FRACTIONS if self.model.smooth else SCAN_FRACTIONS
        for s in R * np.asarray(fractions):
            self.ratio(s * h)
            self.ratio(-s * h)

    def random_directions(self, R: float, samples: int) -> None:
        for _ in range(samples):
            d = self.rng.standard_normal(self.w0.size)
            d *= R * self.rng.uniform(0.05, 1.0) ** (1.0 / 2) / np.linalg.norm(d)
            self.ratio(d)

    def ascend(self, R: float, iterations: int, report: Callable[[int], None]) -> tuple[int, bool]:
        """Projected gradient ascent on the ratio from the best point within radius R."""
        best = self.best_point(R)
        if best is None:
            return 0, True
        r, dist, h = best
        d = dist * h
        step = 0.25 * R
        self.ascending = True
        try:
            return self._ascend_from(d, r, R, iterations, step, report)
        finally:
            self.ascending = False

    def _ascend_from(
        self, d: Array, r: float, R: float, iterations: int, step: float, report: Callable
    ) -> tuple[int, bool]:
        gain = 0.0
        for k in range(1, iterations + 1):
            report(k)
            grad = self._ratio_gradient(d)
            if grad is None:
                return k, True
            improved = False
            while step > 1e-8 * R:
                trial = d + step * grad
                tn = float(np.linalg.norm(trial))
                if tn > R:
                    trial *= R / tn
                rt = self.ratio(trial)
                if rt > r * (1 + 1e-9):
                    gain = rt - r
                    d, r, improved = trial, rt, True
                    step *= 1.5
                    break
                step *= 0.5
            if not improved or gain <= ASCENT_TOL * r:
                return k, True
        return iterations, False

    def _ratio_gradient(self, d: Array) -> Array | None:
        """The unit gradient of ||J_{w0+d} - J_0|| / ||d|| at d (None where it vanishes); the
        norm and its singular vectors come from the last evaluation when it was at d."""
        last = self._last
        if last is not None and last[0] is d and last[2] is not None:
            _d, sig, a, lin = last
        else:
            sig, a, lin = self.norm(self.w0 + d, vector=True)
        if sig == 0 or a is None:
            return None
        b = (lin.vjp(a) - self.lin0.vjp(a)) / sig  # right singular vector of J_w - J_0
        grad_sig = self._hvp(a, b, lin, d)  # sum_i a_i H_i(w) b
        nd = float(np.linalg.norm(d))
        grad = grad_sig / nd - sig * d / nd**3
        gn = float(np.linalg.norm(grad))
        return grad / gn if gn > 0 else None
