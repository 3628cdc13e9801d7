"""Certified upper bounds on beta(R) (derivation in ``docs/beta-certified.md``).

For fully-connected networks of any depth with a smooth activation, a bound on
sup ||sum_i a_i H_i(xi)|| over the ball, where H_i is the Hessian of f(x_i, .): neuron by
neuron for one hidden layer, through a forward-mode recursion of norm bounds for any depth (the
smaller of the two for one hidden layer). With ``radius = "auto"`` the smallest consistent
radius R = B(beta(R)) is found by bisection.
"""

from __future__ import annotations

import math

import numpy as np

from lazycheck.beta.estimate import BetaEstimate
from lazycheck.beta.estimate import radius_consistent as _consistent
from lazycheck.models.base import Model
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

__all__ = ["certified_beta", "certified_beta_auto", "jacobian_is_constant"]

Array = np.ndarray
_ROUNDING = 1.0 + 1e-12  # inflation covering floating-point rounding in a certified bound
_EPS = float(np.finfo(np.float64).eps)


def certified_beta(model: Model, X: Array, w0: Array, radius: float) -> float | None:
    """A certified upper bound on beta(radius), or None where none is derived for this model.

    Available for MLPs of any depth with a smooth activation, also centered or in a symmetric
    pair: 0 without hidden layers (J constant), the smaller of the neuron-by-neuron bound and
    the layer recursion with one hidden layer, the layer recursion with two or more (see
    ``docs/beta-certified.md``). inf for a non-smooth activation, or where the bound is not
    computable in float64 (an upper bound that cannot be evaluated is inf, never nan);
    None for other models.
    """
    if not model.smooth:
        return math.inf
    if isinstance(model, CenteredModel):
        return certified_beta(model.base, X, w0, radius)
    if isinstance(model, SymmetricModel):
        # J = [J_a, -J_b] / sqrt(2): ||J_w - J_0||^2 <= (beta_a^2 ||da||^2 + beta_b^2 ||db||^2) / 2
        q = model.base.n_params
        halves = [certified_beta(model.base, X, w0[:q], radius)]
        if not np.array_equal(w0[:q], w0[q:]):
            halves.append(certified_beta(model.base, X, w0[q:], radius))
        if any(h is None for h in halves):
            return None
        return max(halves) / math.sqrt(2.0)  # type: ignore[type-var]
    own = getattr(model, "beta_bound", None)  # a model's own certified bound (protocol)
    if callable(own):
        value = own(X, w0, radius)
        return None if value is None else float(value)
    if isinstance(model, MLP):
        if model.depth == 0:
            return 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            deep = _deep_bound(model, X, w0, radius)
            if model.depth == 1:  # both are valid; neither dominates the other
                deep = min(_two_layer_bound(model, X, w0, radius), deep)
        return math.inf if math.isnan(deep) else deep
    return None


def jacobian_is_constant(model: Model) -> bool:
    """True when J_w does not depend on w by the model's structure (no hidden layer), so that
    beta = 0 exactly. Never decided from a computed number."""
    if isinstance(model, CenteredModel | SymmetricModel):
        return jacobian_is_constant(model.base)
    return isinstance(model, MLP) and model.depth == 0


def certified_beta_auto(
    model: Model, X: Array, w0: Array, sigma_min: float, radius: str | float = "auto"
) -> BetaEstimate | None:
    """The certified bound on a stated ball. None when not available.

    ``radius == "auto"``: the smallest R with R >= sigma_min / (2 beta(R)) (bisection on log R,
    bracketed from a positive radius, so a bound that underflows at w0 cannot end the search).
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
    if not isinstance(radius, str):
        return _on_radius(model, X, w0, sigma_min, float(radius), "the given radius")
    if not sigma_min > 0:
        return _on_radius(
            model, X, w0, 0.0, 1.0, "the unit ball (sigma_min = 0: the theorem gives no radius)"
        )
    R = _self_consistent_radius(model, X, w0, sigma_min)
    if R is None:
        return None
    if not math.isfinite(R):
        return _on_radius(
            model, X, w0, sigma_min, float(np.finfo(np.float64).max), "the largest float radius"
        )
    return _on_radius(model, X, w0, sigma_min, R, "the self-consistent radius R = B")


def _on_radius(
    model: Model, X: Array, w0: Array, sigma_min: float, R: float, what: str
) -> BetaEstimate | None:
    beta = certified_beta(model, X, w0, R)
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


def _self_consistent_radius(model: Model, X: Array, w0: Array, sigma_min: float) -> float | None:
    """The least R with R beta(R) >= sigma_min / 2 (R beta(R) is increasing), to a relative
    1e-10, by bisection on log R between a bracket found from a positive start."""
    half = 0.5 * sigma_min

    def above(R: float) -> bool | None:
        b = certified_beta(model, X, w0, R)
        return None if b is None else R * b >= half

    b0 = certified_beta(model, X, w0, 0.0)
    if b0 is None:
        return None
    R = half / b0 if 0 < b0 < math.inf else 1.0
    if not 0 < R < math.inf:
        R = 1.0
    lo, hi = 0.0, math.inf
    for _ in range(4400):  # factors of 2 across the whole float range, both ways
        if above(R):
            hi = R
            if lo > 0 or R < 1e-300:
                break
            R *= 0.5
        else:
            lo = R
            if math.isfinite(hi) or R > 1e300:
                break
            R *= 2.0
    if not math.isfinite(hi):
        return math.inf
    lo = max(lo, hi * 2.0**-1100)
    for _ in range(200):
        if hi <= lo * (1 + 1e-10):
            break
        mid = math.sqrt(lo) * math.sqrt(hi)
        if above(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _two_layer_bound(model: MLP, X: Array, w0: Array, radius: float) -> float:
    """sup over ||w - w0|| <= R of ||sum_i a_i H_i(w)|| for unit a, bounded neuron by neuron.

    Per hidden neuron j with output weight v_j and input weights theta_j = (W_j, b_j), the
    block of sum_i a_i H_i is [[0, u^T], [u, S]] with u = c2 sum_i a_i phi'(z_ij) g_i and
    S = c2 v_j sum_i a_i phi''(z_ij) g_i g_i^T, where g_i = (c1 x_i, c1b) = dz_ij/dtheta_j.
    ||u|| <= c2 ||G|| max_i |phi'|, ||S|| <= c2 |v_j| max_i |phi''| ||G||^2, and the norm of
    the block is at most s/2 + sqrt(s^2/4 + t^2) with s, t those two bounds. Over the ball,
    |v_j| <= |v_j0| + R and |z_ij - z_ij0| <= ||g_i|| R.
    """
    (W1, b1), (W2, _) = model.unpack(w0)
    l1, l2 = model.layers
    G = l1.c_w * X
    if model.bias:
        G = np.hstack([G, np.full((X.shape[0], 1), l1.c_b)])
    gnorm = np.linalg.norm(G, axis=1)  # (n,)
    G_op = float(np.linalg.norm(G, 2))
    z0, zerr = _preactivations(X, W1, b1, l1.c_w, l1.c_b)
    spread = gnorm[:, None] * radius + zerr
    act = model.activation
    d1 = act.sup_abs_d1(z0 - spread, z0 + spread).max(axis=0)  # (m,)
    d2 = act.sup_abs_d2(z0 - spread, z0 + spread).max(axis=0)
    v = np.abs(W2[0]) + radius
    s = l2.c_w * v * d2 * G_op**2
    t = l2.c_w * d1 * G_op
    block = 0.5 * s + np.sqrt(0.25 * s * s + t * t)
    return float(block.max()) * _ROUNDING


def _deep_bound(model: MLP, X: Array, w0: Array, radius: float) -> float:
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
    """
    X = np.asarray(X, dtype=np.float64)
    R = float(radius)
    act = model.activation
    k = model.depth + 1  # number of weight layers, the length of eta
    n = X.shape[0]
    A0 = X  # a^(l-1) at w0, n x fan_in
    delta = np.zeros(n)  # delta_i >= ||a_i^(l-1)(xi) - a_i^(l-1)(w0)|| over the ball
    p = q = np.zeros(k)
    S = np.zeros((k, k))
    u = d2u = np.zeros(0)  # per-unit sup |phi'|, |phi''| of the previous hidden layer
    for idx, (layer, (W0, b0)) in enumerate(zip(model.layers, model.unpack(w0), strict=True)):
        c = layer.c_w
        cb = layer.c_b if layer.bias else 0.0
        G0 = c * A0
        if layer.bias:
            G0 = np.hstack([G0, np.full((n, 1), cb)])
        g = _opnorm(G0) + c * float(np.linalg.norm(delta))
        anorm = np.linalg.norm(A0, axis=1) + delta  # >= ||a_i^(l-1)(xi)||
        rows = np.sqrt((c * anorm) ** 2 + cb**2)  # >= ||(c a_i^(l-1)(xi), c_b)||
        e = np.zeros(k)
        e[idx] = 1.0
        if idx == 0:
            p, q = g * e, float(rows.max()) * e
        else:
            rho = _opnorm(W0 * u) + R * float(u.max())
            kappa = float(((np.linalg.norm(W0, axis=0) + R) * d2u).max())
            cross = float(u.max()) * (np.outer(e, p) + np.outer(p, e))
            curv = 0.5 * kappa * (np.outer(p, q) + np.outer(q, p))
            S = c * (cross + curv + rho * S)
            p = g * e + c * rho * p
            q = float(rows.max()) * e + c * rho * q
        if idx == model.depth:
            break
        # pre-activations at w0 (computed, with a bound on their rounding error) and how far
        # the exact ones can be from them over the ball, per sample and unit
        z0, zerr = _preactivations(A0, W0, b0, c, cb)
        direct = R * rows  # from the layer's own weights
        spread = direct[:, None] + c * np.linalg.norm(W0, axis=1)[None, :] * delta[:, None] + zerr
        moved = direct + c * _opnorm(W0) * delta + np.linalg.norm(zerr, axis=1)
        s1 = act.sup_abs_d1(z0 - spread, z0 + spread)
        s2 = act.sup_abs_d2(z0 - spread, z0 + spread)
        A0 = act.fn(z0)
        # delta_i >= ||a_i(xi) - A0_i|| with A0 as computed: the move plus phi's rounding
        aerr = 4 * _EPS * np.abs(A0) + 1e-300
        delta = np.minimum(
            np.linalg.norm(s1 * spread + aerr, axis=1),
            s1.max(axis=1) * moved + np.linalg.norm(aerr, axis=1),
        )
        u, d2u = s1.max(axis=0), s2.max(axis=0)
    top = float(np.linalg.eigvalsh(0.5 * (S + S.T))[-1])
    return max(top, 0.0) * _ROUNDING


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
    """Spectral norm (0 for an empty matrix); the same SVD, remembered across the bisection."""
    from lazycheck.spectrum import operator_norm

    return operator_norm(M)
