"""Gradient descent, ``"gd"``: the discrete iteration compared with the flow.

w <- w - lr alpha J_w^T (alpha f(w) - y) in unscaled time; iterate k is time t = k lr. On the
linear model it is stable only for lr <= 2 / (alpha^2 lambda_max(K0)) (a nonlinear model may
survive a slightly larger lr by moving to where lambda_max(K) is smaller, but lazycheck refuses
it: the comparison with the flow is the point). Its error against the flow is first order in lr.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization
from lazycheck.numerics.flow.stats import FlowStats, Progress, Recorder

__all__ = ["GD_MAX_ITERATIONS", "check_lr", "gd_flow", "gd_grid", "gd_stability_limit"]

Array = np.ndarray
#: GD refuses runs that need more iterations than this (a too-small lr).
GD_MAX_ITERATIONS = 5_000_000


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
    k[-1] = max(math.ceil(t[-1] / lr - 1e-9), 1)
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
    w0 = np.asarray(w0, dtype=np.float64)
    d = np.zeros_like(w0)  # the iterate is w0 + d (see _ExpAdams._point on rounding)
    w = w0.copy()
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
    success, message = True, f"gd: {last} iterations at lr = {lr:.6g}"
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
            success = False
            message = f"gd diverged at iteration {k} (t = {k * lr:.6g}): loss {loss:.3g}"
            break
        d -= (lr * alpha) * lin.vjp(r)
        w = w0 + d
        k += 1
        lin = linearize(w)
        nfev += 1
        r = alpha * lin.f - y
    return FlowStats(
        method="gd",
        success=success,
        status=0 if success else -1,
        message=message,
        nfev=nfev,
        nfev_output=0,
        n_products=k,
        n_steps=k,
        n_rejected=0,
        n_recorded=j,
        max_error=math.nan,
        wall_time=time.perf_counter() - start,
    )
