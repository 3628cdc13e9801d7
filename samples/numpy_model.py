"""A hand-written numpy model for lazycheck: random sine features with trainable frequencies.

    f(x, w) = (1/sqrt(m)) sum_j a_j sin(theta_j . x / sqrt(d)),   w = (a, theta) in R^(m (d + 1))

It implements the NumpyModel protocol (README, "Your own model"): f, vjp and jvp by hand, and a
certified beta bound from its Hessian, which is block-diagonal over the m features.
Used by samples/numpy_model.toml:  lazycheck bound samples/numpy_model.toml
"""

from __future__ import annotations

import math

import numpy as np

import lazycheck


class SineFeatures(lazycheck.NumpyModel):
    smooth = True  # sin has bounded derivatives of every order

    def __init__(self, input_dim: int, width: int) -> None:
        self.d, self.m = input_dim, width
        self.n_params = width * (input_dim + 1)
        self.c1, self.c2 = 1.0 / math.sqrt(input_dim), 1.0 / math.sqrt(width)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(self.n_params)

    def unpack(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return w[: self.m], w[self.m :].reshape(self.m, self.d)

    def f(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        a, theta = self.unpack(w)
        return self.c2 * np.sin(self.c1 * X @ theta.T) @ a

    def jvp(self, w: np.ndarray, X: np.ndarray, v: np.ndarray) -> np.ndarray:
        a, theta = self.unpack(w)
        va, vtheta = self.unpack(v)
        Z = self.c1 * X @ theta.T  # (n, m)
        return self.c2 * (np.sin(Z) @ va + (np.cos(Z) * (self.c1 * X @ vtheta.T)) @ a)

    def vjp(self, w: np.ndarray, X: np.ndarray, r: np.ndarray) -> np.ndarray:
        a, theta = self.unpack(w)
        Z = self.c1 * X @ theta.T
        ga = self.c2 * np.sin(Z).T @ r
        gtheta = self.c2 * self.c1 * (np.cos(Z) * r[:, None] * a[None, :]).T @ X
        return np.concatenate([ga, gtheta.ravel()])

    def beta_bound(self, X: np.ndarray, w0: np.ndarray, radius: float) -> float:
        """Certified: the Hessian of sum_i c_i f(x_i, .) (||c|| = 1) is block-diagonal over
        the features; feature j's block [[0, u^T], [u, S]] has ||u|| <= c2 c1 ||X|| and
        ||S|| <= c2 |a_j| c1^2 ||X||^2 (|sin|, |cos| <= 1), and |a_j| <= |a_j0| + R on the
        ball, so ||J_w - J_0|| / ||w - w0|| <= max_j of s/2 + sqrt(s^2/4 + t^2)."""
        a0, _ = self.unpack(np.asarray(w0))
        xn = float(np.linalg.norm(X, 2))
        t = self.c2 * self.c1 * xn
        s = self.c2 * (np.abs(a0) + radius) * self.c1**2 * xn**2
        return float(np.max(0.5 * s + np.sqrt(0.25 * s * s + t * t))) * (1 + 1e-12)

    def describe(self) -> str:
        return f"sine features, input {self.d}, width {self.m}, p = {self.n_params}"


def make_model(input_dim: int, rng: np.random.Generator, width: int = 200) -> SineFeatures:
    """The factory named in numpy_model.toml: entry = "numpy_model.py:make_model"."""
    return SineFeatures(input_dim, width)
