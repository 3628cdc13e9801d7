"""The model interface and the zero-output wrappers CenteredModel and SymmetricModel."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import fd_jacobian

from lazycheck.models.activations import ACTIVATIONS
from lazycheck.models.base import Linearization, Model
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

ACTS = sorted(ACTIVATIONS)
CONFIGS = list(itertools.product(ACTS, ("ntk", "standard"), (False, True), (1, 2, 3)))
IDS = [f"{a}-{p}-{'bias' if b else 'nobias'}-depth{d}" for a, p, b, d in CONFIGS]
WRAPPERS = ("centered", "symmetric", "centered-symmetric")
N, D = 4, 3


def _wrapped(kind: str, act: str, param: str, bias: bool, depth: int, seed: int = 0):
    """(model, base network, X, w0, rng) for one wrapper kind."""
    base = MLP(D, (4, 3, 2)[:depth], act, param, bias, sigma_w=1.2, sigma_b=0.8)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) / math.sqrt(D)
    model: Model = SymmetricModel(base) if "symmetric" in kind else base
    w0 = model.init(rng)
    if "centered" in kind:
        model = CenteredModel(model, w0)
    return model, base, X, w0, rng


# ----------------------------------------------------------------------------- f(w0) = 0


@pytest.mark.parametrize("kind", WRAPPERS)
@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_wrapped_output_is_exactly_zero_at_init(kind, act, param, bias, depth) -> None:
    model, _, X, w0, rng = _wrapped(kind, act, param, bias, depth)
    assert np.all(model.forward(w0, X) == 0.0)
    assert np.all(model.linearize(w0, X).f == 0.0)
    # also on inputs the model has not seen before
    X_test = rng.standard_normal((7, D))
    assert np.all(model.forward(w0, X_test) == 0.0)


def test_the_plain_network_is_not_zero_at_init() -> None:
    """Guard for the test above: without a wrapper f(w0) is a generic nonzero vector."""
    _, base, X, _, rng = _wrapped("centered", "tanh", "ntk", True, 2)
    assert np.all(base.forward(base.init(rng), X) != 0.0)


def test_centered_model_subtracts_the_reference_output() -> None:
    model, base, X, w0, rng = _wrapped("centered", "tanh", "ntk", True, 2)
    w = w0 + 0.1 * rng.standard_normal(w0.size)
    np.testing.assert_allclose(
        model.forward(w, X), base.forward(w, X) - base.forward(w0, X), rtol=1e-14, atol=1e-15
    )
    np.testing.assert_array_equal(model.jacobian(w, X), base.jacobian(w, X))
    np.testing.assert_array_equal(model.init(np.random.default_rng(99)), w0)
    assert model.n_params == base.n_params and model.smooth == base.smooth


def test_centered_model_keeps_its_own_copy_of_the_reference() -> None:
    _, base, X, w0, _ = _wrapped("centered", "tanh", "ntk", False, 1)
    w_ref = w0.copy()
    model = CenteredModel(base, w_ref)
    w_ref += 1.0  # the caller changing its array afterwards must not move the reference
    assert np.all(model.forward(w0, X) == 0.0)


def test_symmetric_init_duplicates_the_half_network_init() -> None:
    base = MLP(D, (4, 3), "tanh", "ntk", True)
    w0 = SymmetricModel(base).init(np.random.default_rng(3))
    q = base.n_params
    assert w0.shape == (2 * q,)
    np.testing.assert_array_equal(w0[:q], w0[q:])
    np.testing.assert_array_equal(w0[:q], base.init(np.random.default_rng(3)))


@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_symmetric_kernel_at_init_equals_the_half_network_kernel(act, param, bias, depth):
    model, base, X, w0, _ = _wrapped("symmetric", act, param, bias, depth)
    np.testing.assert_array_equal(model.kernel(w0, X), base.kernel(w0[: base.n_params], X))


def test_symmetric_output_is_the_scaled_difference_of_the_halves() -> None:
    model, base, X, w0, rng = _wrapped("symmetric", "gelu", "standard", True, 2)
    w = w0 + 0.2 * rng.standard_normal(w0.size)
    q = base.n_params
    expected = (base.forward(w[:q], X) - base.forward(w[q:], X)) / math.sqrt(2.0)
    np.testing.assert_allclose(model.forward(w, X), expected, rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("kind", WRAPPERS)
@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_wrapped_jacobian_matches_central_differences(kind, act, param, bias, depth) -> None:
    step = 1e-6
    for seed in range(20):
        model, _, X, w0, rng = _wrapped(kind, act, param, bias, depth, seed)
        w = w0 + 0.2 * rng.standard_normal(w0.size)  # move the two halves apart
        if act != "relu" or _relu_margin(model, w, X) > 1e-3:
            break
    else:
        pytest.fail("no draw keeps the relu pre-activations away from 0")
    J = model.jacobian(w, X)
    scale = max(1.0, float(np.abs(model.forward(w, X)).max()))
    np.testing.assert_allclose(J, fd_jacobian(model, w, X, step), rtol=1e-6, atol=1e-8 * scale)


def _relu_margin(model: Model, w: np.ndarray, X: np.ndarray) -> float:
    """Smallest |hidden pre-activation| over every half network inside ``model``."""
    while isinstance(model, CenteredModel):
        model = model.base
    halves = [(model, w)]
    if isinstance(model, SymmetricModel):
        q = model.base.n_params
        halves = [(model.base, w[:q]), (model.base, w[q:])]
    margin = np.inf
    for net, wh in halves:
        assert isinstance(net, MLP)
        a = X
        for i, (layer, (W, b)) in enumerate(zip(net.layers, net.unpack(wh), strict=True)):
            z = layer.c_w * a @ W.T + (0.0 if b is None else layer.c_b * b)
            if i < net.depth:
                margin = min(margin, float(np.abs(z).min()))
                a = np.maximum(z, 0.0)
    return margin


@pytest.mark.parametrize("kind", WRAPPERS)
@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_wrapped_derivative_products_agree(kind, act, param, bias, depth) -> None:
    model, _, X, w0, rng = _wrapped(kind, act, param, bias, depth)
    w = w0 + 0.2 * rng.standard_normal(w0.size)
    v = w0 + 0.2 * rng.standard_normal(w0.size)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    Jw, Jv = lw.jacobian(), lv.jacobian()
    nw, nv = np.linalg.norm(Jw), np.linalg.norm(Jv)
    x, r = rng.standard_normal(w.size), rng.standard_normal(N)
    assert abs(r @ lw.jvp(x) - lw.vjp(r) @ x) <= 1e-12 * nw * np.linalg.norm(x) * np.linalg.norm(r)
    assert np.linalg.norm(lw.jvp(x) - Jw @ x) <= 1e-13 * nw * np.linalg.norm(x)
    assert np.linalg.norm(lw.vjp(r) - Jw.T @ r) <= 1e-13 * nw * np.linalg.norm(r)
    assert np.linalg.norm(lw.kernel() - Jw @ Jw.T) <= 1e-13 * nw**2
    assert np.linalg.norm(lw.cross_kernel(lv) - Jw @ Jv.T) <= 1e-13 * nw * nv
    dJ = Jw - Jv
    assert np.linalg.norm(lw.difference_kernel(lv) - dJ @ dJ.T) <= 1e-13 * (nw + nv) ** 2
    # the difference products pass through the wrappers to the MLP's
    jvp, vjp = lw.difference_products(lv)
    assert np.linalg.norm(jvp(x) - dJ @ x) <= 1e-13 * (nw + nv) * np.linalg.norm(x)
    assert np.linalg.norm(vjp(r) - dJ.T @ r) <= 1e-13 * (nw + nv) * np.linalg.norm(r)


def test_wrapped_difference_kernel_keeps_relative_accuracy_for_nearby_weights() -> None:
    """The wrappers pass the difference kernel through to the cancellation-free MLP form."""
    model, _, X, w0, rng = _wrapped("centered-symmetric", "tanh", "ntk", True, 2)
    w = w0 + 0.2 * rng.standard_normal(w0.size)
    v = w + 1e-9 * rng.standard_normal(w0.size)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    dJ = lw.jacobian() - lv.jacobian()  # direct difference: relative accuracy ~ eps / 1e-9
    reference = dJ @ dJ.T
    err = np.linalg.norm(lw.difference_kernel(lv) - reference) / np.linalg.norm(reference)
    assert err < 1e-5
    naive = Linearization.difference_kernel(lw, lv)
    assert np.linalg.norm(naive - reference) / np.linalg.norm(reference) > 1.0


# ----------------------------------------------------------------------------- interface


class _Quadratic(Model):
    """f_i(w) = (x_i . w)^2 / 2, so J_w = diag(X w) X: a model outside the MLP family."""

    smooth = True

    def __init__(self, dim: int) -> None:
        self.n_params = dim

    def init(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(self.n_params)

    def linearize(self, w: np.ndarray, X: np.ndarray) -> Linearization:
        return _QuadraticLinearization(X, X @ w)

    def describe(self) -> str:
        return "quadratic"


class _QuadraticLinearization(Linearization):
    def __init__(self, X: np.ndarray, s: np.ndarray) -> None:
        self.X, self.s, self.f = X, s, 0.5 * s**2

    def jvp(self, v: np.ndarray) -> np.ndarray:
        return self.s * (self.X @ v)

    def vjp(self, r: np.ndarray) -> np.ndarray:
        return self.X.T @ (self.s * r)

    def jacobian(self) -> np.ndarray:
        return self.s[:, None] * self.X

    def kernel(self) -> np.ndarray:
        return self.cross_kernel(self)

    def cross_kernel(self, other: Linearization) -> np.ndarray:
        assert isinstance(other, _QuadraticLinearization)
        return np.outer(self.s, other.s) * (self.X @ other.X.T)


def test_default_difference_kernel_is_the_gram_matrix_of_the_jacobian_difference() -> None:
    rng = np.random.default_rng(0)
    model = _Quadratic(5)
    X = rng.standard_normal((4, 5))
    w, v = model.init(rng), model.init(rng)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    dJ = lw.jacobian() - lv.jacobian()
    np.testing.assert_allclose(lw.difference_kernel(lv), dJ @ dJ.T, rtol=1e-12, atol=1e-12)


def test_model_convenience_methods_run_one_linearization_each() -> None:
    rng = np.random.default_rng(1)
    model = _Quadratic(3)
    X = rng.standard_normal((4, 3))
    w, v = model.init(rng), model.init(rng)
    x, r = rng.standard_normal(3), rng.standard_normal(4)
    lin = model.linearize(w, X)
    np.testing.assert_array_equal(model.forward(w, X), 0.5 * (X @ w) ** 2)
    np.testing.assert_array_equal(model.jvp(w, X, x), lin.jvp(x))
    np.testing.assert_array_equal(model.vjp(w, X, r), lin.vjp(r))
    np.testing.assert_array_equal(model.jacobian(w, X), lin.jacobian())
    np.testing.assert_array_equal(model.kernel(w, X), lin.kernel())
    np.testing.assert_array_equal(
        model.cross_kernel(w, v, X), lin.cross_kernel(model.linearize(v, X))
    )


def test_wrappers_work_on_any_model_not_only_mlps() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 3))
    sym = SymmetricModel(_Quadratic(3))
    w0 = sym.init(rng)
    assert np.all(sym.forward(w0, X) == 0.0)
    cen = CenteredModel(_Quadratic(3), w0[:3])
    assert np.all(cen.forward(w0[:3], X) == 0.0)


def test_wrappers_describe_themselves_in_terms_of_the_base() -> None:
    base = MLP(D, (4,), "tanh")
    pair = SymmetricModel(base)
    half = base.describe().removesuffix(f"p = {base.n_params}")
    # the pair's p is the p every report counts; each half's is named as such
    assert pair.describe() == (
        f"symmetric pair of {half}p = {pair.n_params} (p = {base.n_params} per half)"
    )
    assert CenteredModel(base, np.zeros(base.n_params)).describe() == f"centered {base.describe()}"
    assert SymmetricModel(base).n_params == 2 * base.n_params
