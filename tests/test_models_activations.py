"""Activations: derivatives against finite differences, smoothness, exact interval sups."""

from __future__ import annotations

import numpy as np
import pytest

from lazycheck.models.activations import ACTIVATIONS, get_activation

NAMES = sorted(ACTIVATIONS)
SMOOTH = [name for name in NAMES if ACTIVATIONS[name].smooth]
STEP = 1e-5  # central differences: truncation ~ STEP^2, rounding ~ 1e-16 / STEP


def _points(name: str) -> np.ndarray:
    z = np.random.default_rng(0).uniform(-5.0, 5.0, 400)
    z = np.concatenate([z, [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]])
    if name == "relu":  # relu' jumps at 0: test away from the kink
        z = z[np.abs(z) > 0.01]
    return z


def _central(g, z: np.ndarray) -> np.ndarray:
    return (g(z + STEP) - g(z - STEP)) / (2.0 * STEP)


@pytest.mark.parametrize("name", NAMES)
def test_first_derivative_matches_central_differences(name: str) -> None:
    act = get_activation(name)
    z = _points(name)
    np.testing.assert_allclose(act.d1(z), _central(act.fn, z), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_second_derivative_matches_central_differences_of_the_first(name: str) -> None:
    act = get_activation(name)
    z = _points(name)
    np.testing.assert_allclose(act.d2(z), _central(act.d1, z), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_activation_functions_are_vectorized_float64(name: str) -> None:
    act = get_activation(name)
    z = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
    for g in (act.fn, act.d1, act.d2):
        out = np.asarray(g(z))
        assert out.shape == z.shape
        assert out.dtype == np.float64


def test_only_relu_is_not_smooth() -> None:
    assert {name for name, act in ACTIVATIONS.items() if not act.smooth} == {"relu"}


def test_every_activation_knows_its_own_name() -> None:
    for name, act in ACTIVATIONS.items():
        assert act.name == name
        assert get_activation(name) is act


@pytest.mark.parametrize("name", [n for n in NAMES if ACTIVATIONS[n].d1_critical])
def test_d1_critical_points_are_zeros_of_the_second_derivative(name: str) -> None:
    act = get_activation(name)
    crit = np.array(act.d1_critical)
    np.testing.assert_allclose(act.d2(crit), 0.0, atol=1e-14)


@pytest.mark.parametrize("name", [n for n in SMOOTH if ACTIVATIONS[n].d2_critical])
def test_d2_critical_points_are_zeros_of_the_third_derivative(name: str) -> None:
    act = get_activation(name)
    crit = np.array(act.d2_critical)
    np.testing.assert_allclose(_central(act.d2, crit), 0.0, atol=1e-9)


def _random_intervals(seed: int, count: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-7.0, 7.0, count)
    width = rng.exponential(1.5, count)
    width[: count // 10] = 0.0  # degenerate intervals [a, a]
    # intervals placed around the known peaks of |phi'| and |phi''| (0, +-sqrt 2, +-2, pi/2)
    centres = np.array([0.0, 1.4142135623730951, -2.0, 2.0, 0.6584789484624084, 1.5707963267948966])
    lo = np.concatenate([lo, centres - 0.3, centres - 1e-3])
    width = np.concatenate([width, np.full(centres.size, 0.6), np.full(centres.size, 2e-3)])
    return lo, lo + width


def _grid_sup(g, lo: float, hi: float, points: int = 4001) -> float:
    return float(np.max(np.abs(g(np.linspace(lo, hi, points)))))


# relu'' is unbounded at 0: its sup is covered by test_relu_second_derivative_sup_is_infinite
SUP_CASES = [(name, 1) for name in NAMES] + [(name, 2) for name in SMOOTH]


@pytest.mark.parametrize(("name", "order"), SUP_CASES)
def test_interval_sup_is_exact_against_a_dense_grid(name: str, order: int) -> None:
    act = get_activation(name)
    g, sup = (act.d1, act.sup_abs_d1) if order == 1 else (act.d2, act.sup_abs_d2)
    lo, hi = _random_intervals(seed=order)
    exact = sup(lo, hi)
    assert exact.shape == lo.shape
    grid = np.array([_grid_sup(g, a, b) for a, b in zip(lo, hi, strict=True)])
    # a sup can never be below a value the function takes on the interval ...
    assert np.all(exact >= grid - 1e-14)
    # ... and the grid (spacing <= ~5e-3) comes within O(spacing^2) of a smooth maximum
    spacing = (hi - lo) / 4000
    np.testing.assert_array_less(exact - grid, 1e-12 + 2.0 * spacing**2)


@pytest.mark.parametrize("name", SMOOTH)
def test_interval_sup_covers_a_peak_strictly_inside(name: str) -> None:
    act = get_activation(name)
    # a wide interval contains every peak: the sup is the global max of |phi''| on [-8, 8]
    lo, hi = np.array([-8.0]), np.array([8.0])
    assert act.sup_abs_d2(lo, hi)[0] == pytest.approx(
        _grid_sup(act.d2, -8.0, 8.0, 400001), abs=1e-9
    )
    assert act.sup_abs_d1(lo, hi)[0] == pytest.approx(
        _grid_sup(act.d1, -8.0, 8.0, 400001), abs=1e-9
    )


def test_relu_second_derivative_sup_is_infinite() -> None:
    relu = get_activation("relu")
    out = relu.sup_abs_d2(np.array([-1.0, 2.0]), np.array([1.0, 3.0]))
    assert np.all(np.isinf(out))


def _rounded_up(value: float, exact: float) -> bool:
    """The sup is an upper bound rounded up by at most a few ulps plus a 4e-15 floor."""
    return exact <= value <= exact * (1 + 1e-14) + 1e-14


def test_known_peak_values() -> None:
    # the sups are upper bounds rounded up (docs/beta-certified.md), not the bare values
    lo, hi = np.array([-1.0]), np.array([1.0])
    assert _rounded_up(get_activation("tanh").sup_abs_d1(lo, hi)[0], 1.0)
    assert _rounded_up(get_activation("sigmoid").sup_abs_d1(lo, hi)[0], 0.25)
    assert _rounded_up(get_activation("sin").sup_abs_d1(lo, hi)[0], 1.0)
    assert get_activation("erf").sup_abs_d1(lo, hi)[0] == pytest.approx(2.0 / np.sqrt(np.pi))
    # tanh'' peaks at +-atanh(1/sqrt 3) with |tanh''| = 4 / (3 sqrt 3)
    assert get_activation("tanh").sup_abs_d2(lo, hi)[0] == pytest.approx(4.0 / (3.0 * np.sqrt(3.0)))
    assert get_activation("identity").sup_abs_d2(lo, hi)[0] == 0.0


SATURATING = ["tanh", "sigmoid", "erf", "gelu", "softplus"]


@pytest.mark.parametrize("name", [*SATURATING, "sin"])
@pytest.mark.parametrize("order", [1, 2])
def test_sup_never_underflows_to_zero_where_the_derivative_is_positive(
    name: str, order: int
) -> None:
    # far in the tails phi' or phi'' underflows to 0 in float64 though it is positive: the
    # certified sup must stay a positive upper bound
    act = get_activation(name)
    sup = act.sup_abs_d1 if order == 1 else act.sup_abs_d2
    for z in (-1e6, -800.0, 800.0, 1e6, 1e300):
        out = sup(np.array([z]), np.array([z]))[0]
        g = act.d1 if order == 1 else act.d2
        limit = abs(float(g(np.array(min(max(z, -1e150), 1e150)))))
        if name == "sin" or limit > 0.5:  # sin; gelu' and softplus' tend to 1
            assert limit <= out <= 1.0 + 1e-14
        else:
            assert limit < 1e-300 and 0 < out < 1e-13


@pytest.mark.parametrize("name", [*SATURATING, "sin", "identity"])
def test_sup_of_infinite_or_nan_intervals(name: str) -> None:
    act = get_activation(name)
    wide = act.sup_abs_d2(np.array([-np.inf]), np.array([np.inf]))[0]
    assert wide == pytest.approx(_grid_sup(act.d2, -8.0, 8.0, 400001), abs=1e-9)
    assert act.sup_abs_d1(np.array([np.nan]), np.array([1.0]))[0] == np.inf


@pytest.mark.parametrize("name", [*SATURATING, "sin"])
def test_sup_bounds_the_derivative_at_points_next_to_the_endpoints(name: str) -> None:
    # rounding of the endpoints: values a few ulps outside the interval are still covered
    act = get_activation(name)
    rng = np.random.default_rng(4)
    lo = rng.uniform(-6, 6, 400)
    hi = lo + rng.uniform(0, 1e-12, 400)
    for g, sup in ((act.d1, act.sup_abs_d1), (act.d2, act.sup_abs_d2)):
        bound = sup(lo, hi)
        for side in (np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)):
            assert np.all(np.abs(g(side)) <= bound)


# ----------------------------------------------------------------------------- fused phi, phi'

ULPS = 4  # softplus's fused pair agrees with the separate functions to a few ulps (measured 2)
_EPS = float(np.finfo(np.float64).eps)


def _wide_points() -> np.ndarray:
    """Tiny to saturated magnitudes of both signs, ordinary values, critical points, where
    exp(-2|z|) underflows (354.5), signed zeros, subnormals, +-inf and nan."""
    rng = np.random.default_rng(7)
    mag = 10.0 ** rng.uniform(-320.0, 3.5, 20000)
    special = [0.0, -0.0, 5e-324, -5e-324, 1e-310, 354.4, 354.5, 354.6, 710.0, 1e308]
    special += [np.inf, -np.inf, np.nan, *ACTIVATIONS["gelu"].d1_critical]
    return np.concatenate([mag, -mag, rng.uniform(-40.0, 40.0, 20000), special, -np.array(special)])


def _assert_ulps(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(ref)), what
    ok = ~np.isnan(ref)
    got, ref = got[ok], ref[ok]
    inf = np.isinf(ref)
    assert np.array_equal(got[inf], ref[inf]), what
    big = ~inf & (np.abs(ref) > 1e-300)
    rel = np.abs(got[big] - ref[big]) / np.abs(ref[big])
    assert rel.max() <= ULPS * _EPS, (what, rel.max() / _EPS)
    # below 1e-300 (underflow, subnormals): absolutely
    assert np.max(np.abs(got[~big & ~inf] - ref[~big & ~inf]), initial=0.0) <= 1e-300, what


@pytest.mark.parametrize("name", NAMES)
def test_fused_value_and_slope_match_the_separate_functions(name: str) -> None:
    act = get_activation(name)
    z = _wide_points()
    with np.errstate(all="ignore"):
        phi, d1 = act.fn_d1(z)
        ref_phi, ref_d1 = act.fn(z), act.d1(z)
    _assert_ulps(phi, ref_phi, f"{name} phi")
    _assert_ulps(d1, ref_d1, f"{name} phi'")
    zero = z == 0  # odd activations keep the sign of zero
    assert np.array_equal(np.signbit(phi[zero]), np.signbit(ref_phi[zero]))
    if name != "softplus":  # the same operations as the separate functions: bit for bit
        np.testing.assert_array_equal(phi, ref_phi)
        np.testing.assert_array_equal(d1, ref_d1)


@pytest.mark.parametrize("name", NAMES)
def test_joint_slope_and_curvature_match_the_separate_functions(name: str) -> None:
    act = get_activation(name)
    z = np.concatenate([_points(name), [0.0, -0.0, 40.0, -40.0, 800.0, -800.0]])
    d1, d2 = act.d1_d2(z)
    np.testing.assert_array_equal(d1, act.d1(z))
    np.testing.assert_array_equal(d2, act.d2(z))


def test_the_activations_that_share_work_are_fused() -> None:
    assert {n for n, a in ACTIVATIONS.items() if a.fused} == {"tanh", "sigmoid", "softplus", "gelu"}


@pytest.mark.parametrize("name", NAMES)
def test_fn_d1_in_place_across_blocks_and_shapes(name: str, monkeypatch) -> None:
    from lazycheck.models import activations

    monkeypatch.setattr(activations, "_BLOCK", 7)  # many blocks and a ragged last one
    act = get_activation(name)
    z = np.random.default_rng(2).uniform(-6.0, 6.0, (9, 11))
    phi, d1 = act.fn_d1(z)
    assert phi.shape == d1.shape == z.shape and phi.dtype == d1.dtype == np.float64
    zc = z.copy()
    phi2, d12 = act.fn_d1(zc, out=zc)  # phi written over z
    assert phi2 is zc
    np.testing.assert_array_equal(phi2, phi)
    np.testing.assert_array_equal(d12, d1)
    np.testing.assert_array_equal(act.fn_d1(z.T)[0], phi.T)  # a non-contiguous input
    p0, s0 = act.fn_d1(0.5)
    assert np.shape(p0) == np.shape(s0) == ()
    assert float(p0) == pytest.approx(float(act.fn(0.5)), rel=1e-15)
    assert float(s0) == pytest.approx(float(act.d1(0.5)), rel=1e-15)


def test_fn_d1_rejects_an_out_it_cannot_write() -> None:
    act = get_activation("tanh")
    z = np.zeros((4, 6))
    for out in (np.zeros((6, 4)).T, np.zeros(24), np.zeros((4, 6), dtype=np.float32)):
        with pytest.raises(ValueError, match="C-contiguous float64"):
            act.fn_d1(z, out=out)


@pytest.mark.parametrize("name", NAMES)
def test_joint_sups_in_blocks_equal_the_separate_calls_bit_for_bit(name: str, monkeypatch) -> None:
    from lazycheck.models import activations

    monkeypatch.setattr(activations, "_SUP_BLOCK", 7)  # many blocks and a ragged last one
    act = get_activation(name)
    rng = np.random.default_rng(11)
    z = rng.standard_normal((13, 9)) * np.array([1e-3, 0.3, 1.0, 3.0, 30.0, 800.0, 1e200, 1, 2])
    w = np.abs(rng.standard_normal((13, 9))) * rng.random((13, 9)) * 3.0
    lo, hi = (z - w).T, (z + w).T  # not C-contiguous
    lo[0, 0], hi[1, 1], lo[2, 2], hi[3, 3] = np.nan, np.inf, -np.inf, np.nan
    with np.errstate(all="ignore"):
        s1, s2 = act.sup_abs_d1_d2(lo, hi)
        assert s1.shape == s2.shape == lo.shape
        np.testing.assert_array_equal(s1, act.sup_abs_d1(lo, hi))
        np.testing.assert_array_equal(s2, act.sup_abs_d2(lo, hi))
        assert s1[0, 0] == s1[3, 3] == np.inf
        for a, b in ((lo[0, 1], hi[0, 1]), (lo[:, 1], 2.0)):  # scalars, broadcasting: unblocked
            t1, t2 = act.sup_abs_d1_d2(a, b)
            np.testing.assert_array_equal(t1, act.sup_abs_d1(a, b))
            np.testing.assert_array_equal(t2, act.sup_abs_d2(a, b))


EVEN = [name for name in NAMES if ACTIVATIONS[name].even]


def test_the_even_activations() -> None:
    assert EVEN == ["erf", "sigmoid", "tanh"]


@pytest.mark.parametrize("name", EVEN)
def test_even_activations_have_the_shape_the_reduction_assumes(name: str) -> None:
    # |phi'|, |phi''| even; |phi'| falls with |z|; |phi''| = 0 at 0, rises to its peak at the
    # positive d2 critical point and falls beyond (Activation.interval_sup_maxima)
    act = get_activation(name)
    x = np.linspace(0.0, 12.0, 24001)
    d1, d2 = np.abs(act.d1(x)), np.abs(act.d2(x))
    np.testing.assert_allclose(d1, np.abs(act.d1(-x)), rtol=1e-15, atol=0)
    np.testing.assert_allclose(d2, np.abs(act.d2(-x)), rtol=1e-15, atol=0)
    assert act.d1_critical == (0.0,) and d2[0] == 0.0
    c = act.d2_critical[-1]
    assert c > 0 and act.d2_critical == (-c, c)
    slack = 1e-15 * d1[0]
    assert np.all(np.diff(d1) <= slack)
    assert np.all(np.diff(d2[x <= c]) >= -slack) and np.all(np.diff(d2[x >= c]) <= slack)


def _reduction_cases(seed: int):
    """(|z|, spread) pairs of many shapes: zero spreads (intervals a few ulps wide after the
    widening), a row at the peak of |phi''|, spreads from 1e-16 to 1e2 and up to 1e300."""
    rng = np.random.default_rng(seed)
    for trial in range(120):
        n, m = (int(k) for k in rng.integers(1, 30, size=2))
        z = rng.standard_normal((n, m)) * 10.0 ** rng.uniform(-3, 3)
        kind = trial % 5
        if kind == 0:
            s = np.zeros((n, m))
        elif kind == 1:
            s = np.abs(rng.standard_normal((n, 1))) * 10.0 ** rng.uniform(-4, 2)
            s = s + 1e-15 * np.abs(rng.standard_normal((n, m)))
        elif kind == 2:
            s = np.abs(rng.standard_normal((n, m))) * 10.0 ** rng.uniform(-16, 1)
        elif kind == 3:
            s = np.full((n, m), 10.0 ** rng.uniform(0, 300))
        else:
            s = np.abs(rng.standard_normal((n, 1))) * 0.5 * np.ones((1, m))
        yield z, s


@pytest.mark.parametrize("name", EVEN)
@pytest.mark.parametrize("block", [16384, 5])  # one block; many, ragged both ways
@pytest.mark.parametrize("at_peak", [False, True])
def test_interval_sup_maxima_equal_the_elementwise_maxima(
    name: str, block: int, at_peak: bool, monkeypatch
) -> None:
    """Bit for bit on intervals in general position. With a row of intervals centred on the
    peak of |phi''| at one spread, ends of different units lie within an ulp of each other,
    where the computed phi' need not fall (the elementwise maximum can be the far one by an
    ulp), and ends lie within ~1e-8 of the peak, where the computed |phi''| is flat and may
    exceed its value at the peak (which a unit holding the peak gets): within 2 ulps there."""
    from lazycheck.models import activations

    monkeypatch.setattr(activations, "_SUP_BLOCK", block)
    act = get_activation(name)
    for z, s in _reduction_cases(seed=block):
        if at_peak and s.shape[0] > 2:
            z[2] = act.d2_critical[-1] * np.sign(z[2])
        with np.errstate(all="ignore"):
            s1, s2 = act.sup_abs_d1_d2(z - s, z + s)
        got = act.interval_sup_maxima(z, s)
        assert got is not None
        for g, ref in zip(got, (s1.max(axis=1), s1.max(axis=0), s2.max(axis=0)), strict=True):
            if at_peak:
                np.testing.assert_allclose(g, ref, rtol=4.5e-16, atol=0)
            else:
                np.testing.assert_array_equal(g, ref)


def test_interval_sup_maxima_declines_what_it_cannot_reduce() -> None:
    z, s = np.ones((3, 4)), np.ones((3, 4))
    for name in sorted(set(NAMES) - set(EVEN)):
        assert get_activation(name).interval_sup_maxima(z, s) is None
    tanh = get_activation("tanh")
    for bad in (np.nan, np.inf):
        s_bad, z_bad = s.copy(), z.copy()
        s_bad[1, 2] = z_bad[2, 3] = bad
        assert tanh.interval_sup_maxima(z, s_bad) is None
        assert tanh.interval_sup_maxima(z_bad, s) is None


@pytest.mark.parametrize("c", [*(ACTIVATIONS[n].d2_critical[-1] for n in EVEN), 1.0, 3e-300])
def test_widened_thresholds_are_exactly_the_tests_on_the_widened_ends(c: float) -> None:
    from lazycheck.models.activations import _EPS, _widened_thresholds

    t_far, t_near = _widened_thresholds(c)
    four_eps = 4 * _EPS
    for t in (t_far, t_near):
        x = t + np.arange(-300, 301) * np.spacing(t)
        np.testing.assert_array_equal(x + x * four_eps < c, x < t_far)
        np.testing.assert_array_equal(x - x * four_eps <= c, x <= t_near)
