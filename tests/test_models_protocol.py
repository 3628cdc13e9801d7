"""The NumpyModel protocol and the blocked kernels: against finite differences, J J^T, the
built-in MLP, and a certified bound checked against the sampled search."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import fd_jacobian

import lazycheck
from lazycheck import resources
from lazycheck.beta import certified_beta, sampled_beta
from lazycheck.errors import LazycheckError
from lazycheck.models.mlp import MLP
from lazycheck.models.rows import gram

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
sys.path.insert(0, str(SAMPLES))
from numpy_model import SineFeatures  # noqa: E402


class VjpOnly(lazycheck.NumpyModel):
    """The built-in MLP written through the protocol with only f and vjp."""

    smooth = True

    def __init__(self, mlp: MLP) -> None:
        self.mlp = mlp
        self.n_params = mlp.n_params

    def init(self, rng: np.random.Generator) -> np.ndarray:
        return self.mlp.init(rng)

    def f(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        return self.mlp.forward(w, X)

    def vjp(self, w: np.ndarray, X: np.ndarray, r: np.ndarray) -> np.ndarray:
        return self.mlp.vjp(w, X, r)


class JacOnly(VjpOnly):
    def jacobian(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        return self.mlp.jacobian(w, X)

    vjp = lazycheck.NumpyModel.vjp  # type: ignore[assignment]


@pytest.fixture(scope="module")
def setup() -> tuple[MLP, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    mlp = MLP(3, [12, 8], "tanh", bias=True)
    return mlp, mlp.init(rng), rng.standard_normal((9, 3))


@pytest.mark.parametrize("cls", [VjpOnly, JacOnly])
def test_derivatives_match_the_builtin(cls: type, setup: tuple) -> None:
    mlp, w, X = setup
    model = cls(mlp)
    lin, ref = model.linearize(w, X), mlp.linearize(w, X)
    rng = np.random.default_rng(0)
    v, r = rng.standard_normal(mlp.n_params), rng.standard_normal(X.shape[0])
    assert np.allclose(lin.f, ref.f, rtol=0, atol=1e-14)
    assert np.allclose(lin.jvp(v), ref.jvp(v), rtol=1e-13, atol=1e-13)
    assert np.allclose(lin.vjp(r), ref.vjp(r), rtol=1e-13, atol=1e-13)
    J = lin.jacobian()
    assert np.allclose(lin.kernel(), J @ J.T, rtol=1e-13, atol=1e-13)
    w2 = w + 0.05 * rng.standard_normal(w.size)
    lin2 = model.linearize(w2, X)
    J2 = lin2.jacobian()
    assert np.allclose(lin2.cross_kernel(lin), J2 @ J.T, rtol=1e-13, atol=1e-13)
    dJ = J2 - J
    assert np.allclose(lin2.difference_kernel(lin), dJ @ dJ.T, rtol=1e-12, atol=1e-15)


def test_sample_model_against_finite_differences() -> None:
    rng = np.random.default_rng(1)
    model = SineFeatures(3, 15)
    w, X = model.init(rng), rng.standard_normal((6, 3))
    lin = model.linearize(w, X)
    J = lin.jacobian()
    assert np.allclose(J, fd_jacobian(model, w, X, 1e-6), rtol=1e-7, atol=1e-9)
    v, r = rng.standard_normal(w.size), rng.standard_normal(6)
    assert np.allclose(lin.jvp(v), J @ v, rtol=1e-12, atol=1e-14)
    assert np.allclose(lin.vjp(r), J.T @ r, rtol=1e-12, atol=1e-14)


def test_blocked_gram_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a memory limit that admits only a few rows, the blocked product is the same."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((23, 50)), rng.standard_normal((17, 50))
    whole_sym, whole = A @ A.T, A @ B.T
    resources.set_memory_limit(4 * 8 * 50 * 6 + 8 * 23 * 23)  # blocks of 3 rows
    try:
        calls = []

        def rows(lo: int, hi: int) -> np.ndarray:
            calls.append(hi - lo)
            return A[lo:hi]

        assert np.allclose(gram(rows, 23, 50), whole_sym, rtol=1e-14, atol=1e-13)
        assert max(calls) < 23
        assert np.allclose(
            gram(rows, 23, 50, lambda lo, hi: B[lo:hi], 17), whole, rtol=1e-14, atol=1e-13
        )
    finally:
        resources.set_memory_limit(None)


def test_difference_kernel_is_free_of_cancellation(setup: tuple) -> None:
    """For a step of 1e-7 the kernel difference K_w - 2C + K_v loses everything; the row
    differences keep ||J_w - J_v|| to ~ eps ||J|| / ||J_w - J_v|| (about 1e-9 here)."""
    mlp, w, X = setup
    model = VjpOnly(mlp)
    h = np.random.default_rng(4).standard_normal(w.size)
    w2 = w + 1e-7 * h / np.linalg.norm(h)
    ours = model.linearize(w2, X).difference_kernel(model.linearize(w, X))
    ref = mlp.linearize(w2, X).difference_kernel(mlp.linearize(w, X))  # layerwise, exact form
    top = np.linalg.eigvalsh(ref)[-1]
    assert abs(np.linalg.eigvalsh(ours)[-1] - top) <= 1e-7 * top


def test_certified_bound_of_the_sample_dominates_the_search() -> None:
    rng = np.random.default_rng(5)
    model = SineFeatures(3, 20)
    w0, X = model.init(rng), rng.standard_normal((5, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    R = 0.5
    cert = certified_beta(model, X, w0, R)
    found = sampled_beta(model, X, w0, 1.0, np.random.default_rng(0), radius=R, samples=16)
    assert cert is not None and math.isfinite(cert)
    assert 0 < found.value <= cert


def test_protocol_errors() -> None:
    class NoDerivative(lazycheck.NumpyModel):
        n_params = 2
        smooth = True

        def init(self, rng: np.random.Generator) -> np.ndarray:
            return np.zeros(2)

        def f(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
            return X @ w

    X = np.ones((3, 2))
    with pytest.raises(LazycheckError, match="defines vjp"):
        NoDerivative().linearize(np.zeros(2), X)

    class WrongShape(NoDerivative):
        def f(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
            return np.outer(X @ w, [1.0, 2.0])

        def jacobian(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
            return X

    with pytest.raises(LazycheckError, match=r"shape \(3, 2\); expected \(3,\)"):
        WrongShape().forward(np.zeros(2), X)
