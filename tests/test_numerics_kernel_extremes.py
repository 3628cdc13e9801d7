"""The matrix-free extremes of a kernel against the dense eigensolver (kernel_extremes)."""

from __future__ import annotations

import numpy as np
import pytest

import lazycheck.commands.verify as verify_mod
from lazycheck.commands.bound import compute_bound
from lazycheck.commands.simulate import simulate
from lazycheck.numerics.kernel_extremes import KernelExtremes
from tests.test_numerics_linear_flow import DenseLin


@pytest.fixture(autouse=True)
def _one_thread():
    """Small products on one BLAS thread: on a busy machine two spin (1 s for a 400 x 60 QR)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _jacobians(n: int, p: int, cond: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """J0 (n x p) with singular values log-spaced over ``cond`` and a random direction E."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, n)))[0]
    V = np.linalg.qr(rng.standard_normal((p, n)))[0]
    s = np.geomspace(1.0, 1.0 / cond, n)
    J0 = (U * s) @ V.T
    E = rng.standard_normal((n, p))
    return J0, E / np.linalg.norm(E, 2)


def _model(J0: np.ndarray) -> KernelExtremes:
    lam, Q = np.linalg.eigh(J0 @ J0.T)
    return KernelExtremes(lam, Q)


@pytest.mark.parametrize("eps", [1e-6, 1e-3, 5e-3])
def test_extremes_match_the_dense_eigensolver(eps: float) -> None:
    """Near K0 and as far from it as Lemma 6's ball reaches (||J - J0|| = 5e-3 = sigma_min / 2
    of a cond-1e2 J0), both ends agree with eigvalsh of the formed kernel to the accuracy
    asked, and the error estimate covers the deviation."""
    J0, E = _jacobians(60, 400, 1e2, seed=1)
    ext = KernelExtremes(*np.linalg.eigh(J0 @ J0.T), track=False)
    J = J0 + eps * E
    out = ext(DenseLin(J, np.zeros(60)))
    ref = np.linalg.eigvalsh(J @ J.T)
    assert out.method == "davidson"
    for got, err, want in ((out.lam_min, out.err_min, ref[0]), (out.lam_max, out.err_max, ref[-1])):
        assert abs(got - want) <= max(err, 1e-12 * want) + 1e-14 * ref[-1]
        assert abs(got - want) <= 1e-9 * want
    assert out.lam_min >= ref[0] - 1e-14 * ref[-1]  # a Ritz value of the lower end: >= lambda_min
    assert out.sigma_min == pytest.approx(np.sqrt(ref[0]), rel=1e-9)


def test_a_path_that_leaves_the_model_renews_it() -> None:
    """Along a path that moves J by up to 2 sigma_min (the model K0 no longer describes the
    low end), every value still matches the dense one; the dense fallbacks become the model of
    the points after them, so the path needs far fewer than points started afresh from K0."""
    J0, E = _jacobians(80, 500, 1e3, seed=2)
    lam, Q = np.linalg.eigh(J0 @ J0.T)
    tracked, fresh = KernelExtremes(lam, Q), KernelExtremes(lam, Q, track=False)
    for s in np.linspace(0.0, 2e-3, 25):
        lin = DenseLin(J0 + s * E, np.zeros(80))
        ref = np.linalg.eigvalsh(lin.kernel())
        for ext in (tracked, fresh):
            out = ext(lin)
            assert out.lam_min == pytest.approx(ref[0], rel=1e-9)
            assert out.lam_max == pytest.approx(ref[-1], rel=1e-12)
    assert 0 < tracked.fallbacks <= fresh.fallbacks // 3


@pytest.mark.parametrize(("eps", "max_pairs"), [(3e-2, 12), (1e-3, 1)])
def test_fallback_to_the_dense_route(eps: float, max_pairs: int) -> None:
    """Far from K0 (||J - J0|| = 3 sigma_min), or with a budget too small, the iteration gives
    up and the point gets the dense eigenvalues, counted."""
    J0, E = _jacobians(60, 400, 1e2, seed=1)
    ext = _model(J0)
    ext.max_pairs = max_pairs
    J = J0 + eps * E
    out = ext(DenseLin(J, np.zeros(60)))
    ref = np.linalg.eigvalsh(J @ J.T)
    assert out.method == "dense" and ext.fallbacks == 1
    assert out.lam_min == pytest.approx(ref[0], rel=1e-10)
    assert out.lam_max == pytest.approx(ref[-1], rel=1e-13)


def _sample(alpha: float):
    from lazycheck.problem import load_problem

    return load_problem("samples/two_layer_tanh.toml", settings={"flow.alpha": alpha})


@pytest.mark.parametrize("alpha", [1.0, 100.0])
def test_simulate_sigmas_along_the_path_match_the_kernel(
    alpha: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """simulate's sigma's along the path and ||J_w - J0|| at the checkpoints, matrix-free (the
    route from n = 256 on, forced here on the n = 10 sample), match the ones from the kernels
    formed at each time, near the lazy regime and far from it (alpha = 1: the kernel moves)."""
    import lazycheck.commands.simulate as sim_mod

    prob = _sample(alpha)
    monkeypatch.setattr(sim_mod, "MATRIX_FREE_MIN_N", 2)
    res = simulate(prob, n_times=40)
    assert res.sigma_path.startswith("matrix-free")
    monkeypatch.setattr(sim_mod, "MATRIX_FREE_MIN_N", 10**9)
    ref = simulate(prob, n_times=40)
    assert ref.sigma_path.startswith("eigenvalues of the kernel")
    np.testing.assert_array_equal(res.loss, ref.loss)
    np.testing.assert_allclose(res.sigma_min_t, ref.sigma_min_t, rtol=1e-9)
    np.testing.assert_allclose(res.sigma_max_t, ref.sigma_max_t, rtol=1e-12)
    # ||J_w - J0|| at the checkpoints by Lanczos: attained (never above, up to the rounding
    # of products with J_w and J0, a few eps sigma_max absolute: near w0, where ||J_w - J0||
    # is 1e-6 sigma_max, that is 1e-10 of it), and as accurate
    slack = 4 * np.finfo(float).eps * res.sigma_max
    assert np.all(res.jdiff <= ref.jdiff * (1 + 1e-13) + slack)
    np.testing.assert_allclose(res.jdiff, ref.jdiff, rtol=1e-9)


def test_ball_spectra_match_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's Lemma 6 ball: the matrix-free sigma's equal the dense ones at every point."""
    prob = _sample(100.0)
    rep = compute_bound(prob)
    beta = rep.betas[rep.beta_basis]
    radius = min(rep.spectrum.sigma_min / (2 * beta.value), beta.radius)
    monkeypatch.setattr(verify_mod, "MATRIX_FREE_MIN_N", 2)
    lo, hi = verify_mod._ball_spectra(prob, rep, radius)
    monkeypatch.setattr(verify_mod, "MATRIX_FREE_MIN_N", 10**9)
    lo_ref, hi_ref = verify_mod._ball_spectra(prob, rep, radius)
    assert lo.size == lo_ref.size > 2
    np.testing.assert_allclose(lo, lo_ref, rtol=1e-9)
    np.testing.assert_allclose(hi, hi_ref, rtol=1e-12)
