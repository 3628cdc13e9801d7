"""What an integrator reports: :class:`FlowStats`, and the callbacks it calls.

Counting: one ``linearize`` (a forward and a backward pass) is one model evaluation (nfev);
JVPs and VJPs on a linearization already computed are counted apart (n_products). The
evaluations spent only to record output are counted in nfev too and apart in nfev_output: the
scipy methods' at every output time, ``exp``'s at the output times inside a step (n_dense).
Kernels (n_kernels) are those the integrator builds and eigendecomposes; the basis at w0 is
not among them when the caller passes K0's eigendecomposition (``eig0``, as simulate does
from the linear flow's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lazycheck.models.base import Linearization

__all__ = ["FlowStats", "Progress", "Recorder"]

Array = np.ndarray
#: record(i, w, lin, lam): called at output time i with the weights, their linearization and,
#: when the integrator has them, the kernel eigenvalues (else None).
Recorder = Callable[[int, Array, Linearization, Array | None], None]
#: progress(i): output time i has been reached.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class FlowStats:
    """What an integrator did.

    Attributes:
        method: the method name.
        success, status, message: like scipy's OdeResult (status 0: reached the end,
            -1: failed; ``n_recorded`` output times were recorded before the failure).
        nfev: model evaluations (one forward + backward pass each) by the integrator,
            including those at output times.
        nfev_output: of these, evaluations spent only to record output (scipy methods
            evaluate the model at every output time from their dense output; ``exp`` at the
            output times inside a step, ``n_dense``; gd records its iterates, so 0).
        n_products: JVP/VJP products on already computed linearizations (cheap).
        n_steps, n_rejected: accepted and rejected steps (for gd: iterations, 0).
        n_recorded: output times recorded.
        max_error: largest accepted scaled error estimate (<= 1), nan when not tracked.
        wall_time: seconds.
        n_kernels: kernels built and eigendecomposed by the integrator (exp only; the one at
            w0 is not counted when the caller passed its eigendecomposition, ``eig0``).
        n_dense: output times recorded from the continuous extension of a step (exp only).
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
    n_kernels: int = 0
    n_dense: int = 0
