"""sigma_min / sigma_max of J0 and the rank check, against numpy's SVD of the formed J."""

from __future__ import annotations

import numpy as np
import pytest

from lazycheck.models.mlp import MLP
from lazycheck.numerics.spectrum import jacobian_spectrum, kernel_sigma_range


def _lin(n: int, d: int, widths: list[int], seed: int = 0, X: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    model = MLP(d, widths, "tanh")
    if X is None:
        X = rng.standard_normal((n, d))
    w = model.init(rng)
    return model, model.linearize(w, X)


@pytest.mark.parametrize("method", ["svd", "kernel"])
def test_matches_numpy_svd(method: str) -> None:
    model, lin = _lin(8, 3, [40])
    s_ref = np.linalg.svd(lin.jacobian(), compute_uv=False)
    sp = jacobian_spectrum(lin, model.n_params, method=method)
    assert sp.ok and sp.rank == 8 and sp.method == method
    assert sp.sigma_max == pytest.approx(s_ref[0], rel=1e-12)
    # the stated accuracy is honoured
    assert abs(sp.sigma_min - s_ref[-1]) <= max(sp.sigma_min_abs_error, 1e-15 * s_ref[0])


def test_auto_picks_the_kernel_routes_when_J_is_too_big() -> None:
    model, lin = _lin(6, 3, [30])
    s_ref = np.linalg.svd(lin.jacobian(), compute_uv=False)
    sp = jacobian_spectrum(lin, model.n_params, max_jacobian_bytes=10)
    assert sp.method == "refined"  # below n = 64 too, where J does not fit
    assert abs(sp.sigma_min - s_ref[-1]) <= sp.sigma_min_abs_error
    sp2 = jacobian_spectrum(lin, model.n_params)
    assert sp2.method == "svd"


def test_auto_picks_refined_for_a_large_J_below_n_64() -> None:
    """Below n = 64 auto keeps the svd for a small J and takes the refined route from
    REFINED_MIN_NP entries on (the svd's QR costs n^2 p there), to the svd's accuracy."""
    from lazycheck.numerics.spectrum import REFINED_MIN_NP

    n, d = 20, 4
    width = REFINED_MIN_NP // (n * (d + 1)) + 1  # p = width (d + 1), n p just above
    model, lin = _lin(n, d, [width])
    assert n * model.n_params >= REFINED_MIN_NP
    ref = np.linalg.svd(lin.jacobian(), compute_uv=False)
    sp = jacobian_spectrum(lin, model.n_params)
    assert sp.method == "refined" and sp.ok
    assert abs(sp.sigma_min - ref[-1]) <= sp.sigma_min_abs_error
    assert sp.sigma_max == pytest.approx(ref[0], rel=1e-13)
    small_model, small = _lin(n, d, [width // 4])
    assert jacobian_spectrum(small, small_model.n_params).method == "svd"


def test_duplicate_inputs_fail_the_rank_check() -> None:
    X = np.random.default_rng(1).standard_normal((5, 3))
    X[3] = X[1]
    model, lin = _lin(5, 3, [50], X=X)
    sp = jacobian_spectrum(lin, model.n_params)
    assert sp.status == "rank_deficient" and sp.rank == 4
    assert "duplicate" in sp.message


def test_p_le_n_is_reported() -> None:
    model, lin = _lin(30, 2, [3])  # p = 2*3 + 3 = 9 <= 30
    sp = jacobian_spectrum(lin, model.n_params)
    assert sp.status == "p_le_n" and "p = 9 <= n = 30" in sp.message
    assert sp.singular_values.shape == (30,)


def test_kernel_sigma_range() -> None:
    _model, lin = _lin(7, 3, [20])
    s = np.linalg.svd(lin.jacobian(), compute_uv=False)
    lo, hi = kernel_sigma_range(lin.kernel())
    assert hi == pytest.approx(s[0], rel=1e-12)
    assert lo == pytest.approx(s[-1], rel=1e-6)


def test_matrix_free_beyond_the_memory_limit_agrees_with_dense() -> None:
    # a kernel of 40 x 40 doubles does not fit 1 KiB: sigma_min and sigma_max come from
    # Lanczos on v -> J (J^T v), within the stated accuracy of the dense SVD's values
    from lazycheck import resources

    model, lin = _lin(40, 4, [120], seed=3)
    s_ref = np.linalg.svd(lin.jacobian(), compute_uv=False)
    resources.set_memory_limit(1024)
    try:
        sp = jacobian_spectrum(lin, model.n_params, max_jacobian_bytes=10)
    finally:
        resources.set_memory_limit(None)
    assert sp.method == "matrix-free" and sp.ok and sp.rank == 40
    assert "matrix-free" in sp.message
    assert sp.sigma_max == pytest.approx(s_ref[0], rel=1e-10)
    assert abs(sp.sigma_min - s_ref[-1]) <= sp.sigma_min_abs_error
    assert sp.sigma_min_abs_error <= 1e-6 * s_ref[-1]  # the stated accuracy is useful
    assert sp.sigma_min >= s_ref[-1] * (1 - 1e-12)  # a Rayleigh quotient: never below


def test_matrix_free_through_bound_with_a_small_memory_limit(run_cli) -> None:
    import json

    from lazycheck import resources

    dense = run_cli(["bound", "samples/two_layer_tanh.toml", "--format", "json"])
    try:
        small = run_cli(
            ["bound", "samples/two_layer_tanh.toml", "--format", "json", "--memory-limit", "300"]
        )
    finally:
        resources.set_memory_limit(None)
    assert dense.exit_code == 0 and small.exit_code == 0, small.output
    a, b = json.loads(dense.stdout), json.loads(small.stdout)
    assert b["assumption1"]["method"] == "matrix-free"
    err = b["assumption1"]["sigma_min_abs_error"]
    qa, qb = a["quantities"], b["quantities"]
    assert abs(qa["sigma_min"]["value"] - qb["sigma_min"]["value"]) <= err
    assert qb["sigma_max"]["value"] == pytest.approx(qa["sigma_max"]["value"], rel=1e-10)


def test_operator_norm_matches_svd_and_remembers() -> None:
    from lazycheck.numerics.spectrum import _NORM_CACHE, operator_norm

    M = np.random.default_rng(2).standard_normal((300, 90))
    ref = float(np.linalg.svd(M, compute_uv=False)[0])
    assert operator_norm(M) == ref
    assert operator_norm(M.copy()) == ref and len(_NORM_CACHE) >= 1
    M[0, 0] += 1.0  # a changed matrix is not served from the cache
    assert operator_norm(M) == float(np.linalg.svd(M, compute_uv=False)[0])


def test_svd_route_leaves_a_cached_jacobian_alone() -> None:
    """The QR route factors a copy: a linearization that hands out its cached J (the protocol
    models do) keeps it. Overwriting it once corrupted every later norm against J0."""

    _, lin = _lin(12, 3, [30], seed=5)
    J = lin.jacobian()
    before = J.copy()
    sp = jacobian_spectrum(_given(J), J.shape[1], method="svd")
    np.testing.assert_array_equal(J, before)
    ref = np.linalg.svd(before, compute_uv=False)
    assert sp.sigma_min == pytest.approx(ref[-1], rel=1e-12)
    assert sp.sigma_max == pytest.approx(ref[0], rel=1e-12)


def _given(J: np.ndarray):
    """A Linearization of a given J (kernel and products formed from it)."""
    from lazycheck.models.base import Linearization

    class Given(Linearization):
        f = np.zeros(J.shape[0])

        def jvp(self, v: np.ndarray) -> np.ndarray:
            return J @ v

        def vjp(self, r: np.ndarray) -> np.ndarray:
            return J.T @ r

        def jacobian(self) -> np.ndarray:
            return J

        def kernel(self) -> np.ndarray:
            return J @ J.T

        def cross_kernel(self, other: Linearization) -> np.ndarray:
            return J @ other.jacobian().T

    return Given()


def _with_singular_values(s: np.ndarray, p: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((s.size, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((p, s.size)))[0]
    return (U * s) @ V.T


@pytest.mark.parametrize("cond", [1e1, 1e3, 1e4])
def test_refined_matches_the_svd_within_its_stated_accuracy(cond: float) -> None:
    """The refined route (kernel eigenvectors, then ||J^T v||) against numpy's SVD of J up
    to cond 1e4, where the kernel's own eigenvalues keep only 8 digits of sigma_min^2:
    sigma_min to the svd's accuracy, never below the true one but for one product's
    rounding (it is attained)."""
    n, p = 80, 600
    eps = np.finfo(float).eps
    J = _with_singular_values(np.geomspace(1.0, 1.0 / cond, n), p)
    ref = np.linalg.svd(J, compute_uv=False)
    sp = jacobian_spectrum(_given(J), p)
    assert sp.method == "refined" and sp.ok and sp.rank == n
    assert abs(sp.sigma_min - ref[-1]) <= sp.sigma_min_abs_error
    assert sp.sigma_min_abs_error <= 2 * max(n, p) * eps * ref[0]
    assert sp.sigma_min >= ref[-1] - max(n, p) * eps * ref[0]
    assert sp.sigma_min == pytest.approx(ref[-1], rel=64 * eps * cond)
    assert sp.sigma_max == pytest.approx(ref[0], rel=1e-14)
    kernel = jacobian_spectrum(_given(J), p, method="kernel")
    if cond >= 1e4:  # squaring: the kernel's sigma_min is off by far more than refined's
        assert abs(kernel.sigma_min - ref[-1]) > 100 * abs(sp.sigma_min - ref[-1])


def test_refined_beyond_its_reach_hands_over() -> None:
    """cond 1e5: the enclosure, of width ~ ((n + p) eps)^2 cond^3 sigma_max, is wider than
    twice the svd's accuracy, so auto takes the svd; an explicit refined states it. cond 1e7:
    lambda_min is below the rounding floor (n + p) eps lambda_max, so no enclosure is
    certified: an explicit refined hands over to the kernel, whose stated accuracy then says
    how little it knows."""
    n, p = 80, 600
    J = _with_singular_values(np.geomspace(1.0, 1e-5, n), p)
    ref = np.linalg.svd(J, compute_uv=False)
    assert jacobian_spectrum(_given(J), p).method == "svd"
    sp = jacobian_spectrum(_given(J), p, method="refined")
    assert sp.method == "refined" and abs(sp.sigma_min - ref[-1]) <= sp.sigma_min_abs_error
    assert sp.sigma_min_abs_error <= 1e-5 * ref[-1]
    J = _with_singular_values(np.geomspace(1.0, 1e-7, n), p)
    ref = np.linalg.svd(J, compute_uv=False)
    assert jacobian_spectrum(_given(J), p).method == "svd"
    sp = jacobian_spectrum(_given(J), p, method="refined")
    assert sp.method == "kernel" and abs(sp.sigma_min - ref[-1]) <= sp.sigma_min_abs_error


def test_refined_on_a_double_bottom_states_the_kernel_accuracy() -> None:
    """lambda_1 = lambda_2: the Ritz value cannot be told from lambda_2, so no Kato-Temple;
    the enclosure falls back to eigh's lambda_1 minus its rounding, and auto keeps the svd
    when that is worse than twice the svd's accuracy."""
    n, p = 70, 400
    s_true = np.r_[np.geomspace(1.0, 1e-3, n - 2), 1e-3, 1e-3]
    J = _with_singular_values(s_true, p, seed=3)
    ref = np.linalg.svd(J, compute_uv=False)
    sp = jacobian_spectrum(_given(J), p, method="refined")
    assert sp.method == "refined" and sp.ok
    assert abs(sp.sigma_min - ref[-1]) <= sp.sigma_min_abs_error
    assert sp.sigma_min >= ref[-1] - max(n, p) * np.finfo(float).eps * ref[0]
    auto = jacobian_spectrum(_given(J), p)
    sharp = sp.sigma_min_abs_error <= 2 * max(n, p) * np.finfo(float).eps * ref[0]
    assert auto.method == ("refined" if sharp else "svd")


def test_refined_leaves_the_rank_to_the_svd_near_deficiency() -> None:
    n, p = 70, 300
    J = _with_singular_values(np.r_[np.geomspace(1.0, 1e-2, n - 1), 1e-15], p, seed=4)
    sp = jacobian_spectrum(_given(J), p)
    assert sp.method == "svd" and sp.status == "rank_deficient" and sp.rank == n - 1
    assert jacobian_spectrum(_given(J), p, method="refined").method == "kernel"


def test_refined_hands_a_non_finite_kernel_to_the_other_routes() -> None:
    """A NaN in J: the refined route claims nothing (LAPACK is never handed a NaN without its
    check) and the svd or kernel route fails as it always has (a problem's J0 is checked for
    finiteness before any route runs: lazycheck.problem)."""
    J = _with_singular_values(np.geomspace(1.0, 1e-2, 70), 200, seed=9)
    J[3, 5] = np.nan
    for method in ("auto", "refined"):
        with pytest.raises((np.linalg.LinAlgError, ValueError)):
            jacobian_spectrum(_given(J), 200, method=method)


@pytest.mark.parametrize("widths", [[30], [12, 9]])
def test_difference_norm_by_the_models_products_matches_the_dense_norm(widths) -> None:
    """||J_w - J0|| by Lanczos on the MLP's difference products, and by the subtraction of
    two linearizations' products (the route of a model without them), against the largest
    singular value of the formed difference: attained (never above), within the tolerance."""
    from lazycheck.models.base import Linearization
    from lazycheck.numerics.spectrum import difference_norm

    rng = np.random.default_rng(3)
    model, X = MLP(3, widths, "tanh"), rng.standard_normal((9, 3))
    w = model.init(rng)
    lin0 = model.linearize(w, X)
    lin = model.linearize(w + 0.05 * rng.standard_normal(w.size), X)
    dJ = lin.jacobian() - lin0.jacobian()
    ref = float(np.linalg.svd(dJ, compute_uv=False)[0])
    v0 = np.ones(9) / 3.0
    fast, x = difference_norm(lin, lin0, v0, 1e-10)
    assert fast <= ref * (1 + 1e-13) and fast == pytest.approx(ref, rel=1e-9)
    assert np.linalg.norm(x) == pytest.approx(1.0, rel=1e-14)

    class _NoProducts:  # the same linearization without difference products
        def __init__(self, inner):
            self.inner, self.f = inner, inner.f
            self.jvp, self.vjp = inner.jvp, inner.vjp

        difference_products = Linearization.difference_products

    slow, _ = difference_norm(_NoProducts(lin), _NoProducts(lin0), v0, 1e-10)
    assert slow == pytest.approx(fast, rel=1e-9)
