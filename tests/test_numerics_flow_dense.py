"""Dense output of the exponential integrator (issue 9): the output times inside a step come
from the step's continuous extension, not from steps shortened to land on them.

* At the output times between steps the flow agrees with DOP853 at rtol 1e-10 within the
  C * rtol of ``test_numerics_flow.py``, and the error falls with rtol at the rate of the steps'
  (a log-log slope).
* The a-priori error estimate of the continuous extension at s < h is no larger than the
  step's, componentwise in the eigenbasis of L_b (module docstring of
  :mod:`lazycheck.numerics.flow`, "Dense output"), on every step of a run.
* The first basis is the linear flow's eigendecomposition of K0 when it is passed: the same
  run to the last bit, one kernel fewer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazycheck.commands.simulate import SimulationResult, simulate
from lazycheck.numerics.flow import exp_flow
from lazycheck.numerics.flow.exponential import _ExpAdams
from lazycheck.numerics.linear_flow import linear_flow, phi_table
from lazycheck.problem import Problem
from tests.test_numerics_flow import C_EXP, REF_ATOL, REF_RTOL, small_problem

ALPHA = 100.0


@pytest.fixture(scope="module")
def prob() -> Problem:
    # the small problem of test_numerics_flow.py on a finer grid: several output times per step
    return small_problem(n_times=120, checkpoints=2)


@pytest.fixture(scope="module")
def reference(prob: Problem) -> SimulationResult:
    ref = simulate(prob, alpha=ALPHA, method="DOP853", rtol=REF_RTOL, atol=REF_ATOL)
    assert ref.success, ref.message
    return ref


def _dense_errors(run: SimulationResult, ref: SimulationResult) -> dict[str, float]:
    """Relative errors at the output times strictly inside the run (all from dense output
    when the run took fewer steps than there are output times, which the caller checks)."""
    np.testing.assert_array_equal(run.t, ref.t)
    inner = slice(1, -1)
    return {
        "loss": float(np.max(np.abs(run.loss - ref.loss)[inner] / ref.loss[inner])),
        "disp": float(np.max(np.abs(run.disp - ref.disp)[inner] / ref.disp[inner])),
    }


@pytest.mark.parametrize("rtol", [1e-6, 1e-8])
def test_dense_output_agrees_with_dop853(
    prob: Problem, reference: SimulationResult, rtol: float
) -> None:
    run = simulate(prob, alpha=ALPHA, method="exp", rtol=rtol, atol=REF_ATOL)
    assert run.success, run.message
    n_inner = run.t.shape[0] - 2
    # every inner output time lies inside a step: one evaluation each, only to record it
    assert run.nfev_output == n_inner, (run.nfev_output, n_inner)
    if rtol == 1e-6:
        assert run.n_steps < n_inner, (run.n_steps, n_inner)  # steps span several outputs
    err = _dense_errors(run, reference)
    assert max(err.values()) <= C_EXP * rtol, err


def test_dense_output_error_falls_with_rtol(prob: Problem, reference: SimulationResult) -> None:
    # tolerance proportionality: the error at the dense points falls like the tolerance,
    # as the steps' error does (the final point is a step's end)
    rtols = [1e-5, 1e-6, 1e-7, 1e-8]
    dense, final = [], []
    for rtol in rtols:
        run = simulate(prob, alpha=ALPHA, method="exp", rtol=rtol, atol=REF_ATOL)
        assert run.success, run.message
        dense.append(_dense_errors(run, reference)["loss"])
        final.append(abs(run.loss[-1] - reference.loss[-1]) / reference.loss[-1])
    slope = np.polyfit(np.log(rtols), np.log(dense), 1)[0]
    slope_final = np.polyfit(np.log(rtols), np.log(final), 1)[0]
    assert 0.8 <= slope <= 1.2, (slope, dense)
    assert abs(slope - slope_final) <= 0.25, (slope, slope_final, final)


class _EstimateProbe(_ExpAdams):
    """The integrator, comparing at every step the a-priori error estimate of the continuous
    extension at s in (0, h) with the step's (no effect on the run)."""

    checked = 0
    worst = 0.0  # largest |est(s)_i| / |est(h)_i| over eigen-components above rounding

    def _dense(self, cur, interp, tau_new):  # type: ignore[no-untyped-def]
        if interp.q > 0:
            h = tau_new - cur.tau
            est_h, hat_h = self._estimate(interp, h)
            coef_h = self.basis.Q.T @ hat_h  # Q^T J_b est: sqrt(lam_i) times the components
            for s in h * np.array([0.1, 0.35, 0.6, 0.85, 0.99]):
                est_s, hat_s = self._estimate(interp, s)
                coef_s = self.basis.Q.T @ hat_s
                assert np.linalg.norm(est_s) <= np.linalg.norm(est_h) * (1 + 1e-9)
                big = np.abs(coef_h) > 1e-6 * np.abs(coef_h).max()
                ratio = np.abs(coef_s[big]) / np.abs(coef_h[big])
                self.worst = max(self.worst, float(ratio.max()))
                self.checked += 1
        super()._dense(cur, interp, tau_new)

    def _estimate(self, interp, s):  # type: ignore[no-untyped-def]
        tab = phi_table(interp.q + 2, s * self.basis.lam)
        return self._integrate_poly(interp.D, interp.D_hat, s, tab, 1)


def test_dense_estimate_is_bounded_by_the_steps(prob: Problem, reference: SimulationResult) -> None:
    # est(s) = int_0^s e^{(s-u)L} c g(u) du with c fixed and g(u) = u prod (u - s_j) >= 0
    # increasing on [0, h]: each eigen-component grows with s, so the step's estimate bounds
    # the continuous extension's everywhere in the step
    y = np.asarray(prob.y, dtype=np.float64)
    lin0 = prob.linearize(prob.w0)
    tau = ALPHA**2 * reference.t
    probe = _EstimateProbe(
        prob.linearize, prob.w0, y, ALPHA, tau, lambda *a: None, 1e-7, REF_ATOL, lin0, None,
    )  # fmt: skip
    stats = probe.run()
    assert stats.success, stats.message
    assert probe.checked > 100
    assert probe.worst <= 1.0 + 1e-9, probe.worst


def test_first_basis_from_the_linear_flow_is_the_same_run(prob: Problem) -> None:
    y = np.asarray(prob.y, dtype=np.float64)
    lin0 = prob.linearize(prob.w0)
    lflow = linear_flow(lin0, y, ALPHA)
    tau = ALPHA**2 * np.concatenate([[0.0], np.geomspace(1e-4, 0.3, 30)])
    runs = []
    for eig0 in (None, (lflow.lam, lflow.Q)):
        rec: list[tuple[int, np.ndarray, bool]] = []

        def record(i, w, _lin, lam, rec=rec):  # type: ignore[no-untyped-def]
            rec.append((i, w.copy(), lam is None))

        stats = exp_flow(
            prob.linearize, prob.w0, y, ALPHA, tau, record, rtol=1e-7, lin0=lin0,
            kernel_reuse=True, eig0=eig0,
        )  # fmt: skip
        assert stats.success, stats.message
        runs.append((stats, rec))
    (s_own, r_own), (s_lin, r_lin) = runs
    assert s_lin.n_kernels == s_own.n_kernels - 1
    assert (s_lin.n_steps, s_lin.n_products, s_lin.nfev) == (
        s_own.n_steps,
        s_own.n_products,
        s_own.nfev,
    )
    assert len(r_own) == len(r_lin) == tau.shape[0]
    for (i, w, dense), (j, v, dense_lin) in zip(r_own, r_lin, strict=True):
        assert i == j and dense == dense_lin
        np.testing.assert_array_equal(w, v)
    assert math.isclose(s_lin.max_error, s_own.max_error, rel_tol=0, abs_tol=0)


def test_eig0_needs_lin0(prob: Problem) -> None:
    with pytest.raises(ValueError, match="lin0"):
        exp_flow(
            prob.linearize, prob.w0, prob.y, ALPHA, np.array([0.0, 1.0]), lambda *a: None,
            eig0=(np.ones(prob.n), np.eye(prob.n)),
        )  # fmt: skip
