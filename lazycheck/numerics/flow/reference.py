"""Reference methods: scipy's ODE solvers, against which the default integrator is tested.

RK45, DOP853, LSODA, Radau and BDF (the classes behind ``solve_ivp``) run in tau-time on the
state (w - w0, rho), where rho' = -K(w) r(w), rho(0) = r(w0), is the residual carried as a
quadrature. It costs one extra JVP per call and makes the solver's step-size control measure
errors in residual space as well: without it an explicit method lets the stiff residual
components hover at rtol ||w - w0|| and the loss is wrong once it is small. The implicit methods
get the Gauss-Newton Jacobian. The recorded loss always comes from the model at w (dense output
of the solver), never from rho.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization
from lazycheck.numerics.flow.stats import FlowStats, Progress, Recorder

__all__ = [
    "DENSE_JACOBIAN_MAX_P",
    "IMPLICIT_METHODS",
    "SCIPY_MAX_NFEV",
    "SCIPY_METHODS",
    "scipy_flow",
]

Array = np.ndarray
SCIPY_METHODS = ("RK45", "DOP853", "LSODA", "Radau", "BDF")
IMPLICIT_METHODS = ("LSODA", "Radau", "BDF")
#: implicit scipy methods form a dense (p + n) x (p + n) Jacobian; beyond this p they refuse.
DENSE_JACOBIAN_MAX_P = 6000
#: evaluation budget of the scipy methods
SCIPY_MAX_NFEV = 3_000_000


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
    max_nfev: int = SCIPY_MAX_NFEV,
) -> FlowStats:
    """A scipy ODE solver (the ``OdeSolver`` classes behind ``solve_ivp``, stepped here so
    that steps can be counted and output recorded on the way) on the state (w - w0, rho) in
    tau-time (module docstring). Output times come from the solver's dense output; the model is
    evaluated again there to record them (``nfev_output``)."""
    start = time.perf_counter()
    w0 = np.asarray(w0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, n = w0.shape[0], y.shape[0]
    if method in IMPLICIT_METHODS and p > DENSE_JACOBIAN_MAX_P:
        raise LazycheckError(
            f"--method {method}: an implicit method needs a dense {p + n} x {p + n} Jacobian "
            f"(p = {p} > {DENSE_JACOBIAN_MAX_P}); use --method exp or an explicit method"
        )
    counts = {"fev": 0, "jev": 0, "prod": 0, "out": 0, "steps": 0}
    tau = np.asarray(tau, dtype=np.float64)
    fun, jac = _scipy_rhs(linearize, w0, y, alpha, counts)
    if lin0 is None:
        lin0 = linearize(w0)
        counts["fev"] += 1
    s0 = np.concatenate([np.zeros(p), alpha * lin0.f - y])
    kwargs: dict[str, object] = {"jac": jac} if method in IMPLICIT_METHODS else {}
    solver_cls = _scipy_solver(method)
    solver = solver_cls(fun, 0.0, s0, float(tau[-1]), rtol=rtol, atol=atol, **kwargs)
    record(0, w0.copy(), lin0, None)
    if progress is not None:
        progress(0)
    i_next, message = _scipy_steps(solver, linearize, w0, tau, record, progress, counts, max_nfev)
    success = i_next == tau.shape[0]
    if success:
        message = f"{method}: reached tau = {tau[-1]:.6g} in {counts['steps']} steps"
    else:
        message = f"{method} failed at tau = {solver.t:.6g}: {message or 'no progress'}"
    return FlowStats(
        method=method,
        success=success,
        status=0 if success else -1,
        message=message,
        nfev=counts["fev"] + counts["jev"] + counts["out"],
        nfev_output=counts["out"],
        n_products=counts["prod"],
        n_steps=counts["steps"],
        n_rejected=-1,
        n_recorded=i_next,
        max_error=math.nan,
        wall_time=time.perf_counter() - start,
    )


def _scipy_rhs(
    linearize: Callable[[Array], Linearization],
    w0: Array,
    y: Array,
    alpha: float,
    counts: dict[str, int],
) -> tuple[Callable[[float, Array], Array], Callable[[float, Array], Array]]:
    """The right-hand side of (w - w0, rho) in tau-time and its Gauss-Newton Jacobian
    (:func:`scipy_flow`), counting evaluations and products in ``counts``."""
    p, n = w0.shape[0], y.shape[0]

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

    return fun, jac


def _scipy_steps(
    solver: Any,
    linearize: Callable[[Array], Linearization],
    w0: Array,
    tau: Array,
    record: Recorder,
    progress: Progress | None,
    counts: dict[str, int],
    max_nfev: int,
) -> tuple[int, str]:
    """Step a scipy solver to tau[-1], recording the output times it passes from its dense
    output (one model evaluation each, ``counts["out"]``): (output times recorded, message)."""
    p = w0.shape[0]
    i_next, message = 1, ""
    with np.errstate(over="ignore", invalid="ignore"):
        while i_next < tau.shape[0]:
            if counts["fev"] + counts["jev"] > max_nfev:
                return i_next, f"evaluation budget of {max_nfev} spent"
            message = solver.step() or ""
            if solver.status == "failed":
                break
            counts["steps"] += 1
            if not np.all(np.isfinite(solver.y)):
                return i_next, "the solution became non-finite"
            finished = solver.status == "finished"
            t_new = float(tau[-1]) if finished else solver.t
            sol = None
            while i_next < tau.shape[0] and tau[i_next] <= t_new:
                if i_next == tau.shape[0] - 1 and finished:
                    s = solver.y
                else:
                    if sol is None:
                        sol = solver.dense_output()
                    s = sol(tau[i_next])
                w = w0 + s[:p]
                lin = linearize(w)
                counts["out"] += 1
                record(i_next, w, lin, None)
                if progress is not None:
                    progress(i_next)
                i_next += 1
            if finished:
                break
    return i_next, message


def _scipy_solver(method: str) -> type:
    import scipy.integrate as si

    return getattr(si, method)
