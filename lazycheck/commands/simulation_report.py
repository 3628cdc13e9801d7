"""The report of a simulation: its summary table (each number with what it is), its JSON form
and the formatting of its values. Split from :mod:`lazycheck.commands.simulate`, whose
:class:`SimulationResult` methods ``summary`` and ``to_dict`` delegate here."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lazycheck.commands.simulate import SimulationResult

__all__ = [
    "ARRAY_FIELDS",
    "EXACT",
    "GRID_FIELDS",
    "finite_max",
    "finite_min",
    "fmt_value",
    "result_dict",
    "summary_rows",
]

Array = np.ndarray
#: trajectory arrays on the output grid (one value per grid time)
GRID_FIELDS = (
    "t",
    "loss",
    "loss_lin",
    "bound",
    "disp",
    "disp_lin",
    "gap",
    "sigma_min_t",
    "sigma_max_t",
)
#: every array a result holds
ARRAY_FIELDS = (*GRID_FIELDS, "t_check", "jdiff", "w_final", "u_final", "lin_gap")
EXACT = "exact (closed form)"
_EXACT = EXACT


def summary_rows(res: SimulationResult) -> list[tuple[str, str, Any, str]]:
    """Rows (key, quantity, value, what it is) of the summary table."""
    comp = res.computed_label
    pos = (res.t > 0) & (res.bound > 0)
    ratio = finite_max(res.loss[pos] / res.bound[pos])
    ratio_lin = finite_max(res.loss_lin[pos] / res.bound[pos])
    rows: list[tuple[str, str, Any, str]] = [
        ("method", "method", res.method, "integrator of the nonlinear flow"),
        ("alpha", "alpha", res.alpha, "output scale (input)"),
        ("horizon", "t_end", res.horizon, res.horizon_rule),
        ("sigma_min", "sigma_min(J0)", res.sigma_min, f"computed ({res.sigma_method})"),
        ("sigma_max", "sigma_max(J0)", res.sigma_max, f"computed ({res.sigma_method})"),
        ("L0", "L0", res.L0, "computed (model at w0)"),
        (
            "loss_floor",
            "loss rounding floor",
            res.loss_floor,
            "computed: losses below it are float64 rounding noise",
        ),
        (
            "t_last",
            "last time recorded",
            float(res.t[-1]),
            comp if not res.success else "= t_end (for gd: rounded up to a whole iterate)",
        ),
        (
            "bound_end",
            "bound at last time",
            float(res.bound[-1]),
            "Theorem 2: L0 exp(-alpha^2 sigma_min^2 t / 2)",
        ),
        (
            "final_loss",
            "loss at last time, nonlinear",
            res.final_loss,
            comp + ("; at the rounding floor: not resolved" if res.final_loss_unresolved else ""),
        ),
        ("final_loss_lin", "loss at last time, linear", res.final_loss_lin, _EXACT),
        (
            "max_loss_over_bound",
            "max_t loss / bound",
            ratio,
            f"{comp}; over t > 0; <= 1 when Theorem 2's bound holds",
        ),
        (
            "max_loss_lin_over_bound",
            "max_t loss_lin / bound",
            ratio_lin,
            f"{_EXACT}; over t > 0; <= 1 when Theorem 2's bound holds",
        ),
    ]
    rows += _trajectory_rows(res, comp)
    if res.gd_stability_limit is not None:
        rows.append(("lr", "lr", res.lr, "gradient-descent learning rate (input)"))
        rows.append(
            (
                "gd_stability_limit",
                "lr stability limit",
                res.gd_stability_limit,
                "exact: 2/(alpha^2 lambda_max(K0))",
            )
        )
    rej = "not reported by scipy" if res.n_rejected < 0 else res.n_rejected
    rows += [
        (
            "nfev",
            "model evaluations",
            res.nfev,
            f"forward+backward passes ({res.nfev_output} only to record output)",
        ),
        ("n_steps", "steps", res.n_steps, "accepted steps (gd: iterations)"),
        ("n_rejected", "rejected steps", rej, "step-size control"),
        ("wall_time", "wall time [s]", res.wall_time, "integration and recording"),
    ]
    return rows


def result_dict(res: SimulationResult) -> dict[str, Any]:
    """Summary (each number with what it is) and every array, JSON-ready."""
    return {
        "success": res.success,
        "status": res.status,
        "message": res.message,
        "note": res.note,
        "sigma_path": res.sigma_path,
        "settings": {
            "alpha": res.alpha,
            "method": res.method,
            "rtol": res.rtol,
            "atol": res.atol,
            "lr": res.lr,
            "horizon": res.horizon,
            "horizon_rule": res.horizon_rule,
        },
        "summary": {
            key: {"quantity": name, "value": _plain(value), "kind": kind}
            for key, name, value, kind in summary_rows(res)
        },
        "arrays": {name: getattr(res, name) for name in ARRAY_FIELDS},
        "array_kinds": {
            name: (
                _EXACT
                if name in ("loss_lin", "disp_lin", "bound", "u_final", "t")
                else res.computed_label
            )
            for name in ARRAY_FIELDS
        },
        "counts": {
            "nfev": res.nfev,
            "nfev_output": res.nfev_output,
            "n_products": res.n_products,
            "n_steps": res.n_steps,
            "n_rejected": res.n_rejected,
        },
    }


def finite_max(a: Array) -> float:
    """The largest finite entry (nan when there is none)."""
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else math.nan


def finite_min(a: Array) -> float:
    """The smallest finite entry (nan when there is none)."""
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.min()) if a.size else math.nan


def fmt_value(v: Any) -> str:
    """A summary value as the table prints it."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return str(v)


def _trajectory_rows(res: SimulationResult, comp: str) -> list[tuple[str, str, Any, str]]:
    """The rows on the trajectory: radii against displacements, the gap, sigma's along it."""
    return [
        (
            "B_prime",
            "B'",
            res.B_prime,
            "Theorem 2: 3 sqrt(8 sigma_max^2 L0)/(alpha sigma_min^2)",
        ),
        ("max_disp", "max_t ||w(t) - w0||", finite_max(res.disp), f"{comp}; <= B'"),
        (
            "B_prime_lin",
            "B'_lin",
            res.B_prime_lin,
            "linear model: sqrt(2 sigma_max^2 L0)/(alpha sigma_min^2)",
        ),
        (
            "max_disp_lin",
            "max_t ||u(t) - u0||",
            finite_max(res.disp_lin),
            f"{_EXACT}; <= B'_lin",
        ),
        (
            "max_gap",
            "max_t ||alpha f(w) - alpha f0(u)||",
            finite_max(res.gap),
            f"{comp} against the exact linear flow",
        ),
        (
            "min_sigma_min_t",
            "min_t sigma_min(J_w(t))",
            finite_min(res.sigma_min_t),
            f"{comp}; {_path(res)}Lemma 6: >= sigma_min/2 = {res.sigma_min / 2:.6g}",
        ),
        (
            "max_sigma_max_t",
            "max_t sigma_max(J_w(t))",
            finite_max(res.sigma_max_t),
            f"{comp}; {_path(res)}Lemma 6: <= 3 sigma_max/2 = {1.5 * res.sigma_max:.6g}",
        ),
        (
            "max_jdiff",
            "max ||J_w(t) - J0||",
            finite_max(res.jdiff),
            f"{comp}, at {res.t_check.shape[0]} checkpoints",
        ),
    ]


def _path(res: SimulationResult) -> str:
    """How the sigma's along the path were computed, when it is not the dense kernel."""
    return f"{res.sigma_path}; " if res.sigma_path.startswith("matrix-free") else ""


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
