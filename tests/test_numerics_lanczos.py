"""The early-stopping Lanczos against numpy's dense eigensolver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazycheck.numerics.lanczos import top_eigenpair


def _psd(n: int, spectrum: np.ndarray, seed: int = 0) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (Q * spectrum) @ Q.T


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-10])
def test_top_pair_matches_eigh_to_the_tolerance(tol: float) -> None:
    n = 200
    lam = np.sort(np.random.default_rng(1).uniform(0, 1, n))
    lam[-1] = 1.5  # a gap of 1/3 at the top
    A = _psd(n, lam)
    ref = np.linalg.eigh(A)
    pair = top_eigenpair(lambda v: A @ v, np.ones(n), tol)
    assert pair.converged
    # the stated residual is the true one, and bounds the eigenvalue error
    true_res = np.linalg.norm(A @ pair.vector - pair.value * pair.vector)
    assert true_res == pytest.approx(pair.residual, rel=1e-6, abs=1e-13)
    assert pair.residual <= tol * pair.value
    assert abs(pair.value - ref[0][-1]) <= pair.residual + 1e-13
    # eigenvalue error ~ residual^2 / gap; vector angle ~ residual / gap
    assert abs(pair.value - ref[0][-1]) <= 4 * pair.residual**2 / 0.5 + 1e-13
    assert abs(abs(pair.vector @ ref[1][:, -1]) - 1) <= 4 * (pair.residual / 0.5) ** 2 + 1e-13
    assert np.linalg.norm(pair.vector) == pytest.approx(1.0, abs=1e-14)


def test_warm_start_needs_fewer_products() -> None:
    n = 300
    lam = np.linspace(0, 1, n)
    lam[-1] = 1.2
    A = _psd(n, lam, seed=3)
    cold = top_eigenpair(lambda v: A @ v, np.ones(n), 1e-8)
    E = 1e-3 * _psd(n, np.random.default_rng(4).uniform(-1, 1, n), seed=5)
    warm = top_eigenpair(lambda v: (A + E) @ v, cold.vector, 1e-8)
    assert warm.converged and warm.products < cold.products
    assert warm.value == pytest.approx(np.linalg.eigvalsh(A + E)[-1], rel=1e-12)


def test_invariant_subspace_and_zero_operator() -> None:
    n = 50
    A = _psd(n, np.r_[np.zeros(n - 1), 2.0])
    top = np.linalg.eigh(A)[1][:, -1]
    exact = top_eigenpair(lambda v: A @ v, top, 1e-12)
    assert exact.products == 1 and exact.value == pytest.approx(2.0, rel=1e-14)
    zero = top_eigenpair(lambda v: 0 * v, np.ones(n), 1e-8)
    assert zero.value == 0.0 and zero.converged and zero.products == 1
    for m in (1, 2, 3):  # tiny operators: the basis fills the space
        B = _psd(m, np.arange(1.0, m + 1))
        assert top_eigenpair(lambda v, B=B: B @ v, np.ones(m), 1e-12).value == pytest.approx(
            float(m), rel=1e-12
        )


def test_budget_exhausted_is_reported() -> None:
    n = 400
    lam = 1 - np.geomspace(1e-9, 1, n)[::-1]  # a cluster at the top: slow convergence
    A = _psd(n, np.sort(lam))
    pair = top_eigenpair(lambda v: A @ v, np.ones(n), 1e-14, maxiter=5)
    assert not pair.converged and pair.products == 5
    # still a Rayleigh quotient of a unit vector: a lower bound of lambda_max
    assert pair.value <= np.linalg.eigvalsh(A)[-1] + 1e-12
    assert math.isfinite(pair.residual)


@pytest.mark.parametrize("top", [-2.0, 2.0])
def test_largest_magnitude_of_either_sign(top: float) -> None:
    n = 150
    lam = np.random.default_rng(6).uniform(-1, 1, n)
    lam[0] = top  # the end of largest magnitude, with a gap of 1 to the rest
    A = _psd(n, lam, seed=7)
    pair = top_eigenpair(lambda v: A @ v, np.ones(n), 1e-10, which="LM")
    assert pair.converged
    assert pair.value == pytest.approx(top, rel=1e-12)
    assert np.linalg.norm(A @ pair.vector - pair.value * pair.vector) <= 2e-10 * abs(top)
    largest = top_eigenpair(lambda v: A @ v, np.ones(n), 1e-10)  # "LA": the top of the line
    assert abs(largest.value - max(top, float(lam[1:].max()))) <= largest.residual + 1e-13
    with pytest.raises(ValueError, match="which"):
        top_eigenpair(lambda v: A @ v, np.ones(n), 1e-10, which="SA")
