"""The result type of every beta estimate, and the radius-consistency test R >= B."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BetaEstimate", "radius_consistent"]

Array = np.ndarray


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


def radius_consistent(radius: float, beta: float, sigma_min: float) -> bool:
    """R >= B = sigma_min / (2 beta): a beta measured on radius R is valid for the theorem."""
    if beta == 0 or math.isinf(radius):
        return True
    return radius >= sigma_min / (2.0 * beta) * (1 - 1e-12)
