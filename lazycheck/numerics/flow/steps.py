"""One step of the exponential Adams integrator (:mod:`lazycheck.numerics.flow.exponential`,
whose docstring is the method's account): the points of the history and what each caches, the
kernel's eigenbasis and the products with it, the Adams interpolant, the trial step with its
a-priori error estimate, the a-posteriori check, and the drift of the basis. The driver
(:class:`~lazycheck.numerics.flow.exponential._ExpAdams`) decides steps, rejections and
rebuilds; the constants below that it reads too are imported from here.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from lazycheck.models.base import Linearization
from lazycheck.numerics.flow.rounding import _NOISE, probe_signs
from lazycheck.numerics.linear_flow import phi_table
from lazycheck.numerics.spectrum import sym_eig

Array = np.ndarray
#: the drift ||L_k - L_b|| is measured (four products) at every _DRIFT_EVERY-th accepted point,
#: and wherever its prediction exceeds _DRIFT_PRED_SHARE of the limit; predicted between
_DRIFT_EVERY = 4
_DRIFT_PRED_SHARE = 0.25
#: the cached products L_b (d_j - d_ref) are taken again from the current point (the reference
#: moves there) when ||d_k - d_ref|| exceeds this times the history's span ||d_k - d_oldest||
_REANCHOR = 8.0
#: a step rejected on an earlier point's basis rebuilds it only when the drift over the step,
#: h ||L_k - L_b||, is at least this share of the drift limit (round 13; before, always)
_STALE_SHARE = 0.1
#: the basis is rebuilt at an accepted point where the steps grew by less than _HELD_GROWTH
#: over the last max(_HELD_STEPS, _HELD_COST (1 + R)) on it while the drift over a step is at
#: least _STALE_SHARE of the limit (the drift holds them)
_HELD_STEPS = 8
_HELD_GROWTH = 1.25
_HELD_COST = 4.0


@dataclass
class _Point:
    """An accepted point of the exponential integrator, with its products with the current
    basis b (cached: they serve every step whose history holds the point)."""

    tau: float
    d: Array  # displacement w - w0, the integrated state (kept apart from w0: see _point)
    w: Array  # w0 + d, rounded
    lin: Linearization
    r: Array  # residual alpha f(w) - y
    F: Array  # dw/dtau = -(1/alpha) J^T r
    noise_r: float  # rounding floor of residual errors
    noise_w: float  # rounding floor of weight errors
    key: int = -1  # serial of the basis hatF belongs to (-1: none yet)
    ref: int = -1  # serial of the reference point Ld and hatLd belong to (-1: none yet)
    hatF: Array | None = None  # Q^T J_b F
    Ld: Array | None = None  # L_b e = -J_b^T J_b e, e = d - d_ref (from the reference point)
    hatLd: Array | None = None  # Q^T J_b L_b e = -lam o Q^T J_b e


@dataclass(frozen=True)
class _Basis:
    """The linear part L = -J_b^T J_b of the splitting, from the kernel at a point b:
    K_b = Q diag(lam) Q^T (lam clipped at 0). ``serial`` tells bases apart."""

    tau: float
    lin: Linearization
    lam: Array
    Q: Array
    serial: int
    d: Array  # the displacement at b (the drift is predicted from the distance to it)


@dataclass(frozen=True)
class _Interp:
    """p(s) = sum_m C[m-1] s^m through N at the history points, and the difference D between
    it and the interpolant through one point fewer (the error estimate). C_hat, D_hat:
    Q^T J_b of each row. ``Vinv``, ``V1inv``, ``scale``: the (scaled) inverse Vandermonde
    matrices through q and q - 1 points, for :meth:`gains`."""

    q: int  # number of history points used; the step has order q + 1
    C: Array  # (q, p)
    C_hat: Array  # (q, n)
    D: Array  # (q, p)
    D_hat: Array  # (q, n)
    Vinv: Array  # (q, q)
    V1inv: Array  # (q - 1, q - 1)
    scale: float

    def gains(self, h: float) -> tuple[float, float]:
        """How much the a-priori and the a-posteriori error estimates of a step of size h
        amplify the rounding of the values they combine: the sums of the absolute weights
        with which F at the new, the current and the history points enter them. Rounding in
        F_j of size e makes an estimate of size up to gain * e whatever h is, so the step-size
        controller must not read it as truncation error (:meth:`_ExpAdams._scaled`)."""
        if self.q == 0:
            return 1.0, 2.0  # exponential Euler: F_new - F_k
        z = (h / self.scale) ** np.arange(1, self.q + 1)
        ell = z @ self.Vinv  # p(h) = sum_j ell_j N_j, N_j = F_j - F_k - L (d_j - d_k)
        mu = ell.copy()
        if self.q > 1:
            mu[: self.q - 1] -= z[: self.q - 1] @ self.V1inv
        post = 1.0 + float(np.abs(ell).sum()) + abs(1.0 - float(ell.sum()))
        prior = float(np.abs(mu).sum()) + abs(float(mu.sum()))
        return max(prior, 1.0), post


class _Steps:
    """The mathematics of one step of the exponential Adams integrator (:mod:`.exponential`): the
    basis and the products cached with it, the interpolant, the trial step and both error
    estimates. :class:`_ExpAdams` drives it; the attributes are set by its constructor."""

    alpha: float
    rtol: float
    atol: float
    w0: Array
    basis: _Basis | None
    n_products: int
    n_kernels: int
    _serial: int  # the next basis's serial
    _drift_vec: Array | None
    _drift_at: tuple[int, float, float] | None  # (basis serial, ||L_k - L_b||, ||d_k - d_b||)
    _drift_skipped: int  # accepted points since the drift was last measured
    _drift_rate: float  # ||L_k - L_b|| at the current point, as last measured or predicted
    _h_seen: deque[float]  # the last step sizes the controller chose on this basis
    _ref: tuple[int, Array]  # (serial, displacement) of the cached products' reference point

    def _rebase(self, cur: _Point, eig: tuple[Array, Array] | None = None) -> _Basis:
        """The eigenbasis of the kernel at ``cur``: one kernel and one eigendecomposition, or
        ``eig`` = (lam, Q) when the caller has it already (K = Q diag(lam) Q^T, symmetrized,
        as :func:`lazycheck.numerics.linear_flow.linear_flow` computes it; no kernel counted)."""
        if self.basis is None or self.basis.lin is not cur.lin:
            if eig is None:
                K = cur.lin.kernel()
                lam, Q = sym_eig(0.5 * (K + K.T))
                self.n_kernels += 1
            else:
                lam, Q = eig
            self.basis = _Basis(cur.tau, cur.lin, np.maximum(lam, 0.0), Q, self._serial, cur.d)
            self._ref = (self._serial, cur.d)
            self._serial += 1
            self._drift_rate = 0.0
            self._h_seen.clear()
        return self.basis

    def _reanchor(self, cur: _Point, history: list[_Point]) -> None:
        """Take the cached products L_b (d_j - d_ref) from ``cur`` from now on when the
        reference point lies far behind the history (:data:`_REANCHOR`): their rounding
        scales with ||d_j - d_ref||, while the steps use only their differences, of the size
        of the history's span. The history's points then take their products again (two
        each, in :meth:`_prep`); ``cur``'s are zero."""
        if not history or self.basis is None:
            return
        span = float(np.linalg.norm(cur.d - history[-1].d))
        if float(np.linalg.norm(cur.d - self._ref[1])) > _REANCHOR * span:
            self._ref = (self._serial, cur.d)
            self._serial += 1

    def _prep(self, pt: _Point) -> None:
        """The point's products with the current basis (up to three products, none when
        they are cached): Q^T J_b F (kept while the basis is), and L_b e and Q^T J_b L_b e
        with e = d - d_ref, the displacement from the reference point (kept while the
        reference is; none at the reference itself, see :meth:`_reanchor`). Each N_j and its
        image under Q^T J_b then costs no product: L_b (d_j - d_k) = L_b e_j - L_b e_k, whose
        rounding scales with ||d_j - d_ref||, not with ||d_j|| (:mod:`.exponential`, "Kernel
        reuse")."""
        b = self.basis
        assert b is not None
        if pt.key != b.serial:
            if b.lin is pt.lin:  # J_b F = -K_b r / alpha
                pt.hatF = -(b.lam * (b.Q.T @ pt.r)) / self.alpha
            else:
                pt.hatF = b.Q.T @ b.lin.jvp(pt.F)
                self.n_products += 1
            pt.key = b.serial
        serial, d_ref = self._ref
        if pt.ref != serial:
            e = pt.d - d_ref
            if np.any(e):
                Jd = b.lin.jvp(e)
                pt.Ld = -b.lin.vjp(Jd)
                pt.hatLd = -b.lam * (b.Q.T @ Jd)
                self.n_products += 2
            else:
                pt.Ld, pt.hatLd = np.zeros_like(pt.d), np.zeros_like(b.lam)
            pt.ref = serial

    def _drift(self, cur: _Point, h: float, limit: float) -> float:
        """h ||L_k - L_b||: how stiff, over the next step, the part of the linear term the
        basis misses is (it is integrated explicitly). The norm by one power-iteration step,
        warm-started from the last one (four products): an estimate from below that tightens
        as the run goes on. It is taken at the first accepted point of a basis, at every
        :data:`_DRIFT_EVERY`-th point and wherever the prediction :meth:`_drift_pred` (no
        product) exceeds :data:`_DRIFT_PRED_SHARE` of ``limit``; elsewhere the prediction is
        returned."""
        b = self.basis
        if b is None or b.lin is cur.lin:
            self._drift_rate = 0.0
            return 0.0
        pred = self._drift_pred(cur)
        self._drift_skipped += 1
        if h * pred <= _DRIFT_PRED_SHARE * limit and self._drift_skipped < _DRIFT_EVERY:
            self._drift_rate = pred
            return h * pred
        self._drift_skipped = 0
        v = self._drift_vec
        if v is None:
            v = probe_signs(self.w0.shape[0]) / math.sqrt(self.w0.shape[0])
        u = self._L(v) - (-cur.lin.vjp(cur.lin.jvp(v)))
        self.n_products += 2
        nu = float(np.linalg.norm(u))
        self._drift_rate = nu
        self._drift_vec = u / nu if nu > 0 else None
        self._drift_at = (b.serial, nu, float(np.linalg.norm(cur.d - b.d)))
        return h * nu

    def _rebuild_due(self, cur: _Point, h: float) -> bool:
        """Whether to rebuild the basis at the accepted point ``cur``, h the next step: when the
        drift over the step, h ||L_k - L_b||, exceeds the limit, or when it is at least
        :data:`_STALE_SHARE` of it and the steps grew by less than :data:`_HELD_GROWTH` over
        the last max(:data:`_HELD_STEPS`, :data:`_HELD_COST` (1 + R)) on this basis: the drift
        holds them there (:mod:`.exponential`, "When to rebuild")."""
        drift = self._drift(cur, h, self.drift_limit)
        seen = self._h_seen
        seen.append(h)
        if drift > self.drift_limit:
            return True
        if drift < _STALE_SHARE * self.drift_limit or len(seen) < seen.maxlen:
            return False
        return h < _HELD_GROWTH * seen[0]

    def _drift_pred(self, cur: _Point) -> float:
        """||L_k - L_b|| predicted from its last measurement with this basis, scaled with the
        distance ||d_k - d_b|| (L_w - L_b is linear in w - w_b to first order); inf when
        there is none."""
        b = self.basis
        at = self._drift_at
        if b is None or at is None or at[0] != b.serial or at[2] <= 0.0:
            return math.inf
        return at[1] * float(np.linalg.norm(cur.d - b.d)) / at[2]

    def _L(self, v: Array) -> Array:
        """L v = -J_b^T J_b v (two products)."""
        b = self.basis
        assert b is not None
        self.n_products += 2
        return -b.lin.vjp(b.lin.jvp(v))

    def _interpolant(self, cur: _Point, history: list[_Point]) -> _Interp:
        """p(s) = sum_m c_m s^m with p(0) = 0 through N(w_j) = F_j - F_k - L (w_j - w_k) at
        s_j = tau_j - tau_k (no products beyond those :meth:`_prep` caches)."""
        q = len(history)
        p, n = cur.w.shape[0], cur.r.shape[0]
        if q == 0:
            z = np.zeros((0, p))
            zn, e = np.zeros((0, n)), np.zeros((0, 0))
            return _Interp(0, z, zn, z, zn, e, e, 1.0)
        for pt in (cur, *history):
            self._prep(pt)
        N = np.array([old.F - cur.F - (old.Ld - cur.Ld) for old in history])
        JN_hat = np.array([old.hatF - cur.hatF - (old.hatLd - cur.hatLd) for old in history])
        Vinv, V1inv, scale = _vandermonde(np.array([old.tau - cur.tau for old in history]))
        powers = scale ** -np.arange(1, q + 1)
        C = powers[:, None] * (Vinv @ N)
        C_hat = powers[:, None] * (Vinv @ JN_hat)
        D, D_hat = C.copy(), C_hat.copy()
        if q > 1:
            D[: q - 1] -= powers[: q - 1, None] * (V1inv @ N[: q - 1])
            D_hat[: q - 1] -= powers[: q - 1, None] * (V1inv @ JN_hat[: q - 1])
        return _Interp(q, C, C_hat, D, D_hat, Vinv, V1inv, scale)

    def _integrate_poly(
        self, C: Array, C_hat: Array, h: float, tab: Array, m0: int
    ) -> tuple[Array, Array]:
        """int_0^h e^{(h-s)L} sum_m C_m s^m ds = sum_m m! h^(m+1) phi_{m+1}(hL) C_m, m from m0,
        with m! h^(m+1) phi_{m+1}(hL) v = h^(m+1)/(m+1) v - m! h^(m+2) J^T Q phi_{m+2} Q^T J v:
        one VJP for all terms. Returns it and its image J_b x = Q (sum_m h^(m+1)/(m+1)
        C_hat_m + lam o g) (no product)."""
        b = self.basis
        assert b is not None
        free = np.zeros(C.shape[1])
        free_hat = np.zeros(b.lam.shape[0])
        g = np.zeros(b.lam.shape[0])
        for i in range(C.shape[0]):
            m = i + m0
            free += h ** (m + 1) / (m + 1) * C[i]
            free_hat += h ** (m + 1) / (m + 1) * C_hat[i]
            g -= math.factorial(m) * h ** (m + 2) * tab[m + 2] * C_hat[i]
        self.n_products += 1
        return free + b.lin.vjp(b.Q @ g), b.Q @ (free_hat + b.lam * g)

    def _jvp_cur(self, cur: _Point, x: Array, jb_x: Array) -> Array:
        """J_k x: from the basis when it is cur's own (J_b x given), else one JVP."""
        b = self.basis
        assert b is not None
        if b.lin is cur.lin:
            return jb_x
        self.n_products += 1
        return cur.lin.jvp(x)

    def _trial(self, cur: _Point, c: _Interp, h: float) -> tuple[float, float, Array, Array]:
        """The step of size h from ``cur``, its a-priori scaled error (0 when q = 0) for the
        acceptance test and for the step-size choice (:meth:`_scaled`), and the table of
        phi_j(-h lambda)."""
        b = self.basis
        assert b is not None
        self._prep(cur)
        tab = phi_table(max(c.q + 2, 3), h * b.lam)
        C = np.vstack([cur.F[None, :], c.C])  # exponential Euler's h phi1(hL) F_k is m = 0
        C_hat = np.vstack([cur.hatF[None, :], c.C_hat])
        step, jb_step = self._integrate_poly(C, C_hat, h, tab, 0)
        if c.q == 0:
            return 0.0, 0.0, step, tab
        est, jb_est = self._integrate_poly(c.D, c.D_hat, h, tab, 1)
        r_pred = float(np.linalg.norm(cur.r + self.alpha * self._jvp_cur(cur, step, jb_step)))
        est_r = self.alpha * float(np.linalg.norm(self._jvp_cur(cur, est, jb_est)))
        err_w = float(np.linalg.norm(est))
        return (*self._scaled(err_w, est_r, cur, step, r_pred, c.gains(h)[0]), step, tab)

    def _posterior(
        self, cur: _Point, c: _Interp, h: float, new: _Point, tab: Array
    ) -> tuple[float, float]:
        """Scaled size of the interpolation error seen at the new point (:mod:`.exponential`),
        for the acceptance test and for the step-size choice."""
        self._prep(new)
        N_new = new.F - cur.F - (new.Ld - cur.Ld)
        hat_new = new.hatF - cur.hatF - (new.hatLd - cur.hatLd)
        # The interpolation error e(s) grows on [0, h] no faster than (s/h) e(h), and e^{(h-s)L}
        # has positive weights in each eigendirection of L = -J^T J, so the error it causes
        # is bounded by int_0^h e^{(h-s)L} (s/h) ds e(h) = h phi2(hL) e(h), e(h) = N(h) - p(h).
        # (For q = 0 this is exponential Euler's leading error term.)
        hm = h ** np.arange(1, c.q + 1)
        e_h, e_hat = N_new - c.C.T @ hm, hat_new - c.C_hat.T @ hm
        delta, jb_delta = self._integrate_poly(e_h[None, :] / h, e_hat[None, :] / h, h, tab, 1)
        delta_r = self.alpha * float(np.linalg.norm(self._jvp_cur(cur, delta, jb_delta)))
        r_new = float(np.linalg.norm(new.r))
        dw = new.d - cur.d
        return self._scaled(float(np.linalg.norm(delta)), delta_r, cur, dw, r_new, c.gains(h)[1])

    def _scaled(
        self, err_w: float, err_r: float, cur: _Point, step: Array, r_new_norm: float, gain: float
    ) -> tuple[float, float]:
        """(err, err_sel): the scaled error for the acceptance test (tolerance plus rounding
        floor) and for the step-size choice, whose rounding floor is raised to twice the
        estimate's own rounding (its gain, :meth:`_Interp.gains`, times the rounding of r and
        w) where that is larger: an estimate at that level may be rounding alone, which a
        smaller step does not reduce, so it must not shrink the steps."""
        d_old = float(np.linalg.norm(cur.d))
        d_new = float(np.linalg.norm(cur.d + step))
        tol_w = self.atol + self.rtol * max(d_old, d_new)
        tol_r = self.atol + self.rtol * r_new_norm
        err = max(err_w / (tol_w + cur.noise_w), err_r / (tol_r + cur.noise_r))
        # the floors are _NOISE times the rounding of r and w; the estimate's own rounding is
        # up to gain times theirs: twice that is the level below which it may be noise alone
        g = max(1.0, 2.0 * gain / _NOISE)
        sel = max(err_w / (tol_w + g * cur.noise_w), err_r / (tol_r + g * cur.noise_r))
        return err, sel


def _vandermonde(s: Array) -> tuple[Array, Array, float]:
    """For the nodes s_j < 0 (j = 1..q) of p(s) = sum_m c_m s^m, p(0) = 0: the inverse of
    V_jm = (s_j / scale)^m through all q nodes and through the first q - 1, and scale = -s_1
    (the scaled variable keeps V well conditioned)."""
    q = s.shape[0]
    scale = float(-s[0])
    V = (s[:, None] / scale) ** np.arange(1, q + 1)[None, :]
    V1inv = np.linalg.inv(V[: q - 1, : q - 1]) if q > 1 else np.zeros((0, 0))
    return np.linalg.inv(V), V1inv, scale
