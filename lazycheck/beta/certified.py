"""Certified upper bounds on beta(R) (derivation in ``docs/beta-certified.md``).

For fully-connected networks of any depth with a smooth activation, a bound on
sup ||sum_i a_i H_i(xi)|| over the ball, where H_i is the Hessian of f(x_i, .): neuron by
neuron for one hidden layer, through a forward-mode recursion of norm bounds for any depth (the
smaller of the two for one hidden layer). With ``radius = "auto"`` the smallest consistent
radius R = B(beta(R)) is found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lazycheck.beta.estimate import BetaEstimate
from lazycheck.beta.estimate import radius_consistent as _consistent
from lazycheck.models.base import Model
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

if TYPE_CHECKING:
    from lazycheck.models.activations import Activation
    from lazycheck.models.mlp import _Layer

__all__ = ["certified_beta", "certified_beta_auto", "jacobian_is_constant"]

Array = np.ndarray
_ROUNDING = 1.0 + 1e-12  # inflation covering floating-point rounding in a certified bound
_EPS = float(np.finfo(np.float64).eps)
_RadiusBound = Callable[[float], "float | None"]  # R -> certified bound on beta(R)
_LOG_XTOL = 2e-11  # Brent's tolerance on log R: the radius found is within 1e-10 relative


def certified_beta(model: Model, X: Array, w0: Array, radius: float) -> float | None:
    """A certified upper bound on beta(radius), or None where none is derived for this model.

    Available for MLPs of any depth with a smooth activation, also centered or in a symmetric
    pair: 0 without hidden layers (J constant), the smaller of the neuron-by-neuron bound and
    the layer recursion with one hidden layer, the layer recursion with two or more (see
    ``docs/beta-certified.md``). inf for a non-smooth activation, or where the bound is not
    computable in float64 (an upper bound that cannot be evaluated is inf, never nan);
    None for other models.
    """
    return _bound_on_radii(model, X, w0)(radius)


def jacobian_is_constant(model: Model) -> bool:
    """True when J_w does not depend on w by the model's structure (no hidden layer), so that
    beta = 0 exactly. Never decided from a computed number."""
    if isinstance(model, CenteredModel | SymmetricModel):
        return jacobian_is_constant(model.base)
    return isinstance(model, MLP) and model.depth == 0


def certified_beta_auto(
    model: Model,
    X: Array,
    w0: Array,
    sigma_min: float,
    radius: str | float = "auto",
    progress: Callable[[float], None] | None = None,
) -> BetaEstimate | None:
    """The certified bound on a stated ball. None when not available.

    ``radius == "auto"``: the smallest R with R >= sigma_min / (2 beta(R)) (Brent's method on
    log R, bracketed from a positive radius, so a bound that underflows at w0 cannot end the
    search). ``progress(fraction)``: called after the precomputation and each radius evaluated
    (the fraction counts them against the eight or nine a search usually takes).
    A number: that radius. ``sigma_min <= 0`` (rank J0 < n; pass 0 for any rank-deficient J0):
    the theorem gives no radius, so the bound is stated on the unit ball R = 1.
    Exact values come from the structure only: beta = 0 without a hidden layer, inf for a
    non-smooth activation.
    """
    if not model.smooth:
        return BetaEstimate(
            math.inf, "exact", math.inf, True, "structure of the model", "activation not smooth"
        )
    if jacobian_is_constant(model):
        return BetaEstimate(
            0.0,
            "exact",
            math.inf,
            True,
            "structure of the model",
            "J does not depend on w (no hidden layer)",
        )
    # radius-independent work once; each radius evaluated once (a search revisits its ends)
    bound = _remembered(_counted(_bound_on_radii(model, X, w0), progress))
    if not isinstance(radius, str):
        return _on_radius(bound, sigma_min, float(radius), "the given radius")
    if not sigma_min > 0:
        return _on_radius(
            bound, 0.0, 1.0, "the unit ball (sigma_min = 0: the theorem gives no radius)"
        )
    R = _self_consistent_radius(bound, sigma_min)
    if R is None:
        return None
    if not math.isfinite(R):
        return _on_radius(
            bound, sigma_min, float(np.finfo(np.float64).max), "the largest float radius"
        )
    return _on_radius(bound, sigma_min, R, "the self-consistent radius R = B")


#: radius evaluations a self-consistent search usually takes (bracket, Brent, checks: 8 on
#: every sample and wide_tanh at n = 400, 12 before the bracket from the fixed point)
_EXPECTED_EVALUATIONS = 9


def _counted(bound: _RadiusBound, progress: Callable[[float], None] | None) -> _RadiusBound:
    """``bound`` reporting progress: 0.2 for the precomputation, then each evaluation."""
    if progress is None:
        return bound
    progress(0.2)
    calls = [0]

    def counted(R: float) -> float | None:
        value = bound(R)
        calls[0] += 1
        progress(min(0.2 + 0.8 * calls[0] / _EXPECTED_EVALUATIONS, 0.99))
        return value

    return counted


def _on_radius(bound: _RadiusBound, sigma_min: float, R: float, what: str) -> BetaEstimate | None:
    beta = bound(R)
    if beta is None:
        return None
    consistent = _consistent(R, beta, sigma_min) if sigma_min > 0 else True
    msg = f"certified on {what}: ||w - w0|| <= R = {R:.4g}"
    if not consistent:
        msg += (
            f" < B = sigma_min/(2 beta) = {sigma_min / (2 * beta):.4g}: alpha_min is taken "
            "from B' <= R"
        )
    return BetaEstimate(
        beta,
        "certified upper bound",
        R,
        consistent,
        "Hessian bound over the ball (docs/beta-certified.md)",
        msg,
    )


def _self_consistent_radius(bound: _RadiusBound, sigma_min: float) -> float | None:
    """The least R with R beta(R) >= sigma_min / 2 (R beta(R) is increasing), to a relative
    1e-10, on log R between a bracket found from a positive start (:func:`_refine_radius`).
    Below a radius R that is above, the bracket's other end is tried just under
    half / beta(R): the least R is above it wherever beta is non-decreasing (as every bound
    here is), so the bracket is tight after one evaluation (halving takes over where it is
    not below). Each radius is evaluated once."""
    half = 0.5 * sigma_min
    bound = _remembered(bound)

    def above(R: float) -> bool:
        return _above(bound, half, R)

    b0 = bound(0.0)
    if b0 is None:
        return None
    R = half / b0 if 0 < b0 < math.inf else 1.0
    if not 0 < R < math.inf:
        R = 1.0
    lo, hi = 0.0, math.inf
    step_to_fixed_point = True  # the first step down goes to half / beta(R)
    for _ in range(4400):  # factors of 2 across the whole float range, both ways
        if above(R):
            hi = R
            if lo > 0 or R < 1e-300:
                break
            b = bound(R)  # remembered: the value above() just computed
            nxt = (1 - 1e-6) * half / b if b else 0.0  # strictly below where beta is monotone
            R = nxt if step_to_fixed_point and 0 < nxt < R else 0.5 * R
            step_to_fixed_point = False
        else:
            lo = R
            if math.isfinite(hi) or R > 1e300:
                break
            R *= 2.0
    if not math.isfinite(hi):
        return math.inf
    lo = max(lo, hi * 2.0**-1100)
    return _refine_radius(bound, half, lo, hi)


def _above(bound: _RadiusBound, half: float, R: float) -> bool:
    """R beta(R) >= half (False where the bound is not available)."""
    b = bound(R)
    return b is not None and R * b >= half


def _refine_radius(bound: _RadiusBound, half: float, lo: float, hi: float) -> float:
    """The least R in (lo, hi] with R beta(R) >= half, to a relative 1e-10: Brent's method on
    log R (R beta(R) is increasing and piecewise smooth, so it converges in a few evaluations
    where bisection needs about 33). Its last bracket is the answer where its two ends, both
    already evaluated, lie within 1e-10 with the upper one above and the lower one not (two
    evaluations fewer than checking points beside the root: 8 of 10 on ``wide_tanh`` at width
    1e5); else radii just above and below the root are checked, and plain bisection on log R
    takes over where that check fails."""
    from lazycheck.numerics.roots import brent_bracket

    def above(R: float) -> bool:
        return _above(bound, half, R)

    ends = {math.log(lo): lo, math.log(hi): hi} if lo > 0 else {}

    def excess(x: float) -> float:
        R = ends.get(x, math.exp(x))  # the bracket's own radii, already evaluated
        b = bound(R)
        if b is None or math.isnan(b):
            return -1.0
        return min(R * b / half - 1.0, 1e300)

    if lo > 0 and hi > lo * (1 + 1e-10):
        x, other = brent_bracket(excess, math.log(lo), math.log(hi), xtol=_LOG_XTOL, rtol=4 * _EPS)
        below, over = sorted((ends.get(x, math.exp(x)), ends.get(other, math.exp(other))))
        if below < over <= below * (1 + 1e-10) and above(over) and not above(below):
            return over  # Brent's last bracket, both ends evaluated: within 1e-10
        up, down = math.exp(x + 2 * _LOG_XTOL), math.exp(x - 2 * _LOG_XTOL)
        if lo < up < hi and above(up):
            hi = up
            if lo < down:
                if not above(down):  # (down, up] brackets the least R: within 1e-10
                    return hi
                hi = down  # the least R is lower still: bisection below
    for _ in range(200):
        if hi <= lo * (1 + 1e-10):
            break
        mid = math.sqrt(lo) * math.sqrt(hi)
        if above(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _remembered(bound: _RadiusBound) -> _RadiusBound:
    """``bound`` evaluating each radius once (a search revisits its bracket's ends); a bound
    that already remembers is returned as it is."""
    return bound if isinstance(bound, _Remembered) else _Remembered(bound)


class _Remembered:
    """A radius bound with its values kept by radius."""

    def __init__(self, bound: _RadiusBound) -> None:
        self.bound = bound
        self.seen: dict[float, float | None] = {}

    def __call__(self, R: float) -> float | None:
        if R not in self.seen:
            self.seen[R] = self.bound(R)
        return self.seen[R]


def _bound_on_radii(model: Model, X: Array, w0: Array) -> _RadiusBound:
    """R -> certified_beta(model, X, w0, R), with everything that does not depend on R (the
    forward pass at w0, the pre-activations and their rounding bounds, norms and operator norms
    of G and of the weights) computed once here, so that a bisection pays only the per-radius
    sweeps. Each value is the one the direct formula gives, bit for bit."""
    if not model.smooth:
        return lambda R: math.inf
    if isinstance(model, CenteredModel):
        return _bound_on_radii(model.base, X, w0)
    if isinstance(model, SymmetricModel):
        # J = [J_a, -J_b] / sqrt(2): ||J_w - J_0||^2 <= (beta_a^2 ||da||^2 + beta_b^2 ||db||^2) / 2
        q = model.base.n_params
        halves = [_bound_on_radii(model.base, X, w0[:q])]
        if not np.array_equal(w0[:q], w0[q:]):
            halves.append(_bound_on_radii(model.base, X, w0[q:]))

        def symmetric(R: float) -> float | None:
            values = [h(R) for h in halves]
            if any(v is None for v in values):
                return None
            return max(values) / math.sqrt(2.0)  # type: ignore[type-var]

        return symmetric
    own = getattr(model, "beta_bound", None)  # a model's own certified bound (protocol)
    if callable(own):

        def protocol(R: float) -> float | None:
            value = own(X, w0, R)
            return None if value is None else float(value)

        return protocol
    if isinstance(model, MLP):
        return _mlp_bound(model, X, w0)
    return lambda R: None


def _mlp_bound(model: MLP, X: Array, w0: Array) -> _RadiusBound:
    if model.depth == 0:
        return lambda R: 0.0
    _require_memory(model, X.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        deep_bound = _DeepBound(model, X, w0)
        two = _TwoLayerBound(model, X, w0) if model.depth == 1 else None

    def mlp(R: float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            deep = deep_bound(R)
            if two is not None:  # both are valid; neither dominates the other
                # the recursion's first layer bounded phi', phi'' on the very intervals the
                # neuron-by-neuron bound needs (same z0, rounding bounds and ||g_i||, bit for
                # bit): one evaluation of the sups serves both
                deep = min(two(R, deep_bound.first_sups(R)), deep)
        return math.inf if math.isnan(deep) else deep

    return mlp


def _two_layer_bound(model: MLP, X: Array, w0: Array, radius: float) -> float:
    """The neuron-by-neuron bound of :class:`_TwoLayerBound` on one radius."""
    return _TwoLayerBound(model, X, w0)(radius)


def _deep_bound(model: MLP, X: Array, w0: Array, radius: float) -> float:
    """The layer recursion of :class:`_DeepBound` on one radius."""
    return _DeepBound(model, X, w0)(radius)


class _TwoLayerBound:
    """sup over ||w - w0|| <= R of ||sum_i a_i H_i(w)|| for unit a, bounded neuron by neuron.

    Per hidden neuron j with output weight v_j and input weights theta_j = (W_j, b_j), the
    block of sum_i a_i H_i is [[0, u^T], [u, S]] with u = c2 sum_i a_i phi'(z_ij) g_i and
    S = c2 v_j sum_i a_i phi''(z_ij) g_i g_i^T, where g_i = (c1 x_i, c1b) = dz_ij/dtheta_j.
    ||u|| <= c2 ||G|| max_i |phi'|, ||S|| <= c2 |v_j| max_i |phi''| ||G||^2, and the norm of
    the block is at most s/2 + sqrt(s^2/4 + t^2) with s, t those two bounds. Over the ball,
    |v_j| <= |v_j0| + R and |z_ij - z_ij0| <= ||g_i|| R. Built once per (model, X, w0);
    calling it with R does the per-radius work only.
    """

    def __init__(self, model: MLP, X: Array, w0: Array) -> None:
        (W1, b1), (W2, _) = model.unpack(w0)
        l1, l2 = model.layers
        G = l1.c_w * X
        if model.bias:
            G = np.hstack([G, np.full((X.shape[0], 1), l1.c_b)])
        # ||g_i|| = ||(c1 x_i, c1b)||, written as the layer recursion writes it (the same bits,
        # so that both bounds share one evaluation of the sups: see :func:`_mlp_bound`)
        cb = l1.c_b if model.bias else 0.0
        self.gnorm = np.sqrt((l1.c_w * np.linalg.norm(X, axis=1)) ** 2 + cb**2)[:, None]
        self.G_op = float(np.linalg.norm(G, 2))
        self.z0, self.zerr = _preactivations(X, W1, b1, l1.c_w, l1.c_b)
        self.act = model.activation
        self.c2 = l2.c_w
        self.v0 = np.abs(W2[0])

    def __call__(self, radius: float, sups: tuple[Array, Array] | None = None) -> float:
        """The bound on ``radius``; ``sups``: the per-unit (max_i sup |phi'|, max_i sup |phi''|)
        over the same intervals when already computed (by the layer recursion)."""
        if sups is None:
            spread = self.gnorm * radius + self.zerr
            sups = self.act.sup_maxima(self.z0, spread)[1:]  # per unit, (m,) each
        d1, d2 = sups
        v = self.v0 + radius
        s = self.c2 * v * d2 * self.G_op**2
        t = self.c2 * d1 * self.G_op
        block = 0.5 * s + np.sqrt(0.25 * s * s + t * t)
        return float(block.max()) * _ROUNDING


class _DeepBound:
    """An upper bound on sup over ||xi - w0|| <= R, unit h of ||(h^T H_i(xi) h)_i||, depth >= 1.

    That sup equals sup over unit a of ||sum_i a_i H_i(xi)|| (a symmetric matrix's norm is the
    sup of its quadratic form), so it bounds beta(R). Forward-mode second directional derivatives,
    batched over the n samples (docs/beta-certified.md, "Deeper networks"): with eta_l the
    norm of h's block in weight layer l (|eta| = 1), each norm is bounded by a form in eta with
    non-negative coefficients,

        ||Zdot^l||_F <= p_l . eta,   max_i ||zdot_i^l|| <= q_l . eta,
        ||Zddot^l||_F <= eta^T S_l eta,
        p_l = g_l e_l + c_l rho_l p_(l-1)        (q_l: the same with gmax_l for g_l),
        S_l = c_l (d1 (e_l p^T + p e_l^T) + K (p q^T + q p^T) / 2 + rho_l S_(l-1)),

    p, q at l - 1, where over the ball g_l >= ||[c_l A^(l-1), c_b 1]||, gmax_l >= max_i of its
    row norms, rho_l >= ||W^l diag(u)||, d1 >= max u, K >= max_j ||W^l[:, j]|| sup |phi''| on
    unit j of layer l - 1 (u_j: sup |phi'| on that unit). The result is the sup of
    eta^T S_(L+1) eta over unit eta, lambda_max(S_(L+1)) as S_(L+1) is non-negative.
    The forward pass at w0 and every norm that does not involve R are computed once, in
    :class:`_DeepLayer`; calling the bound with R runs the recursion only.
    """

    def __init__(self, model: MLP, X: Array, w0: Array) -> None:
        A0 = np.asarray(X, dtype=np.float64)  # a^(l-1) at w0, n x fan_in
        self.n, self.depth = A0.shape[0], model.depth
        self.act = model.activation
        self._first: tuple[float, Array, Array] | None = None  # (R, u, d2u) of the last call
        self.layers: list[_DeepLayer] = []
        for idx, (layer, (W0, b0)) in enumerate(zip(model.layers, model.unpack(w0), strict=True)):
            last = idx == model.depth
            self.layers.append(_DeepLayer(layer, A0, W0, b0, self.act, first=idx == 0, last=last))
            if last:
                break
            A0 = self.layers[-1].A_next

    def first_sups(self, radius: float) -> tuple[Array, Array] | None:
        """The first hidden layer's per-unit (sup |phi'|, sup |phi''|) from the last call, when
        it was on ``radius`` (None otherwise)."""
        first = self._first
        return (first[1], first[2]) if first is not None and first[0] == float(radius) else None

    def __call__(self, radius: float) -> float:
        R = float(radius)
        k = self.depth + 1  # number of weight layers, the length of eta
        delta = np.zeros(self.n)  # delta_i >= ||a_i^(l-1)(xi) - a_i^(l-1)(w0)|| over the ball
        p = q = np.zeros(k)
        S = np.zeros((k, k))
        u = d2u = np.zeros(0)  # per-unit sup |phi'|, |phi''| of the previous hidden layer
        for idx, L in enumerate(self.layers):
            c = L.c
            g = L.G_op + c * float(np.linalg.norm(delta))
            anorm = L.anorm + delta  # >= ||a_i^(l-1)(xi)||
            rows = np.sqrt((c * anorm) ** 2 + L.cb**2)  # >= ||(c a_i^(l-1)(xi), c_b)||
            e = np.zeros(k)
            e[idx] = 1.0
            if idx == 0:
                p, q = g * e, float(rows.max()) * e
            else:
                rho = _opnorm(L.W * u) + R * float(u.max())
                kappa = float(((L.colnorm + R) * d2u).max())
                cross = float(u.max()) * (np.outer(e, p) + np.outer(p, e))
                curv = 0.5 * kappa * (np.outer(p, q) + np.outer(q, p))
                S = c * (cross + curv + rho * S)
                p = g * e + c * rho * p
                q = float(rows.max()) * e + c * rho * q
            if idx == self.depth:
                break
            delta, u, d2u = L.move(R, rows, delta, self.act)
            if idx == 0:
                self._first = (R, u, d2u)
        top = float(np.linalg.eigvalsh(0.5 * (S + S.T))[-1])
        return max(top, 0.0) * _ROUNDING


class _DeepLayer:
    """One weight layer of :class:`_DeepBound`: what does not depend on R, computed once."""

    def __init__(
        self,
        layer: _Layer,
        A0: Array,
        W0: Array,
        b0: Array | None,
        act: Activation,
        *,
        first: bool,
        last: bool,
    ) -> None:
        n = A0.shape[0]
        self.c = c = layer.c_w
        self.cb = cb = layer.c_b if layer.bias else 0.0
        G0 = c * A0
        if layer.bias:
            G0 = np.hstack([G0, np.full((n, 1), cb)])
        self.G_op = _opnorm(G0)
        self.anorm = np.linalg.norm(A0, axis=1)
        if not first:
            self.W = W0
            self.colnorm = np.linalg.norm(W0, axis=0)
        if last:
            return
        # pre-activations at w0 (computed, with a bound on their rounding error)
        self.z0, self.zerr = _preactivations(A0, W0, b0, c, cb)
        self.c_rownorm = c * np.linalg.norm(W0, axis=1)[None, :]
        self.c_op = c * _opnorm(W0)
        self.zerr_norm = np.linalg.norm(self.zerr, axis=1)
        self.A_next = act.fn(self.z0)
        # delta_i >= ||a_i(xi) - A0_i|| with A0 as computed: the move plus phi's rounding
        self.aerr = 4 * _EPS * np.abs(self.A_next) + 1e-300
        self.aerr_norm = np.linalg.norm(self.aerr, axis=1)
        # ||phi'(z0_i)||, by blocks of rows (no n x width temporary): :meth:`move`'s test
        self.d1_norm = np.concatenate(
            [np.linalg.norm(act.d1(self.z0[c]), axis=1) for c in _row_chunks(self.z0.shape)]
        )

    def move(
        self, R: float, rows: Array, delta: Array, act: Activation
    ) -> tuple[Array, Array, Array]:
        """How far the exact pre-activations can be from z0 over the ball, per sample and
        unit, and from it the next layer's delta and per-unit sup |phi'|, |phi''|.

        delta_i is the smaller of ||s1_i o spread_i + aerr_i|| (unit by unit) and
        max_j s1_ij moved_i + ||aerr_i|| (the layer's move as a whole), s1 = sup |phi'| on each
        unit's interval. The maxima come from :meth:`Activation.sup_maxima` (for an even
        activation, the intervals reduced before phi' and phi'' are evaluated), and the first
        form is computed only for the samples where it can be the smaller: it is at least
        direct_i ||phi'(z0_i)|| (s1 >= |phi'(z0)| and spread >= direct), which on a wide layer
        exceeds the second by about sqrt(width). The result is min of the two forms, bit for
        bit."""
        direct = R * rows  # from the layer's own weights
        spread = direct[:, None] + self.c_rownorm * delta[:, None] + self.zerr
        moved = direct + self.c_op * delta + self.zerr_norm
        s1_row, u, d2u = act.sup_maxima(self.z0, spread)
        delta = s1_row * moved + self.aerr_norm
        # not (lower bound > delta): also where either is nan, as np.minimum would propagate it
        need = np.flatnonzero(~(direct * self.d1_norm * (1 - 1e-6) > delta))
        for c in _row_chunks((need.size, spread.shape[1])):
            chunk = need[c]
            sp, z0 = spread[chunk], self.z0[chunk]
            s1 = act.sup_abs_d1(z0 - sp, z0 + sp)
            unit_by_unit = np.linalg.norm(s1 * sp + self.aerr[chunk], axis=1)
            delta[chunk] = np.minimum(unit_by_unit, delta[chunk])
        return delta, u, d2u


def _row_chunks(shape: tuple[int, int]) -> list[slice]:
    """Slices of a few rows of an n x width array: about 64k elements each."""
    step = max(1, (1 << 16) // max(shape[1], 1))
    return [slice(a, a + step) for a in range(0, shape[0], step)]


def _preactivations(
    A: Array, W: Array, b: Array | None, c: float, cb: float
) -> tuple[Array, Array]:
    """z = c A W^T + cb b as computed, and a bound on |z - z_exact| elementwise (a dot product
    of length k carries at most about (k + 2) eps times the sum of its terms' magnitudes)."""
    z = c * (A @ W.T)
    mag = c * (np.abs(A) @ np.abs(W).T)
    if b is not None:
        z = z + cb * b
        mag = mag + np.abs(cb * b)
    k = A.shape[1] + 3
    return z, 1.01 * k * _EPS * mag + 1e-300


def _opnorm(M: Array) -> float:
    """An upper bound on the spectral norm (0 for an empty matrix): numpy's SVD (remembered
    across the radii) when the smaller side is at most :data:`_GRAM_MIN`, else
    :func:`_gram_opnorm_upper`."""
    from lazycheck.numerics.spectrum import operator_norm

    if min(M.shape, default=0) <= _GRAM_MIN:
        return operator_norm(M)
    return _gram_opnorm_upper(M)


#: above this smaller side, ||M||_2 comes from the Gram matrix of that side, not an SVD
_GRAM_MIN = 256


def _gram_opnorm_upper(M: Array) -> float:
    """sqrt(lambda_max(M M^T)) over the smaller side, rounded up: the Gram matrix G of the
    k rows (inner length K) carries an error E with |E| <= gamma_K |M||M|^T elementwise, so
    ||E|| <= gamma_K ||M||_F^2; the symmetric eigensolver adds at most a few k eps ||G||. Both
    are added before the square root, so the value bounds ||M||_2 from above; a rank-k update
    and one extreme eigenvalue cost a fraction of the SVD (measured at 1600 x 2000: ~1 s
    against ~10 s)."""
    from scipy.linalg import eigh
    from scipy.linalg.blas import dsyrk

    A = np.ascontiguousarray(M if M.shape[0] <= M.shape[1] else M.T)
    k, K = A.shape
    G = dsyrk(1.0, A.T, trans=1)  # upper triangle of A A^T
    top = float(eigh(G, lower=False, eigvals_only=True, subset_by_index=[k - 1, k - 1])[0])
    fro2 = float(np.einsum("ij,ij->", A, A))
    gamma = 1.01 * (K + 2) * _EPS
    bound = max(top, 0.0) * (1 + 8 * k * _EPS) + gamma * fro2 * (1 + 4 * K * _EPS)
    return math.sqrt(bound) * (1 + 4 * _EPS)


#: n x width float64 arrays the certified bound holds at once at its peak (the precomputed
#: pre-activations, activations and rounding bounds, and a radius sweep's temporaries)
_PEAK_ARRAYS = 16


def _require_memory(model: MLP, n: int) -> None:
    """Refuse, before allocating, a certified bound whose n x width arrays would not fit."""
    from lazycheck.resources import FLOAT_BYTES, require

    widths = [layer.fan_out for layer in model.layers[:-1]]
    require(
        _PEAK_ARRAYS * FLOAT_BYTES * n * max(widths),
        f"the certified beta (n = {n} points x hidden width {max(widths)})",
        'reduce [data].n or [model].widths, or give [check].beta = "sampled"',
    )
