"""Integrators for the nonlinear gradient flow w' = -alpha J_w^T (alpha f(w) - y).

Everything runs in the rescaled time tau = alpha^2 t, where the flow reads

    dw/dtau = F(w) = -(1/alpha) J_w^T r(w),   r(w) = alpha f(w) - y,   dr/dtau = -K(w) r,

with the tangent kernel K(w) = J_w J_w^T. The flow is stiff: its stiffness ratio is cond(K),
often 1e3 to 1e6, so an explicit Runge-Kutta method needs a step below about 3 / lambda_max(K)
for stability while the solution lives on the time scale 1 / lambda_min(K).

Default method ``"exp"``: a variable-step exponential Adams integrator
-------------------------------------------------------------------------
At an accepted point w_k (one model evaluation gives f, J_k and K_k = Q Lambda Q^T) split

    F(w) = F_k + L_k (w - w_k) + N_k(w),     L_k = -J_k^T J_k   (the Gauss-Newton Jacobian).

The remainder N_k vanishes at w_k and is small: it only holds the curvature of the model (the
Hessian terms), which is O(1/alpha) in the lazy regime. Variation of constants is exact:

    w(tau_k + h) = w_k + h phi1(h L_k) F_k + int_0^h exp((h - s) L_k) N_k(w(tau_k + s)) ds.

With N_k == 0 this is the exact flow of the model linearized at w_k ("exponential Euler"):
w_{k+1} = w_k - (1/alpha) J_k^T Q diag((1 - e^{-h lambda}) / lambda) Q^T r_k, and the
predicted residual is Q e^{-h Lambda} Q^T r_k. It is exact for a linear model but only first
order in the nonlinearity. The integrator makes it third order at one model evaluation per
step: it interpolates s -> N_k(w(tau_k + s)) by the polynomial p(s) = a1 s + a2 s^2 through
p(0) = 0 and the two previous accepted points, where N_k(w_j) = F(w_j) - F_k - L_k (w_j - w_k)
needs only stored vectors and products with the cached J_k. Integrating p exactly,

    w_{k+1} = w_k + h phi1(h L) F_k + h^2 phi2(h L) a1 + 2 h^3 phi3(h L) a2,

using int_0^h e^{(h-s)L} s^m ds = m! h^(m+1) phi_{m+1}(hL). Every phi-function of
L = -J^T J is applied to a p-vector v through the n x n eigenproblem of K (never forming J):

    phi_j(h L) v = v / j! - h J^T Q diag(phi_{j+1}(-h lambda)) Q^T (J v),

so a trial step costs one VJP, and the stiff part is integrated exactly whatever h lambda_max.

Error control. The local error estimate is the difference between the quadratic (third order)
and the linear (second order) interpolant, est = h^2 a2 (2 h phi3(hL) + h_{k-1} phi2(hL)),
a genuine O(h^3) estimate; the step keeps the third-order value (local extrapolation). It is
measured twice and both must pass: in weight space, ||est|| <= atol + rtol ||w - w0||, and in
residual space, alpha ||J_k est|| <= atol + rtol ||r||, which makes the loss accurate relative
to itself even after it has fallen by many orders of magnitude. After the step the model is
evaluated at w_{k+1} (this evaluation is needed anyway: it starts the next step) and the actual
N_k(w_{k+1}) is compared with p(h); h ||N_k(w_{k+1}) - p(h)||, an upper bound of the error the
interpolant commits over the step, must pass the same test, or the step is rejected (this check
catches what extrapolation from the past cannot see). The first step is exponential Euler
checked a posteriori by h^2 phi2(hL) N_k(w_1)/h, the second uses the linear interpolant. Step
sizes follow h_new = h min(2, max(0.2, 0.9 err^(-1/3))). The integrator lands exactly on every
output time (so the recorded points are accepted steps, at the solver's accuracy, and the model
evaluation there serves both the step and the record).

Reference methods: scipy's ``solve_ivp`` (RK45, DOP853, LSODA, Radau, BDF) in tau-time on the
state (w - w0, rho), where rho' = -K(w) r(w), rho(0) = r(w0), is the residual carried as a
quadrature: it costs one extra JVP per call and makes the solver's step-size control measure
errors in residual space too (without it an explicit method lets the stiff residual components
hover at rtol ||w - w0|| and the loss is wrong once it is small). The implicit methods get the
Gauss-Newton Jacobian. The recorded loss always comes from the model at w, not from rho.

Gradient descent (``"gd"``): w <- w - lr alpha J_w^T (alpha f(w) - y) in unscaled time; iterate
k is time t = k lr. It is stable on the linear model only for lr <= 2 / (alpha^2 lambda_max(K0)).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.linear_flow import phi
from lazycheck.model import Linearization

__all__ = [
    "EXP_METHOD",
    "SCIPY_METHODS",
    "FlowStats",
    "check_lr",
    "exp_flow",
    "gd_flow",
    "gd_grid",
    "gd_stability_limit",
    "integrate",
    "scipy_flow",
]

Array = np.ndarray
#: record(i, w, lin, lam): called at output time i with the weights, their linearization and,
#: when the integrator has them, the kernel eigenvalues (else None).
Recorder = Callable[[int, Array, Linearization, Array | None], None]
#: progress(i): output time i has been reached.
Progress = Callable[[int], None]

EXP_METHOD = "exp"
SCIPY_METHODS = ("RK45", "DOP853", "LSODA", "Radau", "BDF")
IMPLICIT_METHODS = ("LSODA", "Radau", "BDF")
#: GD refuses runs that need more iterations than this (a too-small lr).
GD_MAX_ITERATIONS = 5_000_000
#: implicit scipy methods form a dense (p + n) x (p + n) Jacobian; beyond this p they refuse.
DENSE_JACOBIAN_MAX_P = 6000

_SAFETY = 0.9
_FAC_MIN = 0.2
_FAC_MAX = 2.0
_MAX_REJECTS = 60
_EPS = float(np.finfo(np.float64).eps)
_NOISE = 64.0


@dataclass(frozen=True)
class FlowStats:
    """What an integrator did.

    Attributes:
        method: the method name.
        success, status, message: like scipy's OdeResult (status 0: reached the end,
            -1: failed; ``n_recorded`` output times were recorded before the failure).
        nfev: model evaluations (one forward + backward pass each) by the integrator,
            including those at output times.
        nfev_output: of these, evaluations spent only to record output (scipy methods and gd
            evaluate the model at output times separately; ``exp`` lands on them, so 0).
        n_products: JVP/VJP products on already computed linearizations (cheap).
        n_steps, n_rejected: accepted and rejected steps (for gd: iterations, 0).
        n_recorded: output times recorded.
        max_error: largest accepted scaled error estimate (<= 1), nan when not tracked.
        wall_time: seconds.
    """

    method: str
    success: bool
    status: int
    message: str
    nfev: int
    nfev_output: int
    n_products: int
    n_steps: int
    n_rejected: int
    n_recorded: int
    max_error: float
    wall_time: float


def integrate(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    method: str = EXP_METHOD,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
) -> FlowStats:
    """Integrate the flow from w0 over the output times ``tau`` (tau-time, tau[0] = 0,
    increasing), calling ``record`` at each. ``method``: ``"exp"`` or a scipy method."""
    if method == EXP_METHOD:
        return exp_flow(
            linearize, w0, y, alpha, tau, record, rtol=rtol, atol=atol, lin0=lin0,
            progress=progress,
        )
    if method in SCIPY_METHODS:
        return scipy_flow(
            linearize, w0, y, alpha, tau, record, method=method, rtol=rtol, atol=atol,
            lin0=lin0, progress=progress,
        )
    raise LazycheckError(
        f"unknown flow method {method!r}; use {EXP_METHOD}, {', '.join(SCIPY_METHODS)} or gd"
    )


def exp_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
) -> FlowStats:
    """The exponential Adams integrator of the module docstring."""
    return _ExpAdams(linearize, w0, y, alpha, tau, record, rtol, atol, lin0, progress).run()


def scipy_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    tau: Array,
    record: Recorder,
    *,
    method: str = "DOP853",
    rtol: float = 1e-6,
    atol: float = 1e-12,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
) -> FlowStats:
    """``scipy.integrate.solve_ivp`` on the state (w - w0, rho) in tau-time (module docstring).

    The model is evaluated again at every output time to record it (``nfev_output``)."""
    start = time.perf_counter()
    w0 = np.asarray(w0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, n = w0.shape[0], y.shape[0]
    if method in IMPLICIT_METHODS and p > DENSE_JACOBIAN_MAX_P:
        raise LazycheckError(
            f"--method {method}: an implicit method needs a dense {p + n} x {p + n} Jacobian "
            f"(p = {p} > {DENSE_JACOBIAN_MAX_P}); use --method exp or an explicit method"
        )
    counts = {"fev": 0, "jev": 0, "prod": 0}
    tau = np.asarray(tau, dtype=np.float64)

    def fun(_t: float, s: Array) -> Array:
        counts["fev"] += 1
        lin = linearize(w0 + s[:p])
        r = alpha * lin.f - y
        g = lin.vjp(r)
        counts["prod"] += 2
        out = np.empty(p + n)
        out[:p] = -g / alpha
        out[p:] = -lin.jvp(g)
        return out

    def jac(_t: float, s: Array) -> Array:
        counts["jev"] += 1
        lin = linearize(w0 + s[:p])
        J = lin.jacobian()
        M = np.zeros((p + n, p + n))
        M[:p, :p] = -(J.T @ J)
        M[p:, :p] = -alpha * (lin.kernel() @ J)
        return M

    nfev_output = 0
    if lin0 is None:
        lin0 = linearize(w0)
        nfev_output += 1
    r0 = alpha * lin0.f - y
    s0 = np.concatenate([np.zeros(p), r0])
    kwargs: dict[str, object] = {"jac": jac} if method in IMPLICIT_METHODS else {}
    solver_cls = _scipy_solver(method)
    solver = solver_cls(fun, 0.0, s0, float(tau[-1]), rtol=rtol, atol=atol, **kwargs)
    record(0, w0.copy(), lin0, None)
    if progress is not None:
        progress(0)
    i_next = 1
    n_steps = 0
    message = ""
    with np.errstate(over="ignore", invalid="ignore"):
        while i_next < tau.shape[0]:
            message = solver.step() or ""
            if solver.status == "failed":
                break
            n_steps += 1
            if not np.all(np.isfinite(solver.y)):
                message = "the solution became non-finite"
                break
            t_new = solver.t
            if solver.status == "finished":
                t_new = float(tau[-1])
            sol = None
            while i_next < tau.shape[0] and tau[i_next] <= t_new:
                if i_next == tau.shape[0] - 1 and solver.status == "finished":
                    s = solver.y
                else:
                    if sol is None:
                        sol = solver.dense_output()
                    s = sol(tau[i_next])
                w = w0 + s[:p]
                lin = linearize(w)
                nfev_output += 1
                record(i_next, w, lin, None)
                if progress is not None:
                    progress(i_next)
                i_next += 1
            if solver.status == "finished":
                break
    success = i_next == tau.shape[0]
    if success:
        message = f"{method}: reached tau = {tau[-1]:.6g} in {n_steps} steps"
    else:
        message = f"{method} failed at tau = {solver.t:.6g}: {message or 'no progress'}"
    return FlowStats(
        method=method,
        success=success,
        status=0 if success else -1,
        message=message,
        nfev=counts["fev"] + counts["jev"] + nfev_output,
        nfev_output=nfev_output,
        n_products=counts["prod"],
        n_steps=n_steps,
        n_rejected=-1,
        n_recorded=i_next,
        max_error=math.nan,
        wall_time=time.perf_counter() - start,
    )


def gd_stability_limit(lam_max: float, alpha: float) -> float:
    """The largest stable learning rate of GD on the linear model: 2 / (alpha^2 lambda_max)."""
    if lam_max <= 0:
        return math.inf
    return 2.0 / (alpha**2 * lam_max)


def check_lr(lr: float | None, alpha: float, lam_max: float) -> float:
    """Validate the GD learning rate against the stability limit; return the limit."""
    limit = gd_stability_limit(lam_max, alpha)
    if lr is None:
        raise LazycheckError(
            f"--method gd needs a learning rate: give --lr or [flow].lr (stable below "
            f"2/(alpha^2 lambda_max(K0)) = {limit:.6g})"
        )
    if not (lr > 0 and math.isfinite(lr)):
        raise LazycheckError(f"--lr / [flow].lr must be a finite number > 0, got {lr!r}")
    if lr > limit:
        raise LazycheckError(
            f"--lr / [flow].lr = {lr:.6g} exceeds the gradient-descent stability limit "
            f"2/(alpha^2 lambda_max(K0)) = {limit:.6g} at alpha = {alpha:.6g}; GD would diverge"
        )
    return limit


def gd_grid(t: Array, lr: float) -> tuple[Array, Array]:
    """Snap output times to GD iterates: (iteration indices k, times k lr), strictly
    increasing, always keeping k = 0 and the last time (rounded up to a whole iterate)."""
    t = np.asarray(t, dtype=np.float64)
    k = np.rint(t / lr).astype(np.int64)
    k[-1] = max(int(math.ceil(t[-1] / lr - 1e-9)), 1)
    k = np.unique(np.concatenate([[0], k]))
    if k[-1] > GD_MAX_ITERATIONS:
        raise LazycheckError(
            f"--lr / [flow].lr = {lr:.6g} needs {int(k[-1])} gradient-descent iterations to "
            f"reach t = {t[-1]:.6g} (at most {GD_MAX_ITERATIONS}); raise --lr or shorten "
            "--horizon"
        )
    return k, k * lr


def gd_flow(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    lr: float,
    iterations: Array,
    record: Recorder,
    *,
    lin0: Linearization | None = None,
    progress: Progress | None = None,
) -> FlowStats:
    """Gradient descent w <- w - lr alpha J_w^T (alpha f(w) - y), recording at the given
    (increasing, starting at 0) iteration indices."""
    start = time.perf_counter()
    w = np.array(w0, dtype=np.float64, copy=True)
    y = np.asarray(y, dtype=np.float64)
    iterations = np.asarray(iterations, dtype=np.int64)
    nfev = 0
    lin = lin0
    if lin is None:
        lin = linearize(w)
        nfev += 1
    r = alpha * lin.f - y
    L0 = 0.5 * float(r @ r)
    j = 0
    k = 0
    last = int(iterations[-1])
    while True:
        if k == iterations[j]:
            record(j, w, lin, None)
            if progress is not None:
                progress(j)
            j += 1
            if j == iterations.shape[0]:
                break
        loss = 0.5 * float(r @ r)
        if not math.isfinite(loss) or loss > 1e12 * max(L0, 1e-300):
            return FlowStats(
                "gd", False, -1, f"gd diverged at iteration {k} (t = {k * lr:.6g}): loss {loss:.3g}",
                nfev, 0, k, k, 0, j, math.nan, time.perf_counter() - start,
            )
        w -= (lr * alpha) * lin.vjp(r)
        k += 1
        lin = linearize(w)
        nfev += 1
        r = alpha * lin.f - y
    return FlowStats(
        "gd", True, 0, f"gd: {last} iterations at lr = {lr:.6g}", nfev, 0, last, last, 0, j,
        math.nan, time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------- helpers


def _scipy_solver(method: str) -> type:
    import scipy.integrate as si

    return getattr(si, method)


@dataclass
class _Point:
    """An accepted point of the exponential integrator."""

    tau: float
    w: Array
    lin: Linearization
    r: Array  # residual alpha f(w) - y
    F: Array  # dw/dtau = -(1/alpha) J^T r
    lam: Array  # eigenvalues of K(w), clipped at 0
    Q: Array  # eigenvectors
    noise_w: float  # rounding floor of weight errors
    noise_r: float  # rounding floor of residual errors


class _ExpAdams:
    """The variable-step exponential Adams integrator (see the module docstring)."""

    def __init__(
        self,
        linearize: Callable[[Array], Linearization],
        w0: Array,
        y: Array,
        alpha: float,
        tau: Array,
        record: Recorder,
        rtol: float,
        atol: float,
        lin0: Linearization | None,
        progress: Progress | None,
    ) -> None:
        self.linearize = linearize
        self.w0 = np.array(w0, dtype=np.float64, copy=True)
        self.y = np.asarray(y, dtype=np.float64)
        self.alpha = float(alpha)
        self.tau = np.asarray(tau, dtype=np.float64)
        self.record = record
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.lin0 = lin0
        self.progress = progress
        self.nfev = 0
        self.n_products = 0
        self.n_steps = 0
        self.n_rejected = 0
        self.max_error = 0.0

    # -- model access
    def _point(self, tau: float, w: Array, lin: Linearization | None = None) -> _Point:
        if lin is None:
            lin = self.linearize(w)
            self.nfev += 1
        r = self.alpha * lin.f - self.y
        F = -lin.vjp(r) / self.alpha
        self.n_products += 1
        K = lin.kernel()
        lam, Q = np.linalg.eigh(0.5 * (K + K.T))
        lam = np.maximum(lam, 0.0)
        # rounding floors: w is stored to eps |w_i|, which moves r by up to
        # alpha sigma_max eps ||w||; forming alpha f - y rounds at eps (alpha ||f|| + ||y||)
        w_norm = float(np.linalg.norm(w))
        noise_w = _NOISE * _EPS * w_norm
        noise_r = _NOISE * _EPS * (
            self.alpha * math.sqrt(float(lam[-1])) * w_norm
            + self.alpha * float(np.linalg.norm(lin.f))
            + float(np.linalg.norm(self.y))
        )
        return _Point(tau, w, lin, r, F, lam, Q, noise_w, noise_r)

    def _stats(self, success: bool, message: str, n_recorded: int, start: float) -> FlowStats:
        return FlowStats(
            method=EXP_METHOD,
            success=success,
            status=0 if success else -1,
            message=message,
            nfev=self.nfev,
            nfev_output=0,
            n_products=self.n_products,
            n_steps=self.n_steps,
            n_rejected=self.n_rejected,
            n_recorded=n_recorded,
            max_error=self.max_error,
            wall_time=time.perf_counter() - start,
        )

    def run(self) -> FlowStats:
        start = time.perf_counter()
        cur = self._point(0.0, self.w0, self.lin0)
        self.record(0, cur.w, cur.lin, cur.lam)
        if self.progress is not None:
            self.progress(0)
        history: list[_Point] = []
        n_out = self.tau.shape[0]
        h = float(self.tau[1]) if n_out > 1 else 0.0
        i_next = 1
        while i_next < n_out:
            target = float(self.tau[i_next])
            dist = target - cur.tau
            coeffs = self._interpolant(cur, history)
            rejects = 0
            while True:
                if h >= dist * (1.0 - 1e-12):
                    step, land = dist, True
                else:
                    m = math.ceil(dist / h - 1e-12)
                    step, land = dist / m, False
                err_pre, trial = self._trial(cur, coeffs, step)
                if err_pre <= 1.0:
                    tau_new = target if land else cur.tau + step
                    w_new = cur.w + trial
                    if not np.all(np.isfinite(w_new)):
                        err_post = math.inf
                        new = None
                    else:
                        new = self._point(tau_new, w_new)
                        err_post = self._posterior(cur, coeffs, step, new)
                    err = max(err_pre, err_post)
                else:
                    err, new = err_pre, None
                if new is not None and err <= 1.0 and math.isfinite(err):
                    break
                self.n_rejected += 1
                rejects += 1
                if rejects > _MAX_REJECTS or step < 1e-13 * max(cur.tau, target):
                    return self._stats(
                        False,
                        f"exp: step size collapsed at tau = {cur.tau:.6g} "
                        f"(t = {cur.tau / self.alpha**2:.6g}) after {rejects} rejections",
                        i_next,
                        start,
                    )
                fac = _FAC_MIN if not math.isfinite(err) else _factor(err, coeffs.order)
                h = step * min(fac, 0.9)
            self.n_steps += 1
            self.max_error = max(self.max_error, err)
            h_next = step * _factor(err, coeffs.order)
            if land and step < h:  # a step shortened to land: keep the controller's size
                h_next = max(h_next, h)
            h = h_next
            history = [cur, *history[:1]]
            cur = new
            if land:
                self.record(i_next, cur.w, cur.lin, cur.lam)
                if self.progress is not None:
                    self.progress(i_next)
                i_next += 1
        return self._stats(
            True,
            f"exp: reached tau = {cur.tau:.6g} in {self.n_steps} steps "
            f"({self.n_rejected} rejected)",
            n_out,
            start,
        )

    # -- one step
    def _interpolant(self, cur: _Point, history: list[_Point]) -> _Interp:
        """Coefficients of p(s) = a1 s + a2 s^2 through N_cur at the history points."""
        lin = cur.lin
        Ns, ss = [], []
        for old in history:
            dw = old.w - cur.w
            N = old.F - cur.F + lin.vjp(lin.jvp(dw))  # F_j - F_k - L_k (w_j - w_k)
            self.n_products += 2
            Ns.append(N)
            ss.append(old.tau - cur.tau)
        order = len(history) + 1
        if order == 1:
            return _Interp(order, None, None, None, 0.0)
        q1 = Ns[0] / ss[0]
        if order == 2:
            return _Interp(order, q1, None, cur.Q.T @ lin.jvp(q1), ss[0])
        q2 = Ns[1] / ss[1]
        a2 = (q1 - q2) / (ss[0] - ss[1])
        a1 = q1 - a2 * ss[0]
        Ja1 = lin.jvp(a1)
        Ja2 = lin.jvp(a2)
        self.n_products += 2
        return _Interp(order, a1, a2, (cur.Q.T @ Ja1, cur.Q.T @ Ja2), ss[0])

    def _trial(self, cur: _Point, c: _Interp, h: float) -> tuple[float, Array]:
        """The step of size h from ``cur`` and its a-priori scaled error (0 for order 1)."""
        lam, Q, a = cur.lam, cur.Q, self.alpha
        x = h * lam
        r_hat = Q.T @ cur.r
        ph1 = h * phi(1, x)
        coef = -(ph1 * r_hat) / a  # exponential Euler: -(1/alpha) e(lambda, h) Q^T r
        free = None  # the part of the step outside range(J^T)
        jfree_hat = np.zeros_like(r_hat)  # Q^T J free
        if c.order == 2:
            ph3 = h**3 * phi(3, x)
            coef -= ph3 * c.ja_hat
            free = (0.5 * h**2) * c.a1
            jfree_hat = (0.5 * h**2) * c.ja_hat
        elif c.order == 3:
            ja1_hat, ja2_hat = c.ja_hat
            ph3 = h**3 * phi(3, x)
            ph4 = h**4 * phi(4, x)
            coef -= ph3 * ja1_hat + 2.0 * ph4 * ja2_hat
            free = (0.5 * h**2) * c.a1 + (h**3 / 3.0) * c.a2
            jfree_hat = (0.5 * h**2) * ja1_hat + (h**3 / 3.0) * ja2_hat
        step = cur.lin.vjp(Q @ coef)
        self.n_products += 1
        if free is not None:
            step = step + free
        # predicted residual r_k + alpha J_k step, in the eigenbasis
        r_pred_hat = r_hat + a * (jfree_hat + lam * coef)
        if c.order == 1:
            return 0.0, step
        if c.order == 2:
            # est = h^2 phi2(hL) q1 = h^2 q1 / 2 - h^3 J^T Q (phi3 * Q^T J q1)
            g = -h**3 * phi(3, x) * c.ja_hat
            est_free, est_free_hat = (0.5 * h**2) * c.a1, (0.5 * h**2) * c.ja_hat
        else:
            # est = h^2 a2 (2 h phi3(hL) - s1 phi2(hL)) with s1 = tau_{k-1} - tau_k < 0
            s1 = c.s1
            ja2_hat = c.ja_hat[1]
            cst = 2.0 * h**3 / 6.0 - s1 * h**2 / 2.0
            g = -(2.0 * h**4 * phi(4, x) - s1 * h**3 * phi(3, x)) * ja2_hat
            est_free, est_free_hat = cst * c.a2, cst * ja2_hat
        est = est_free + cur.lin.vjp(Q @ g)
        self.n_products += 1
        est_r = a * np.linalg.norm(est_free_hat + lam * g)
        err = self._scaled(np.linalg.norm(est), est_r, cur, step, np.linalg.norm(r_pred_hat))
        return err, step

    def _posterior(self, cur: _Point, c: _Interp, h: float, new: _Point) -> float:
        """Scaled size of the interpolation error seen at the new point (module docstring)."""
        lin = cur.lin
        dw = new.w - cur.w
        N_new = new.F - cur.F + lin.vjp(lin.jvp(dw))
        self.n_products += 2
        if c.order == 1:
            # exponential Euler's error: h^2 phi2(hL) N(h)/h = h phi2(hL) N
            x = h * cur.lam
            jN_hat = cur.Q.T @ lin.jvp(N_new)
            g = -h**2 * phi(3, x) * jN_hat
            delta = 0.5 * h * N_new + lin.vjp(cur.Q @ g)
            delta_r = self.alpha * np.linalg.norm(0.5 * h * jN_hat + cur.lam * g)
            self.n_products += 2
        else:
            p_h = c.a1 * h if c.order == 2 else c.a1 * h + c.a2 * h**2
            delta = h * (N_new - p_h)
            delta_r = self.alpha * np.linalg.norm(lin.jvp(delta))
            self.n_products += 1
        return self._scaled(np.linalg.norm(delta), delta_r, cur, dw, np.linalg.norm(new.r))

    def _scaled(
        self, err_w: float, err_r: float, cur: _Point, step: Array, r_new_norm: float
    ) -> float:
        d_old = np.linalg.norm(cur.w - self.w0)
        d_new = np.linalg.norm(cur.w + step - self.w0)
        scale_w = self.atol + self.rtol * max(d_old, d_new) + cur.noise_w
        scale_r = self.atol + self.rtol * r_new_norm + cur.noise_r
        return max(err_w / scale_w, err_r / scale_r)


@dataclass(frozen=True)
class _Interp:
    order: int
    a1: Array | None
    a2: Array | None
    ja_hat: object  # Q^T J a1 (order 2) or (Q^T J a1, Q^T J a2) (order 3)
    s1: float


def _factor(err: float, order: int) -> float:
    q = 3.0 if order == 3 else 2.0
    if err <= 0:
        return _FAC_MAX
    return min(_FAC_MAX, max(_FAC_MIN, _SAFETY * err ** (-1.0 / q)))
