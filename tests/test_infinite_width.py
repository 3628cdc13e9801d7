"""The analytic infinite-width tangent kernel and ``lazycheck kernel``.

References, each independent of the code under test:

* Monte Carlo: the Gaussian expectations of every layer sampled directly, and, for one hidden
  layer (where K_inf = E[K0] exactly at any width), K0 averaged over many initializations;
  agreement within 5 standard errors on every entry;
* very wide networks: ||K0 - K_inf|| / ||K_inf|| falls like width^-1/2 (log-log slope);
* closed forms against the quadrature path, and the quadrature against a high-order
  Gauss-Hermite rule; Price's theorem d E[phi phi] / dc = E[phi' phi'] by central differences.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from lazycheck.commands.kernel_report import compare_kernels
from lazycheck.errors import LazycheckError
from lazycheck.models import infinite_width as iw
from lazycheck.models.activations import ACTIVATIONS, get_activation
from lazycheck.models.infinite_width import (
    gaussian_moments,
    infinite_width_kernel,
    infinite_width_ntk,
)
from lazycheck.problem import load_problem, make_problem
from lazycheck.spec import ModelSpec, Spec, parse_spec

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
Z_MAX = 5.0  # standard errors allowed on any Monte Carlo entry


def _sphere(n: int, d: int, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _covariance(n: int = 5, seed: int = 1) -> np.ndarray:
    A = np.random.default_rng(seed).standard_normal((n, 4))
    return A @ A.T / 4 + 0.3


def _spec(dim: int = 3, n: int = 6, **model) -> Spec:
    data = {"source": "synthetic", "n": n, "dim": dim, "seed": 0}
    return parse_spec({"seed": 0, "data": data, "model": model})


# ----------------------------------------------------------------------------- expectations


@pytest.mark.parametrize("act", ["erf", "sin", "identity"])
def test_closed_forms_match_the_quadrature(act: str) -> None:
    S = _covariance()
    c = gaussian_moments(act, S, method="closed")
    q = gaussian_moments(act, S, method="quadrature", rtol=1e-12)
    assert q.max_nodes > 0 and c.max_nodes == 0
    for exact, quad in ((c.phi, q.phi), (c.dphi, q.dphi)):
        assert np.max(np.abs(exact - quad)) <= 1e-10 * np.max(np.abs(exact))


def test_relu_closed_form_against_quadrature_and_the_orthant_probability() -> None:
    from scipy.stats import multivariate_normal

    S = _covariance(4)
    c = gaussian_moments("relu", S)
    q = gaussian_moments("relu", S, method="quadrature")
    # relu's kink makes the quadrature converge only algebraically: 1e-4 is what it reaches
    assert np.max(np.abs(c.phi - q.phi)) <= 1e-4 * np.max(c.phi)
    # E[relu'(u) relu'(v)] = P(u > 0, v > 0), by scipy's bivariate normal CDF
    for i, j in [(0, 1), (1, 3), (0, 2)]:
        p = multivariate_normal(mean=[0, 0], cov=S[np.ix_([i, j], [i, j])]).cdf([0, 0])
        assert c.dphi[i, j] == pytest.approx(p, abs=1e-5)
    np.testing.assert_allclose(np.diag(c.dphi), 0.5, rtol=1e-15)  # P(u > 0)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu"])
def test_quadrature_against_a_high_order_gauss_hermite_rule(act: str) -> None:
    S = _covariance()
    q = gaussian_moments(act, S)
    assert q.error <= 1e-10
    d = np.diag(S)
    iu, ju = np.triu_indices(S.shape[0])
    sa, sb = np.sqrt(d[iu]), np.sqrt(d[ju])
    rho = np.clip(S[iu, ju] / (sa * sb), -1, 1)
    x, w = iw._nodes("gauss-hermite", len(iw._HERMITE_ORDERS) - 1)  # 512 nodes
    act_ = get_activation(act)
    ref = iw._product_rule(
        lambda z: (act_.fn(z), act_.d1(z)), sa, sb, rho, np.sqrt(1 - rho**2), x, w
    )
    scale = np.sqrt(np.abs(np.diag(q.phi)[iu] * np.diag(q.phi)[ju]))
    dscale = np.sqrt(np.abs(np.diag(q.dphi)[iu] * np.diag(q.dphi)[ju]))
    assert np.max(np.abs(q.phi[iu, ju] - ref[0]) / scale) <= 1e-10
    assert np.max(np.abs(q.dphi[iu, ju] - ref[1]) / dscale) <= 1e-10


def test_trapezoid_needs_fewer_nodes_than_gauss_hermite_for_tanh() -> None:
    # the figures quoted in docs/infinite-width.md: one tanh pair, variance 4, rho = 0.6
    sa, rho = np.array([2.0]), np.array([0.6])
    s = np.sqrt(1 - rho**2)
    pair = iw._PAIRS["tanh"]

    def rule(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return iw._product_rule(pair, sa, sa, rho, s, x, w)[:, 0]

    ref = rule(*iw._nodes("trapezoid", 4))  # h = 1/32
    assert np.max(np.abs(rule(*iw._nodes("trapezoid", 2)) - ref)) < 1e-14  # 137 nodes
    gh = rule(*iw._nodes("gauss-hermite", 3))  # 256 nodes
    assert 1e-11 < np.max(np.abs(gh - ref)) < 1e-8


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_price_theorem_links_the_two_moments(act: str) -> None:
    # d/dc E[phi(u) phi(v)] = E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[a, c], [c, b]])
    a, b, c, h = 0.8, 1.3, 0.4, 1e-4

    def moments(cc: float):
        return gaussian_moments(act, np.array([[a, cc], [cc, b]]), rtol=1e-13)

    fd = (moments(c + h).phi[0, 1] - moments(c - h).phi[0, 1]) / (2 * h)
    assert fd == pytest.approx(moments(c).dphi[0, 1], rel=1e-6)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_each_layer_matches_monte_carlo_of_the_gaussian_preactivations(act: str) -> None:
    # sample u ~ N(0, S^l) at every layer of a depth-3 bias network; every entry of E[phi phi]
    # and E[phi' phi'] lies within Z_MAX standard errors of the analytic value
    X = _sphere(5, 3)
    phi = get_activation(act)
    rng = np.random.default_rng(7)
    n_samples = 60_000
    for depth in range(3):
        spec = ModelSpec(widths=(10,) * depth, activation=act, bias=True, sigma_w=1.4, sigma_b=0.3)
        S = infinite_width_ntk(spec, X).nngp  # covariance of the pre-activations of layer depth+1
        exact = gaussian_moments(act, S)
        lam, V = np.linalg.eigh(S)  # S may be singular (5 points, rank <= 4)
        u = rng.standard_normal((n_samples, 5)) @ (V * np.sqrt(np.clip(lam, 0, None))).T
        for g, value in ((phi.fn, exact.phi), (phi.d1, exact.dphi)):
            gu = g(u)
            prod = gu[:, :, None] * gu[:, None, :]
            mean, se = prod.mean(axis=0), prod.std(axis=0) / np.sqrt(n_samples)
            z = np.abs(mean - value) / np.maximum(se, 1e-15)
            assert np.max(z) <= Z_MAX, (depth, np.max(z))


def test_the_recursion_agrees_with_an_independent_assembly() -> None:
    # Theta^(l+1) = S^(l+1) + Theta^l o Sdot^l written out from the moments alone
    X = _sphere(6, 4)
    spec = ModelSpec(widths=(7, 7, 7), activation="erf", bias=True, sigma_w=1.2, sigma_b=0.5)
    S = 1.44 * X @ X.T / 4 + 0.25
    theta = S.copy()
    for _ in range(3):
        m = gaussian_moments("erf", S)
        S = 1.44 * m.phi + 0.25
        theta = S + theta * (1.44 * m.dphi)
    np.testing.assert_allclose(infinite_width_kernel(spec, X), theta, rtol=1e-13)


# ----------------------------------------------------------------------------- against networks


@pytest.mark.parametrize(
    ("act", "parameterization", "init"),
    [
        ("tanh", "ntk", "gaussian"),
        ("relu", "standard", "gaussian"),
        ("softplus", "ntk", "symmetric"),
        ("sin", "standard", "symmetric"),
    ],
)
def test_one_hidden_layer_kernel_is_the_mean_of_k0(act, parameterization, init) -> None:
    # one hidden layer: K0 is an average of iid terms over the hidden units, E[K0] = K_inf at
    # every width; averaging K0 over 400 initializations agrees within Z_MAX standard errors
    spec = _spec(
        widths=[16],
        activation=act,
        parameterization=parameterization,
        bias=True,
        sigma_w=1.3,
        sigma_b=0.6,
        init=init,
    )
    K_inf = infinite_width_kernel(spec.model, make_problem(spec).X)
    Ks = np.array([_k0(spec, s) for s in range(400)])
    mean, se = Ks.mean(axis=0), Ks.std(axis=0) / np.sqrt(len(Ks))
    assert np.max(np.abs(mean - K_inf) / se) <= Z_MAX


def _k0(spec, seed: int) -> np.ndarray:
    prob = make_problem(spec.with_settings({"seed": seed}))
    return prob.kernel(prob.w0)


def _log_errors(spec: Spec, width: int, seeds: range, depth: int) -> list[float]:
    s = spec.with_settings({"model.widths": [width] * depth})
    K_inf = infinite_width_kernel(s.model, make_problem(s).X)
    norm = np.linalg.norm(K_inf)
    return [float(np.log(np.linalg.norm(_k0(s, seed) - K_inf) / norm)) for seed in seeds]


@pytest.mark.parametrize(
    ("depth", "act", "parameterization", "widths", "seeds", "n"),
    [
        (1, "tanh", "ntk", [2**9, 2**11, 2**13, 2**15], 16, 6),
        (1, "gelu", "standard", [2**10, 2**12, 2**14, 2**16], 12, 6),
        (2, "erf", "ntk", [128, 256, 512, 1024], 16, 20),
    ],
)
def test_wide_networks_converge_like_width_to_the_minus_half(
    depth, act, parameterization, widths, seeds, n
) -> None:
    # log ||K0 - K_inf||_F / ||K_inf||_F of every (width, seed) against log width: the fitted
    # slope is -1/2 within 0.15 (one hidden layer: the error is an average of iid terms over
    # the units; two: the width^-1/2 fluctuation dominates a 1/width bias), with a 95% interval
    # narrow enough (< 0.25 half-width) to tell it from 0 and from -1
    from scipy.stats import linregress

    spec = _spec(n=n, widths=[8], activation=act, parameterization=parameterization, bias=True)
    xs, ys = [], []
    for m in widths:
        errs = _log_errors(spec, m, range(seeds), depth)
        xs += [np.log(m)] * seeds
        ys += errs
    fit = linregress(xs, ys)
    half = 1.96 * fit.stderr
    print(f"depth {depth} {act} {parameterization}: slope {fit.slope:.3f} +- {half:.3f}")
    assert fit.slope == pytest.approx(-0.5, abs=0.15) and half < 0.25, (fit.slope, half)
    assert np.exp(np.mean(ys[-seeds:])) < 0.05  # the widest network is close


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_architecture_gives_a_symmetric_psd_kernel(act, parameterization, bias, depth):
    X = _sphere(5, 3, seed=depth)
    spec = ModelSpec(
        widths=(50,) * depth,
        activation=act,
        parameterization=parameterization,
        bias=bias,
        sigma_w=1.2,
        sigma_b=0.5,
    )
    K = infinite_width_kernel(spec, X)
    assert K.shape == (5, 5) and np.all(np.isfinite(K))
    np.testing.assert_array_equal(K, K.T)
    lam = np.linalg.eigvalsh(K)
    assert lam[0] >= -1e-12 * lam[-1] and lam[-1] > 0


def test_standard_parameterization_grows_with_width_and_ntk_does_not() -> None:
    X = _sphere(4, 3)
    for depth in (1, 2):
        std = [
            infinite_width_kernel(ModelSpec(widths=(m,) * depth, parameterization="standard"), X)
            for m in (100, 1000)
        ]
        ntk = [infinite_width_kernel(ModelSpec(widths=(m,) * depth), X) for m in (100, 1000)]
        np.testing.assert_array_equal(ntk[0], ntk[1])
        ratio = np.linalg.norm(std[1]) / np.linalg.norm(std[0])
        assert 8 < ratio <= 10  # the hidden-weight term is proportional to the width


def test_symmetric_pair_and_centering_leave_the_limit_unchanged() -> None:
    X = _sphere(5, 3)
    for par in ("ntk", "standard"):
        base = ModelSpec(widths=(64, 64), activation="gelu", bias=True, parameterization=par)
        K = infinite_width_kernel(base, X)
        np.testing.assert_array_equal(
            infinite_width_kernel(dataclasses.replace(base, center=True), X), K
        )
        # a symmetric pair of width 2m has the kernel of one network of width m
        pair = dataclasses.replace(base, init="symmetric", widths=(128, 128))
        np.testing.assert_array_equal(infinite_width_kernel(pair, X), K)


def test_the_cache_keys_on_the_inputs_and_returns_safe_arrays() -> None:
    X = _sphere(5, 3)
    spec = ModelSpec(widths=(30, 30), activation="tanh", bias=True)
    K = infinite_width_kernel(spec, X)
    K[0, 0] = 123.0  # a copy: the cached kernel is untouched
    res = infinite_width_ntk(dataclasses.replace(spec, widths=(90, 90)), X)
    assert res.widths == (90, 90) and res.theta[0, 0] != 123.0
    with pytest.raises(ValueError):
        res.theta[0, 0] = 1.0  # read-only
    Y = X.copy()
    Y[0, 0] += 1e-3
    assert infinite_width_kernel(spec, Y)[0, 0] != res.theta[0, 0]
    wider = infinite_width_ntk(dataclasses.replace(spec, widths=(30, 30, 30)), X)
    assert not np.array_equal(wider.theta, res.theta)


def test_unsupported_models_and_inputs_are_refused() -> None:
    X = _sphere(3, 2)
    with pytest.raises(LazycheckError, match="built-in MLP"):
        infinite_width_kernel(ModelSpec(kind="python"), X)
    with pytest.raises(LazycheckError, match="shape"):
        infinite_width_kernel(ModelSpec(), np.ones(3))
    with pytest.raises(LazycheckError, match="no closed form"):
        gaussian_moments("tanh", np.eye(2), method="closed")


# ----------------------------------------------------------------------------- report and CLI


def _schema() -> dict:
    text = resources.files("lazycheck").joinpath("schemas/kernel.schema.json").read_text()
    return json.loads(text)


def test_report_numbers_and_schema() -> None:
    prob = load_problem(SAMPLES / "two_layer_tanh.toml")
    rep = compare_kernels(prob)
    assert rep.status == "ok"
    np.testing.assert_allclose(rep.K0, prob.kernel(prob.w0))
    diff = rep.K0 - rep.K_inf
    assert rep.rel_error_op == pytest.approx(
        np.linalg.norm(diff, 2) / np.linalg.norm(rep.K_inf, 2), rel=1e-12
    )
    assert rep.rel_error_fro == pytest.approx(
        np.linalg.norm(diff) / np.linalg.norm(rep.K_inf), rel=1e-12
    )
    sv = np.linalg.svd(prob.jacobian(prob.w0), compute_uv=False)
    assert rep.empirical.sigma_min == pytest.approx(sv[prob.n - 1], rel=1e-6)
    assert rep.empirical.sigma_max == pytest.approx(sv[0], rel=1e-10)
    d = json.loads(json.dumps(rep.to_dict()))
    jsonschema.validate(d, _schema())
    d["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, _schema())


def test_a_singular_limit_is_reported() -> None:
    # identity activation: K_inf = (1 + depth) <x, x'> / d has rank d = 2 < n = 6
    spec = _spec(widths=[40], activation="identity", dim=2)
    rep = compare_kernels(make_problem(spec))
    assert rep.status == "singular_limit" and "Assumption 1 fails" in rep.message
    jsonschema.validate(json.loads(json.dumps(rep.to_dict())), _schema())


def test_cli_table_and_json(run_cli, tmp_path) -> None:
    res = run_cli(["kernel", SAMPLES / "two_layer_tanh.toml"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    for fragment in ("sigma_min = sqrt(lambda_min)", "||K0 - K_inf||_op", "verdict:", "quadrature"):
        assert fragment in text
    txt = tmp_path / "k.txt"
    res = run_cli(["kernel", SAMPLES / "two_layer_tanh.toml", "-o", txt, "--no-progress"])
    assert res.exit_code == 0 and res.stdout == ""
    assert "lazycheck kernel:" in txt.read_text() and "\x1b[" not in txt.read_text()
    out = tmp_path / "k.json"
    args = ["kernel", SAMPLES / "relu.toml", "--format", "json", "-o", out, "--set"]
    res = run_cli([*args, "model.widths=[300]", "--seed", "3", "--no-progress"])
    assert res.exit_code == 0 and res.stdout == ""
    d = json.loads(out.read_text())
    jsonschema.validate(d, _schema())
    assert d["model"]["widths"] == [300] and d["seed"] == 3
    assert d["infinite_width"]["kind"] == "exact (closed form)"


def test_cli_errors_are_one_line(run_cli, one_line_error, tmp_path, monkeypatch) -> None:
    spec = SAMPLES / "two_layer_tanh.toml"
    one_line_error(run_cli(["kernel", tmp_path / "nope.toml"]), "does not exist")
    one_line_error(
        run_cli(["kernel", spec, "--set", "model.activation=swish"]), "model.activation", "tanh"
    )
    one_line_error(run_cli(["kernel", spec, "--set", "data.n=0"]), "data.n", "> 0")
    (tmp_path / "adir").mkdir()
    one_line_error(run_cli(["kernel", spec, "--format", "json", "-o", tmp_path / "adir"]))
    assert list((tmp_path / "adir").iterdir()) == []

    import lazycheck.problem

    real = lazycheck.problem.load_problem

    def unsupported(*args, **kwargs):
        prob = real(*args, **kwargs)
        model = dataclasses.replace(prob.spec.model, kind="python")
        return dataclasses.replace(prob, spec=dataclasses.replace(prob.spec, model=model))

    monkeypatch.setattr(lazycheck.problem, "load_problem", unsupported)
    one_line_error(run_cli(["kernel", spec]), "kind = 'python'", "built-in MLP")


def test_cli_help(run_cli) -> None:
    res = run_cli(["kernel", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for option in ("--seed", "--data-seed", "--set", "--format", "--output", "--threads"):
        assert option in text
