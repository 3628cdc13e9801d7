"""The integrators behind one entry point, :func:`integrate`, by method name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.models.base import Linearization
from lazycheck.numerics.flow.exponential import EXP_METHOD, exp_flow
from lazycheck.numerics.flow.reference import SCIPY_MAX_NFEV, SCIPY_METHODS, scipy_flow
from lazycheck.numerics.flow.stats import FlowStats, Progress, Recorder

__all__ = ["EXP_METHOD", "integrate"]

Array = np.ndarray


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
    budget: int | None = None,
    eig0: tuple[Array, Array] | None = None,
) -> FlowStats:
    """Integrate the flow from w0 over the output times ``tau`` (tau-time, tau[0] = 0,
    increasing), calling ``record`` at each. ``method``: ``"exp"`` or a scipy method.
    ``budget``: the step budget of ``exp`` or the evaluation budget of a scipy method (the
    run stops with success False when it is spent). ``eig0``: (lam, Q) of the kernel at w0
    when the caller has it (``lin0`` must then be given; ``exp`` starts from it)."""
    common = {"rtol": rtol, "atol": atol, "lin0": lin0, "progress": progress}
    if method == EXP_METHOD:
        return exp_flow(
            linearize, w0, y, alpha, tau, record, max_steps=budget or None,
            eig0=eig0, **common,
        )  # fmt: skip
    if method in SCIPY_METHODS:
        return scipy_flow(
            linearize,
            w0,
            y,
            alpha,
            tau,
            record,
            method=method,
            max_nfev=budget or SCIPY_MAX_NFEV,
            **common,
        )
    raise LazycheckError(
        f"unknown flow method {method!r}; use {EXP_METHOD}, {', '.join(SCIPY_METHODS)} or gd"
    )
