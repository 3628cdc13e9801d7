"""Every inequality of Assumption 1, Lemmas 4-6 and Theorem 2 as a named, pure check.

:func:`evaluate_checks` takes a :class:`CheckContext` (constants from ``bound``, trajectories
from ``simulate``, spectra at points sampled in the ball) and returns :class:`Check` rows. It
does no numerics of its own beyond comparisons, so tests can feed it trajectories that violate
each bound and see ``fail``.

Roles and statuses:

* ``hypothesis`` checks (Assumption 1, alpha >= alpha_min, B' <= B, and B' <= R when beta
  holds on a ball of radius R only): ``pass`` or ``unmet``.
* ``conclusion`` checks: ``pass``; ``fail`` when every hypothesis it requires holds and the
  inequality is violated beyond tolerance (a counterexample, a wrong constant or a numerical
  error); ``unguaranteed`` when a required hypothesis is unmet, so the theorem promises nothing
  (``held`` says whether the inequality held anyway); ``skipped`` when not applicable.

Each conclusion lists the hypotheses it needs. The linear model's bounds (Lemmas 4, 5 for
f0) need only rank J0 = n < p; the nonlinear ones need the full hypothesis of Theorem 2.
Lemma 4 for the nonlinear flow with the observed lambda(t) needs nothing but lambda > 0.

Every check states the relation it tests: ``observed SENSE bound`` (``SENSE`` one of ``<=``,
``>=``, ``==``, ``<``, ``>``) is true exactly when the check held. Tolerance:
``observed <= bound * (1 + tolerance) + atol`` (``>=`` mirrored; the others exact), rtol tied
to the solver's accuracy (see :func:`default_tolerances`). A non-finite number never satisfies
an inequality: a hypothesis with a non-finite side is unmet, a conclusion whose bound is not
finite is skipped as not computable (the only infinite bounds allowed are structural: B and
R for beta = 0 exactly, a half-line's alpha_max).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CHECK_IDS",
    "Check",
    "CheckContext",
    "default_tolerances",
    "evaluate_checks",
    "relation_holds",
]

_EPS = float(np.finfo(np.float64).eps)
Array = np.ndarray

RANK = "assumption.rank"
OVERPARAM = "assumption.overparameterized"
BETA_FINITE = "assumption.beta_finite"
ALPHA = "hypothesis.alpha"
RADIUS = "hypothesis.radius"
BALL = "beta.radius_consistent"  # B' <= R: the flow stays where beta holds
FLOW = "flow.continuous"  # the trajectory is the gradient flow (not gradient descent)
_LINEAR_REQ = (RANK, OVERPARAM)
_FULL_REQ = (RANK, OVERPARAM, BETA_FINITE, ALPHA, RADIUS, BALL, FLOW)

CHECK_IDS = (
    RANK,
    OVERPARAM,
    BETA_FINITE,
    ALPHA,
    RADIUS,
    BALL,
    "lemma4.linear",
    "lemma4.nonlinear",
    "theorem2.loss",
    "theorem2.loss_linear",
    "theorem2.displacement",
    "theorem2.displacement_linear",
    "lemma5.linear_radius",
    "lemma6.sigma_min_trajectory",
    "lemma6.sigma_max_trajectory",
    "lemma6.sigma_min_ball",
    "lemma6.sigma_max_ball",
    "beta.trajectory_ratio",
)
"""The stable ids, in report order."""


@dataclass(frozen=True)
class Check:
    """One inequality, evaluated.

    ``observed`` and ``bound`` are taken where the margin is smallest (``at``: a time t, or a
    sample index for ball checks). ``observed sense bound`` (within ``tolerance`` relative
    and ``atol`` absolute, for ``<=`` and ``>=``) is true exactly when ``held``. ``margin`` is
    bound/observed for ``<=`` checks and observed/bound for ``>=`` checks: >= 1 means the
    inequality held.
    """

    id: str
    title: str
    role: str
    formula: str
    status: str
    held: bool | None
    observed: float
    bound: float
    margin: float
    tolerance: float
    requires: tuple[str, ...]
    basis: str
    message: str
    at: float | None = None
    sense: str = "<="
    atol: float = 0.0


@dataclass(frozen=True)
class CheckContext:
    """Everything the checks compare. Times ``t`` are unscaled (the lecture's t)."""

    alpha: float
    n: int
    p: int
    rank: int
    sigma_min: float
    sigma_max: float
    L0: float
    beta: float
    beta_kind: str
    alpha_min: float
    alpha_max: float
    alpha_feasible: bool
    B: float
    B_prime: float
    B_lin: float
    beta_radius: float
    beta_radius_consistent: bool | None
    # trajectories on the time grid
    t: Array = field(repr=False)
    loss: Array = field(repr=False)
    loss_lin: Array = field(repr=False)
    disp: Array = field(repr=False)
    disp_lin: Array = field(repr=False)
    sigma_min_t: Array = field(repr=False)
    sigma_max_t: Array = field(repr=False)
    # checkpoints: ||J_w(t) - J_0|| and ||w(t) - w0|| there
    t_check: Array = field(repr=False)
    jdiff: Array = field(repr=False)
    disp_check: Array = field(repr=False)
    # Lemma 6 at points sampled in the ball of radius B (empty when not applicable)
    ball_sigma_min: Array = field(repr=False, default_factory=lambda: np.empty(0))
    ball_sigma_max: Array = field(repr=False, default_factory=lambda: np.empty(0))
    ball_radius: float = math.nan
    rtol: float = 1e-6
    rtol_linear: float = 1e-9
    atol_loss: float = 0.0
    #: when set, no flow was run: every trajectory check is skipped with this reason
    skip_reason: str | None = None
    #: False when the nonlinear trajectory is gradient descent, not the continuous flow
    continuous_flow: bool = True


def default_tolerances(solver_rtol: float, L0: float, y_norm: float) -> tuple[float, float, float]:
    """(rtol for nonlinear quantities, rtol for closed-form linear ones, atol for losses).

    The nonlinear flow is integrated to relative accuracy ``solver_rtol``; its recorded values
    carry errors of that order times a modest growth factor, so checks allow 100 * rtol.
    The linear flow is in closed form: 1e-9. Losses get an absolute floor from rounding in
    ||alpha f - y||^2 / 2.
    """
    eps = float(np.finfo(np.float64).eps)
    return 100.0 * solver_rtol, 1e-9, (1e3 * eps * (y_norm + math.sqrt(2 * L0))) ** 2


def evaluate_checks(ctx: CheckContext) -> list[Check]:
    """Evaluate every check of :data:`CHECK_IDS` on a context."""
    hyp = _hypotheses(ctx)
    met = {c.id: c.status == "pass" for c in hyp}
    met[FLOW] = ctx.continuous_flow
    radius = _radius_consistency(ctx)
    met[BALL] = radius.status in ("pass", "skipped")  # skipped: a given beta, the user's claim
    out = [*hyp, radius]
    out += _linear_conclusions(ctx, met)
    out += _nonlinear_conclusions(ctx, met)
    out += _ball_conclusions(ctx, met)
    out.append(_trajectory_ratio(ctx, met))
    if ctx.skip_reason:
        out = _skip_trajectories(out, ctx.skip_reason)
    order = {cid: k for k, cid in enumerate(CHECK_IDS)}
    return sorted(out, key=lambda c: order[c.id])


def relation_holds(
    observed: float, sense: str, bound: float, rtol: float = 0.0, atol: float = 0.0
) -> bool:
    """``observed SENSE bound`` as a check evaluates it (rtol, atol for ``<=``/``>=``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if sense == "<=":
            return bool(observed <= bound * (1 + rtol) + atol)
        if sense == ">=":
            return bool(observed >= bound * (1 - rtol) - atol)
    return bool({"==": observed == bound, "<": observed < bound, ">": observed > bound}[sense])


# ----------------------------------------------------------------------------- helpers


def _basis(c: CheckContext) -> str:
    return {
        "sampled lower bound": "rests on a SAMPLED beta (a lower bound)",
        "certified upper bound": "certified beta",
        "given": "given beta",
        "exact": "exact beta",
    }.get(c.beta_kind, c.beta_kind)


def _hyp(
    cid: str,
    title: str,
    formula: str,
    relation: tuple[float, str, float],
    margin: float,
    message: str,
    basis: str = "exact",
    tolerance: float = 0.0,
) -> Check:
    """A hypothesis check: it holds exactly when ``observed sense bound`` (within
    ``tolerance``) with a finite observed value."""
    observed, sense, bound = relation
    ok = math.isfinite(observed) and relation_holds(observed, sense, bound, tolerance)
    return Check(
        cid,
        title,
        "hypothesis",
        formula,
        "pass" if ok else "unmet",
        ok,
        observed,
        bound,
        margin,
        tolerance,
        (),
        basis,
        message,
        sense=sense,
    )


def _hypotheses(c: CheckContext) -> list[Check]:
    ratio = c.rank / c.n if c.n else math.nan
    return [
        _hyp(
            RANK,
            "Assumption 1: rank J0 = n",
            "rank(J0) = n",
            (float(c.rank), "==", float(c.n)),
            ratio,
            f"rank {c.rank} of n = {c.n}; sigma_min = {c.sigma_min:.4g}",
        ),
        _hyp(
            OVERPARAM,
            "Assumption 1: more parameters than points",
            "p > n",
            (float(c.p), ">", float(c.n)),
            c.p / c.n if c.n else math.nan,
            f"p = {c.p}, n = {c.n}",
        ),
        _hyp(
            BETA_FINITE,
            "Assumption 1: w -> J_w Lipschitz",
            "beta < inf",
            (c.beta, "<", math.inf),
            math.nan,
            f"beta = {c.beta:.4g} ({c.beta_kind})",
            _basis(c),
        ),
        _alpha_check(c),
        _radius_check(c),
    ]


def _alpha_check(c: CheckContext) -> Check:
    """alpha in [alpha_min, alpha_max]; the relation shown is the side that decides."""
    usable = c.alpha_feasible and math.isfinite(c.beta)
    if not usable:
        why = "beta is not finite" if not math.isfinite(c.beta) else "no alpha satisfies it"
        rel, msg = (c.alpha, ">=", math.nan), f"no alpha_min: {why}"
    elif c.alpha > c.alpha_max:
        rel = (c.alpha, "<=", c.alpha_max)
        msg = f"alpha = {c.alpha:g} > alpha_max = {c.alpha_max:.6g}"
    else:
        rel = (c.alpha, ">=", c.alpha_min)
        cmp = ">=" if c.alpha >= c.alpha_min else "<"
        msg = f"alpha = {c.alpha:g} {cmp} alpha_min = {c.alpha_min:.6g}"
    if usable and math.isfinite(c.beta_radius) and c.beta_radius < c.B:
        msg += f" (the least alpha with B' <= R = {c.beta_radius:.4g}, beta's ball)"
    margin = c.alpha / c.alpha_min if usable and c.alpha_min > 0 else math.inf
    return _hyp(
        ALPHA,
        "Theorem 2: alpha large enough",
        "alpha >= 6 beta sqrt(8 sigma_max^2 L0) / sigma_min^3",
        rel,
        margin if usable else math.nan,
        msg,
        _basis(c),
    )


def _radius_check(c: CheckContext) -> Check:
    # B = inf only when beta = 0 exactly (J constant): a structural infinity
    B = c.B if math.isfinite(c.B) or c.beta == 0 else math.nan
    return _hyp(
        RADIUS,
        "Theorem 2: B' <= B",
        "3 sqrt(8 sigma_max^2 L0)/(alpha sigma_min^2) <= sigma_min/(2 beta)",
        (c.B_prime, "<=", B),
        B / c.B_prime if c.B_prime > 0 else math.inf,
        f"B' = {c.B_prime:.4g}, B = {c.B:.4g}",
        _basis(c),
        tolerance=1e-12,
    )


def _radius_consistency(c: CheckContext) -> Check:
    """B' <= R: the flow stays in the ball where beta was measured (docs/theory.md, item 2)."""
    title = "beta holds where the flow goes: B' <= R (beta's ball)"
    if c.beta_radius_consistent is None or math.isnan(c.beta_radius):
        return Check(
            BALL, title, "diagnostic", "B' <= R", "skipped", None, c.B_prime, math.nan,
            math.nan, 0.0, (), _basis(c),
            "beta's radius is unknown (a given beta): it is taken to hold on the ball of "
            "radius B, the user's claim",
            sense="<=",
        )  # fmt: skip
    R = c.beta_radius
    return _hyp(
        BALL,
        title,
        "||w - w0|| <= B' <= R, the radius beta holds on",
        (c.B_prime, "<=", R),
        R / c.B_prime if c.B_prime > 0 else math.inf,
        f"beta holds on ||w - w0|| <= R = {R:.4g}; B' = {c.B_prime:.4g}, B = {c.B:.4g}",
        _basis(c),
        tolerance=1e-12,
    )


def _linear_conclusions(c: CheckContext, met: dict[str, bool]) -> list[Check]:
    """Lemma 4, Lemma 5 and Theorem 2 for the linear model: they need only the rank."""
    tr = c.t
    env = c.L0 * np.exp(-0.5 * c.alpha**2 * c.sigma_min**2 * tr)
    exact = "exact (closed form)"
    return [
        _compare(
            "lemma4.linear",
            "Lemma 4, linear model: loss decays at its own rate",
            "L(alpha f0(u(t))) <= L0 exp(-2 alpha^2 sigma_min^2 t)",
            c.loss_lin, c.L0 * np.exp(-2 * c.alpha**2 * c.sigma_min**2 * tr), tr,
            c.rtol_linear, c.atol_loss, _LINEAR_REQ, met, exact,
        ),
        _compare(
            "theorem2.loss_linear",
            "Theorem 2: linear-model loss bound",
            "L(alpha f0(u(t))) <= L0 exp(-alpha^2 sigma_min^2 t / 2)",
            c.loss_lin, env, tr, c.rtol_linear, c.atol_loss, _LINEAR_REQ, met,
            f"{exact}; holds by Lemma 4 alone",
        ),
        _compare(
            "theorem2.displacement_linear",
            "Theorem 2: linear-model weights stay within B'",
            "||u(t) - u0|| <= B'",
            c.disp_lin, np.full_like(tr, c.B_prime), tr, c.rtol_linear, 0.0, _LINEAR_REQ,
            met, f"{exact}; holds by Lemma 5 alone",
        ),
        _compare(
            "lemma5.linear_radius",
            "Lemma 5 (corrected): the linear model's radius",
            "||u(t) - u0|| <= sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2)",
            c.disp_lin, np.full_like(tr, c.B_lin), tr, c.rtol_linear, 0.0, _LINEAR_REQ, met,
            exact,
        ),
    ]  # fmt: skip


def _nonlinear_conclusions(c: CheckContext, met: dict[str, bool]) -> list[Check]:
    """Lemma 4 with the observed lambda(t), and Theorem 2 / Lemma 6 along the trajectory."""
    a2, tr = c.alpha**2, c.t
    # Lemma 4 with the observed lambda(s) = alpha^2 sigma_min(J_s)^2, inf over [0, t]
    lam_inf = a2 * np.minimum.accumulate(c.sigma_min_t**2)
    lam_ok = bool(np.all(lam_inf[1:] > a2 * _eigenvalue_noise(c))) if lam_inf.size > 1 else True
    basis = _basis(c)
    return [
        _compare(
            "lemma4.nonlinear",
            "Lemma 4, nonlinear model with the observed lambda(t)",
            "L(alpha f(w(t))) <= L0 exp(-2 t inf_{s<=t} alpha^2 sigma_min(J_w(s))^2)",
            c.loss, c.L0 * np.exp(-2 * lam_inf * tr), tr, c.rtol, c.atol_loss, (FLOW,), met,
            "inf of lambda over the recorded grid (sampled in time)",
            skip=None if lam_ok else (
                "lambda(t) reaches 0 (to the kernel's rounding, n eps sigma_max^2): Lemma 4 "
                "gives no decay"
            ),
        ),
        _compare(
            "theorem2.loss",
            "Theorem 2: nonlinear loss bound",
            "L(alpha f(w(t))) <= L0 exp(-alpha^2 sigma_min^2 t / 2)",
            c.loss, c.L0 * np.exp(-0.5 * a2 * c.sigma_min**2 * tr), tr, c.rtol, c.atol_loss,
            _FULL_REQ, met, basis,
        ),
        _compare(
            "theorem2.displacement",
            "Theorem 2: weights stay within B'",
            "||w(t) - w0|| <= B' = 3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2)",
            c.disp, np.full_like(tr, c.B_prime), tr, c.rtol, 0.0, _FULL_REQ, met, basis,
        ),
        _compare(
            "lemma6.sigma_min_trajectory",
            "Lemma 6 along the trajectory: sigma_min",
            "sigma_min(J_w(t)) >= sigma_min / 2",
            c.sigma_min_t, np.full_like(tr, 0.5 * c.sigma_min), tr, c.rtol, 0.0, _FULL_REQ,
            met, basis, skip=_vacuous_lower(c.sigma_min), sense=">=",
        ),
        _compare(
            "lemma6.sigma_max_trajectory",
            "Lemma 6 along the trajectory: sigma_max",
            "sigma_max(J_w(t)) <= 3 sigma_max / 2",
            c.sigma_max_t, np.full_like(tr, 1.5 * c.sigma_max), tr, c.rtol, 0.0, _FULL_REQ,
            met, basis,
        ),
    ]  # fmt: skip


def _ball_conclusions(c: CheckContext, met: dict[str, bool]) -> list[Check]:
    """Lemma 6 at points sampled in the ball of radius ``ball_radius`` (where beta holds)."""
    ball_req = (RANK, OVERPARAM, BETA_FINITE, BALL)
    idx = np.arange(c.ball_sigma_min.size, dtype=float)
    radius = c.ball_radius if math.isfinite(c.ball_radius) else c.B
    no_ball = (
        None
        if c.ball_sigma_min.size
        else f"no points sampled: B = {c.B:.3g} (a ball is sampled only for finite, positive B)"
    )
    basis = f"{c.ball_sigma_min.size} points sampled in the ball of radius {radius:.4g}; "
    basis += _basis(c)
    return [
        _compare(
            "lemma6.sigma_min_ball",
            "Lemma 6 in the ball where beta holds: sigma_min",
            "sigma_min(J_w) >= sigma_min / 2 for ||w - w0|| <= min(B, R)",
            c.ball_sigma_min, np.full_like(idx, 0.5 * c.sigma_min), idx, 1e-9, 0.0, ball_req,
            met, basis, skip=no_ball or _vacuous_lower(c.sigma_min), sense=">=",
            at_label="point",
        ),
        _compare(
            "lemma6.sigma_max_ball",
            "Lemma 6 in the ball where beta holds: sigma_max",
            "sigma_max(J_w) <= 3 sigma_max / 2 for ||w - w0|| <= min(B, R)",
            c.ball_sigma_max, np.full_like(idx, 1.5 * c.sigma_max), idx, 1e-9, 0.0, ball_req,
            met, basis, skip=no_ball, at_label="point",
        ),
    ]  # fmt: skip


def _trajectory_ratio(c: CheckContext, met: dict[str, bool]) -> Check:
    """||J_w(t) - J_0|| / ||w(t) - w0|| <= beta: guaranteed when beta is valid on a ball that
    holds the trajectory (B' <= min(R, B) under the hypothesis)."""
    moved = c.disp_check > 0
    ratio = np.where(moved, c.jdiff / np.where(moved, c.disp_check, 1.0), 0.0)
    return _compare(
        "beta.trajectory_ratio",
        "observed Jacobian change against beta",
        "||J_w(t) - J_0|| / ||w(t) - w0|| <= beta",
        ratio[moved],
        np.full(int(moved.sum()), c.beta),
        c.t_check[moved],
        c.rtol,
        0.0,
        _FULL_REQ,
        met,
        _basis(c),
        skip=None
        if moved.any() and math.isfinite(c.beta)
        else "beta is infinite or the weights did not move",
    )


def _skip_trajectories(checks: list[Check], reason: str) -> list[Check]:
    """No flow was run: every trajectory conclusion is skipped with ``reason``."""
    return [
        dataclasses.replace(
            x,
            status="skipped",
            held=None,
            observed=math.nan,
            bound=math.nan,
            margin=math.nan,
            at=None,
            message=reason,
        )
        if x.role == "conclusion" and "ball" not in x.id
        else x
        for x in checks
    ]


def _status(held: bool, requires: tuple[str, ...], met: dict[str, bool]) -> str:
    if all(met.get(r, False) for r in requires):
        return "pass" if held else "fail"
    return "unguaranteed"


def _skipped(
    cid: str,
    title: str,
    formula: str,
    rtol: float,
    requires: tuple[str, ...],
    basis: str,
    reason: str,
    sense: str,
) -> Check:
    return Check(
        cid, title, "conclusion", formula, "skipped", None, math.nan, math.nan, math.nan,
        rtol, requires, basis, reason, None, sense,
    )  # fmt: skip


def _compare(
    cid: str,
    title: str,
    formula: str,
    observed: Array,
    bound: Array,
    at: Array,
    rtol: float,
    atol: float,
    requires: tuple[str, ...],
    met: dict[str, bool],
    basis: str,
    skip: str | None = None,
    sense: str = "<=",
    at_label: str = "t",
) -> Check:
    """observed <= bound (or >=) everywhere, within rtol and atol; see the module doc."""
    observed = np.asarray(observed, dtype=float)
    bound = np.asarray(bound, dtype=float)
    if skip is None and observed.size == 0:
        skip = "nothing recorded"
    if skip is None and not np.all(np.isfinite(observed)):
        skip = "non-finite values recorded (solver failure)"
    if skip is None and not np.all(np.isfinite(bound)):
        bad = bound[~np.isfinite(bound)][0]
        skip = f"not computable: the bound is {bad:g} (a non-finite bound proves nothing)"
    if skip is not None:
        return _skipped(cid, title, formula, rtol, requires, basis, skip, sense)
    with np.errstate(divide="ignore", invalid="ignore"):
        if sense == "<=":
            margin = np.where(observed > 0, bound / observed, np.inf)
            ok = observed <= bound * (1 + rtol) + atol
        else:
            margin = np.where(bound > 0, observed / bound, np.inf)
            ok = observed >= bound * (1 - rtol) - atol
    k = _worst_index(ok, margin, at, at_label)
    held = bool(ok.all())
    status = _status(held, requires, met)
    where = f"{at_label} = {at[k]:.4g}"
    if held:
        msg = f"held; tightest at {where}"
    else:
        msg = f"VIOLATED at {int((~ok).sum())} of {ok.size} points; worst at {where}"
    if status == "unguaranteed":
        unmet = [r.split(".")[-1] for r in requires if not met.get(r, False)]
        msg += f"; unguaranteed: {', '.join(unmet)} unmet"
    return Check(
        cid, title, "conclusion", formula, status, held, float(observed[k]), float(bound[k]),
        float(margin[k]), rtol, requires, basis, msg, float(at[k]), sense, atol,
    )  # fmt: skip


def _vacuous_lower(sigma_min: float) -> str | None:
    """Why ``sigma_min(J_w) >= sigma_min / 2`` compares nothing when sigma_min = 0 (a singular
    value is never negative, so "0 >= 0" would be a fake pass); None when it is a real test."""
    if sigma_min != 0:  # positive: a real test; NaN: skipped as a non-finite bound
        return None
    return f"not applicable: sigma_min = {sigma_min:g}, so the bound sigma_min / 2 is vacuous"


def _worst_index(ok: Array, margin: Array, at: Array, at_label: str) -> int:
    """The worst point: a violated one if any, else the smallest margin."""
    if not ok.all():
        return int(np.argmin(np.where(ok, np.inf, margin)))  # the worst violation
    if at_label == "t" and at.size > 1 and at[0] == 0:
        # at t = 0 the loss bounds hold with equality by construction; report the tightest
        # point after it
        return 1 + int(np.argmin(margin[1:]))
    return int(np.argmin(margin))


def _eigenvalue_noise(c: CheckContext) -> float:
    """The rounding level of sigma_min(J_w(t))^2 as recorded: an eigenvalue of K_w carries an
    absolute error of about n eps lambda_max, so a value below it cannot be told from 0 (the
    recorded value may be exactly 0 or a few times the rounding, run to run)."""
    finite = np.asarray(c.sigma_max_t)[np.isfinite(c.sigma_max_t)]
    smax = float(finite.max()) if finite.size else 0.0
    return c.n * _EPS * smax**2
