"""``lazycheck verify``: the theorem run as a test suite.

:func:`run_verify` computes the constants (:func:`lazycheck.commands.bound.compute_bound`), runs
both flows (:func:`lazycheck.commands.simulate.simulate`), samples the spectrum of J_w at points of
the ball of radius B, and evaluates every check of :mod:`lazycheck.commands.checks`. The
:class:`VerifyReport` carries the checks, the lazy-limit distance
sup_t ||alpha f(w(t)) - alpha f0(u(t))||, and the exit code a CI pipeline gates on:

* 0: every guaranteed check passes (hypotheses may be unmet: the theorem then promises
  nothing, and ``--strict`` turns that into 1);
* 1: a check fails (its hypotheses hold and the inequality is violated);
* 2: usage, spec or data errors (raised before a report exists) or numerics that cannot be
  trusted (the solver failed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck._version import __version__
from lazycheck.commands.bound import BoundReport, compute_bound
from lazycheck.commands.checks import Check, CheckContext, default_tolerances, evaluate_checks
from lazycheck.display import Displayable
from lazycheck.hypothesis import safe_norm
from lazycheck.jsonio import encode_float
from lazycheck.numerics.kernel_extremes import MATRIX_FREE_MIN_N, KernelExtremes
from lazycheck.problem import Problem
from lazycheck.status import CHECK_STATUSES, Status, VerifyStatus

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress import Progress
    from rich.text import Text

    from lazycheck.commands.simulate import SimulationResult

__all__ = ["STATUSES", "VERIFY_SCHEMA_VERSION", "VerifyReport", "run_verify"]

STATUSES = CHECK_STATUSES
VERIFY_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class VerifyReport(Displayable):
    """Checks and verdict of ``lazycheck verify``.

    Attributes:
        status: ``"pass"``, ``"fail"``, ``"unguaranteed"`` (hypothesis unmet; no check failed)
            or ``"error"`` (the solver failed).
        message: one line.
        checks: every check, in :data:`lazycheck.commands.checks.CHECK_IDS` order.
        lazy_gap: sup_t ||alpha f(w(t)) - alpha f0(u(t))|| (the lazy-limit distance).
    """

    spec: str
    seed: int
    alpha: float
    n: int
    p: int
    status: VerifyStatus
    message: str
    checks: tuple[Check, ...]
    lazy_gap: float
    tolerances: dict[str, float]
    bound: BoundReport = field(repr=False)
    simulation: SimulationResult | None = field(repr=False, default=None)
    flow_note: str = ""

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            out[c.status] += 1
        return out

    def check(self, cid: str) -> Check:
        for c in self.checks:
            if c.id == cid:
                return c
        raise KeyError(cid)

    @property
    def hypotheses_met(self) -> bool:
        return all(c.status == "pass" for c in self.checks if c.role == "hypothesis")

    def exit_code(self, strict: bool = False) -> int:
        """0 all guaranteed checks pass; 1 a check fails (or, with strict, a hypothesis is
        unmet); 2 the numerics cannot be trusted."""
        if self.status == "error":
            return 2
        if any(c.status == "fail" for c in self.checks):
            return 1
        if strict and not self.hypotheses_met:
            return 1
        return 0

    @property
    def outcome(self) -> Status:
        """The status (the same vocabulary as every result: :mod:`lazycheck.status`)."""
        return self.status

    def __repr__(self) -> str:
        return self._short_repr()

    def _repr_fields(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "alpha": self.alpha,
            "status": self.status,
            "counts": {k: v for k, v in self.counts().items() if v},
            "message": self.message,
        }

    def _renderables(self) -> list[RenderableType]:
        """A rich table of the checks (the relation each tested), fails shown loudly, and
        the verdict."""
        from rich.table import Table
        from rich.text import Text

        styles = {
            "pass": "green",
            "fail": "bold white on red",
            "unguaranteed": "yellow",
            "skipped": "dim",
            "unmet": "magenta",
        }
        table = Table(
            title=Text(
                f"lazycheck verify: {self.spec}  (alpha = {self.alpha:g}, n = {self.n}, "
                f"p = {self.p})"
            ),
        )
        for col, just in (
            ("id", "left"),
            ("status", "left"),
            ("held", "left"),
            ("observed", "right"),
            ("bound", "right"),
            ("margin", "right"),
            ("note", "left"),
        ):
            table.add_column(col, justify=just, no_wrap=col in ("id", "status"))
        for c in self.checks:
            held = "-" if c.held is None else ("yes" if c.held else "NO")
            table.add_row(
                Text(c.id),
                Text(c.status.upper() if c.status == "fail" else c.status, style=styles[c.status]),
                held,
                _fmt(c.observed),
                f"{c.sense} {_fmt(c.bound)}",
                _fmt(c.margin),
                Text(c.message),
            )
        out: list[RenderableType] = [table]
        out.append(
            Text(
                f"lazy-limit distance sup_t ||alpha f(w(t)) - alpha f0(u(t))|| = "
                f"{self.lazy_gap:.4g}  (computed, solver rtol {self.tolerances['solver_rtol']:g})"
            )
        )
        if self.flow_note:
            out.append(Text(f"note: {self.flow_note}"))
        out.append(self.verdict_text())
        return out

    def verdict_line(self) -> str:
        """The one verdict line (what ``--quiet`` prints)."""
        counts = ", ".join(f"{v} {k}" for k, v in self.counts().items() if v)
        return f"verdict: {self.message}  [{counts}]"

    def verdict_text(self) -> Text:
        from rich.text import Text

        style = {"pass": "bold green", "fail": "bold red", "error": "bold red"}.get(
            self.status, "bold yellow"
        )
        return Text(self.verdict_line(), style=style)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (schema ``lazycheck/schemas/verify.schema.json``)."""
        return {
            "schema": "lazycheck.verify",
            "schema_version": VERIFY_SCHEMA_VERSION,
            "lazycheck_version": __version__,
            "spec": self.spec,
            "seed": self.seed,
            "alpha": encode_float(self.alpha),
            "n": self.n,
            "p": self.p,
            "status": self.status,
            "message": self.message,
            "exit_code": self.exit_code(),
            "exit_code_strict": self.exit_code(strict=True),
            "counts": self.counts(),
            "lazy_gap": encode_float(self.lazy_gap),
            "flow": {
                "method": self.simulation.method if self.simulation is not None else "",
                "note": self.flow_note,
                # how sigma_min(J_w(t)), sigma_max(J_w(t)) and ||J_w(t) - J0|| were computed
                "sigma_path": self.simulation.sigma_path if self.simulation is not None else "",
            },
            "tolerances": {k: encode_float(v) for k, v in self.tolerances.items()},
            "beta_basis": self.bound.beta_basis,
            "checks": [_check_dict(c) for c in self.checks],
            "bound": self.bound.to_dict(),
        }


def run_verify(
    problem: Problem,
    bound: BoundReport | None = None,
    simulation: SimulationResult | None = None,
    *,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compute the constants, run both flows, sample the ball, and evaluate every check.

    ``bound`` (from :func:`~lazycheck.commands.bound.compute_bound`) and ``simulation`` (from
    :func:`~lazycheck.commands.simulate.simulate`) of the same problem are used as given instead of
    being computed again.
    """
    from lazycheck.commands.simulate import simulate

    if bound is None:
        bound = compute_bound(problem, progress=progress)
    fs = problem.spec.flow
    solver_tol = {"solver_rtol": fs.rtol}
    reason = _no_flow_reason(bound, fs.horizon)
    if reason is not None:
        # A property of the problem (Assumption 1 fails, or its constants overflow float64)
        # is a verdict: the hypotheses are reported unmet, the conclusions skipped.
        ctx = build_context(problem, bound, None, skip_reason=reason)
        checks = tuple(evaluate_checks(ctx))
        status, message = _verdict(checks, bound)
        return VerifyReport(
            bound.spec, problem.seed, bound.alpha, problem.n, problem.p, status, message,
            checks, math.nan, solver_tol, bound, None, reason,
        )  # fmt: skip
    sim = simulation
    if sim is None:
        sim = simulate(problem, progress=progress, spectrum=bound.spectrum)
    flow_note = sim.note
    if not sim.success:
        return VerifyReport(
            bound.spec, problem.seed, bound.alpha, problem.n, problem.p, "error",
            f"the solver failed, numerics cannot be trusted: {sim.message}", (), math.nan,
            solver_tol, bound, sim, flow_note,
        )  # fmt: skip
    ctx = build_context(problem, bound, sim)
    checks = tuple(evaluate_checks(ctx))
    gap = float(np.max(sim.gap)) if len(sim.gap) else math.nan
    status, message = _verdict(checks, bound)
    tol = {
        **solver_tol,
        "rtol": ctx.rtol,
        "rtol_linear": ctx.rtol_linear,
        "atol_loss": ctx.atol_loss,
    }
    return VerifyReport(
        bound.spec, problem.seed, bound.alpha, problem.n, problem.p, status, message, checks,
        gap, tol, bound, sim, flow_note,
    )  # fmt: skip


def build_context(
    problem: Problem,
    bound: BoundReport,
    sim: SimulationResult | None,
    skip_reason: str | None = None,
) -> CheckContext:
    """Assemble the inputs of the checks from a bound report and a simulation (``None`` with a
    ``skip_reason`` when no flow was run)."""
    sp = bound.spectrum
    basis = bound.beta_basis
    beta_est = bound.betas.get(basis)
    beta = beta_est.value if beta_est else math.inf
    sol = bound.solutions.get(basis)
    L0 = bound.quantity("L0").value
    B = sp.sigma_min / (2.0 * beta) if beta > 0 else math.inf
    R = beta_est.radius if beta_est else math.nan
    ball = min(B, R) if math.isfinite(R) else B  # Lemma 6 holds where beta does
    tol = problem.spec.check.tolerance
    rtol, rtol_lin, atol = default_tolerances(problem.spec.flow.rtol, L0, safe_norm(problem.y))
    if tol is not None:
        rtol = rtol_lin = tol
    empty = np.empty(0)
    if sim is not None:
        atol = max(atol, 10.0 * sim.loss_floor)
        t = np.asarray(sim.t)
        traj = {
            name: np.asarray(getattr(sim, name))
            for name in ("loss", "loss_lin", "disp", "disp_lin", "sigma_min_t", "sigma_max_t")
        }
        t_check, jdiff = np.asarray(sim.t_check), np.asarray(sim.jdiff)
        disp_check = np.interp(t_check, t, traj["disp"])
    else:
        t = t_check = jdiff = disp_check = empty
        traj = dict.fromkeys(
            ("loss", "loss_lin", "disp", "disp_lin", "sigma_min_t", "sigma_max_t"), empty
        )
    ball_min, ball_max = _ball_spectra(problem, bound, ball)
    return CheckContext(
        alpha=bound.alpha,
        n=problem.n,
        p=problem.p,
        rank=sp.rank,
        sigma_min=sp.sigma_min,
        sigma_max=sp.sigma_max,
        L0=L0,
        beta=beta,
        beta_kind=beta_est.kind if beta_est else "unavailable",
        alpha_min=sol.alpha_min if sol else math.nan,
        alpha_max=sol.alpha_max if sol else math.nan,
        alpha_feasible=bool(sol and sol.feasible),
        B=B,
        B_prime=bound.quantity("B_prime").value,
        B_lin=bound.quantity("B_lin").value,
        beta_radius=beta_est.radius if beta_est else math.nan,
        beta_radius_consistent=beta_est.consistent if beta_est else None,
        t=t,
        **traj,
        t_check=t_check,
        jdiff=jdiff,
        disp_check=disp_check,
        ball_sigma_min=ball_min,
        ball_sigma_max=ball_max,
        ball_radius=ball,
        rtol=rtol,
        rtol_linear=rtol_lin,
        atol_loss=atol,
        skip_reason=skip_reason,
        continuous_flow=sim is None or sim.method != "gd",
    )


def _ball_spectra(problem: Problem, bound: BoundReport, B: float) -> tuple[np.ndarray, np.ndarray]:
    """sigma_min, sigma_max of J_w at points of the ball of radius B: random directions on
    its surface and inside, and both ends of the worst direction the beta search found. From
    the kernel's eigenvalues, or matrix-free (Lanczos) when the kernel does not fit the memory
    limit."""
    from lazycheck.numerics.spectrum import (
        kernel_bytes,
        kernel_sigma_range,
        matrix_free_sigma_range,
    )
    from lazycheck.resources import fits

    if not (math.isfinite(B) and B > 0) or not bound.spectrum.ok:
        return np.empty(0), np.empty(0)
    rng = problem.rng("ball")
    k = problem.spec.check.ball_points
    dirs = []
    samp = bound.betas.get("sampled")
    if samp is not None and samp.direction is not None:
        dirs += [samp.direction, -samp.direction]
    for _ in range(k):
        d = rng.standard_normal(problem.p)
        dirs.append(d / np.linalg.norm(d) * (1.0 if rng.random() < 0.5 else rng.random()))
    smin, smax = [], []
    dense = fits(kernel_bytes(problem.n))
    extremes = _ball_extremes(problem) if dense and problem.n >= MATRIX_FREE_MIN_N else None
    for d in dirs:
        w = problem.w0 + B * d
        if extremes is not None:
            ext = extremes(problem.linearize(w))
            lo, hi = ext.sigma_min, ext.sigma_max
        elif dense:
            lo, hi = kernel_sigma_range(problem.kernel(w))
        else:
            lo, hi, _err = matrix_free_sigma_range(problem.linearize(w))
        smin.append(lo)
        smax.append(hi)
    return np.asarray(smin), np.asarray(smax)


def _ball_extremes(problem: Problem) -> KernelExtremes:
    """sigma's at the ball's points matrix-free (:mod:`lazycheck.numerics.kernel_extremes`), each
    started from K0's extreme eigenvectors: one kernel and eigendecomposition at w0 instead of
    one at every point."""
    from lazycheck.numerics.spectrum import sym_eig

    K0 = problem.linearize(problem.w0).kernel()
    lam, Q = sym_eig(0.5 * (K0 + K0.T))
    return KernelExtremes(lam, Q, track=False)


def _verdict(checks: tuple[Check, ...], bound: BoundReport) -> tuple[str, str]:
    fails = [c.id for c in checks if c.status == "fail"]
    unmet = [c.id for c in checks if c.role == "hypothesis" and c.status != "pass"]
    sampled = bound.beta_basis == "sampled"
    note = " (the hypothesis rests on a SAMPLED beta)" if sampled else ""
    if fails:
        return "fail", (
            f"{len(fails)} guaranteed check(s) FAILED: {', '.join(fails)} — a counterexample, "
            f"a wrong constant or a numerical error{note}"
        )
    if unmet:
        broke = [c.id for c in checks if c.status == "unguaranteed" and c.held is False]
        checked = [c for c in checks if c.role == "conclusion" and c.status != "skipped"]
        if broke:
            tail = f"; violated anyway: {', '.join(broke)}"
        elif checked:
            tail = "; every conclusion checked held anyway"
        else:
            tail = "; no conclusion could be checked"
        return (
            "unguaranteed",
            f"hypothesis unmet ({', '.join(unmet)}): the theorem promises nothing{tail}",
        )
    ung = [c for c in checks if c.status == "unguaranteed"]
    if ung:
        # every hypothesis check passed: what is missing is a requirement without a check
        # row, i.e. the trajectory is not the continuous flow (flow.continuous)
        missing = sorted({r for c in ung for r in c.requires if r not in _satisfied(checks)})
        why = (
            "the trajectory is gradient descent, not the gradient flow the theorem is about"
            if missing == ["flow.continuous"]
            else f"{', '.join(missing) or 'a requirement'} is not met"
        )
        return "unguaranteed", (
            f"the hypothesis holds, but {why}: {len(ung)} conclusion(s) are not guaranteed; "
            "every guaranteed check passes"
        )
    return "pass", f"the hypothesis holds and every guaranteed check passes{note}"


def _satisfied(checks: tuple[Check, ...]) -> set[str]:
    """The ids of the hypothesis checks that passed."""
    return {c.id for c in checks if c.role == "hypothesis" and c.status == "pass"} | {
        c.id for c in checks if c.status == "skipped" and c.role == "diagnostic"
    }


def _check_dict(c: Check) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "role": c.role,
        "formula": c.formula,
        "status": c.status,
        "held": c.held,
        "observed": encode_float(c.observed),
        "bound": encode_float(c.bound),
        "sense": c.sense,
        "margin": encode_float(c.margin),
        "tolerance": encode_float(c.tolerance),
        "at": encode_float(c.at),
        "requires": list(c.requires),
        "basis": c.basis,
        "message": c.message,
    }


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _no_flow_reason(bound: BoundReport, horizon: float | None) -> str | None:
    """Why the flows are not run, or None. Uses the spectrum's rank decision, not
    sigma_min <= 0: a sigma_min of 1e-16 below the rank tolerance is a rank deficiency too."""
    if bound.status == "not_computable":
        return f"flows not run: {bound.message}"
    if not bound.spectrum.ok and horizon is None:
        return (
            f"flows not run: Assumption 1 fails ({bound.spectrum.status}), so the default "
            "horizon is undefined; give [flow].horizon to run them anyway"
        )
    return None
