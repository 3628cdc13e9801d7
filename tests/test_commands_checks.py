"""Every check can fail: trajectories that violate each bound must produce ``fail``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lazycheck.commands.checks import CHECK_IDS, CheckContext, evaluate_checks, relation_holds


def _good_context(**over) -> CheckContext:
    """A context consistent with Theorem 2: every check passes."""
    alpha, smin, smax, L0, beta = 50.0, 0.2, 1.0, 0.5, 0.01
    t = np.concatenate([[0.0], np.geomspace(1e-6, 1.0, 60)])
    a2 = alpha**2
    loss = L0 * np.exp(-2 * a2 * smin**2 * t) * 0.9 + 0.0
    loss[0] = L0
    B_lin = math.sqrt(2 * smax**2 * L0) / (alpha * smin**2)
    B_prime = 6 * B_lin
    disp = B_lin * 0.8 * (1 - np.exp(-a2 * smin**2 * t))
    t_check = t[::6]
    disp_check = disp[::6]
    base = dict(
        alpha=alpha,
        n=5,
        p=50,
        rank=5,
        sigma_min=smin,
        sigma_max=smax,
        L0=L0,
        beta=beta,
        beta_kind="certified upper bound",
        alpha_min=10.0,
        alpha_max=math.inf,
        alpha_feasible=True,
        B=smin / (2 * beta),
        B_prime=B_prime,
        B_lin=B_lin,
        beta_radius=smin / (2 * beta),
        beta_radius_consistent=True,
        t=t,
        loss=loss,
        loss_lin=loss * 0.99,
        disp=disp,
        disp_lin=disp * 0.99,
        sigma_min_t=np.full_like(t, smin * 0.95),
        sigma_max_t=np.full_like(t, smax * 1.05),
        t_check=t_check,
        jdiff=0.5 * beta * disp_check,
        disp_check=disp_check,
        ball_sigma_min=np.full(8, 0.9 * smin),
        ball_sigma_max=np.full(8, 1.1 * smax),
        ball_radius=smin / (2 * beta),
        rtol=1e-4,
        rtol_linear=1e-9,
        atol_loss=1e-300,
    )
    base.update(over)
    return CheckContext(**base)


def _by_id(ctx: CheckContext):
    return {c.id: c for c in evaluate_checks(ctx)}


def test_consistent_trajectories_pass_everything() -> None:
    checks = _by_id(_good_context())
    assert list(checks) == list(CHECK_IDS)
    for cid, c in checks.items():
        assert c.status == "pass", (cid, c.message)
        assert c.held is True
        if c.role == "conclusion":
            assert c.margin >= 1


def _bump(arr: np.ndarray, k: int, value: float) -> np.ndarray:
    out = np.array(arr, dtype=float)
    out[k] = value
    return out


VIOLATIONS = {
    # check id -> function making a context that violates it (hypotheses all met)
    "lemma4.linear": lambda c: {"loss_lin": _bump(c.loss_lin, 40, c.L0)},
    "lemma4.nonlinear": lambda c: {"loss": _bump(c.loss, 40, c.L0)},
    "theorem2.loss": lambda c: {"loss": _bump(c.loss, 50, c.L0 * 0.9)},
    "theorem2.loss_linear": lambda c: {"loss_lin": _bump(c.loss_lin, 50, c.L0 * 0.9)},
    "theorem2.displacement": lambda c: {"disp": _bump(c.disp, 30, 2 * c.B_prime)},
    "theorem2.displacement_linear": lambda c: {"disp_lin": _bump(c.disp_lin, 30, 2 * c.B_prime)},
    "lemma5.linear_radius": lambda c: {"disp_lin": _bump(c.disp_lin, 30, 1.5 * c.B_lin)},
    "lemma6.sigma_min_trajectory": lambda c: {
        "sigma_min_t": _bump(c.sigma_min_t, 20, 0.3 * c.sigma_min)
    },
    "lemma6.sigma_max_trajectory": lambda c: {
        "sigma_max_t": _bump(c.sigma_max_t, 20, 2.0 * c.sigma_max)
    },
    "lemma6.sigma_min_ball": lambda c: {
        "ball_sigma_min": _bump(c.ball_sigma_min, 3, 0.4 * c.sigma_min)
    },
    "lemma6.sigma_max_ball": lambda c: {
        "ball_sigma_max": _bump(c.ball_sigma_max, 3, 1.6 * c.sigma_max)
    },
    "beta.trajectory_ratio": lambda c: {"jdiff": _bump(c.jdiff, 5, 3 * c.beta * c.disp_check[5])},
}


@pytest.mark.parametrize("cid", sorted(VIOLATIONS))
def test_each_conclusion_can_fail(cid: str) -> None:
    good = _good_context()
    ctx = dataclasses.replace(good, **VIOLATIONS[cid](good))
    checks = _by_id(ctx)
    assert checks[cid].status == "fail", checks[cid]
    assert checks[cid].held is False
    assert checks[cid].margin < 1
    assert "VIOLATED" in checks[cid].message


@pytest.mark.parametrize("cid", sorted(VIOLATIONS))
def test_violation_is_unguaranteed_when_hypothesis_unmet(cid: str) -> None:
    good = _good_context()
    # alpha below alpha_min: the nonlinear conclusions are not guaranteed; the linear ones
    # (which need only the rank) still are.
    ctx = dataclasses.replace(good, alpha_min=1e6, **VIOLATIONS[cid](good))
    checks = _by_id(ctx)
    assert checks["hypothesis.alpha"].status == "unmet"
    c = checks[cid]
    if "hypothesis.alpha" in c.requires:
        assert c.status == "unguaranteed" and c.held is False
        assert "alpha unmet" in c.message
    else:
        assert c.status == "fail"


def test_within_tolerance_is_a_pass_and_beyond_is_a_fail() -> None:
    good = _good_context()
    k = 30
    env = good.L0 * np.exp(-0.5 * good.alpha**2 * good.sigma_min**2 * good.t[k])
    inside = dataclasses.replace(good, loss=_bump(good.loss, k, env * (1 + 0.5 * good.rtol)))
    outside = dataclasses.replace(good, loss=_bump(good.loss, k, env * (1 + 2 * good.rtol)))
    assert _by_id(inside)["theorem2.loss"].status == "pass"
    assert _by_id(outside)["theorem2.loss"].status == "fail"


def test_hypotheses_unmet_statuses() -> None:
    ctx = _good_context(rank=4, p=3, beta=math.inf, alpha_feasible=False)
    checks = _by_id(ctx)
    for cid in (
        "assumption.rank",
        "assumption.overparameterized",
        "assumption.beta_finite",
        "hypothesis.alpha",
    ):
        assert checks[cid].status == "unmet"
    assert checks["lemma4.linear"].status == "unguaranteed"


def test_skipped_when_not_applicable() -> None:
    ctx = _good_context(
        ball_sigma_min=np.empty(0),
        ball_sigma_max=np.empty(0),
        B=math.inf,
        beta_radius_consistent=None,
    )
    checks = _by_id(ctx)
    assert checks["lemma6.sigma_min_ball"].status == "skipped"
    assert checks["beta.radius_consistent"].status == "skipped"
    assert checks["lemma6.sigma_min_ball"].message


def test_lemma4_nonlinear_uses_running_inf_of_lambda() -> None:
    good = _good_context()
    # sigma_min(J_t) drops to a tenth from t[20] on: the Lemma-4 envelope slows down and a
    # loss that decays at the original rate is still within it...
    smin_t = good.sigma_min_t.copy()
    smin_t[20:] = 0.1 * good.sigma_min
    slow = good.L0 * np.exp(-2 * good.alpha**2 * (0.1 * good.sigma_min) ** 2 * good.t)
    ctx = dataclasses.replace(good, sigma_min_t=smin_t, loss=np.minimum(good.loss, slow))
    assert _by_id(ctx)["lemma4.nonlinear"].status == "pass"
    # ...but a loss above that slower envelope fails it
    ctx2 = dataclasses.replace(ctx, loss=slow * 1.01)
    assert _by_id(ctx2)["lemma4.nonlinear"].status == "fail"


@pytest.mark.parametrize("level", [0.0, 0.5, 2.0])  # sigma_min(t)^2 in units of n eps smax^2
def test_lemma4_nonlinear_skips_at_the_kernels_rounding_whatever_its_bits(level: float) -> None:
    """sigma_min(J_w(t))^2 at or below the kernel's rounding n eps sigma_max^2 cannot be told
    from 0: exactly 0 and half the rounding both skip the check (the eigensolver gives either,
    run to run); twice the rounding is a value, and the check is made."""
    good = _good_context()
    noise = good.n * np.finfo(float).eps * float(good.sigma_max_t.max()) ** 2
    smin_t = good.sigma_min_t.copy()
    smin_t[30:] = math.sqrt(level * noise)
    ctx = dataclasses.replace(good, sigma_min_t=smin_t)
    check = _by_id(ctx)["lemma4.nonlinear"]
    if level <= 1.0:
        assert check.status == "skipped" and "rounding" in check.message
    else:
        assert check.status == "pass"


# ----------------------------------------------------------------------------- relations


def _contexts() -> dict[str, CheckContext]:
    """Contexts reaching every status of every check: all pass, each violation, hypotheses
    unmet in every way, alpha beyond a bounded interval, a small ball, non-finite numbers."""
    good = _good_context()
    out = {"good": good}
    for cid, make in VIOLATIONS.items():
        out[f"violate {cid}"] = dataclasses.replace(good, **make(good))
        out[f"violate {cid}, alpha unmet"] = dataclasses.replace(good, alpha_min=1e6, **make(good))
    out["unmet"] = _good_context(rank=4, p=3, beta=math.inf, alpha_feasible=False)
    out["alpha above alpha_max"] = _good_context(alpha_max=20.0)
    out["alpha inside interval"] = _good_context(alpha_max=80.0)
    out["small ball"] = _good_context(beta_radius=1.0, beta_radius_consistent=False)
    out["B' = inf"] = _good_context(B_prime=math.inf)
    out["B' = nan"] = _good_context(B_prime=math.nan)
    out["beta = nan"] = _good_context(beta=math.nan)
    out["given beta"] = _good_context(beta_radius=math.nan, beta_radius_consistent=None)
    out["exact beta 0"] = _good_context(beta=0.0, B=math.inf, beta_radius=math.inf)
    return out


@pytest.mark.parametrize("name", list(_contexts()))
def test_held_is_exactly_the_printed_relation(name: str) -> None:
    # "observed SENSE bound" (with the check's tolerance) is what every report prints: it
    # must be true exactly when the check held, for every check id
    for c in evaluate_checks(_contexts()[name]):
        if c.held is None:
            assert c.status == "skipped", c
            continue
        assert c.sense in ("<=", ">=", "==", "<", ">"), c
        rel = relation_holds(c.observed, c.sense, c.bound, c.tolerance, c.atol)
        assert rel == c.held, (name, c.id, c.observed, c.sense, c.bound, c.held)
        assert c.status in (
            ("pass", "unguaranteed") if c.held else ("unmet", "fail", "unguaranteed")
        )


def test_every_check_id_reaches_a_held_and_an_unheld_state() -> None:
    seen: dict[str, set[bool]] = {cid: set() for cid in CHECK_IDS}
    for ctx in _contexts().values():
        for c in evaluate_checks(ctx):
            if c.held is not None:
                seen[c.id].add(c.held)
    assert all(v == {True, False} for v in seen.values()), seen


def test_hypothesis_relations_read_as_stated() -> None:
    checks = _by_id(_good_context())
    assert (checks["assumption.rank"].sense, checks["assumption.overparameterized"].sense) == (
        "==",
        ">",
    )
    assert checks["assumption.beta_finite"].sense == "<"
    a = checks["hypothesis.alpha"]
    assert (a.observed, a.sense, a.bound) == (50.0, ">=", 10.0)
    over = _by_id(_good_context(alpha_max=20.0))["hypothesis.alpha"]
    assert (over.observed, over.sense, over.bound, over.status) == (50.0, "<=", 20.0, "unmet")
    r = checks["beta.radius_consistent"]
    assert (
        r.role == "hypothesis"
        and r.sense == "<="
        and r.observed == checks["hypothesis.radius"].observed
    )


@pytest.mark.parametrize(
    ("over", "unmet"),
    [
        ({"B_prime": math.inf}, "hypothesis.radius"),
        ({"B_prime": math.nan}, "hypothesis.radius"),
        ({"beta": math.nan}, "assumption.beta_finite"),
        ({"alpha_min": math.nan, "alpha_feasible": False}, "hypothesis.alpha"),
    ],
)
def test_a_non_finite_number_never_satisfies_a_hypothesis(over: dict, unmet: str) -> None:
    checks = _by_id(_good_context(**over))
    assert checks[unmet].status == "unmet" and checks[unmet].held is False
    # and nothing that needs the full hypothesis can pass
    assert checks["theorem2.loss"].status != "pass"


def test_a_non_finite_bound_is_not_computable_not_a_pass() -> None:
    checks = _by_id(_good_context(B_prime=math.inf))
    c = checks["theorem2.displacement_linear"]
    assert c.status == "skipped" and c.held is None and "not computable" in c.message


def test_beta_on_a_small_ball_is_a_hypothesis_that_gates_the_conclusions() -> None:
    # beta holds for ||w - w0|| <= R = 1 only, B' = 3 > R: the flow may leave beta's ball
    checks = _by_id(_good_context(beta_radius=1.0, beta_radius_consistent=False))
    r = checks["beta.radius_consistent"]
    assert r.role == "hypothesis" and r.status == "unmet" and r.held is False
    assert "beta.radius_consistent" in checks["theorem2.loss"].requires
    assert checks["theorem2.loss"].status == "unguaranteed"
    assert checks["lemma6.sigma_min_ball"].status == "unguaranteed"
    # a linear-model bound needs only the rank: still guaranteed
    assert checks["lemma4.linear"].status == "pass"
    # a ball larger than B' is enough, even when R < B
    ok = _by_id(_good_context(beta_radius=5.0, beta_radius_consistent=False))
    assert ok["beta.radius_consistent"].status == "pass"
    assert ok["theorem2.loss"].status == "pass"


def test_gradient_descent_is_the_only_unguaranteed_reason_when_hypotheses_hold() -> None:
    checks = _by_id(_good_context(continuous_flow=False))
    assert all(c.status == "pass" for c in checks.values() if c.role == "hypothesis")
    assert checks["theorem2.loss"].status == "unguaranteed"
    assert "continuous unmet" in checks["theorem2.loss"].message


def test_lemma6_lower_bound_is_not_applicable_when_sigma_min_is_zero() -> None:
    """sigma_min = 0 makes "sigma_min(J_w) >= sigma_min / 2" read "x >= 0": no comparison, so
    observed, bound and margin are n/a (NaN) instead of a fake "0 >= 0, margin inf" pass."""
    ctx = _good_context(sigma_min=0.0, sigma_min_t=np.zeros(61), ball_sigma_min=np.zeros(8))
    checks = _by_id(ctx)
    for cid in ("lemma6.sigma_min_trajectory", "lemma6.sigma_min_ball"):
        c = checks[cid]
        assert c.status == "skipped" and c.held is None, c
        assert all(math.isnan(x) for x in (c.observed, c.bound, c.margin)), c
        assert "not applicable" in c.message and "sigma_min = 0" in c.message
    # the upper bound still compares real numbers, and a positive sigma_min is still tested
    assert checks["lemma6.sigma_max_trajectory"].held is True
    good = _by_id(_good_context())["lemma6.sigma_min_trajectory"]
    assert good.status == "pass" and math.isfinite(good.margin)


def test_p_le_n_sample_shows_no_fake_lemma6_comparison() -> None:
    from helpers import verified_sample

    c = verified_sample("p_le_n").check("lemma6.sigma_min_trajectory")
    assert c.status == "skipped" and math.isnan(c.observed) and math.isnan(c.margin)
