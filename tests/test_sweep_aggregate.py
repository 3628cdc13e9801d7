"""Slopes fitted from synthetic data with a known exponent, seed statistics, the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazycheck.sweep.aggregate import cell_stats, fit_slope, slopes
from lazycheck.sweep.grid import Axis
from lazycheck.sweep.threshold import bisect_point, thresholds, update


def test_exact_power_law_gives_its_exponent_with_a_zero_width_interval() -> None:
    x = np.geomspace(1, 1e4, 9)
    s, lo, hi, _, b = fit_slope(x, 3.0 * x**-1.0)
    assert s == pytest.approx(-1.0, abs=1e-12)
    assert hi - lo == pytest.approx(0.0, abs=1e-10)
    assert b == pytest.approx(math.log(3.0), abs=1e-10)


@pytest.mark.parametrize("k", [-1.0, -0.5, 0.0, 2.0])
def test_noisy_power_law_interval_covers_the_exponent(k: float) -> None:
    rng = np.random.default_rng(1)
    x = np.geomspace(1, 1e3, 12)
    y = 0.7 * x**k * np.exp(0.05 * rng.standard_normal(x.size))
    s, lo, hi, _, _ = fit_slope(x, y)
    assert lo < k < hi
    assert hi - lo < 0.1
    # the interval is slope +- t(0.975, m-2) stderr, against scipy's own linregress
    from scipy import stats

    ref = stats.linregress(np.log(x), np.log(y))
    half = stats.t.ppf(0.975, x.size - 2) * ref.stderr
    assert (s, lo, hi) == pytest.approx((ref.slope, ref.slope - half, ref.slope + half))


def test_seed_offsets_do_not_widen_the_interval() -> None:
    """Each seed scales the metric by its own factor: one slope, exact, per-seed intercepts."""
    x = np.tile(np.geomspace(1, 100, 5), 3)
    seed = np.repeat([0, 1, 2], 5)
    y = np.array([10.0, 0.1, 3.0])[seed] * x**-1.0
    s, lo, hi, _, _ = fit_slope(x, y, seed)
    assert s == pytest.approx(-1.0, abs=1e-12) and hi - lo < 1e-9
    # pooled (no replicate labels) the offsets would show up as noise
    _, plo, phi, _, _ = fit_slope(x, y)
    assert phi - plo > 1.0


def test_within_estimator_matches_least_squares_with_dummy_intercepts() -> None:
    rng = np.random.default_rng(7)
    x = np.tile(np.geomspace(1, 1e3, 6), 3)
    seed = np.repeat([0, 1, 2], 6)
    y = np.exp(rng.standard_normal(3))[seed] * x**-0.5 * np.exp(0.1 * rng.standard_normal(18))
    s, lo, hi, se, _ = fit_slope(x, y, seed)
    A = np.column_stack([np.log(x), *(seed == g for g in range(3))]).astype(float)
    coef, rss, *_ = np.linalg.lstsq(A, np.log(y), rcond=None)
    dof = 18 - 4
    cov = rss[0] / dof * np.linalg.inv(A.T @ A)
    from scipy import stats

    assert s == pytest.approx(coef[0], rel=1e-10)
    assert se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-8)
    assert hi - s == pytest.approx(stats.t.ppf(0.975, dof) * se, rel=1e-10)
    assert lo < -0.5 < hi


def test_two_points_give_a_slope_but_no_interval() -> None:
    s, lo, hi, _, _ = fit_slope([1.0, 10.0], [1.0, 0.1])
    assert s == pytest.approx(-1.0) and math.isnan(lo) and math.isnan(hi)


def test_cell_stats_leave_out_non_finite_values() -> None:
    st = cell_stats([1.0, 3.0, math.nan])
    assert (st.mean, st.count, st.missing) == (2.0, 2, 1)
    assert st.std == pytest.approx(math.sqrt(2.0))


def _run(alpha: float, seed: int, lazy: bool | None, value: float, status: str = "ok") -> dict:
    metrics = {"disp": value, "alpha_min_certified": 50.0 + seed, "alpha_min_sampled": 20.0}
    return {
        "coords": {"alpha": alpha, "seed": seed},
        "record": {"status": status, "lazy": lazy, "metrics": metrics, "f0_zero": True},
    }


def test_slopes_over_axes_against_the_theory_rate() -> None:
    runs = [_run(a, s, True, (s + 1) / a) for a in (1.0, 10.0, 100.0) for s in (0, 1)]
    axes = [Axis("flow.alpha", (1.0, 10.0, 100.0), "alpha"), Axis("seed", (0, 1), "seed")]
    (fit,) = [f for f in slopes(runs, axes) if f.metric == "disp"]
    assert fit.slope == pytest.approx(-1.0) and fit.theory == -1.0 and fit.consistent
    assert fit.points == 6
    # restricted to alpha in [10, 100]
    (fit2,) = [f for f in slopes(runs, axes, (10.0, 100.0)) if f.metric == "disp"]
    assert fit2.points == 4


def test_threshold_from_the_grid_and_bisection() -> None:
    lazy_from = 7.0  # the true threshold
    grid = [0.1, 1.0, 10.0, 100.0]
    runs = [_run(a, s, a >= lazy_from, 1.0) for a in grid for s in (0, 1)]
    (th,) = thresholds(runs, []).values()
    assert (th.status, th.low, th.alpha) == ("bracketed", 1.0, 10.0)
    assert th.alpha_min_certified == 51.0  # the largest over the seeds
    assert th.looseness_certified == pytest.approx(5.1)
    while (mid := bisect_point(th, 0.01)) is not None:
        th = update(th, mid, [_run(mid, s, mid >= lazy_from, 1.0) for s in (0, 1)])
    assert th.low < lazy_from <= th.alpha <= th.low * 1.01
    # a non-monotone grid: lazy at 1, not at 10, lazy from 100 on
    runs = [_run(a, 0, a in (1.0, 100.0), 1.0) for a in grid]
    (th,) = thresholds(runs, []).values()
    assert (th.low, th.alpha) == (10.0, 100.0)


def test_threshold_edges_and_failures() -> None:
    (th,) = thresholds([_run(a, 0, True, 1.0) for a in (1.0, 10.0)], []).values()
    assert (th.status, th.alpha, th.low) == ("at_most", 1.0, None)
    (th,) = thresholds([_run(a, 0, False, 1.0) for a in (1.0, 10.0)], []).values()
    assert (th.status, th.alpha) == ("above", None)
    # a failed seed at an alpha makes that alpha not lazy
    runs = [_run(1.0, 0, True, 1.0), _run(1.0, 1, None, 1.0, "failed"), _run(10.0, 0, True, 1.0)]
    (th,) = thresholds(runs, []).values()
    assert (th.low, th.alpha) == (1.0, 10.0)


def test_width_rates_are_bounds_except_the_kernel_limit() -> None:
    widths = ([50], [200], [800])
    runs = [
        {
            "coords": {"model.widths": w},
            "record": {
                "status": "ok",
                "f0_zero": True,
                "parameterization": "ntk",
                "metrics": {"jac_change_fro": w[0] ** -0.8, "kinf_dist": w[0] ** -0.8},
            },
        }
        for w in widths
    ]
    axes = [Axis("model.widths", widths, "model.widths")]
    fits = {f.metric: f for f in slopes(runs, axes)}
    jac, kinf = fits["jac_change_fro"], fits["kinf_dist"]
    assert jac.slope == pytest.approx(-0.8) and kinf.slope == pytest.approx(-0.8)
    assert (jac.theory, jac.theory_relation, jac.consistent) == (-0.5, "<=", True)
    assert (kinf.theory, kinf.theory_relation, kinf.consistent) == (-0.5, "=", False)
    # the standard parameterization has no width rate
    for r in runs:
        r["record"]["parameterization"] = "standard"
    fits = {f.metric: f for f in slopes(runs, axes)}
    assert fits["jac_change_fro"].theory is None and "NTK" in fits["jac_change_fro"].theory_note


def test_exit_codes_count_the_failed_configurations() -> None:
    from lazycheck.sweep import exit_code_for

    assert [exit_code_for(k) for k in (0, 1, 7, 100, 500)] == [0, 11, 17, 110, 110]
