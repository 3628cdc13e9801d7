"""Small reference implementations shared by several test modules."""

from __future__ import annotations

import numpy as np

from lazycheck.models.base import Model


def fd_jacobian(model: Model, w: np.ndarray, X: np.ndarray, step: float) -> np.ndarray:
    """The Jacobian of ``model.forward`` at w by central differences, column by column."""
    J = np.empty((X.shape[0], w.size))
    for k in range(w.size):
        e = np.zeros_like(w)
        e[k] = step
        J[:, k] = (model.forward(w + e, X) - model.forward(w - e, X)) / (2.0 * step)
    return J
