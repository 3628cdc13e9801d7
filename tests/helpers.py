"""Small reference implementations shared by several test modules."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lazycheck.models.base import Model

if TYPE_CHECKING:
    from lazycheck.commands.verify import VerifyReport

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def fd_jacobian(model: Model, w: np.ndarray, X: np.ndarray, step: float) -> np.ndarray:
    """The Jacobian of ``model.forward`` at w by central differences, column by column."""
    J = np.empty((X.shape[0], w.size))
    for k in range(w.size):
        e = np.zeros_like(w)
        e[k] = step
        J[:, k] = (model.forward(w + e, X) - model.forward(w - e, X)) / (2.0 * step)
    return J


@functools.cache
def verified_sample(name: str) -> VerifyReport:
    """``run_verify`` of ``samples/NAME.toml``, computed once per test session (several
    modules read the same reports)."""
    from lazycheck.commands.verify import run_verify
    from lazycheck.problem import load_problem

    return run_verify(load_problem(SAMPLES / f"{name}.toml"))
