"""The certified beta for networks with two or more hidden layers (beta.certified._deep_bound).

The bound must dominate every exactly computed ratio ||J_w - J_0|| / ||w - w0|| in the ball
and the sampled lower bound, be monotone in the radius, and dominate the Hessian norms it is
built from (checked against finite differences on a tiny network).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lazycheck.beta import certified_beta, certified_beta_auto, jacobian_change, sampled_beta
from lazycheck.beta.certified import _deep_bound, _two_layer_bound
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

SMOOTH = ["tanh", "sigmoid", "softplus", "gelu", "erf", "sin", "identity"]
CONFIGS = [
    (act, par, bias, depth)
    for act in SMOOTH
    for par in ("ntk", "standard")
    for bias in (False, True)
    for depth in (2, 3)
]
IDS = [f"{a}-{p}-{'bias' if b else 'nobias'}-depth{d}" for a, p, b, d in CONFIGS]
# the sampled value carries eigvalsh rounding (~n eps relative)
SAMPLED_SLACK = 1.0 + 1e-10


def _net(act: str, par: str, bias: bool, depth: int, seed: int):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 5))
    n = int(rng.integers(3, 7))
    widths = [int(m) for m in rng.integers(3, 21, size=depth)]
    model = MLP(d, widths, act, par, bias, sigma_w=1.2, sigma_b=0.6)
    X = rng.standard_normal((n, d)) / math.sqrt(d)
    w0 = model.init(rng)
    return model, X, w0, rng


def _layer_mask(model: MLP, idx: int) -> np.ndarray:
    layer = model.layers[idx]
    mask = np.zeros(model.n_params)
    mask[layer.offset : layer.offset + layer.size] = 1.0
    return mask


def _ball_directions(model: MLP, rng: np.random.Generator, count: int):
    """Unit directions: dense Gaussian, and Gaussian within one weight layer."""
    for k in range(count):
        h = rng.standard_normal(model.n_params)
        if k % 3 == 2:
            h *= _layer_mask(model, int(rng.integers(len(model.layers))))
        yield h / np.linalg.norm(h)


@pytest.mark.parametrize(("act", "par", "bias", "depth"), CONFIGS, ids=IDS)
def test_certified_dominates_every_ratio_in_the_ball(
    act: str, par: str, bias: bool, depth: int
) -> None:
    seed = CONFIGS.index((act, par, bias, depth))
    model, X, w0, rng = _net(act, par, bias, depth, seed)
    R = [0.05, 0.3, 1.0][seed % 3]
    cert = certified_beta(model, X, w0, R)
    assert cert is not None and 0 < cert < math.inf
    assert cert == _deep_bound(model, X, w0, R)
    lin0 = model.linearize(w0, X)
    worst = 0.0
    for k, h in enumerate(_ball_directions(model, rng, 24)):
        # on the surface, at a random radius, and along the direction at several radii
        radii = [R, R * rng.uniform(0.01, 1.0)] if k % 2 else list(R * np.geomspace(1e-3, 1, 4))
        for s in radii:
            worst = max(worst, jacobian_change(model, X, lin0, w0 + s * h) / s)
    assert worst <= cert
    samp = sampled_beta(model, X, w0, 0.1, rng, radius=R, samples=6, iterations=6)
    assert samp.radius == R
    assert samp.value <= cert * SAMPLED_SLACK


@pytest.mark.parametrize("act", ["tanh", "softplus", "sin", "identity"])
@pytest.mark.parametrize("bias", [False, True])
def test_bound_is_finite_positive_and_non_decreasing_in_the_radius(act: str, bias: bool) -> None:
    for par in ("ntk", "standard"):
        model, X, w0, _ = _net(act, par, bias, 3, seed=7)
        radii = [0.0, 1e-6, 1e-3, 0.01, 0.1, 0.5, 1.0, 3.0, 10.0]
        values = [certified_beta(model, X, w0, R) for R in radii]
        assert all(v is not None and 0 < v < math.inf for v in values)
        assert all(a <= b for a, b in itertools.pairwise(values))


def _fd_hessian(model: MLP, X: np.ndarray, w: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Hessians H_i of f(x_i, .) at w (n x p x p): central differences of the exact gradient."""
    n, p = X.shape[0], model.n_params
    H = np.empty((n, p, p))
    for k in range(p):
        e = np.zeros(p)
        e[k] = eps
        Jp = model.linearize(w + e, X).jacobian()
        Jm = model.linearize(w - e, X).jacobian()
        H[:, :, k] = (Jp - Jm) / (2 * eps)
    return 0.5 * (H + H.transpose(0, 2, 1))


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu", "erf", "sin"])
@pytest.mark.parametrize(
    ("par", "bias", "widths"),
    [
        ("ntk", True, (3, 2)),
        ("standard", False, (4, 3)),
        ("ntk", False, (2, 3, 2)),
        ("standard", True, (3,)),
    ],
)
def test_hessian_norms_are_below_the_bound(act: str, par: str, bias: bool, widths) -> None:
    rng = np.random.default_rng(11)
    model = MLP(2, list(widths), act, par, bias, sigma_w=1.5, sigma_b=0.8)
    X = rng.standard_normal((3, 2))
    w0 = model.init(rng)
    R = 0.4
    per_sample = [_deep_bound(model, X[i : i + 1], w0, R) for i in range(3)]
    batch = _deep_bound(model, X, w0, R)
    for _ in range(4):
        d = rng.standard_normal(model.n_params)
        xi = w0 + R * rng.uniform(0.2, 1.0) * d / np.linalg.norm(d)
        H = _fd_hessian(model, X, xi)
        for i in range(3):
            hn = float(np.linalg.norm(H[i], 2))
            assert hn <= per_sample[i] * (1 + 1e-6)
            assert per_sample[i] <= batch * (1 + 1e-12)
        for _ in range(5):
            a = rng.standard_normal(3)
            a /= np.linalg.norm(a)
            assert np.linalg.norm(np.einsum("i,ijk->jk", a, H), 2) <= batch * (1 + 1e-6)


def test_finite_difference_hessian_is_accurate() -> None:
    # the FD Hessian above against the second difference of f along a direction
    rng = np.random.default_rng(2)
    model = MLP(2, [3, 2], "tanh", "ntk", True)
    X = rng.standard_normal((2, 2))
    w = model.init(rng)
    H = _fd_hessian(model, X, w)
    h = rng.standard_normal(model.n_params)
    t = 1e-4
    f = [model.linearize(w + s * t * h, X).f for s in (-1, 0, 1)]
    second = (f[2] - 2 * f[1] + f[0]) / t**2
    assert np.allclose(np.einsum("j,ijk,k->i", h, H, h), second, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("act", ["tanh", "sin", "softplus", "gelu"])
def test_one_hidden_layer_takes_the_smaller_valid_bound(act: str) -> None:
    rng = np.random.default_rng(5)
    model = MLP(3, [15], act, "ntk", True)
    X = rng.standard_normal((6, 3)) / math.sqrt(3)
    w0 = model.init(rng)
    lin0 = model.linearize(w0, X)
    R = 0.5
    cert = certified_beta(model, X, w0, R)
    deep = _deep_bound(model, X, w0, R)
    assert cert == min(deep, _two_layer_bound(model, X, w0, R))
    worst = 0.0
    for h in _ball_directions(model, rng, 40):
        worst = max(worst, jacobian_change(model, X, lin0, w0 + R * h) / R)
    samp = sampled_beta(model, X, w0, 0.1, rng, radius=R, samples=8, iterations=8)
    assert max(worst, samp.value / SAMPLED_SLACK) <= deep


def test_wrapped_deep_networks() -> None:
    model, X, w0, rng = _net("tanh", "ntk", True, 2, seed=3)
    R = 0.3
    cert = certified_beta(model, X, w0, R)
    assert certified_beta(CenteredModel(model, w0), X, w0, R) == cert
    sym = SymmetricModel(model)
    ws = np.concatenate([w0, w0])
    cert_sym = certified_beta(sym, X, ws, R)
    assert cert_sym == pytest.approx(cert / math.sqrt(2))
    lin0 = sym.linearize(ws, X)
    for _ in range(20):
        d = rng.standard_normal(ws.size)
        d *= R / np.linalg.norm(d)
        assert jacobian_change(sym, X, lin0, ws + d) / R <= cert_sym


@pytest.mark.parametrize("seed", range(3))
def test_auto_radius_is_consistent_and_dominates_sampling(seed: int) -> None:
    model, X, w0, rng = _net(["tanh", "gelu", "sin"][seed], "ntk", seed == 1, 2 + seed % 2, seed)
    smin = 0.05
    est = certified_beta_auto(model, X, w0, smin)
    assert est is not None and est.kind == "certified upper bound" and est.consistent
    assert est.radius == pytest.approx(smin / (2 * est.value), rel=1e-9)
    samp = sampled_beta(model, X, w0, smin, rng, radius=est.radius, samples=8, iterations=8)
    assert samp.value <= est.value * SAMPLED_SLACK


LOOSENESS_NETS = [
    ("tanh", "ntk", False, (20, 20)),
    ("tanh", "standard", True, (20, 20)),
    ("gelu", "ntk", True, (16, 16, 16)),
    ("sin", "ntk", False, (12, 12)),
    ("identity", "ntk", False, (20, 20)),
]


@pytest.mark.parametrize(("act", "par", "bias", "widths"), LOOSENESS_NETS)
def test_looseness_is_reported(act, par, bias, widths, record_property) -> None:
    rng = np.random.default_rng(42)
    model = MLP(4, list(widths), act, par, bias)
    X = rng.standard_normal((10, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    w0 = model.init(rng)
    R = 0.05
    cert = certified_beta(model, X, w0, R)
    samp = sampled_beta(model, X, w0, 0.1, rng, radius=R, samples=8, iterations=15)
    ratio = cert / samp.value
    record_property("certified_over_sampled", ratio)
    print(f"{model.describe()}: certified {cert:.4g}, sampled {samp.value:.4g}, ratio {ratio:.3g}")
    assert ratio >= 1 / SAMPLED_SLACK
    if act == "tanh" and len(widths) == 2:
        assert ratio < 1e4
