"""beta: the Lipschitz constant of w -> J_w, anchored at w0 on a ball of radius R.

The proof of Theorem 2 only uses ``||J_w - J_0|| <= beta ||w - w0||`` for ``||w - w0|| <= B``
with ``B = sigma_min / (2 beta)`` (theory-notes fact 2), so lazycheck estimates the anchored
constant ``beta(R) = sup_{0 < ||w - w0|| <= R} ||J_w - J_0|| / ||w - w0||`` and keeps R
consistent with B: a beta measured on radius R is valid for the theorem only if R >= B.

Three kinds of number:

* **certified upper bound** (:func:`certified_beta`): for fully-connected networks of any
  depth with a smooth activation, a bound on sup ||sum_i a_i H_i(xi)|| over the ball, where
  H_i is the Hessian of f(x_i, .) (derivation in ``docs/beta-certified.md``): neuron by neuron
  for one hidden layer, through a forward-mode recursion of norm bounds for any depth (the
  smaller of the two for one hidden layer). With ``radius = "auto"`` the smallest consistent
  radius R = B(beta(R)) is found by bisection.
* **sampled lower bound** (:func:`sampled_beta`): the largest ratio
  ||J_w - J_0|| / ||w - w0|| over the points tried, each ratio computed exactly (through the
  difference kernel, without forming J). The search: alternating power iteration for the worst
  direction of the derivative of J at w0, a radius scan along it, random directions, then
  projected gradient ascent on the ratio. A lower bound of the true constant: an alpha computed
  from it is optimistic (theory-notes fact 4).
* **given**: a number from the spec or ``--beta``.

For a non-smooth activation (relu) beta is infinite, whatever sampling says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lazycheck.mlp import MLP
from lazycheck.model import CenteredModel, Linearization, Model, SymmetricModel

__all__ = [
    "BetaEstimate",
    "certified_beta",
    "certified_beta_auto",
    "critical_radius",
    "jacobian_change",
    "sampled_beta",
]

Array = np.ndarray
_ROUNDING = 1.0 + 1e-12  # inflation covering floating-point rounding in a certified bound


@dataclass(frozen=True)
class BetaEstimate:
    """One estimate of beta and the radius it holds on.

    Attributes:
        value: beta (may be inf).
        kind: ``"certified upper bound"``, ``"sampled lower bound"``, ``"given"`` or
            ``"exact"`` (infinite for a non-smooth activation, 0 for a linear model).
        radius: the ball radius R it was computed on (nan when unknown, for ``given``).
        consistent: R >= B = sigma_min / (2 beta) (None when R is unknown).
        method: how it was obtained.
        samples, iterations, converged: the search's effort (sampled only).
        direction: the worst unit direction found (sampled only).
        message: one line for a human.
    """

    value: float
    kind: str
    radius: float
    consistent: bool | None
    method: str
    message: str
    samples: int = 0
    iterations: int = 0
    converged: bool | None = None
    direction: Array | None = field(default=None, repr=False, compare=False)


# ----------------------------------------------------------------------------- certified


def certified_beta(model: Model, X: Array, w0: Array, radius: float) -> float | None:
    """A certified upper bound on beta(radius), or None where none is derived for this model.

    Available for MLPs of any depth with a smooth activation, also centered or in a symmetric
    pair: 0 without hidden layers (J constant), the smaller of the neuron-by-neuron bound and
    the layer recursion with one hidden layer, the layer recursion with two or more (see
    ``docs/beta-certified.md``). inf for a non-smooth activation; None for other models.
    """
    if not model.smooth:
        return math.inf
    if isinstance(model, CenteredModel):
        return certified_beta(model.base, X, w0, radius)
    if isinstance(model, SymmetricModel):
        q = model.base.n_params
        half = certified_beta(model.base, X, w0[:q], radius)
        return None if half is None else half / math.sqrt(2.0)
    if isinstance(model, MLP):
        if model.depth == 0:
            return 0.0
        deep = _deep_bound(model, X, w0, radius)
        if model.depth == 1:  # both are valid; neither dominates the other
            return min(_two_layer_bound(model, X, w0, radius), deep)
        return deep
    return None


def certified_beta_auto(
    model: Model, X: Array, w0: Array, sigma_min: float, radius: str | float = "auto"
) -> BetaEstimate | None:
    """The certified bound on a consistent radius: the smallest R with R >= sigma_min/(2 beta(R))
    when ``radius == "auto"``, else on the radius given. None when not available."""
    if isinstance(radius, float | int):
        beta = certified_beta(model, X, w0, float(radius))
        if beta is None:
            return None
        consistent = _consistent(float(radius), beta, sigma_min)
        return BetaEstimate(
            beta,
            "certified upper bound",
            float(radius),
            consistent,
            "Hessian bound over the ball (docs/beta-certified.md)",
            f"certified on the given radius R = {radius:.4g}"
            + ("" if consistent else ", but R < B = sigma_min/(2 beta): not valid for the theorem"),
        )
    beta0 = certified_beta(model, X, w0, 0.0)
    if beta0 is None:
        return None
    if beta0 == 0.0 or not math.isfinite(beta0) or sigma_min <= 0:
        kind = "exact" if beta0 in (0.0, math.inf) else "certified upper bound"
        why = {0.0: "J does not depend on w (a linear model)", math.inf: "activation not smooth"}
        return BetaEstimate(
            beta0,
            kind,
            math.inf,
            True,
            "structure of the model",
            why.get(beta0, "sigma_min = 0, so no radius is needed"),
        )
    # g(R) = R beta(R) - sigma_min / 2 is increasing; bisection on log R for its root.
    lo, hi = 0.0, sigma_min / (2.0 * beta0)
    while hi * certified_beta(model, X, w0, hi) < 0.5 * sigma_min:  # type: ignore[operator]
        lo, hi = hi, hi * 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mid * certified_beta(model, X, w0, mid) < 0.5 * sigma_min:  # type: ignore[operator]
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    beta = certified_beta(model, X, w0, hi)
    assert beta is not None
    return BetaEstimate(
        beta,
        "certified upper bound",
        hi,
        _consistent(hi, beta, sigma_min),
        "Hessian bound over the ball (docs/beta-certified.md)",
        f"certified on the self-consistent radius R = B = {hi:.4g}",
    )


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
    z0 = l1.c_w * (X @ W1.T)
    if b1 is not None:
        z0 = z0 + l1.c_b * b1
    spread = gnorm[:, None] * radius
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
        # pre-activations at w0 and how far they can move over the ball, per sample and unit
        z0 = c * (A0 @ W0.T)
        if b0 is not None:
            z0 = z0 + cb * b0
        direct = R * rows  # from the layer's own weights
        spread = direct[:, None] + c * np.linalg.norm(W0, axis=1)[None, :] * delta[:, None]
        moved = direct + c * _opnorm(W0) * delta  # >= ||z_i(xi) - z_i(w0)||
        s1 = act.sup_abs_d1(z0 - spread, z0 + spread)
        s2 = act.sup_abs_d2(z0 - spread, z0 + spread)
        delta = np.minimum(np.linalg.norm(s1 * spread, axis=1), s1.max(axis=1) * moved)
        u, d2u = s1.max(axis=0), s2.max(axis=0)
        A0 = act.fn(z0)
    top = float(np.linalg.eigvalsh(0.5 * (S + S.T))[-1])
    return max(top, 0.0) * _ROUNDING


def _opnorm(M: Array) -> float:
    """Spectral norm (0 for an empty matrix)."""
    return float(np.linalg.norm(M, 2)) if M.size else 0.0


def _consistent(radius: float, beta: float, sigma_min: float) -> bool:
    if beta == 0 or math.isinf(radius):
        return True
    return radius >= sigma_min / (2.0 * beta) * (1 - 1e-12)


# ----------------------------------------------------------------------------- sampled


def jacobian_change(model: Model, X: Array, lin0: Linearization, w: Array) -> float:
    """||J_w - J_0||_op, exactly (to floating point), through the difference kernel."""
    D = model.linearize(w, X).difference_kernel(lin0)
    return math.sqrt(max(float(np.linalg.eigvalsh(D)[-1]), 0.0))


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
    (R >= sigma_min / (2 beta)); at most five rounds.
    """
    search = _BetaSearch(model, X, w0, rng)
    h, beta_dir, pit, pconv = search.worst_direction(iterations)
    total_iters = pit
    if isinstance(radius, str):
        R = sigma_min / (2.0 * beta_dir) if beta_dir > 0 and sigma_min > 0 else 1.0
        fixed = False
    else:
        R, fixed = float(radius), True
    converged = pconv
    for _round in range(5):
        search.scan(h, R)
        search.random_directions(R, samples)
        it, conv = search.ascend(R, iterations)
        total_iters += it
        converged = converged and conv
        if progress is not None:
            progress(min(1.0, (_round + 1) / 2))
        best = search.best_ratio(R)
        if fixed or best <= 0 or sigma_min <= 0 or sigma_min / (2.0 * best) <= R:
            break
        R = sigma_min / (2.0 * best)
    best = search.best_ratio(R)
    consistent = _consistent(R, best, sigma_min) if best > 0 else None
    msg = (
        f"max of ||J_w - J_0|| / ||w - w0|| over {search.count} points in the ball of radius "
        f"{R:.4g}; a lower bound (an alpha from it is optimistic)"
    )
    if consistent is False:
        msg += "; R < B = sigma_min/(2 beta): the radius is smaller than the theorem needs"
    return BetaEstimate(
        best,
        "sampled lower bound",
        R,
        consistent,
        "power iteration on dJ at w0, radius scan, random directions, projected ascent",
        msg,
        samples=search.count,
        iterations=total_iters,
        converged=converged,
        direction=search.best_direction(R),
    )


def critical_radius(
    model: Model,
    X: Array,
    lin0: Linearization,
    w0: Array,
    direction: Array,
    target: float,
    s_max: float,
) -> float:
    """The smallest s in (0, s_max] with ||J_{w0 + s h} - J_0|| = target along the unit
    direction h (a scan on a geometric grid, then Brent's method); inf if not reached."""
    from scipy.optimize import brentq

    h = direction / np.linalg.norm(direction)

    def gap(s: float) -> float:
        return jacobian_change(model, X, lin0, w0 + s * h) - target

    grid = s_max * np.geomspace(1e-6, 1.0, 61)
    prev = 0.0
    for s in grid:
        if gap(float(s)) >= 0:
            return (
                float(brentq(gap, prev, float(s), xtol=1e-12 * s, rtol=1e-12)) if prev else float(s)
            )
        prev = float(s)
    return math.inf


class _BetaSearch:
    """Keeps every exactly-evaluated point (distance, ratio, direction) of a beta search."""

    def __init__(self, model: Model, X: Array, w0: Array, rng: np.random.Generator) -> None:
        self.model, self.X, self.w0, self.rng = model, X, w0, rng
        self.lin0 = model.linearize(w0, X)
        self.points: list[tuple[float, float, Array]] = []
        scale = float(np.linalg.norm(w0)) / math.sqrt(max(w0.size, 1))
        self.eps = 1e-5 * max(scale, 1e-3)

    @property
    def count(self) -> int:
        return len(self.points)

    def ratio(self, d: Array) -> float:
        """||J_{w0+d} - J_0|| / ||d||, recorded."""
        dist = float(np.linalg.norm(d))
        r = jacobian_change(self.model, self.X, self.lin0, self.w0 + d) / dist
        self.points.append((dist, r, d / dist))
        return r

    def best_ratio(self, R: float) -> float:
        vals = [r for dist, r, _ in self.points if dist <= R * (1 + 1e-12)]
        return max(vals, default=0.0)

    def best_direction(self, R: float) -> Array | None:
        cand = [(r, h) for dist, r, h in self.points if dist <= R * (1 + 1e-12)]
        return max(cand, key=lambda t: t[0])[1] if cand else None

    def _dJ_kernel_top(self, h: Array) -> tuple[float, Array, Linearization, Linearization]:
        """Top singular value and left vector of dJ[h] ~ (J(w0+eps h) - J(w0-eps h)) / 2eps."""
        lp = self.model.linearize(self.w0 + self.eps * h, self.X)
        lm = self.model.linearize(self.w0 - self.eps * h, self.X)
        D = lp.difference_kernel(lm) / (4 * self.eps**2)
        lam, vec = np.linalg.eigh(D)
        return math.sqrt(max(float(lam[-1]), 0.0)), vec[:, -1], lp, lm

    def _hvp(self, a: Array, b: Array) -> Array:
        """sum_i a_i H_i b by central differences of J^T a."""
        gp = self.model.linearize(self.w0 + self.eps * b, self.X).vjp(a)
        gm = self.model.linearize(self.w0 - self.eps * b, self.X).vjp(a)
        return (gp - gm) / (2 * self.eps)

    def worst_direction(self, iterations: int) -> tuple[Array, float, int, bool]:
        """Alternating power iteration for max over unit h of ||dJ_{w0}[h]||."""
        h = self.rng.standard_normal(self.w0.size)
        h /= np.linalg.norm(h)
        val = 0.0
        for k in range(1, iterations + 1):
            new, a, lp, lm = self._dJ_kernel_top(h)
            b = (lp.vjp(a) - lm.vjp(a)) / (2 * self.eps)
            nb = np.linalg.norm(b)
            if nb == 0:
                return h, 0.0, k, True
            g = self._hvp(a, b / nb)
            ng = np.linalg.norm(g)
            if ng == 0:
                return h, new, k, True
            h = g / ng
            if abs(new - val) <= 1e-6 * max(new, 1e-300):
                return h, new, k, True
            val = new
        return h, val, iterations, False

    def scan(self, h: Array, R: float) -> None:
        for s in R * np.geomspace(1e-2, 1.0, 7):
            self.ratio(s * h)
            self.ratio(-s * h)

    def random_directions(self, R: float, samples: int) -> None:
        for _ in range(samples):
            d = self.rng.standard_normal(self.w0.size)
            d *= R * self.rng.uniform(0.05, 1.0) ** (1.0 / 2) / np.linalg.norm(d)
            self.ratio(d)

    def ascend(self, R: float, iterations: int) -> tuple[int, bool]:
        """Projected gradient ascent on the ratio from the best point within radius R."""
        cand = [(r, dist, h) for dist, r, h in self.points if dist <= R * (1 + 1e-12)]
        if not cand:
            return 0, True
        r, dist, h = max(cand, key=lambda t: t[0])
        d = dist * h
        step = 0.25 * R
        for k in range(1, iterations + 1):
            lin = self.model.linearize(self.w0 + d, self.X)
            Dk = lin.difference_kernel(self.lin0)
            lam, vec = np.linalg.eigh(Dk)
            sig = math.sqrt(max(float(lam[-1]), 0.0))
            if sig == 0:
                return k, True
            a = vec[:, -1]
            b = (lin.vjp(a) - self.lin0.vjp(a)) / sig  # right singular vector of J_w - J_0
            gp = self.model.linearize(self.w0 + d + self.eps * b, self.X).vjp(a)
            gm = self.model.linearize(self.w0 + d - self.eps * b, self.X).vjp(a)
            grad_sig = (gp - gm) / (2 * self.eps)
            nd = float(np.linalg.norm(d))
            grad = grad_sig / nd - sig * d / nd**3
            gn = float(np.linalg.norm(grad))
            if gn == 0:
                return k, True
            improved = False
            while step > 1e-8 * R:
                trial = d + step * grad / gn
                tn = float(np.linalg.norm(trial))
                if tn > R:
                    trial *= R / tn
                rt = self.ratio(trial)
                if rt > r * (1 + 1e-9):
                    d, r, improved = trial, rt, True
                    step *= 1.5
                    break
                step *= 0.5
            if not improved:
                return k, True
        return iterations, False
