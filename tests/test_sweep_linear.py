"""A sweep on an exactly linear model, whose every metric is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from sweep_helpers import LINEAR, build_linear

from lazycheck.spec import load_spec
from lazycheck.sweep import run_sweep

ALPHAS = (0.1, 1.0, 10.0, 100.0)


@pytest.fixture(scope="module")
def linear_sweep(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("linear") / "linear.toml"
    path.write_text(LINEAR, encoding="utf-8")
    return path, run_sweep(path, alpha=ALPHAS, seeds=[0, 1], jobs=1, build=build_linear)


def _closed_form(path, seed: int, alpha: float) -> dict[str, float]:
    """The flow of f(w) = J (w - w0) in closed form, from J alone (scipy's expm)."""
    spec = load_spec(path).with_settings({"seed": seed, "flow.alpha": alpha})
    prob = build_linear(spec)
    J = prob.jacobian(prob.w0)
    K = J @ J.T
    lam = np.linalg.eigvalsh(K)
    smin2, smax2 = lam[0], lam[-1]
    y = prob.y
    T = 2.0 * spec.flow.decay / (alpha**2 * smin2)  # the default horizon
    # r(t) = -exp(-alpha^2 K t) y; w(T) - w0 = (1/alpha) J^T K^{-1} (I - exp(-alpha^2 K T)) y
    E = scipy.linalg.expm(-(alpha**2) * K * T)
    move = J.T @ np.linalg.solve(K, (np.eye(len(y)) - E) @ y) / alpha
    L0 = 0.5 * float(y @ y)
    return {
        "disp": float(np.linalg.norm(move)),
        "alpha_disp": alpha * float(np.linalg.norm(move)),
        "alpha_disp_lazy": math.sqrt(float(y @ np.linalg.solve(K, y))),
        "B_prime": 3 * math.sqrt(8 * smax2 * L0) / (alpha * smin2),
        "sigma_min": math.sqrt(smin2),
        "sigma_max": math.sqrt(smax2),
        "L0": L0,
        "loss_end": 0.5 * float(np.sum((E @ y) ** 2)),
    }


def test_metrics_match_the_closed_form(linear_sweep) -> None:
    path, res = linear_sweep
    assert res.status == "ok" and res.exit_code == 0 and len(res.runs) == 8
    for run in res.runs:
        m = run["record"]["metrics"]
        ref = _closed_form(path, run["coords"]["seed"], run["coords"]["alpha"])
        for name, value in ref.items():
            assert m[name] == pytest.approx(value, rel=1e-8), name
        # J does not move: nothing nonlinear happens, to rounding
        for name in ("jac_change_op", "jac_change_fro", "ker_change_op", "ker_change_fro"):
            assert m[name] == 0.0, name
        assert m["sigma_min_dev"] < 1e-12 and m["sigma_max_dev"] < 1e-12
        scale = math.sqrt(2 * m["L0"])
        assert m["gap"] < 1e-10 * scale and m["lin_gap"] < 1e-12 * scale
        assert m["weight_gap"] < 1e-10
        assert m["loss_ratio"] <= 1.0
        assert m["beta_certified"] == 0.0 and m["alpha_min_certified"] == 0.0
        assert run["record"]["lazy"] is True and run["record"]["verify_status"] == "pass"


def test_slopes_are_the_exact_rates(linear_sweep) -> None:
    _, res = linear_sweep
    fits = {s.metric: s for s in res.slopes if s.axis == "alpha"}
    for name, rate in (("disp", -1.0), ("B_prime", -1.0), ("alpha_disp", 0.0), ("L0", 0.0)):
        f = fits[name]
        assert f.slope == pytest.approx(rate, abs=1e-9), name
        assert f.high - f.low < 1e-8 and f.theory == rate and f.consistent, name
        assert f.points == 8


def test_threshold_is_at_most_the_smallest_alpha(linear_sweep) -> None:
    _, res = linear_sweep
    (th,) = res.thresholds
    assert (th.status, th.alpha) == ("at_most", min(ALPHAS))
    assert th.alpha_min_certified == 0.0 and th.looseness_certified == 0.0
