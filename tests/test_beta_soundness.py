"""A search for violations of the certified beta: it must hold on the whole ball it names.

For every smooth activation, with and without biases, both parameterizations, depth 1-3,
saturated (large sigma_w, large inputs) and small inputs, plain, centered and symmetric
models, on the self-consistent radius, on given radii and on the unit ball of a
rank-deficient J0: compute the certified beta on its ball of radius R, then look for a point w
with ||w - w0|| <= R and ||J_w - J_0|| / ||w - w0|| above it, by

* random directions at random radii in the ball and on its surface;
* unit-crossing directions (move one first-layer unit's pre-activation through its
  inflection, where a saturated unit's curvature lives);
* the sampled search's worst direction (``sampled_beta`` restricted to the same radius);
* an adversarial zero-order ascent on the ratio, projected on the ball.

Ratios are computed independently of the bound and of the difference kernel: the spectral norm
of the difference of two explicit Jacobians. Floating-point slack on that ratio (stated): a
relative 1e-9 and an absolute 1e-12 (||J_w||_F + ||J_0||_F) / ||w - w0||, the rounding of a
difference of two computed Jacobians (about 1e4 eps of their size).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazycheck.beta import certified_beta_auto, sampled_beta
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel
from lazycheck.numerics.spectrum import jacobian_spectrum

SMOOTH = ["tanh", "sigmoid", "softplus", "gelu", "erf", "sin", "identity"]
REL_SLACK = 1e-9
ABS_SLACK = 1e-12


class _Ball:
    """A model, its data, w0 and the certified beta on the ball of radius R."""

    def __init__(self, model, X: np.ndarray, w0: np.ndarray, radius: str | float) -> None:
        self.model, self.X, self.w0 = model, X, w0
        self.J0 = model.linearize(w0, X).jacobian()
        spec = jacobian_spectrum(model.linearize(w0, X), model.n_params)
        self.sigma_min = spec.sigma_min if spec.ok else 0.0
        est = certified_beta_auto(model, X, w0, self.sigma_min, radius)
        assert est is not None
        self.est = est
        self.R = est.radius
        self.worst = 0.0  # the largest ratio found, less its slack (<= 0 means none above)
        self.best_point: np.ndarray | None = None

    def ratio(self, d: np.ndarray) -> float:
        """Record ||J_{w0+d} - J_0|| / ||d|| against the certified value (d within the ball)."""
        dist = float(np.linalg.norm(d))
        if dist == 0:
            return 0.0
        if dist > self.R:
            d = d * (self.R / dist)
            dist = float(np.linalg.norm(d))
        Jw = self.model.linearize(self.w0 + d, self.X).jacobian()
        r = float(np.linalg.norm(Jw - self.J0, 2)) / dist
        slack = ABS_SLACK * (np.linalg.norm(Jw) + np.linalg.norm(self.J0)) / dist
        excess = r - self.est.value * (1 + REL_SLACK) - slack
        if excess > self.worst or self.best_point is None:
            self.best_point = d
        self.worst = max(self.worst, excess)
        assert excess <= 0, (
            f"certified beta {self.est.value:.6g} on R = {self.R:.4g} violated: ratio {r:.6g} "
            f"at ||w - w0|| = {dist:.4g} ({self.est.message})"
        )
        return r


def _network(act, bias, par, depth, regime, wrapper, seed):
    rng = np.random.default_rng(seed)
    d, n = 2, int(rng.integers(2, 5))
    widths = [int(m) for m in rng.integers(2, 6, size=depth)]
    saturated = regime == "saturated"
    base = MLP(d, widths, act, par, bias, sigma_w=40.0 if saturated else 1.0, sigma_b=0.5)
    X = rng.standard_normal((n, d)) * (30.0 if saturated else 1e-2)
    w0 = base.init(rng)
    if wrapper == "centered":
        return CenteredModel(base, w0), X, w0, rng
    if wrapper == "symmetric":
        return SymmetricModel(base), X, np.concatenate([w0, w0]), rng
    return base, X, w0, rng


def _base_of(model):
    return model.base if isinstance(model, CenteredModel | SymmetricModel) else model


def _crossing_directions(ball: _Ball, rng: np.random.Generator, count: int):
    """Directions moving one first-layer unit's pre-activation z_ij towards 0 (and its output
    weight): where a saturated unit turns on, the Jacobian changes fastest."""
    base = _base_of(ball.model)
    layer = base.layers[0]
    W, b = base.unpack(ball.w0[: base.n_params])[0]
    z = layer.c_w * (ball.X @ W.T) + (layer.c_b * b if b is not None else 0.0)
    for _ in range(count):
        i, j = int(rng.integers(z.shape[0])), int(rng.integers(z.shape[1]))
        h = np.zeros(ball.model.n_params)
        row = np.zeros((layer.fan_out, layer.fan_in))
        row[j] = -np.sign(z[i, j]) * layer.c_w * ball.X[i]
        h[layer.offset : layer.offset + row.size] = row.ravel()
        if b is not None:
            h[layer.offset + row.size + j] = -np.sign(z[i, j]) * layer.c_b
        h += 0.3 * rng.standard_normal(h.size) * float(np.linalg.norm(h)) / math.sqrt(h.size)
        nh = float(np.linalg.norm(h))
        if nh > 0:
            # the radius that brings z_ij to 0 (to first order), and around it
            s0 = abs(z[i, j]) / max(nh, 1e-300)
            for s in (s0, 0.5 * s0, 2 * s0, ball.R):
                yield h / nh * min(s, ball.R)


def _search(ball: _Ball, rng: np.random.Generator) -> None:
    p = ball.model.n_params
    for k in range(16):  # random directions, inside and on the surface
        h = rng.standard_normal(p)
        h /= np.linalg.norm(h)
        for s in (ball.R, ball.R * rng.uniform(0.0, 1.0) ** 0.5, ball.R * 10.0 ** -(k % 6)):
            ball.ratio(s * h)
    for d in _crossing_directions(ball, rng, 6):
        ball.ratio(d)
    samp = sampled_beta(ball.model, ball.X, ball.w0, ball.sigma_min, rng, ball.R, 6, 6)
    assert samp.radius == ball.R
    if samp.direction is not None:
        for s in ball.R * np.geomspace(1e-3, 1.0, 5):
            ball.ratio(s * samp.direction)
    _ascend(ball, rng, 24)


def _ascend(ball: _Ball, rng: np.random.Generator, steps: int) -> None:
    """Zero-order adversarial ascent on the ratio from the best point found, projected on the
    ball: accept a random perturbation when the ratio grows; the step adapts."""
    d = ball.best_point
    if d is None:
        return
    r = ball.ratio(d)
    step = 0.3 * ball.R
    for _ in range(steps):
        trial = d + step * rng.standard_normal(d.size) / math.sqrt(d.size)
        n = float(np.linalg.norm(trial))
        if n > ball.R:
            trial *= ball.R / n
        rt = ball.ratio(trial)
        if rt > r:
            d, r, step = trial, rt, step * 1.5
        else:
            step *= 0.6


@pytest.mark.parametrize("act", SMOOTH)
@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    bias=st.booleans(),
    par=st.sampled_from(["ntk", "standard"]),
    depth=st.integers(1, 3),
    regime=st.sampled_from(["saturated", "small"]),
    wrapper=st.sampled_from(["plain", "centered", "symmetric"]),
    radius=st.sampled_from(["auto", 1e-3, 0.1, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_no_ratio_in_the_ball_exceeds_the_certified_beta(
    act, bias, par, depth, regime, wrapper, radius, seed
) -> None:
    model, X, w0, rng = _network(act, bias, par, depth, regime, wrapper, seed)
    ball = _Ball(model, X, w0, radius)
    assert ball.est.kind == "certified upper bound"
    assert 0 < ball.est.value < math.inf and 0 < ball.R < math.inf
    if radius != "auto":
        assert radius == ball.R
    _search(ball, rng)


def test_saturated_tanh_has_no_exact_zero_and_holds_on_its_ball() -> None:
    # the case, small: tanh with sigma_w = 1e6 saturates every unit, tanh'' underflows
    # to 0 at w0, and the old search reported beta[exact] = 0
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    base = MLP(3, [20], "tanh", "ntk", False, sigma_w=1e6)
    w0 = base.init(rng)
    model = CenteredModel(base, w0)
    ball = _Ball(model, X, w0, "auto")
    assert ball.est.kind == "certified upper bound" and ball.est.value > 0
    assert ball.est.consistent and ball.sigma_min / (2 * ball.est.value) * (1 - 1e-9) <= ball.R
    _search(ball, rng)
    # and on the unit ball, where the sampled search finds large ratios
    unit = _Ball(model, X, w0, 1.0)
    samp = sampled_beta(model, X, w0, unit.sigma_min, rng, 1.0, 12, 10)
    assert samp.value > 0
    assert samp.value <= unit.est.value
    _search(unit, rng)


def test_rank_deficient_certified_beta_names_a_finite_ball_and_holds_there() -> None:
    # the case: one sin neuron, n > rank J0; the radius-0 bound was labelled
    # "certified on radius inf", and a point of that ball had a ratio 2.2x above it
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 2))
    model = MLP(2, [1], "sin", "ntk", False, sigma_w=2.0)
    w0 = model.init(rng)
    ball = _Ball(model, X, w0, "auto")
    assert ball.sigma_min == 0.0  # rank 3 < n = 5
    assert ball.est.kind == "certified upper bound"
    assert ball.R == 1.0 and "unit ball" in ball.est.message
    _search(ball, rng)
