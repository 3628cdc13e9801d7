"""The JAX and PyTorch adapters: Jacobians against central finite differences, kernels against
J J^T, and one two-layer tanh network written three ways (built-in MLP, JAX, PyTorch, same
weights) giving the same sigma's, L0, alpha_min and simulated trajectory."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from helpers import fd_jacobian

import lazycheck
from lazycheck.commands.bound import compute_bound
from lazycheck.commands.simulate import simulate
from lazycheck.models.mlp import MLP

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

D, M, N = 3, 24, 8


def jax_apply(p: dict, X: Any) -> Any:
    h = jnp.tanh(X @ p["W1"].T / math.sqrt(D))
    return h @ p["W2"][0] / math.sqrt(M)


class TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(D, M, bias=False)
        self.l2 = torch.nn.Linear(M, 1, bias=False)

    def forward(self, x: Any) -> Any:
        return self.l2(torch.tanh(self.l1(x / math.sqrt(D))) / math.sqrt(M))


class TorchConv(torch.nn.Module):
    """A small convolutional net (no Linear fast path for the convolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 2, 2)
        self.out = torch.nn.Linear(2 * (D - 1), 1)

    def forward(self, x: Any) -> Any:
        h = torch.tanh(self.conv(x[:, None, :])).flatten(1)
        return self.out(h)[:, 0]


@pytest.fixture(scope="module")
def three() -> dict[str, Any]:
    """The same network three ways, with the built-in MLP's weights."""
    rng = np.random.default_rng(0)
    mlp = MLP(D, [M], "tanh")
    w0 = mlp.init(rng)
    X = rng.standard_normal((N, D))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
    (W1, _), (W2, _) = mlp.unpack(w0)
    net = TorchNet().double()
    with torch.no_grad():
        net.l1.weight.copy_(torch.from_numpy(W1))
        net.l2.weight.copy_(torch.from_numpy(W2))
    models = {
        "builtin": mlp,
        "jax": (jax_apply, {"W1": jnp.asarray(W1), "W2": jnp.asarray(W2)}),
        "torch": net,
    }
    settings = {"check.beta": 1.7, "flow.rtol": 1e-9}
    probs = {
        k: lazycheck.Problem.from_arrays(X, y, m, w0=w0, alpha=50.0, center=True, settings=settings)
        for k, m in models.items()
    }
    return {"probs": probs, "w0": w0, "X": X}


def test_weights_map_to_the_builtin_packing(three: dict) -> None:
    for k in ("jax", "torch"):
        model = three["probs"][k].model
        assert model.n_params == MLP(D, [M]).n_params
        assert np.array_equal(model.base.init(np.random.default_rng(1)), three["w0"]), k


@pytest.mark.parametrize("kind", ["jax", "torch"])
def test_jacobian_against_finite_differences_and_kernel(three: dict, kind: str) -> None:
    prob = three["probs"][kind]
    w = three["w0"] + 0.1 * np.random.default_rng(2).standard_normal(prob.p)
    lin = prob.linearize(w)
    J = lin.jacobian()
    assert np.allclose(J, fd_jacobian(prob.model, w, prob.X, 1e-6), rtol=1e-7, atol=1e-9)
    assert np.allclose(lin.kernel(), J @ J.T, rtol=1e-13, atol=1e-14)
    rng = np.random.default_rng(3)
    v, r = rng.standard_normal(prob.p), rng.standard_normal(prob.n)
    assert np.allclose(lin.jvp(v), J @ v, rtol=1e-12, atol=1e-13)
    assert np.allclose(lin.vjp(r), J.T @ r, rtol=1e-12, atol=1e-13)
    lin0 = prob.linearize(three["w0"])
    J0 = lin0.jacobian()
    assert np.allclose(lin.cross_kernel(lin0), J @ J0.T, rtol=1e-13, atol=1e-14)
    dJ = J - J0
    assert np.allclose(lin.difference_kernel(lin0), dJ @ dJ.T, rtol=1e-12, atol=1e-15)


def test_three_ways_agree_on_bound(three: dict) -> None:
    reports = {k: compute_bound(p) for k, p in three["probs"].items()}
    ref = reports["builtin"]
    for k in ("jax", "torch"):
        rep = reports[k]
        for name in ("sigma_min", "sigma_max", "L0", "alpha_min[given]"):
            a, b = rep.quantity(name).value, ref.quantity(name).value
            assert abs(a - b) <= 1e-10 * abs(b), (k, name, a, b)
        assert rep.status == ref.status


def test_three_ways_agree_on_the_flow(three: dict) -> None:
    runs = {k: simulate(p, n_times=10, horizon=0.01) for k, p in three["probs"].items()}
    ref = runs["builtin"]
    for k in ("jax", "torch"):
        run = runs[k]
        assert np.allclose(run.t, ref.t, rtol=1e-12)
        # the same integrator on the same vector field, up to rounding in the derivatives:
        # well within the solver tolerance (1e-9)
        assert np.allclose(run.loss, ref.loss, rtol=1e-7, atol=1e-12), k
        assert np.allclose(run.loss_lin, ref.loss_lin, rtol=1e-10, atol=1e-14), k


def test_nonsmooth_layers_are_detected() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, D))
    y = rng.standard_normal(5)
    relu_net = torch.nn.Sequential(torch.nn.Linear(D, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))
    prob = lazycheck.Problem.from_arrays(X, y, relu_net)
    assert not prob.model.smooth and "relu" in prob.smoothness
    pool = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, D)),
        torch.nn.MaxPool1d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(1, 1),
    )
    assert not lazycheck.Problem.from_arrays(X, y, pool).model.smooth

    def jrelu(p: dict, X: Any) -> Any:
        return jax.nn.relu(X @ p["W"]) @ p["v"]

    params = {"W": jnp.ones((D, 4)), "v": jnp.ones(4)}
    prob = lazycheck.Problem.from_arrays(X, y, (jrelu, params))
    assert not prob.model.smooth and "max" in prob.smoothness
    report = compute_bound(prob)
    assert report.quantity("beta[exact]").value == math.inf
    declared = lazycheck.Problem.from_arrays(X, y, (jrelu, params), smooth=True)
    assert declared.model.smooth and "declared" in declared.smoothness


@pytest.mark.parametrize("held", [True, False], ids=["J held", "J not held"])
def test_conv_net_without_fast_path(held: bool) -> None:
    """The conv net's kernels against J J^T, from the held J (the default: it fits) and, under
    a memory limit that holds no J, from the Linear layer's layerwise block plus blocks of
    per-sample-gradient rows for the convolution."""
    from lazycheck import resources
    from lazycheck.models.torch_adapter import _TorchLinearization

    torch.manual_seed(0)
    net = TorchConv()
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, D))
    prob = lazycheck.Problem.from_arrays(X, np.zeros(6), net)
    w = prob.w0
    if not held:  # J is 6 x 11: 2x its bytes holds no J (that takes 4x) and rows 1 by 1
        resources.set_memory_limit(2 * 8 * 6 * prob.p)
    try:
        lin = prob.linearize(w)
        J = lin.jacobian()
        assert np.allclose(J, fd_jacobian(prob.model, w, X, 1e-6), rtol=1e-7, atol=1e-9)
        assert np.allclose(lin.kernel(), J @ J.T, rtol=1e-13, atol=1e-14)
        inner = lin
        while not isinstance(inner, _TorchLinearization):
            inner = inner.inner  # type: ignore[attr-defined]
        assert (inner._J is not None) == held
        lin2 = prob.linearize(w + 0.01)
        J2 = lin2.jacobian()
        assert np.allclose(lin2.cross_kernel(lin), J2 @ J.T, rtol=1e-13, atol=1e-14)
        dJ = J2 - J
        assert np.allclose(lin2.difference_kernel(lin), dJ @ dJ.T, rtol=1e-11, atol=1e-16)
    finally:
        resources.set_memory_limit(None)


def test_conv_net_one_gradient_pass_a_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where J fits, a point's products and kernels share one pass of per-sample gradients
    (the kernels used to make a pass each for the convolution's rows, beside the products')."""
    from lazycheck.models import torch_adapter

    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, D))
    prob = lazycheck.Problem.from_arrays(X, np.zeros(6), TorchConv())
    passes: list[int] = []
    gradient_rows = torch_adapter._TorchLinearization._gradient_rows

    def counted(self: Any, lo: int, hi: int) -> Any:
        passes.append(id(self))
        return gradient_rows(self, lo, hi)

    monkeypatch.setattr(torch_adapter._TorchLinearization, "_gradient_rows", counted)
    a, b = prob.linearize(prob.w0), prob.linearize(prob.w0 + 0.01)
    K = a.kernel()
    Jv = a.jvp(np.ones(prob.p))
    D_ab = b.difference_kernel(a)
    b.vjp(np.ones(6))
    C = b.cross_kernel(a)
    assert len(passes) == 2 and len(set(passes)) == 2  # one a point
    J, J2 = a.jacobian(), b.jacobian()
    assert np.allclose(K, J @ J.T, rtol=1e-13, atol=1e-14)
    assert np.allclose(Jv, J @ np.ones(prob.p), rtol=1e-13, atol=1e-14)
    assert np.allclose(D_ab, (J2 - J) @ (J2 - J).T, rtol=1e-11, atol=1e-16)
    assert np.allclose(C, J2 @ J.T, rtol=1e-13, atol=1e-14)


def test_jax_dense_blocks_with_biases_scales_and_other_leaves() -> None:
    """Leaves found in the jaxpr (dense, bias, scaled, 1-D read-out) get layerwise blocks; a
    leaf used otherwise (u) goes through per-sample gradients; the sum is J J^T."""
    rng = np.random.default_rng(6)

    def apply(p: dict, X: Any) -> Any:
        h = jnp.tanh(X @ (p["W1"] / 3.0).T + p["b"])
        h = jnp.tanh(2.0 * (h @ p["W2"]))
        return h @ p["v"] / 2.0 + jnp.sum(X * p["u"], axis=1)

    shapes = {"W1": (7, D), "W2": (7, 7), "b": (7,), "v": (7,), "u": (D,)}
    params = {k: jnp.asarray(rng.standard_normal(s)) for k, s in shapes.items()}
    X = rng.standard_normal((5, D))
    prob = lazycheck.Problem.from_arrays(X, np.zeros(5), (apply, params))
    model = prob.model.inner
    plan = model.dense(jnp.asarray(X))[0]
    assert sorted(p.leaf for p in plan) == [0, 1, 2, 4]  # W1, W2, b, v; not u
    assert [p.scale for p in plan if p.leaf == 0] == [pytest.approx(1 / 3.0)]
    lin = prob.linearize(prob.w0)
    J = lin.jacobian()
    assert np.allclose(J, fd_jacobian(prob.model, prob.w0, X, 1e-6), rtol=1e-7, atol=1e-9)
    assert np.allclose(lin.kernel(), J @ J.T, rtol=1e-13, atol=1e-13)
    lin2 = prob.linearize(prob.w0 + 0.1 * rng.standard_normal(prob.p))
    J2 = lin2.jacobian()
    assert np.allclose(lin2.cross_kernel(lin), J2 @ J.T, rtol=1e-13, atol=1e-13)
    dJ = J2 - J
    assert np.allclose(lin2.difference_kernel(lin), dJ @ dJ.T, rtol=1e-12, atol=1e-14)


class Coupled(torch.nn.Module):
    """Rows of X interact (the batch mean is subtracted): no per-sample shortcut applies."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(D, 4)

    def forward(self, x: Any) -> Any:
        h = torch.tanh(self.lin(x))
        return (h - h.mean(dim=0)).sum(dim=1)


def test_models_coupling_rows_use_vjps() -> None:
    torch.manual_seed(1)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((5, D))

    def japply(p: dict, X: Any) -> Any:
        h = jnp.tanh(X @ p["W"])
        return (h - h.mean(axis=0)).sum(axis=1)

    jparams = {"W": jnp.asarray(rng.standard_normal((D, 4)))}
    for model in (Coupled(), (japply, jparams)):
        prob = lazycheck.Problem.from_arrays(X, np.zeros(5), model)
        assert prob.model.inner.per_sample is False
        lin = prob.linearize(prob.w0)
        J = lin.jacobian()
        assert np.allclose(J, fd_jacobian(prob.model, prob.w0, X, 1e-6), rtol=1e-7, atol=1e-9)
        assert np.allclose(lin.kernel(), J @ J.T, rtol=1e-13, atol=1e-13)
