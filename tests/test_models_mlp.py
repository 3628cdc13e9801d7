"""The MLP and its layerwise linearization, checked against an independent forward pass, finite
differences, the explicit Jacobian and an extended-precision reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import fd_jacobian
from hypothesis import given, settings
from hypothesis import strategies as st

import lazycheck.models.mlp as mlp_module
from lazycheck.models.activations import ACTIVATIONS
from lazycheck.models.base import Linearization
from lazycheck.models.mlp import MLP

ACTS = sorted(ACTIVATIONS)
CONFIGS = list(itertools.product(ACTS, ("ntk", "standard"), (False, True), (1, 2, 3)))
IDS = [f"{a}-{p}-{'bias' if b else 'nobias'}-depth{d}" for a, p, b, d in CONFIGS]
WIDTHS = (5, 4, 3)
N, D = 4, 3


def _setup(act: str, param: str, bias: bool, depth: int, seed: int = 0):
    model = MLP(D, WIDTHS[:depth], act, param, bias, sigma_w=1.3, sigma_b=0.7)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) / math.sqrt(D)
    w = model.init(rng)
    return model, X, w, rng


def _two_points(act: str, param: str, bias: bool, depth: int):
    """(model, X, rng, w, v, lin at w, lin at v) for w = w0 and v a point nearby."""
    model, X, w, rng = _setup(act, param, bias, depth)
    v = w + 0.3 * rng.standard_normal(model.n_params)
    return model, X, rng, w, v, model.linearize(w, X), model.linearize(v, X)


def _reference_forward(model: MLP, w: np.ndarray, X: np.ndarray, dtype=np.float64):
    """The module docstring's formulas, written out directly: (f, list of pre-activations)."""
    a = np.asarray(X, dtype=dtype)
    pre = []
    for i, (layer, (W, b)) in enumerate(zip(model.layers, model.unpack(w), strict=True)):
        z = dtype(layer.c_w) * (a @ W.astype(dtype).T)
        if b is not None:
            z = z + dtype(layer.c_b) * b.astype(dtype)
        pre.append(z)
        a = model.activation.fn(z) if i < model.depth else z
    return a[:, 0], pre


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ----------------------------------------------------------------------------- packing


def test_parameter_count_follows_the_documented_formula() -> None:
    for bias in (False, True):
        model = MLP(7, (5, 4, 3), "tanh", "ntk", bias)
        dims = (7, 5, 4, 3, 1)
        expected = sum(dout * (din + bias) for din, dout in itertools.pairwise(dims))
        assert model.n_params == expected
        assert sum(layer.size for layer in model.layers) == expected
        assert model.init(np.random.default_rng(0)).shape == (expected,)


@pytest.mark.parametrize("bias", [False, True])
def test_unpack_gives_row_major_views_in_layer_order(bias: bool) -> None:
    model = MLP(3, (4, 2), "tanh", "standard", bias)
    w = np.arange(model.n_params, dtype=np.float64)
    parts = model.unpack(w)
    assert [W.shape for W, _ in parts] == [(4, 3), (2, 4), (1, 2)]
    packed = np.concatenate(
        [np.concatenate([W.ravel(), b if b is not None else []]) for W, b in parts]
    )
    np.testing.assert_array_equal(packed, w)  # the round trip is the identity
    assert all(np.shares_memory(W, w) for W, _ in parts)  # views, not copies
    # W^1 comes first, row-major: W^1[i, j] = w[i * fan_in + j]
    assert parts[0][0][1, 2] == 1 * 3 + 2
    if bias:
        np.testing.assert_array_equal(parts[0][1], [12, 13, 14, 15])
        assert parts[1][0][0, 0] == 16
    else:
        assert all(b is None for _, b in parts)
        assert parts[1][0][0, 0] == 12


def test_unpack_rejects_a_wrong_length() -> None:
    model = MLP(3, (4,), "tanh")
    with pytest.raises(ValueError, match="shape"):
        model.unpack(np.zeros(model.n_params + 1))


def test_unknown_parameterization_is_rejected() -> None:
    with pytest.raises(ValueError, match="parameterization"):
        MLP(3, (4,), "tanh", "mup")


def test_describe_names_the_architecture_and_p() -> None:
    text = MLP(3, (8, 6), "gelu", "standard", True).describe()
    assert "gelu" in text and "8 x 6" in text and "standard" in text and "biases" in text
    assert f"p = {MLP(3, (8, 6), 'gelu', 'standard', True).n_params}" in text


# ----------------------------------------------------------------------------- init


def test_init_is_reproducible_from_the_generator() -> None:
    model = MLP(5, (6, 6), "tanh", "ntk", True)
    a = model.init(np.random.default_rng(3))
    b = model.init(np.random.default_rng(3))
    c = model.init(np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_init_statistics_match_the_parameterization(param: str) -> None:
    from scipy import stats

    sigma_w, sigma_b = 1.7, 0.6
    model = MLP(40, (300, 200), "tanh", param, True, sigma_w=sigma_w, sigma_b=sigma_b)
    w = model.init(np.random.default_rng(11))
    for layer, (W, b) in zip(model.layers, model.unpack(w), strict=True):
        if param == "ntk":
            sd_w = sd_b = 1.0
        else:
            sd_w, sd_b = sigma_w / math.sqrt(layer.fan_in), sigma_b
        for values, sd in ((W.ravel(), sd_w), (b, sd_b)):
            m = values.size
            # mean and variance within ~5 standard errors of their sampling distribution
            assert abs(values.mean()) < 5.0 * sd / math.sqrt(m)
            assert abs(values.var() / sd**2 - 1.0) < 5.0 * math.sqrt(2.0 / m)
            if m >= 100:  # and Gaussian-shaped
                assert stats.kstest(values / sd, "norm").pvalue > 1e-4


# ----------------------------------------------------------------------------- semantics


@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_forward_matches_the_documented_formula(act: str, param: str, bias: bool, depth: int):
    model, X, w, _ = _setup(act, param, bias, depth)
    f_ref, _ = _reference_forward(model, w, X)
    np.testing.assert_allclose(model.forward(w, X), f_ref, rtol=1e-13, atol=1e-14)
    assert model.linearize(w, X).f.shape == (N,)


@pytest.mark.parametrize("bias", [False, True])
def test_ntk_network_equals_standard_network_with_scaled_weights(bias: bool) -> None:
    sw, sb = 1.3, 0.7
    ntk = MLP(D, (5, 4), "tanh", "ntk", bias, sw, sb)
    std = MLP(D, (5, 4), "tanh", "standard", bias, sw, sb)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, D))
    w = ntk.init(rng)
    scale = np.concatenate(
        [
            np.concatenate([np.full(L.fan_out * L.fan_in, L.c_w), np.full(L.fan_out * bias, L.c_b)])
            for L in ntk.layers
        ]
    )
    np.testing.assert_allclose(ntk.forward(w, X), std.forward(scale * w, X), rtol=1e-13)
    # chain rule: J_ntk(w) = J_std(scale * w) diag(scale)
    np.testing.assert_allclose(
        ntk.jacobian(w, X), std.jacobian(scale * w, X) * scale, rtol=1e-12, atol=1e-14
    )


# ----------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_jacobian_matches_central_differences(act: str, param: str, bias: bool, depth: int):
    step = 1e-6
    for seed in range(20):
        model, X, w, _ = _setup(act, param, bias, depth, seed)
        # relu: finite differences are valid only away from the kinks; take the first draw
        # whose hidden pre-activations all stay clear of 0 (a step moves them by ~1e-6)
        _, pre = _reference_forward(model, w, X)
        if act != "relu" or min(np.abs(z).min() for z in pre[:-1]) > 1e-3:
            break
    else:
        pytest.fail("no draw keeps the relu pre-activations away from 0")
    J = model.jacobian(w, X)
    J_fd = fd_jacobian(model, w, X, step)
    scale = max(1.0, float(np.abs(model.forward(w, X)).max()))
    # truncation ~ step^2, rounding ~ eps * |f| / step ~ 1e-10 * |f|
    np.testing.assert_allclose(J, J_fd, rtol=1e-6, atol=1e-8 * scale)
    assert J.shape == (N, model.n_params)


#: the product routes of a linearization, as (SMALL_JACOBIAN, SHORT_SIDE_MIN_N): layer by layer
#: (the first layer's GEMM with its long side leading, as below SHORT_SIDE_MIN_N rows, and with
#: its short side leading, as from there on), and by the formed J (small networks)
ROUTES = {
    "layered": (0, 1 << 62),
    "short side": (0, 0),
    "by J": (mlp_module.SMALL_JACOBIAN, mlp_module.SHORT_SIDE_MIN_N),
}


def _route(route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    small, short = ROUTES[route]
    monkeypatch.setattr(mlp_module, "SMALL_JACOBIAN", small)
    monkeypatch.setattr(mlp_module, "SHORT_SIDE_MIN_N", short)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_jvp_and_vjp_are_adjoint_and_match_the_jacobian(
    act: str, param: str, bias: bool, depth: int, route: str, monkeypatch: pytest.MonkeyPatch
):
    _route(route, monkeypatch)
    model, X, w, rng = _setup(act, param, bias, depth)
    lin = model.linearize(w, X)
    J = lin.jacobian()
    v = rng.standard_normal(model.n_params)
    r = rng.standard_normal(N)
    Jv, JTr = lin.jvp(v), lin.vjp(r)
    assert Jv.shape == (N,) and JTr.shape == (model.n_params,)
    # <r, J v> = <J^T r, v>
    lhs, rhs = r @ Jv, JTr @ v
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(r) * np.linalg.norm(J) * np.linalg.norm(v)
    bound = 1e-13 * np.linalg.norm(J)
    assert np.linalg.norm(Jv - J @ v) <= bound * np.linalg.norm(v)
    assert np.linalg.norm(JTr - J.T @ r) <= bound * np.linalg.norm(r)
    # the Model convenience wrappers run the same computation
    np.testing.assert_array_equal(model.jvp(w, X, v), Jv)
    np.testing.assert_array_equal(model.vjp(w, X, r), JTr)
    assert (lin._J is not None) == (route == "by J")  # type: ignore[attr-defined]


def test_products_by_the_formed_jacobian_only_on_small_networks() -> None:
    """J is formed for products where n p <= SMALL_JACOBIAN, and the two routes agree."""
    rng = np.random.default_rng(3)
    for widths, n in (((20,), 10), ((300,), 60)):
        model = MLP(D, widths, "tanh")
        w, X = model.init(rng), rng.standard_normal((n, D))
        v, r = rng.standard_normal(model.n_params), rng.standard_normal(n)
        lin = model.linearize(w, X)
        Jv, JTr = lin.jvp(v), lin.vjp(r)
        small = n * model.n_params <= mlp_module.SMALL_JACOBIAN
        assert (lin._J is not None) == small  # type: ignore[attr-defined]
        J = model.linearize(w, X).jacobian()
        bound = 1e-13 * np.linalg.norm(J)
        assert np.linalg.norm(Jv - J @ v) <= bound * np.linalg.norm(v)
        assert np.linalg.norm(JTr - J.T @ r) <= bound * np.linalg.norm(r)


@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_layerwise_kernels_match_products_of_jacobians(
    act: str, param: str, bias: bool, depth: int
):
    model, X, rng, w, v, lw, lv = _two_points(act, param, bias, depth)
    Jw, Jv = lw.jacobian(), lv.jacobian()
    tol = 1e-13 * np.linalg.norm(Jw) * np.linalg.norm(Jv)
    K = lw.kernel()
    assert np.linalg.norm(K - Jw @ Jw.T) <= 1e-13 * np.linalg.norm(Jw) ** 2
    np.testing.assert_array_equal(K, K.T)
    assert np.linalg.norm(lw.cross_kernel(lv) - Jw @ Jv.T) <= tol
    dJ = Jw - Jv
    dK = lw.difference_kernel(lv)
    assert np.linalg.norm(dK - dJ @ dJ.T) <= 1e-13 * (np.linalg.norm(Jw) + np.linalg.norm(Jv)) ** 2
    # with another input set (rows of a test set)
    X2 = rng.standard_normal((N + 2, D))
    J2 = model.jacobian(v, X2)
    assert np.linalg.norm(lw.cross_kernel(model.linearize(v, X2)) - Jw @ J2.T) <= (
        1e-13 * np.linalg.norm(Jw) * np.linalg.norm(J2)
    )
    np.testing.assert_array_equal(model.kernel(w, X), K)
    np.testing.assert_array_equal(model.cross_kernel(w, v, X), lw.cross_kernel(lv))


@pytest.mark.parametrize("route", ["layered", "short side"])
@pytest.mark.parametrize(("act", "param", "bias", "depth"), CONFIGS, ids=IDS)
def test_difference_products_match_the_difference_of_jacobians(
    act: str, param: str, bias: bool, depth: int, route: str, monkeypatch: pytest.MonkeyPatch
):
    """(J_w - J_v) u and (J_w - J_v)^T a against the formed Jacobians' difference, with the
    first layer's GEMM either way round."""
    _route(route, monkeypatch)
    model, X, rng, w, _v, lw, lv = _two_points(act, param, bias, depth)
    prods = lw.difference_products(lv)
    assert prods is not None
    jvp, vjp = prods
    dJ = lw.jacobian() - lv.jacobian()
    u, a = rng.standard_normal(model.n_params), rng.standard_normal(N)
    scale = np.linalg.norm(lw.jacobian()) + np.linalg.norm(lv.jacobian())
    assert np.linalg.norm(jvp(u) - dJ @ u) <= 1e-13 * scale * np.linalg.norm(u)
    assert np.linalg.norm(vjp(a) - dJ.T @ a) <= 1e-13 * scale * np.linalg.norm(a)
    # at the same point both are exactly zero (every difference is dropped)
    same_jvp, same_vjp = lw.difference_products(model.linearize(w, X))
    np.testing.assert_array_equal(same_jvp(u), 0.0)
    np.testing.assert_array_equal(same_vjp(a), 0.0)


def test_difference_products_keep_relative_accuracy_for_nearby_weights() -> None:
    """At weights 1e-9 apart the products are accurate relative to J_w - J_v itself (the
    subtraction of two VJPs keeps only eps / 1e-9 of it, here about 1e-7)."""
    model = MLP(D, (6,), "tanh", "ntk", True, sigma_w=1.3, sigma_b=0.7)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, D)) / math.sqrt(D)
    w = model.init(rng)
    v = w + 1e-9 * rng.standard_normal(model.n_params)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    a = rng.standard_normal(N)
    dJ = lw.jacobian() - lv.jacobian()  # itself a subtraction: the reference is the kernel
    _, vjp = lw.difference_products(lv)
    g = vjp(a)
    # ||(J_w - J_v)^T a||^2 = a^T (J_w - J_v)(J_w - J_v)^T a from the cancellation-free kernel
    ref = float(a @ lw.difference_kernel(lv) @ a)
    assert float(g @ g) == pytest.approx(ref, rel=1e-6)
    assert np.linalg.norm(g - dJ.T @ a) <= 1e-6 * np.linalg.norm(g)


def test_difference_products_decline_another_model() -> None:
    model, X, w, _ = _setup("tanh", "ntk", False, 1)
    other = MLP(D, WIDTHS[:1], "tanh", "ntk", False)
    assert model.linearize(w, X).difference_products(other.linearize(w, X)) is None


@pytest.mark.parametrize("act", ACTS)
def test_difference_kernel_of_a_point_with_itself_is_zero(act: str) -> None:
    model, X, w, _ = _setup(act, "ntk", True, 2)
    lin = model.linearize(w, X)
    np.testing.assert_array_equal(lin.difference_kernel(model.linearize(w, X)), 0.0)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu"])
def test_fused_activation_moves_the_kernel_by_last_bits_only(act: str) -> None:
    # the linearization evaluates phi and phi' in one blocked pass (Activation.fn_d1); with
    # the separate functions instead, f, J and K are the same bits (tanh, sigmoid, gelu) or
    # agree to a few ulps (softplus), saturated units included
    import dataclasses

    rng = np.random.default_rng(3)
    model = MLP(6, (120, 90), act, "ntk", True, sigma_w=4.0, sigma_b=2.0)  # many saturated
    plain_act = dataclasses.replace(model.activation, fused=None)
    plain = MLP(6, (120, 90), plain_act, "ntk", True, sigma_w=4.0, sigma_b=2.0)
    X = 3.0 * rng.standard_normal((40, 6))
    w = model.init(rng)
    lin, ref = model.linearize(w, X), plain.linearize(w, X)
    K, J = lin.kernel(), ref.jacobian()
    if act != "softplus":
        np.testing.assert_array_equal(lin.f, ref.f)
        np.testing.assert_array_equal(K, ref.kernel())
    assert _rel(lin.f, ref.f) < 1e-14
    assert _rel(lin.jacobian(), J) < 1e-14
    assert np.max(np.abs(K - ref.kernel()) / np.sqrt(np.outer(np.diag(K), np.diag(K)))) < 1e-14
    assert np.linalg.norm(K - J @ J.T) <= 1e-13 * np.linalg.norm(J) ** 2


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 200])
def test_mirror_upper_copies_the_upper_triangle_exactly(n: int) -> None:
    from lazycheck.models.mlp import _mirror_upper

    U = np.asfortranarray(np.random.default_rng(n).standard_normal((n, n)))  # lower: garbage
    ref = np.triu(U) + np.triu(U, 1).T
    for block in (1, 5, 64, 1000):
        out = _mirror_upper(U, block)
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, ref)


# ----------------------------------------------------------------------------- precision


def _longdouble_jacobian(model: MLP, w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """J in extended precision, by the chain rule written out (tanh or sin only)."""
    ld = np.longdouble
    fn = {"tanh": np.tanh, "sin": np.sin}[model.activation.name]
    d1 = {"tanh": lambda z: 1 - np.tanh(z) ** 2, "sin": np.cos}[model.activation.name]
    params = [(W.astype(ld), None if b is None else b.astype(ld)) for W, b in model.unpack(w)]
    a, inputs, slopes = X.astype(ld), [], []
    for i, (layer, (W, b)) in enumerate(zip(model.layers, params, strict=True)):
        inputs.append(a)
        z = ld(layer.c_w) * (a @ W.T) + (0 if b is None else ld(layer.c_b) * b)
        if i < model.depth:
            slopes.append(d1(z))
            a = fn(z)
    deltas = [np.ones((X.shape[0], 1), dtype=ld)]
    for i in range(model.depth - 1, -1, -1):
        deltas.insert(0, slopes[i] * (ld(model.layers[i + 1].c_w) * (deltas[0] @ params[i + 1][0])))
    blocks = []
    for layer, A, Dl in zip(model.layers, inputs, deltas, strict=True):
        blocks.append(ld(layer.c_w) * (Dl[:, :, None] * A[:, None, :]).reshape(X.shape[0], -1))
        if layer.bias:
            blocks.append(ld(layer.c_b) * Dl)
    return np.concatenate(blocks, axis=1)


@pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18, reason="needs an extended-precision long double"
)
@pytest.mark.parametrize(("act", "param"), [("tanh", "ntk"), ("tanh", "standard"), ("sin", "ntk")])
def test_difference_kernel_keeps_relative_accuracy_for_nearby_weights(act: str, param: str):
    model = MLP(D, (6, 5), act, param, True, sigma_w=1.3, sigma_b=0.7)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N, D)) / math.sqrt(D)
    w = model.init(rng)
    v = w + 1e-9 * rng.standard_normal(model.n_params)
    # sanity of the reference itself: it agrees with the float64 Jacobian to ~eps
    Jw_ref = _longdouble_jacobian(model, w, X)
    assert _rel(model.jacobian(w, X), Jw_ref.astype(np.float64)) < 1e-14
    dJ = Jw_ref - _longdouble_jacobian(model, v, X)  # accurate to ~eps_ld / 1e-9 ~ 1e-10
    reference = (dJ @ dJ.T).astype(np.float64)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    # layerwise difference kernel: relative error ~ eps / 1e-9 ~ 1e-7
    assert _rel(lw.difference_kernel(lv), reference) < 1e-5
    # subtracting kernels loses everything: K ~ 1, the difference ~ 1e-18
    assert _rel(Linearization.difference_kernel(lw, lv), reference) > 1.0


# ----------------------------------------------------------------------------- properties


@st.composite
def architectures(draw):
    depth = draw(st.integers(1, 3))
    widths = tuple(draw(st.lists(st.integers(1, 6), min_size=depth, max_size=depth)))
    return dict(
        input_dim=draw(st.integers(1, 4)),
        widths=widths,
        activation=draw(st.sampled_from(ACTS)),
        parameterization=draw(st.sampled_from(["ntk", "standard"])),
        bias=draw(st.booleans()),
        sigma_w=draw(st.floats(0.5, 2.0)),
        sigma_b=draw(st.floats(0.0, 1.5)),
    )


@settings(max_examples=60, deadline=None)
@given(arch=architectures(), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_property_kernels_equal_jacobian_products(arch: dict, n: int, seed: int) -> None:
    model = MLP(**arch)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, arch["input_dim"]))
    w = model.init(rng)
    v = w + rng.standard_normal(model.n_params)
    lw, lv = model.linearize(w, X), model.linearize(v, X)
    Jw, Jv = lw.jacobian(), lv.jacobian()
    sw, sv = np.linalg.norm(Jw), np.linalg.norm(Jv)
    assert np.linalg.norm(lw.kernel() - Jw @ Jw.T) <= 1e-13 * sw * sw + 1e-300
    assert np.linalg.norm(lw.cross_kernel(lv) - Jw @ Jv.T) <= 1e-13 * sw * sv + 1e-300
    dJ = Jw - Jv
    assert np.linalg.norm(lw.difference_kernel(lv) - dJ @ dJ.T) <= 1e-13 * (sw + sv) ** 2 + 1e-300


@pytest.mark.parametrize("route", ROUTES)
@settings(max_examples=60, deadline=None)
@given(arch=architectures(), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_property_jvp_and_vjp_are_adjoint(arch: dict, n: int, seed: int, route: str) -> None:
    model = MLP(**arch)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, arch["input_dim"]))
    lin = model.linearize(model.init(rng), X)
    v = rng.standard_normal(model.n_params)
    r = rng.standard_normal(n)
    with pytest.MonkeyPatch.context() as mp:
        _route(route, mp)
        Jv, JTr = lin.jvp(v), lin.vjp(r)
    # |r|^T |J| |v| bounds the rounding of both sides; no squares, which underflow to 0 for
    # entries ~1e-214 (hypothesis found sigma_b = 1.3e-214, where ||J|| * ||v|| * ||r|| was 0)
    scale = float(np.abs(r) @ np.abs(lin.jacobian()) @ np.abs(v))
    assert abs(r @ Jv - JTr @ v) <= 1e-12 * scale + 1e-300


def test_difference_products_through_the_guard_of_user_models() -> None:
    """A guarded model hands its inner model's difference products through, and an error in
    them is named as the user model's."""
    from lazycheck.errors import LazycheckError
    from lazycheck.models.guard import GuardedModel

    model, X, w, rng = _setup("tanh", "ntk", True, 2)
    v = w + 0.1 * rng.standard_normal(model.n_params)
    guarded = GuardedModel(model, "net.py:make")
    jvp, vjp = guarded.linearize(w, X).difference_products(guarded.linearize(v, X))
    ref_jvp, ref_vjp = model.linearize(w, X).difference_products(model.linearize(v, X))
    u, a = rng.standard_normal(model.n_params), rng.standard_normal(N)
    assert np.array_equal(jvp(u), ref_jvp(u)) and np.array_equal(vjp(a), ref_vjp(a))
    with pytest.raises(LazycheckError, match=r"net\.py:make"):
        jvp(np.ones(3))  # a wrong length fails inside the products
