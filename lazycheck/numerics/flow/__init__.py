"""Integrators for the nonlinear gradient flow w' = -alpha J_w^T (alpha f(w) - y).

Everything runs in the rescaled time tau = alpha^2 t, where the flow reads

    dw/dtau = F(w) = -(1/alpha) J_w^T r(w),   r(w) = alpha f(w) - y,   dr/dtau = -K(w) r,

with the tangent kernel K(w) = J_w J_w^T. The flow is stiff: its stiffness ratio is cond(K),
often 1e3 to 1e6, so an explicit Runge-Kutta method needs steps below about 3 / lambda_max(K)

Methods (one module each):

* ``"exp"`` (the default): a variable-step exponential Adams integrator, exact for the model
  linearized at a point, with a-priori and a-posteriori error control, dense output and the
  kernel's eigenbasis kept across steps (:mod:`.exponential`, its step machinery in
  :mod:`.steps`);
* scipy's ODE solvers as references (:mod:`.reference`);
* gradient descent, ``"gd"`` (:mod:`.descent`).

:func:`integrate` (:mod:`.dispatch`) runs ``"exp"`` or a scipy method by name; each reports a
:class:`FlowStats` (:mod:`.stats`, which also says how model evaluations are counted). The
residual's rounding floor, below which a loss is noise, is in :mod:`.rounding`.
"""

from __future__ import annotations

from lazycheck.numerics.flow.descent import (
    GD_MAX_ITERATIONS,
    check_lr,
    gd_flow,
    gd_grid,
    gd_stability_limit,
)
from lazycheck.numerics.flow.dispatch import EXP_METHOD, integrate
from lazycheck.numerics.flow.exponential import EXP_MAX_STEPS, KERNEL_REUSE_MIN_N, exp_flow
from lazycheck.numerics.flow.reference import (
    DENSE_JACOBIAN_MAX_P,
    IMPLICIT_METHODS,
    SCIPY_MAX_NFEV,
    SCIPY_METHODS,
    scipy_flow,
)
from lazycheck.numerics.flow.rounding import probe_signs, residual_floor
from lazycheck.numerics.flow.stats import FlowStats, Progress, Recorder

__all__ = [
    "DENSE_JACOBIAN_MAX_P",
    "EXP_MAX_STEPS",
    "EXP_METHOD",
    "GD_MAX_ITERATIONS",
    "IMPLICIT_METHODS",
    "KERNEL_REUSE_MIN_N",
    "SCIPY_MAX_NFEV",
    "SCIPY_METHODS",
    "FlowStats",
    "Progress",
    "Recorder",
    "check_lr",
    "exp_flow",
    "gd_flow",
    "gd_grid",
    "gd_stability_limit",
    "integrate",
    "probe_signs",
    "residual_floor",
    "scipy_flow",
]
