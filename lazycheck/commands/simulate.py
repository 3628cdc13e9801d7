"""``lazycheck simulate``: run the nonlinear flow and the linear flow side by side.

Both flows start at w0 and minimize L(z) = ||z - y||^2 / 2 at scale alpha:

* nonlinear: w' = -alpha J_w^T (alpha f(w) - y), integrated numerically
  (:mod:`lazycheck.numerics.flow`);
* linear:    u' = -alpha J0^T (alpha f0(u) - y), solved exactly
  (:mod:`lazycheck.numerics.linear_flow`).

They are recorded on a log-spaced grid of ``n_times`` times (plus t = 0) from
t_min = min(0.01 / (alpha^2 lambda_max(K0)), t_end / 1000), before the fastest mode of the
kernel has moved, up to t_end. By default t_end is where Theorem 2's bound has fallen by
exp(-decay): L0 exp(-alpha^2 sigma_min^2 t / 2) = L0 e^{-decay}, t_end = 2 decay /
(alpha^2 sigma_min^2). When sigma_min(J0) = 0 (Assumption 1 fails) that time is infinite, and
``horizon`` must be given (a :class:`~lazycheck.errors.LazycheckError` says so).

At each grid time: the two losses, the Theorem 2 bound L0 exp(-alpha^2 sigma_min^2 t / 2), the
displacements ||w(t) - w0|| and ||u(t) - u0||, the gap ||alpha f(w(t)) - alpha f0(u(t))||, and
the extreme singular values of J_{w(t)}: below n = 256 from the eigenvalues of its kernel,
formed at each time (O(n^2 p)); from n = 256 on matrix-free
(:mod:`lazycheck.numerics.kernel_extremes`: a few products J_w (J_w^T v) per time, modelled on K0's
eigendecomposition, each value with an error estimate, reported in ``sigma_path``: at most the
rounding floor 64 eps lambda_max(K) that bounds a dense eigensolver's too). At ``checkpoints``
log-spaced grid times: ||J_{w(t)} - J0|| (operator norm, from the difference kernel; from n = 256
on by Lanczos, matrix-free, to residual 1e-6: a value attained by a unit vector).

With ``method = "gd"`` the grid is snapped to whole iterates (t = k lr) and the linear model
stays the exact linear *flow*, so the gap then also holds gradient descent's discretization
error (first order in lr).

Constants: sigma_min, sigma_max of J0; L0 = ||alpha f(w0) - y||^2 / 2; Theorem 2's radius
B' = 3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2) and the linear model's radius
B'_lin = sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2) (both infinite when Assumption 1 fails).

What each number is: the linear flow's values are exact (closed form, to rounding); the
nonlinear flow's are computed to the solver tolerance (or are gradient descent iterates). The
loss of the nonlinear flow is also limited by float64: alpha f(w) is formed from rounded
weights, so it carries an error of about alpha eps ||J_w (w o s)||, which alpha amplifies. Below
``loss_floor`` (see :func:`lazycheck.numerics.flow.residual_floor`) a loss is rounding noise, and
the report says so. (At alpha = 1e6 on the sample problem the floor is about 1e-17.)

Cost: one model evaluation at w0, the integrator's (``nfev``, which counts all of them), and
for each recorded time a few products on a linearization already computed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck.commands.simulation_report import (
    ARRAY_FIELDS,
    GRID_FIELDS,
    fmt_value,
    result_dict,
    summary_rows,
)
from lazycheck.display import Displayable
from lazycheck.errors import LazycheckError
from lazycheck.hypothesis import b_lin as radius_b_lin
from lazycheck.hypothesis import b_prime as radius_b_prime
from lazycheck.jsonio import atomic_write
from lazycheck.models.base import Linearization
from lazycheck.numerics.flow import (
    EXP_METHOD,
    SCIPY_METHODS,
    FlowStats,
    check_lr,
    gd_flow,
    gd_grid,
    integrate,
    probe_signs,
    residual_floor,
)
from lazycheck.numerics.kernel_extremes import MATRIX_FREE_MIN_N, KernelExtremes
from lazycheck.numerics.linear_flow import LinearFlow, linear_flow
from lazycheck.numerics.spectrum import Spectrum, difference_norm, jacobian_spectrum, sym_eigvals
from lazycheck.problem import Problem
from lazycheck.spec import MAX_TIMES, FlowSpec
from lazycheck.status import SimulationStatus

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "ARRAY_FIELDS",
    "GRID_FIELDS",
    "SimulationResult",
    "csv_text",
    "load_npz",
    "npz_writer",
    "save_csv",
    "save_npz",
    "simulate",
]

Array = np.ndarray

_NPZ_FORMAT = 1
#: Lanczos residual tolerance of ||J_w - J0|| at the checkpoints when it is matrix-free (the
#: value is attained by its unit vector, and within about JDIFF_TOL^2 of the norm)
JDIFF_TOL = 1e-6


@dataclass(frozen=True)
class SimulationResult(Displayable):
    """A run of both flows, like scipy's ``OdeResult``.

    Attributes:
        success, status, message: status 0 when the integrator reached ``horizon``, -1 when
            it failed (the arrays then stop at the last time recorded).
        alpha, method, rtol, atol, lr: the run's settings (``lr`` only for gd).
        horizon: the final time t_end (unscaled); ``horizon_rule`` says how it was chosen.
        sigma_min, sigma_max: extreme singular values of J0; ``sigma_method`` how computed.
        L0: the initial loss ||alpha f(w0) - y||^2 / 2.
        loss_floor: (1/2) rho^2 with rho the residual's rounding floor at the last time
            (:func:`lazycheck.numerics.flow.residual_floor`): nonlinear losses below it are rounding
            noise, not resolved by any integrator in float64.
        B_prime: Theorem 2's radius 3 sqrt(8 sigma_max^2 L0) / (alpha sigma_min^2).
        B_prime_lin: the linear model's radius sqrt(2 sigma_max^2 L0) / (alpha sigma_min^2).
        gd_stability_limit: 2 / (alpha^2 lambda_max(K0)) for method gd, else None.
        t, loss, loss_lin, bound, disp, disp_lin, gap, sigma_min_t, sigma_max_t: the grid.
        t_check, jdiff: ||J_{w(t)} - J0|| at the checkpoint times.
        w_final, u_final: the weights of both flows at the last recorded time.
        nfev: model evaluations (forward + backward pass) of the whole run, including the
            one at w0 and any spent only to record output (``nfev_output``).
        n_products: JVP/VJP products on already computed linearizations.
        n_steps, n_rejected: integrator steps (gd: iterations); n_rejected is -1 when the
            solver does not report it (scipy).
        wall_time: seconds spent integrating and recording.
    """

    success: bool
    status: int
    message: str
    alpha: float
    method: str
    rtol: float
    atol: float
    lr: float | None
    horizon: float
    horizon_rule: str
    sigma_min: float
    sigma_max: float
    sigma_method: str
    L0: float
    loss_floor: float
    B_prime: float
    B_prime_lin: float
    gd_stability_limit: float | None
    t: Array
    loss: Array
    loss_lin: Array
    bound: Array
    disp: Array
    disp_lin: Array
    gap: Array
    sigma_min_t: Array
    sigma_max_t: Array
    t_check: Array
    jdiff: Array
    w_final: Array
    u_final: Array
    nfev: int
    nfev_output: int
    n_products: int
    n_steps: int
    n_rejected: int
    wall_time: float
    #: how the method was chosen when the spec asked for ``auto`` (empty otherwise)
    note: str = ""
    #: ||alpha f(w(t)) - alpha f_lin(w(t))|| on the grid, f_lin(w) = f(w0) + J0 (w - w0): the
    #: linearization evaluated along the nonlinear path (lazycheck sweep's ``lin_gap``)
    lin_gap: Array = dataclasses.field(default_factory=lambda: np.empty(0))
    #: how sigma_min_t, sigma_max_t and jdiff were computed: from kernels formed at each time,
    #: or matrix-free (:mod:`lazycheck.numerics.kernel_extremes`, from n = 256 on) with the error
    #: estimate
    sigma_path: str = ""

    # ------------------------------------------------------------------ derived numbers
    @property
    def final_loss(self) -> float:
        """L(alpha f(w(t_end))), the nonlinear flow's last loss."""
        return float(self.loss[-1])

    @property
    def final_loss_lin(self) -> float:
        """L(alpha f0(u(t_end))), the linear flow's last loss (exact)."""
        return float(self.loss_lin[-1])

    @property
    def final_loss_unresolved(self) -> bool:
        """True when the last nonlinear loss is within 100x of the rounding floor."""
        return self.final_loss <= 100.0 * self.loss_floor

    @property
    def tau(self) -> Array:
        """The grid in rescaled time alpha^2 t."""
        return self.alpha**2 * self.t

    @property
    def computed_label(self) -> str:
        """How the nonlinear trajectory was obtained, for labels."""
        if self.method == "gd":
            return f"computed, gradient descent lr {self.lr:.3g}"
        return f"computed, {self.method} solver rtol {self.rtol:.3g}"

    def summary(self) -> list[tuple[str, str, Any, str]]:
        """Rows (key, quantity, value, what it is) of the summary table."""
        return summary_rows(self)

    def to_dict(self) -> dict[str, Any]:
        """Summary (each number with what it is) and every array, JSON-ready."""
        return result_dict(self)

    @property
    def outcome(self) -> SimulationStatus:
        """``"success"`` or ``"error"`` (:mod:`lazycheck.status`; ``status`` is scipy's int)."""
        return "success" if self.success else "error"

    def __repr__(self) -> str:
        return self._short_repr()

    def _repr_fields(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "alpha": self.alpha,
            "horizon": self.horizon,
            "points": len(self.t),
            "final_loss": float(self.loss[-1]) if len(self.loss) else math.nan,
            "outcome": self.outcome,
            "message": self.message,
        }

    def _renderables(self) -> list[Any]:
        """The summary as a rich table, the note and the message."""
        from rich.table import Table
        from rich.text import Text

        title = "lazycheck simulate" + ("" if self.success else " (FAILED)")
        table = Table(title=title, show_lines=False)
        table.add_column("quantity")
        table.add_column("value", justify="right")
        table.add_column("what it is")
        for _key, name, value, kind in self.summary():
            table.add_row(name, fmt_value(value), kind)
        out: list[Any] = [table]
        if self.note:
            out.append(Text(f"note: {self.note}"))
        out.append(Text(self.message, style="green" if self.success else "bold red"))
        return out


def simulate(
    problem: Problem,
    *,
    progress: Progress | None = None,
    spectrum: Spectrum | None = None,
    **overrides: Any,
) -> SimulationResult:
    """Run both flows of ``problem`` with its ``[flow]`` settings and ``overrides`` (alpha,
    method, rtol, atol, horizon, decay, lr, n_times, checkpoints; None values are ignored).

    ``progress``: a rich Progress; a task is added and advanced as time advances.
    ``spectrum``: the spectrum of J at ``problem.w0`` when the caller has it already (verify
    does, from bound), so it is not computed twice.
    Raises LazycheckError for settings that cannot run (gd without lr or above the stability
    limit, no default horizon when sigma_min(J0) = 0). A solver that fails returns a result
    with ``success`` False, holding the trajectory up to the failure.
    """
    run = _plan(_apply_overrides(problem, overrides), spectrum)
    m = run.t.shape[0]
    fs = run.fs
    check_idx = np.unique(np.rint(np.linspace(1, m - 1, min(fs.checkpoints, m - 1))).astype(int))
    y, w0 = run.y, run.w0
    rec = _Recorder(m, check_idx, run.alpha, y, w0, run.lin0, run.lflow.residual(run.t))
    if problem.n >= MATRIX_FREE_MIN_N:
        rec.extremes = KernelExtremes(run.lflow.lam, run.lflow.Q)
    advance = _progress_callback(progress, run.method, run.t)
    if run.lr is not None:
        stats = gd_flow(
            problem.linearize, w0, y, run.alpha, run.lr, run.iterations, rec,
            lin0=run.lin0, progress=advance,
        )  # fmt: skip
    else:
        stats = integrate(
            problem.linearize, w0, y, run.alpha, run.alpha**2 * run.t, rec,
            method=run.method, rtol=fs.rtol, atol=fs.atol, lin0=run.lin0, progress=advance,
            eig0=(run.lflow.lam, run.lflow.Q),
        )  # fmt: skip
    return _result(problem, run, rec, check_idx, stats)


def save_npz(result: SimulationResult, problem: Problem, path: str | Path) -> None:
    """Write the run (data, w0, constants, every array) to a .npz file, atomically."""
    atomic_write(path, npz_writer(result, problem))


def npz_writer(result: SimulationResult, problem: Problem) -> Callable[[Path], None]:
    """A function writing the .npz file of :func:`save_npz` to the path it is given (for an
    output transaction, :class:`lazycheck.outputs.Outputs`)."""
    arrays: dict[str, Any] = {
        "format": np.array(_NPZ_FORMAT),
        "X": np.asarray(problem.X, dtype=np.float64),
        "y": np.asarray(problem.y, dtype=np.float64),
        "w0": np.asarray(problem.w0, dtype=np.float64),
        "tau": result.tau,
    }
    for f in dataclasses.fields(SimulationResult):
        value = getattr(result, f.name)
        if value is None:
            arrays[f.name] = np.array(np.nan)
            arrays[f"{f.name}__none"] = np.array(True)
        else:
            arrays[f.name] = np.asarray(value)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    return write


def load_npz(path: str | Path) -> SimulationResult:
    """Read a run written by :func:`save_npz` back into a :class:`SimulationResult`."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LazycheckError(f"{p}: not a readable .npz file ({exc})") from None
    with data:
        if "format" not in data.files or int(data["format"]) != _NPZ_FORMAT:
            raise LazycheckError(f"{p}: not a lazycheck simulate file (format {_NPZ_FORMAT})")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(SimulationResult):
            if f.name not in data.files:
                if _has_default(f):
                    continue  # a field added later: an older file leaves it at its default
                raise LazycheckError(f"{p}: missing array {f.name!r}")
            if f"{f.name}__none" in data.files:
                kwargs[f.name] = None
                continue
            value = data[f.name]
            if f.name in ARRAY_FIELDS:
                kwargs[f.name] = np.array(value, dtype=np.float64)
            elif value.dtype.kind == "U":
                kwargs[f.name] = str(value)
            elif value.dtype.kind == "b":
                kwargs[f.name] = bool(value)
            elif value.dtype.kind in "iu":
                kwargs[f.name] = int(value)
            else:
                kwargs[f.name] = float(value)
    return SimulationResult(**kwargs)


def save_csv(result: SimulationResult, path: str | Path) -> None:
    """Write one row per grid time (``jdiff`` only on checkpoint rows), atomically.

    Numbers are written with 17 significant digits, so they parse back exactly."""
    atomic_write(path, csv_text(result))


def csv_text(result: SimulationResult) -> str:
    """The text of :func:`save_csv`."""
    cols = ("t", "tau", *GRID_FIELDS[1:], "jdiff")
    jd = {float(tc): float(v) for tc, v in zip(result.t_check, result.jdiff, strict=True)}
    tau = result.tau
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for i in range(result.t.shape[0]):
        ti = float(result.t[i])
        row = [ti, float(tau[i]), *(float(getattr(result, c)[i]) for c in GRID_FIELDS[1:])]
        row.append(jd.get(ti, math.nan))
        writer.writerow([_num(v) for v in row])
    return buf.getvalue()


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Plan:
    """What :func:`simulate` runs: the resolved settings, the constants at w0, the grid."""

    fs: FlowSpec
    alpha: float
    method: str
    note: str
    y: Array
    w0: Array
    lin0: Linearization
    spec: Spectrum
    lflow: LinearFlow
    L0: float
    t_end: float
    rule: str
    t: Array
    lr: float | None
    gd_limit: float | None
    iterations: Array


def _plan(problem: Problem, spectrum: Spectrum | None) -> _Plan:
    """Resolve the method, compute the constants at w0 and the output grid; refuse settings
    that cannot run (:func:`simulate`)."""
    fs = problem.spec.flow
    alpha, method = float(fs.alpha), fs.method
    if method not in ("auto", EXP_METHOD, *SCIPY_METHODS, "gd"):
        raise LazycheckError(f"unknown method {method!r}")
    _refuse_non_smooth(problem, method)
    _require_memory(problem, fs)
    y = np.asarray(problem.y, dtype=np.float64)
    w0 = np.asarray(problem.w0, dtype=np.float64)
    lin0 = problem.linearize(w0)
    spec = spectrum if spectrum is not None else jacobian_spectrum(lin0, problem.p)
    lflow = linear_flow(lin0, y, alpha)
    lam_max = float(lflow.lam[-1])
    note = ""
    if method == "auto":
        method, fs, note = _resolve_auto(problem, fs, alpha, lam_max)
    t_end, rule = _horizon(fs, alpha, float(spec.sigma_min), spec.ok, spec.message)
    _check_horizon(t_end, alpha, spec)
    _check_cost(method, alpha**2 * lam_max * t_end, problem)
    t = _time_grid(t_end, alpha, lam_max, fs.n_times)
    gd_limit: float | None = None
    lr: float | None = None
    iterations = np.zeros(0, dtype=np.int64)
    if method == "gd":
        gd_limit = check_lr(fs.lr, alpha, lam_max)
        assert fs.lr is not None  # check_lr raised otherwise
        lr = float(fs.lr)
        iterations, t = gd_grid(t, lr)
    L0 = 0.5 * float(lflow.r0 @ lflow.r0)
    return _Plan(
        fs, alpha, method, note, y, w0, lin0, spec, lflow, L0, t_end, rule, t, lr, gd_limit,
        iterations,
    )  # fmt: skip


def _result(
    problem: Problem, run: _Plan, rec: _Recorder, check_idx: Array, stats: FlowStats
) -> SimulationResult:
    """The :class:`SimulationResult` of a finished (or failed) run."""
    message = stats.message
    if not stats.success and not problem.model.smooth:
        message += (
            "; the model is not smooth: its Jacobian jumps where a unit switches, so the flow "
            "can slide along a switch and no ODE solver gets far (nor does the theorem "
            "apply); --method gd with --lr still runs"
        )
    alpha, t, lflow, L0 = run.alpha, run.t, run.lflow, run.L0
    sigma_min, sigma_max = float(run.spec.sigma_min), float(run.spec.sigma_max)
    k = t.shape[0] if stats.success else rec.count  # grid times recorded
    tk = t[:k]
    keep = check_idx < k
    if run.spec.ok and sigma_min > 0:  # else Assumption 1 fails and the radii are infinite
        b_prime = radius_b_prime(alpha, L0, sigma_min, sigma_max)
        b_lin = radius_b_lin(alpha, L0, sigma_min, sigma_max)
    else:
        b_prime = b_lin = math.inf
    return SimulationResult(
        success=stats.success,
        status=stats.status,
        message=message,
        alpha=alpha,
        method=run.method,
        rtol=float(run.fs.rtol),
        atol=float(run.fs.atol),
        lr=run.lr,
        horizon=run.t_end,
        horizon_rule=run.rule,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        sigma_method=run.spec.method,
        L0=L0,
        loss_floor=0.5 * rec.floor**2,
        B_prime=b_prime,
        B_prime_lin=b_lin,
        gd_stability_limit=run.gd_limit,
        t=tk.copy(),
        loss=rec.loss[:k].copy(),
        loss_lin=lflow.loss(tk),
        bound=L0 * np.exp(-(alpha**2) * sigma_min**2 * tk / 2.0),
        disp=rec.disp[:k].copy(),
        disp_lin=lflow.displacement_norm(tk),
        gap=rec.gap[:k].copy(),
        sigma_min_t=rec.smin[:k].copy(),
        sigma_max_t=rec.smax[:k].copy(),
        t_check=t[check_idx[keep]].copy(),
        jdiff=rec.jdiff[keep].copy(),
        w_final=rec.w_last,
        u_final=run.w0 + lflow.displacement(float(tk[-1]) if k else 0.0),
        nfev=stats.nfev + 1,  # + the evaluation at w0
        nfev_output=stats.nfev_output,
        n_products=stats.n_products,
        n_steps=stats.n_steps,
        n_rejected=stats.n_rejected,
        wall_time=stats.wall_time,
        note=run.note,
        lin_gap=rec.lin_gap[:k].copy(),
        sigma_path=rec.sigma_path,
    )


class _Recorder:
    """Collects the grid quantities as the integrator reaches each output time."""

    def __init__(
        self,
        m: int,
        check_idx: Array,
        alpha: float,
        y: Array,
        w0: Array,
        lin0: Linearization,
        r_lin: Array,
    ) -> None:
        self.alpha, self.y, self.w0, self.lin0, self.r_lin = alpha, y, w0, lin0, r_lin
        self.check_pos = {int(i): k for k, i in enumerate(check_idx)}
        self.loss = np.full(m, np.nan)
        self.disp = np.full(m, np.nan)
        self.gap = np.full(m, np.nan)
        self.lin_gap = np.full(m, np.nan)
        self.smin = np.full(m, np.nan)
        self.smax = np.full(m, np.nan)
        self.jdiff = np.full(len(self.check_pos), np.nan)
        self.count = 0
        self.w_last = w0.copy()
        self.signs = probe_signs(w0.shape[0])
        self.lin_last: Linearization | None = None
        #: sigma's and ||J_w - J0|| along the path matrix-free (None: from formed kernels)
        self.extremes: KernelExtremes | None = None
        self._jdiff_vec: Array | None = None

    def __call__(self, i: int, w: Array, lin: Linearization, lam: Array | None) -> None:
        r = self.alpha * lin.f - self.y
        self.loss[i] = 0.5 * float(r @ r)
        self.disp[i] = float(np.linalg.norm(w - self.w0))
        self.gap[i] = float(np.linalg.norm(r - self.r_lin[i]))
        taylor = lin.f - self.lin0.f - self.lin0.jvp(w - self.w0)
        self.lin_gap[i] = self.alpha * float(np.linalg.norm(taylor))
        if lam is not None:
            lo, hi = float(lam[0]), float(lam[-1])
        elif self.extremes is not None:
            ext = self.extremes(lin)
            lo, hi = ext.lam_min, ext.lam_max
        else:
            kv = sym_eigvals(lin.kernel())
            lo, hi = float(kv[0]), float(kv[-1])
        self.smin[i] = math.sqrt(max(lo, 0.0))
        self.smax[i] = math.sqrt(max(hi, 0.0))
        k = self.check_pos.get(i)
        if k is not None:
            self.jdiff[k] = self._jdiff(lin)
        self.count = max(self.count, i + 1)
        self.w_last = np.array(w, dtype=np.float64, copy=True)
        self.lin_last = lin

    def _jdiff(self, lin: Linearization) -> float:
        """||J_w - J0||: from the difference kernel, or matrix-free where the sigma's are
        (Lanczos warm-started from the last checkpoint's vector, to :data:`JDIFF_TOL`)."""
        if self.extremes is None:
            dk = lin.difference_kernel(self.lin0)
            return math.sqrt(max(float(sym_eigvals(0.5 * (dk + dk.T))[-1]), 0.0))
        if self._jdiff_vec is None:
            self._jdiff_vec = np.ones(self.y.shape[0]) / math.sqrt(self.y.shape[0])
        value, self._jdiff_vec = difference_norm(lin, self.lin0, self._jdiff_vec, JDIFF_TOL)
        return value

    @property
    def sigma_path(self) -> str:
        """How the sigma's along the path were computed (:attr:`SimulationResult.sigma_path`)."""
        ext = self.extremes
        if ext is None:
            return "eigenvalues of the kernel K_w formed at each time (dense)"
        fell = f", {ext.fallbacks} times dense" if ext.fallbacks else ""
        return (
            f"matrix-free (Davidson on K_w v = J_w J_w^T v modelled on K0, {ext.products} "
            f"products{fell}); relative error <= {0.5 * ext.max_rel_err:.1e} (estimated); "
            f"||J_w - J0|| by Lanczos to residual {JDIFF_TOL:g}"
        )

    @property
    def floor(self) -> float:
        """The residual's rounding floor at the last time recorded (0 before any)."""
        if self.lin_last is None:
            return 0.0
        return residual_floor(self.lin_last, self.w_last, self.alpha, self.y, self.signs)


def _resolve_auto(
    problem: Problem, fs: FlowSpec, alpha: float, lam_max: float
) -> tuple[str, FlowSpec, str]:
    """``auto``: the exponential integrator for a smooth model; for a non-smooth one (relu)
    gradient descent, since its flow slides along activation switches where no ODE solver gets
    far, at ``lr`` or half the stability limit 2 / (alpha^2 lambda_max(K0))."""
    if problem.model.smooth:
        return EXP_METHOD, fs, ""
    lr = fs.lr if fs.lr is not None else 1.0 / (alpha**2 * lam_max)
    note = (
        f"{problem.smoothness}, so the flow is approximated by "
        f"gradient descent with lr = {lr:.4g}"
        + ("" if fs.lr is not None else " (half the stability limit)")
    )
    return "gd", dataclasses.replace(fs, method="gd", lr=lr), note


def _refuse_non_smooth(problem: Problem, method: str) -> None:
    """An ODE method on a non-smooth model cannot succeed: its Jacobian jumps where a unit
    switches, the flow slides along the switch and the step size collapses (the run would
    spend its whole step budget, minutes, before failing). Refused up front."""
    if problem.model.smooth or method in ("auto", "gd"):
        return
    raise LazycheckError(
        f"--method / [flow].method = {method}: the model ({problem.model.describe()}) is not "
        "smooth, so its gradient flow has no ODE solution that an integrator's error control "
        "can follow (the Jacobian jumps where a unit switches); use --method gd with --lr, "
        "or auto (gradient descent at half the stability limit)"
    )


def _require_memory(problem: Problem, fs: FlowSpec) -> None:
    """Refuse a run whose dense kernel or recorded trajectories would not fit."""
    from lazycheck.resources import FLOAT_BYTES, require, require_kernel

    require_kernel(problem.n, "simulate (the linear flow and the integrator decompose K)")
    m = fs.n_times + 1
    require(
        FLOAT_BYTES * m * (problem.n + 4 * len(GRID_FIELDS)),
        f"the recorded trajectories ([flow].n_times = {fs.n_times} times, n = {problem.n})",
        "reduce [flow].n_times",
    )


def _check_horizon(t_end: float, alpha: float, spectrum: Spectrum) -> None:
    """Refuse a horizon past the time at which every mode of the flow that moves at all has
    decayed by e^-DECAY_MAX: the bound L0 exp(-alpha^2 sigma_min^2 t / 2) has underflowed to
    0, the losses sit at their rounding floor, and the integrator would only spend steps (its
    budget, a minute or more) to show nothing new."""
    from lazycheck.spec import DECAY_MAX

    s = np.asarray(getattr(spectrum, "singular_values", [spectrum.sigma_min]), dtype=float)
    moving = s[s > getattr(spectrum, "tol", 0.0)]
    if moving.size == 0:
        return  # J0 = 0: nothing moves, any horizon is cheap
    rate = alpha**2 * float(moving.min()) ** 2 / 2.0
    if rate > 0 and rate * t_end > DECAY_MAX * (1 + 1e-9):  # decay = DECAY_MAX itself passes
        t_max = DECAY_MAX / rate
        raise LazycheckError(
            f"--horizon / [flow].horizon = {t_end:.6g}: by t = {t_max:.6g} the slowest mode of "
            f"the flow has decayed by e^-{DECAY_MAX:g} (alpha^2 sigma^2 t / 2 = {DECAY_MAX:g} "
            f"for its sigma = {float(moving.min()):.3g}; Theorem 2's bound underflows to 0), so "
            f"a longer run shows nothing more; give a horizon <= {t_max:.6g}"
        )


#: explicit scipy methods: (stages per step, stability interval on the negative real axis)
_EXPLICIT = {"RK45": (6, 3.3), "DOP853": (12, 6.0)}


def _check_cost(method: str, stiff_time: float, problem: Problem) -> None:
    """Refuse a scipy run that cannot finish within its evaluation budget or memory.

    An explicit method is stable only for steps h <= c / lambda_max(alpha^2 K) in t (c its
    stability interval), so it needs at least alpha^2 lambda_max t_end / c steps, each of
    ``stages`` evaluations, whatever its tolerance: with cond(K) large that is hours. An
    implicit method forms a dense (p + n) x (p + n) Jacobian and its LU factors."""
    from lazycheck.numerics.flow import SCIPY_MAX_NFEV

    if method in _EXPLICIT:
        stages, reach = _EXPLICIT[method]
        need = stages * stiff_time / reach
        if need > SCIPY_MAX_NFEV:
            raise LazycheckError(
                f"--method / [flow].method = {method}: an explicit method needs at least "
                f"{need:.3g} model evaluations here (stable steps <= {reach:g} / (alpha^2 "
                f"lambda_max(K0)) over alpha^2 lambda_max t_end = {stiff_time:.3g}), over its "
                f"budget of {SCIPY_MAX_NFEV}; use --method exp (the default, unaffected by "
                "stiffness), Radau or BDF, or shorten --horizon"
            )
    elif method in ("LSODA", "Radau", "BDF"):
        from lazycheck.resources import FLOAT_BYTES, require

        size = problem.p + problem.n
        require(
            3 * FLOAT_BYTES * size**2,
            f"--method {method}: its dense Jacobian ({size} x {size}, p + n)",
            "use --method exp",
        )


def _apply_overrides(problem: Problem, overrides: dict[str, Any]) -> Problem:
    o = {k: v for k, v in overrides.items() if v is not None}
    if not o:
        return problem
    spec = problem.spec
    extra = {k: o.pop(k) for k in ("n_times", "checkpoints") if k in o}
    if o:
        spec = spec.with_overrides(**o)
    if extra:
        for key, low in (("n_times", 10), ("checkpoints", 2)):
            v = extra.get(key)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or not low <= v <= MAX_TIMES
            ):
                raise LazycheckError(
                    f"{key}: must be an integer in [{low}, {MAX_TIMES}], got {v!r}"
                )
        spec = dataclasses.replace(spec, flow=dataclasses.replace(spec.flow, **extra))
    return dataclasses.replace(problem, spec=spec)


def _horizon(
    fs: FlowSpec, alpha: float, sigma_min: float, rank_ok: bool, rank_message: str
) -> tuple[float, str]:
    """t_end and how it was chosen (module docstring)."""
    if fs.horizon is not None:
        return float(fs.horizon), "given (horizon)"
    if not rank_ok or sigma_min <= 0:
        raise LazycheckError(
            f"sigma_min(J0) = {sigma_min:.3g} ({rank_message}); the default horizon "
            "2 decay/(alpha^2 sigma_min^2) is undefined: give --horizon or [flow].horizon"
        )
    t_end = 2.0 * fs.decay / (alpha**2 * sigma_min**2)
    if not (math.isfinite(t_end) and t_end > 0):
        raise LazycheckError(
            f"the default horizon 2 decay/(alpha^2 sigma_min^2) = {t_end!r} is not a positive "
            "finite number; give --horizon or [flow].horizon"
        )
    return t_end, f"bound fell by exp(-{fs.decay:g}): 2 decay/(alpha^2 sigma_min^2)"


def _time_grid(t_end: float, alpha: float, lam_max: float, n_times: int) -> Array:
    """0 and n_times log-spaced times from t_min to t_end (module docstring)."""
    t_min = t_end / 1000.0
    if lam_max > 0:
        t_min = min(t_min, 0.01 / (alpha**2 * lam_max))
    return np.concatenate([[0.0], np.geomspace(t_min, t_end, n_times)])


def _progress_callback(
    progress: Progress | None, method: str, t: Array
) -> Callable[[int], None] | None:
    if progress is None:
        return None
    total = t.shape[0] - 1
    task = progress.add_task(f"simulate ({method})", total=max(total, 1))

    def advance(i: int) -> None:
        progress.update(task, completed=i, description=f"simulate ({method}) t = {t[i]:.3g}")

    return advance


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _num(v: float) -> str:
    if math.isnan(v):
        return ""
    return repr(float(v)) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
