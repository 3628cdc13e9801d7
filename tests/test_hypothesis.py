"""The hypothesis of Theorem 2 as an inequality in alpha, solved exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazycheck.hypothesis import (
    b_lin,
    b_prime,
    hypothesis_kappa,
    initial_loss,
    radius_kappa,
    safe_norm,
    solve_alpha,
    solve_alpha_on_ball,
)


def _holds(alpha: float, kappa: float, f0: np.ndarray, y: np.ndarray) -> bool:
    return alpha >= kappa * math.sqrt(initial_loss(alpha, f0, y))


def test_centered_model_closed_form() -> None:
    # f0 = 0: L0 = |y|^2/2 is constant, so alpha_min = kappa |y| / sqrt(2).
    y = np.array([0.3, -1.2, 0.7])
    sol = solve_alpha(2.5, np.zeros(3), y)
    assert sol.status == "half_line"
    assert sol.alpha_min == pytest.approx(2.5 * np.linalg.norm(y) / math.sqrt(2), rel=1e-15)
    assert math.isinf(sol.alpha_max)


@settings(max_examples=200, deadline=None)
@given(
    kappa=st.floats(1e-3, 1e3),
    scale=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_alpha_min_substituted_back_holds_with_equality(
    kappa: float, scale: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(6)
    f0 = scale * rng.standard_normal(6) / kappa
    sol = solve_alpha(kappa, f0, y)
    if not sol.feasible:
        # then no alpha on a wide grid satisfies it either
        grid = np.geomspace(1e-8, 1e12, 4000)
        assert not any(_holds(a, kappa, f0, y) for a in grid)
        return
    a = sol.alpha_min
    rhs = kappa * math.sqrt(initial_loss(a, f0, y))
    assert a == pytest.approx(rhs, rel=1e-9, abs=1e-300)
    assert _holds(a, kappa, f0, y)
    # just below alpha_min it fails (unless alpha_min = 0)
    if a > 0:
        assert not _holds(a * (1 - 1e-7), kappa, f0, y)
    if sol.status == "interval":
        assert _holds(sol.alpha_max, kappa, f0, y)
        assert not _holds(sol.alpha_max * (1 + 1e-7), kappa, f0, y)
        assert sol.alpha_max == pytest.approx(
            kappa * math.sqrt(initial_loss(sol.alpha_max, f0, y)), rel=1e-9
        )


def test_interval_case_exists_and_is_exact() -> None:
    # alpha f0 passes close to y: the inequality holds only on a bounded interval
    y = np.array([1.0, 0.0])
    f0 = np.array([1.0, 0.05])
    kappa = 2.0  # kappa |f0| / sqrt(2) > 1
    sol = solve_alpha(kappa, f0, y)
    assert sol.status == "interval"
    assert sol.alpha_min < 1.0 < sol.alpha_max
    for a in np.linspace(sol.alpha_min, sol.alpha_max, 50):
        assert _holds(a, kappa, f0, y)
    assert "center" in sol.message


def test_infeasible_when_f0_dominates() -> None:
    y = np.array([1.0, 0.0])
    f0 = np.array([0.0, 1.0])  # orthogonal to y, large
    sol = solve_alpha(10.0, f0, y)
    assert sol.status == "empty" and not sol.feasible
    assert "center" in sol.message and "symmetric" in sol.message
    assert not any(_holds(a, 10.0, f0, y) for a in np.geomspace(1e-6, 1e9, 2000))


def test_kappa_edge_cases() -> None:
    assert hypothesis_kappa(0.0, 1.0, 2.0) == 0.0
    assert math.isinf(hypothesis_kappa(math.inf, 1.0, 2.0))
    assert math.isinf(hypothesis_kappa(1.0, 0.0, 2.0))
    assert solve_alpha(0.0, np.ones(2), np.ones(2)).status == "all"
    assert solve_alpha(math.inf, np.ones(2), np.ones(2)).status == "empty"


def test_radius_form_coincides_with_hypothesis_at_B() -> None:
    smin, smax, beta = 0.3, 2.0, 0.7
    B = smin / (2 * beta)
    assert radius_kappa(B, smin, smax) == pytest.approx(
        hypothesis_kappa(beta, smin, smax), rel=1e-14
    )


def test_radii_formulas() -> None:
    # B' = 6 sqrt(2) sigma_max sqrt(L0) / (alpha sigma_min^2) = 6 * B_lin
    for alpha, L0, smin, smax in [(1.0, 0.5, 0.1, 1.0), (37.0, 2.0, 0.02, 3.0)]:
        bp = b_prime(alpha, L0, smin, smax)
        assert bp == pytest.approx(6 * math.sqrt(2) * smax * math.sqrt(L0) / (alpha * smin**2))
        assert bp == pytest.approx(6 * b_lin(alpha, L0, smin, smax))
    # B'(alpha_min) = B exactly
    y = np.array([0.4, -0.8, 1.1])
    smin, smax, beta = 0.05, 1.5, 0.3
    sol = solve_alpha(hypothesis_kappa(beta, smin, smax), np.zeros(3), y)
    L0 = initial_loss(sol.alpha_min, np.zeros(3), y)
    assert b_prime(sol.alpha_min, L0, smin, smax) == pytest.approx(smin / (2 * beta), rel=1e-12)


# ----------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize(
    ("kappa", "f0", "y"),
    [
        (math.nan, np.zeros(3), np.ones(3)),
        (2.0, np.zeros(3), np.array([1.0, np.inf, 0.0])),
        (2.0, np.array([np.nan, 0.0, 0.0]), np.ones(3)),
        (1e300, np.zeros(3), np.full(3, 1e300)),  # alpha_min ~ 1e600 overflows
        (1e200, np.full(3, 1e200), np.ones(3)),  # kappa ||f0|| overflows
    ],
)
def test_non_finite_inputs_or_answers_are_not_computable(kappa, f0, y) -> None:
    sol = solve_alpha(kappa, f0, y)
    assert sol.status == "not_computable" and not sol.feasible
    assert math.isnan(sol.alpha_min) and "not computable" in sol.message
    assert not sol.contains(1.0) and not sol.contains(math.inf)


def test_huge_targets_do_not_overflow_into_every_alpha() -> None:
    # noise = 1e300: ||y||^2 overflows, but the hypothesis is still solved exactly in the
    # scaled variable (the old quadratic gave nan coefficients and "every alpha > 0")
    y = np.array([1e300, -2e300, 0.5e300])
    kappa = 1e-5
    sol = solve_alpha(kappa, np.zeros(3), y)
    assert sol.status == "half_line"
    ny = 1e300 * math.sqrt(1 + 4 + 0.25)
    assert sol.alpha_min == pytest.approx(kappa * ny / math.sqrt(2), rel=1e-14)
    assert not sol.contains(1.0)
    assert math.isinf(initial_loss(1.0, np.zeros(3), y))  # L0 itself overflows


def test_huge_kappa_is_solved_in_scale() -> None:
    # beta ~ 1e216 gave kappa^2 = inf and a = nan: "empty" with a nonsense message
    y = np.array([0.3, -0.4])
    sol = solve_alpha(1e200, np.zeros(2), y)
    assert sol.status == "half_line"
    assert sol.alpha_min == pytest.approx(1e200 * 0.5 / math.sqrt(2), rel=1e-14)


def test_alpha_from_a_small_ball_needs_B_prime_below_R() -> None:
    y = np.array([0.4, -0.8, 1.1])
    smin, smax, beta = 0.05, 1.5, 0.3
    B = smin / (2 * beta)
    f0 = np.zeros(3)
    full = solve_alpha_on_ball(beta, 10 * B, smin, smax, f0, y)
    assert full == solve_alpha(hypothesis_kappa(beta, smin, smax), f0, y)
    small = solve_alpha_on_ball(beta, 0.01 * B, smin, smax, f0, y)
    assert small.alpha_min == pytest.approx(100 * full.alpha_min, rel=1e-12)
    L0 = initial_loss(small.alpha_min, f0, y)
    assert b_prime(small.alpha_min, L0, smin, smax) == pytest.approx(0.01 * B, rel=1e-12)
    assert b_prime(small.alpha_min, L0, smin, smax) <= 0.01 * B


def test_radii_of_non_finite_inputs() -> None:
    assert math.isinf(b_prime(1.0, math.inf, 0.1, 1.0))
    assert math.isnan(b_prime(1.0, math.nan, 0.1, 1.0))
    assert math.isnan(hypothesis_kappa(math.nan, 0.1, 1.0))
    assert math.isnan(radius_kappa(math.nan, 0.1, 1.0))


@settings(max_examples=100, deadline=None)
@given(
    x=st.lists(st.floats(-1e306, 1e306, allow_subnormal=True), min_size=1, max_size=6),
)
def test_safe_norm_matches_a_scaled_reference(x: list[float]) -> None:
    v = np.array(x)
    ref = math.hypot(*x)  # correctly scaled in the standard library
    assert safe_norm(v) == pytest.approx(ref, rel=1e-14, abs=0.0)


def test_kappa_overflow_is_not_computable_not_empty() -> None:
    kappa = hypothesis_kappa(1e300, 1e-10, 1e10)
    assert math.isnan(kappa)
    sol = solve_alpha(kappa, np.zeros(2), np.ones(2))
    assert sol.status == "not_computable"
    assert math.isnan(radius_kappa(1e-300, 1e-10, 1e10))
