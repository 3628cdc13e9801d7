"""The closed-form linear flow against an ODE solver, at tiny eigenvalues, and in the limit."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from lazycheck.models.base import Linearization
from lazycheck.numerics.linear_flow import linear_flow, phi, phi_table, phi_weights
from lazycheck.problem import make_problem
from lazycheck.spec import parse_spec


class DenseLin(Linearization):
    """A linearization given by an explicit Jacobian (a linear model)."""

    def __init__(self, J: np.ndarray, f: np.ndarray) -> None:
        self.J = np.asarray(J, dtype=np.float64)
        self.f = np.asarray(f, dtype=np.float64)

    def jvp(self, v: np.ndarray) -> np.ndarray:
        return self.J @ v

    def vjp(self, r: np.ndarray) -> np.ndarray:
        return self.J.T @ r

    def jacobian(self) -> np.ndarray:
        return self.J.copy()

    def kernel(self) -> np.ndarray:
        return self.J @ self.J.T

    def cross_kernel(self, other: Linearization) -> np.ndarray:
        assert isinstance(other, DenseLin)
        return self.J @ other.J.T


def _small_problem(center: bool):
    spec = parse_spec(
        {
            "seed": 0,
            "data": {"source": "synthetic", "n": 6, "dim": 3},
            "model": {"widths": [32], "center": center},
        }
    )
    return make_problem(spec)


def test_closed_form_matches_dop853_on_residual_and_displacement() -> None:
    from scipy.integrate import solve_ivp

    prob = _small_problem(center=False)  # f(w0) != 0: r0 = alpha f(w0) - y
    alpha = 2.5
    lin0 = prob.linearize(prob.w0)
    J0 = lin0.jacobian()
    f0 = lin0.f
    assert np.linalg.norm(f0) > 0.1
    flow = linear_flow(lin0, prob.y, alpha)

    def rhs(_t: float, d: np.ndarray) -> np.ndarray:
        return -alpha * J0.T @ (alpha * (f0 + J0 @ d) - prob.y)

    lam = np.linalg.eigvalsh(J0 @ J0.T)
    t_end = 6.0 / (alpha**2 * lam[0])
    times = np.concatenate([[0.0], np.geomspace(1e-3 / (alpha**2 * lam[-1]), t_end, 12)])
    sol = solve_ivp(
        rhs,
        (0.0, t_end),
        np.zeros(prob.p),
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
        t_eval=times,
    )
    assert sol.success
    r_ref = alpha * (f0[:, None] + J0 @ sol.y) - prob.y[:, None]
    r0 = np.linalg.norm(r_ref[:, 0])
    r_cf = flow.residual(times)
    assert np.max(np.abs(r_cf - r_ref.T)) <= 1e-9 * r0
    for k, t in enumerate(times):
        d = flow.displacement(t)
        scale = max(np.linalg.norm(sol.y[:, k]), 1e-300)
        assert np.linalg.norm(d - sol.y[:, k]) <= 1e-9 * scale + 1e-15
        assert flow.displacement_norm(t) == pytest.approx(np.linalg.norm(d), rel=1e-10, abs=1e-15)
    np.testing.assert_allclose(flow.loss(times), 0.5 * np.sum(r_cf**2, axis=1), rtol=1e-12)


def test_tiny_and_zero_eigenvalues_give_their_limit() -> None:
    # K = diag(1, 1e-300, 0) exactly: one normal, one denormal-scale and one null direction
    J = np.zeros((3, 5))
    J[0, 0], J[1, 1] = 1.0, 1e-150
    y = np.array([1.0, -2.0, 3.0])
    alpha = 3.0
    flow = linear_flow(DenseLin(J, np.zeros(3)), y, alpha)
    assert sorted(flow.lam.tolist()) == [0.0, 1e-300, 1.0]
    t = np.array([0.0, 0.5, 7.0])
    with np.errstate(divide="raise", invalid="raise", over="raise"):  # no 0/0, no inf
        c = flow.coefficients(t)
        r = flow.residual(t)
        dn = flow.displacement_norm(t)
        loss = flow.loss(t)
    s = alpha**2 * t
    # c(t) = Q diag((1 - e^{-lambda s})/lambda) Q^T r0, r0 = -y; Q is a permutation here
    r0 = -y
    np.testing.assert_array_equal(c[:, 2], s * r0[2])  # lambda = 0: the limit s exactly
    np.testing.assert_allclose(c[:, 1], s * r0[1], rtol=1e-15)  # lambda = 1e-300
    np.testing.assert_allclose(c[:, 0], -np.expm1(-s) * r0[0], rtol=1e-15)
    np.testing.assert_array_equal(r[:, 1:], np.tile(r0[1:], (3, 1)))  # nothing decays there
    np.testing.assert_allclose(r[:, 0], np.exp(-s) * r0[0], rtol=1e-15)
    assert np.all(np.isfinite(dn)) and np.all(np.isfinite(loss))
    # ||u - u0|| = (1/alpha) ||J^T c||: only the lambda = 1 direction moves u
    np.testing.assert_allclose(dn, np.abs(c[:, 0]) / alpha, rtol=1e-15)
    for k in range(3):
        np.testing.assert_allclose(
            np.linalg.norm(flow.displacement(t[k])), dn[k], rtol=1e-15, atol=1e-300
        )


def test_phi_weights_avoid_cancellation_for_small_lambda() -> None:
    s = np.array([1.0, 3.0])
    lam = np.array([0.0, 1e-320, 1e-300, 1e-10, 1e-3])
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        e = phi_weights(s, lam, 1)
    # exact: (1 - e^{-lambda s}) / lambda = s (1 - lambda s / 2 + (lambda s)^2 / 6 - ...)
    x = np.multiply.outer(s, lam)
    series = s[:, None] * sum((-x) ** k / math.factorial(k + 1) for k in range(10))
    np.testing.assert_allclose(e, series, rtol=2e-16)
    # the naive formula loses 7 digits at lambda = 1e-10, so the comparison is not vacuous
    naive = (1.0 - np.exp(-1e-10)) / 1e-10
    assert abs(naive - series[0, 3]) > 1e-9


def test_phi_functions_match_a_high_precision_series() -> None:
    getcontext().prec = 60

    def ref(j: int, x: float) -> float:
        z = -Decimal(x)
        total, term, k = Decimal(0), Decimal(1) / math.factorial(j), 0
        while k < 500:
            total += term
            k += 1
            term = term * z / (k + j)
        return float(total)

    xs = np.array([0.0, 1e-300, 1e-12, 1e-5, 0.3, 0.999, 1.0, 1.999, 2.0, 2.001, 2.5, 7.0, 20.0])
    table = phi_table(5, xs)
    for j in range(6):
        want = np.array([ref(j, float(x)) for x in xs])
        np.testing.assert_allclose(table[j], want, rtol=5e-15)
        np.testing.assert_array_equal(phi(j, xs), table[j])
    assert phi(1, np.array([1e300]))[0] == 1e-300  # large x: 1/x, no overflow


@pytest.mark.parametrize("alpha", [1.0, 40.0])
def test_centered_limit_is_the_kernel_norm_of_y(alpha: float) -> None:
    prob = _small_problem(center=True)
    lin0 = prob.linearize(prob.w0)
    assert np.max(np.abs(lin0.f)) == 0.0  # centered: f(w0) = 0, so r0 = -y
    flow = linear_flow(lin0, prob.y, alpha)
    K0 = lin0.kernel()
    want = math.sqrt(float(prob.y @ np.linalg.solve(K0, prob.y)))  # sqrt(y^T K0^-1 y)
    t_inf = 2000.0 / (alpha**2 * float(np.linalg.eigvalsh(K0)[0]))  # e^{-2000}: underflows
    assert alpha * flow.displacement_norm(t_inf) == pytest.approx(want, rel=1e-10)
    assert alpha * flow.displacement_limit() == pytest.approx(want, rel=1e-10)
    assert alpha * np.linalg.norm(flow.displacement(t_inf)) == pytest.approx(want, rel=1e-10)
    assert flow.loss(t_inf) == 0.0


def test_linear_loss_obeys_lemma_4_rate() -> None:
    prob = _small_problem(center=False)
    alpha = 1.7
    flow = linear_flow(prob.linearize(prob.w0), prob.y, alpha)
    L0 = 0.5 * float(flow.r0 @ flow.r0)
    t = np.geomspace(1e-4, 1e3, 60)
    loss = flow.loss(t)
    assert np.all(np.diff(loss) <= 0)
    assert np.all(loss <= flow.rate_bound(t, L0) * (1 + 1e-12))
    # and the rate is attained asymptotically (the slowest mode dominates)
    late = loss[-1] / flow.rate_bound(t[-1], L0)
    assert late > 1e-3 * (flow.r0_hat[0] ** 2 / (2 * L0))


def test_displacement_is_vectorized_over_times() -> None:
    prob = _small_problem(center=False)
    flow = linear_flow(prob.linearize(prob.w0), prob.y, 1.3)
    t = np.array([0.0, 0.1, 10.0, 1e3])
    D = flow.displacement(t)
    assert D.shape == (4, prob.p)
    for k in range(4):
        np.testing.assert_allclose(D[k], flow.displacement(float(t[k])), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), flow.displacement_norm(t), rtol=1e-10)
    assert np.all(D[0] == 0.0)
