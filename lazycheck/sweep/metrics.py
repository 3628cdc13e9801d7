"""Per-run metrics of a sweep: one :func:`run_config` per configuration (the worker's task).

Each configuration runs ``lazycheck verify`` (:func:`lazycheck.commands.verify.run_verify`: the
constants, both flows, the checks) and reduces it to the numbers of :data:`METRICS`, each with
its formula, what kind of number it is, and the rate in alpha and in width the theory implies
where it implies one (derived in ``docs/sweep.md``). Notation: T is the last time of the run
(where Theorem 2's loss bound has fallen by exp(-decay)), w(t) the nonlinear flow, u(t) the
linear flow (exact), J_t = J_{w(t)}, K_t = J_t J_t^T, f_lin(w) = f(w0) + J0 (w - w0).

A configuration that fails (a bad setting, numerics that give up, a solver that fails) becomes a
record with ``status = "failed"`` and the message; it never raises, except on interruption.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck.errors import LazycheckError

if TYPE_CHECKING:
    from lazycheck.commands.verify import VerifyReport
    from lazycheck.problem import Problem
    from lazycheck.spec import Spec

__all__ = ["METRICS", "Metric", "failed_record", "kinf_available", "metric", "run_config"]

Array = np.ndarray
ProblemBuilder = Callable[["Spec"], "Problem"]


@dataclass(frozen=True)
class Metric:
    """A per-run number: name, formula, kind, and the theory's exponent against alpha and width
    (None where the theory implies no rate). Rates hold for f(w0) = 0; width rates for the NTK
    parameterization (``docs/sweep.md``)."""

    name: str
    formula: str
    kind: str
    rate_alpha: float | None = None
    rate_width: float | None = None
    plot: bool = False


_C = "computed"
_E = "exact"
METRICS: tuple[Metric, ...] = (
    Metric("disp", "||w(T) - w0||", _C, -1.0, 0.0, plot=True),
    Metric("disp_lin", "||u(T) - u0||", _E, -1.0, 0.0),
    Metric("alpha_disp", "alpha ||w(T) - w0||", _C, 0.0, 0.0, plot=True),
    Metric("alpha_disp_lazy", "sqrt(r0^T K0^+ r0) = lim_t alpha ||u(t) - u0||", _E, 0.0, 0.0),
    Metric("weight_gap", "||w(T) - u(T)|| / ||u(T) - u0||", _C, -1.0, -0.5, plot=True),
    Metric("gap", "sup_t ||alpha f(w(t)) - alpha f0(u(t))||", _C, -1.0, -0.5, plot=True),
    Metric("lin_gap", "sup_t ||alpha f(w(t)) - alpha f_lin(w(t))||", _C, -1.0, -0.5, plot=True),
    Metric("jac_change_op", "||J_T - J0||_2 / ||J0||_2", _C, -1.0, -0.5),
    Metric("jac_change_fro", "||J_T - J0||_F / ||J0||_F", _C, -1.0, -0.5, plot=True),
    Metric("ker_change_op", "||K_T - K0||_2 / ||K0||_2", _C, -1.0, -0.5),
    Metric("ker_change_fro", "||K_T - K0||_F / ||K0||_F", _C, -1.0, -0.5, plot=True),
    Metric("jdiff_sup", "max over checkpoints ||J_t - J0||_2", _C, -1.0, -0.5),
    Metric("sigma_min_run", "min_t sigma_min(J_t)", _C, 0.0, 0.0),
    Metric("sigma_max_run", "max_t sigma_max(J_t)", _C, 0.0, 0.0),
    Metric(
        "sigma_min_dev", "max_t |sigma_min(J_t) - sigma_min(J0)| / sigma_min(J0)", _C, -1.0, -0.5
    ),
    Metric(
        "sigma_max_dev", "max_t |sigma_max(J_t) - sigma_max(J0)| / sigma_max(J0)", _C, -1.0, -0.5
    ),
    Metric("loss_ratio", "max_{t>0} L(alpha f(w(t))) / (L0 exp(-alpha^2 sigma_min^2 t/2))", _C),
    Metric("loss_end", "L(alpha f(w(T)))", _C),
    Metric("loss_lin_end", "L(alpha f0(u(T)))", _E),
    Metric("B_prime", "3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2)", _E, -1.0, 0.0, plot=True),
    Metric("sigma_min", "sigma_min(J0)", _E, 0.0, 0.0),
    Metric("sigma_max", "sigma_max(J0)", _E, 0.0, 0.0),
    Metric("L0", "||alpha f(w0) - y||^2 / 2", _E, 0.0, 0.0),
    Metric("beta_certified", "certified upper bound on beta", "certified upper bound", 0.0),
    Metric("beta_sampled", "sampled lower bound on beta", "sampled lower bound", 0.0, -0.5),
    Metric("alpha_min_certified", "alpha_min with beta[certified]", "certified", 0.0),
    Metric("alpha_min_sampled", "alpha_min with beta[sampled]", "sampled (optimistic)", 0.0, -0.5),
    Metric("kinf_dist", "||K0 - K_inf||_F / ||K_inf||_F", _C, 0.0, -0.5, plot=True),
)
"""Every per-run metric, in report order."""

_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    return _BY_NAME[name]


def kinf_available() -> bool:
    """True when the analytic infinite-width kernel module is installed."""
    import importlib.util

    return importlib.util.find_spec("lazycheck.models.infinite_width") is not None


def run_config(spec: Spec, build: ProblemBuilder | None = None) -> dict[str, Any]:
    """Build the problem of ``spec`` (with ``build``, default :func:`make_problem`), verify it,
    and reduce the report to the metrics. Never raises (except on interruption): a failure is
    a record with ``status = "failed"`` and the message."""
    start = time.perf_counter()
    try:
        record = _run(spec, build)
    except (LazycheckError, ArithmeticError, ValueError, RuntimeError, MemoryError) as exc:
        kind = "" if isinstance(exc, LazycheckError) else f"{type(exc).__name__}: "
        record = failed_record(f"{kind}{exc}")
    except Exception as exc:  # a user's model or a library: recorded, never fatal
        record = failed_record(f"{type(exc).__name__}: {exc}")
    record["wall_time"] = time.perf_counter() - start
    return record


# ----------------------------------------------------------------------------- helpers


def failed_record(message: str, transient: bool = False) -> dict[str, Any]:
    """The record of a configuration that failed; ``transient`` (a worker died) records are
    not stored, so a rerun retries them."""
    one_line = " ".join(str(message).split())
    return {
        "transient": transient,
        "status": "failed",
        "message": one_line,
        "verify_status": "error",
        "lazy": None,
        "metrics": {m.name: math.nan for m in METRICS},
        "checks": {},
        "notes": [],
    }


def _run(spec: Spec, build: ProblemBuilder | None) -> dict[str, Any]:
    from lazycheck.commands.verify import run_verify
    from lazycheck.problem import make_problem

    problem = (build or make_problem)(spec)
    report = run_verify(problem)
    notes: list[str] = []
    values = _bound_metrics(report)
    values.update(_flow_metrics(problem, report, notes))
    values["kinf_dist"] = _kinf_distance(problem, notes)
    checks = {c.id: {"status": c.status, "held": c.held} for c in report.checks}
    if report.status == "error":
        out = failed_record(report.message)
        out.update(metrics={m.name: values.get(m.name, math.nan) for m in METRICS}, checks=checks)
        return out
    return {
        "status": "ok",
        "message": report.message,
        "verify_status": report.status,
        "lazy": _lazy(report),
        "metrics": {m.name: float(values.get(m.name, math.nan)) for m in METRICS},
        "checks": checks,
        "notes": notes,
        "f0_zero": bool(report.bound.quantity("f0_norm").value == 0.0),
        "parameterization": problem.spec.model.parameterization,
        "n": problem.n,
        "p": problem.p,
    }


def _lazy(report: VerifyReport) -> bool | None:
    """Every conclusion of verify checked held (None when none could be checked)."""
    held = [c.held for c in report.checks if c.role == "conclusion" and c.status != "skipped"]
    held = [h for h in held if h is not None]
    return all(held) if held else None


def _bound_metrics(report: VerifyReport) -> dict[str, float]:
    b = report.bound
    sp = b.spectrum
    out = {
        "sigma_min": sp.sigma_min,
        "sigma_max": sp.sigma_max,
        "L0": b.quantity("L0").value,
        "B_prime": b.quantity("B_prime").value,
    }
    for name, keys in (("certified", ("exact", "certified")), ("sampled", ("sampled",))):
        key = next((k for k in keys if k in b.betas), None)
        beta = b.betas[key].value if key else math.nan
        sol = b.solutions.get(key) if key else None
        out[f"beta_{name}"] = beta
        out[f"alpha_min_{name}"] = sol.alpha_min if sol is not None else math.nan
    return out


def _flow_metrics(problem: Problem, report: VerifyReport, notes: list[str]) -> dict[str, float]:
    sim = report.simulation
    if sim is None or len(sim.t) == 0:
        notes.append("no flow was run: " + (report.flow_note or "see verify"))
        return {}
    from lazycheck.commands.simulation_report import finite_max as _sup
    from lazycheck.commands.simulation_report import finite_min as _inf
    from lazycheck.numerics.linear_flow import linear_flow

    alpha = sim.alpha
    w0 = np.asarray(problem.w0, dtype=np.float64)
    lin0 = problem.linearize(w0)
    lflow = linear_flow(lin0, problem.y, alpha)
    u_move = float(np.linalg.norm(sim.u_final - w0))
    out = {
        "disp": float(sim.disp[-1]),
        "disp_lin": float(sim.disp_lin[-1]),
        "alpha_disp": alpha * float(sim.disp[-1]),
        "alpha_disp_lazy": alpha * lflow.displacement_limit(),
        "weight_gap": _div(float(np.linalg.norm(sim.w_final - sim.u_final)), u_move),
        "gap": _sup(sim.gap),
        "lin_gap": _sup(sim.lin_gap),
        "jdiff_sup": _sup(sim.jdiff),
        "sigma_min_run": _inf(sim.sigma_min_t),
        "sigma_max_run": _sup(sim.sigma_max_t),
        "sigma_min_dev": _div(_sup(np.abs(sim.sigma_min_t - sim.sigma_min)), sim.sigma_min),
        "sigma_max_dev": _div(_sup(np.abs(sim.sigma_max_t - sim.sigma_max)), sim.sigma_max),
        "loss_end": sim.final_loss,
        "loss_lin_end": sim.final_loss_lin,
    }
    pos = (sim.t > 0) & (sim.bound > 0)
    out["loss_ratio"] = _sup(sim.loss[pos] / sim.bound[pos])
    out.update(_end_changes(problem, lin0, sim.w_final))
    return out


def _end_changes(problem: Problem, lin0: Any, w_end: Array) -> dict[str, float]:
    """Relative change of J and of K = J J^T between w0 and w(T), operator and Frobenius."""
    lin_t = problem.linearize(np.asarray(w_end, dtype=np.float64))
    K0 = _sym(lin0.kernel())
    D = _sym(lin_t.difference_kernel(lin0))  # (J_T - J0)(J_T - J0)^T
    dK = _sym(lin_t.kernel()) - K0
    lam0 = np.linalg.eigvalsh(K0)
    j0_op, j0_fro = math.sqrt(max(lam0[-1], 0.0)), math.sqrt(max(np.trace(K0), 0.0))
    d_op = math.sqrt(max(float(np.linalg.eigvalsh(D)[-1]), 0.0))
    d_fro = math.sqrt(max(float(np.trace(D)), 0.0))
    k_op = float(np.max(np.abs(np.linalg.eigvalsh(dK))))
    return {
        "jac_change_op": _div(d_op, j0_op),
        "jac_change_fro": _div(d_fro, j0_fro),
        "ker_change_op": _div(k_op, float(lam0[-1])),
        "ker_change_fro": _div(float(np.linalg.norm(dK)), float(np.linalg.norm(K0))),
    }


def _kinf_distance(problem: Problem, notes: list[str]) -> float:
    """||K0 - K_inf||_F / ||K_inf||_F with the analytic infinite-width kernel, or nan (noted)."""
    if problem.spec.model.kind != "mlp":
        return math.nan
    try:
        from lazycheck.models.infinite_width import infinite_width_kernel
    except ImportError:
        notes.append("kinf_dist: lazycheck.models.infinite_width is not available")
        return math.nan
    try:
        kinf = np.asarray(infinite_width_kernel(problem.spec.model, problem.X), dtype=np.float64)
    except LazycheckError as exc:
        notes.append(f"kinf_dist: {exc}")
        return math.nan
    K0 = problem.kernel(problem.w0)
    return _div(float(np.linalg.norm(K0 - kinf)), float(np.linalg.norm(kinf)))


def _sym(K: Array) -> Array:
    return 0.5 * (K + K.T)


def _div(a: float, b: float) -> float:
    """a / b, nan when b is zero or not finite (a relative change of nothing)."""
    return a / b if b > 0 and math.isfinite(b) else math.nan
