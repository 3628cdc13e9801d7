"""Figures of a simulation run (matplotlib, imported only when a figure is drawn).

:func:`plot_run` draws, under a banner that states the verdict, three panels against time t
(log scale, t > 0):

1. the losses of the nonlinear and the linear flow under Theorem 2's envelope
   L0 exp(-alpha^2 sigma_min^2 t / 2) (the region it allows shaded), and Lemma 4's faster
   linear rate L0 exp(-2 alpha^2 sigma_min^2 t);
2. the displacements ||w(t) - w0|| and ||u(t) - u0|| against Theorem 2's radius B', the
   linear model's radius B'_lin and the radius B = sigma_min / (2 beta) of the ball on which
   beta holds: the hypothesis B' <= B is visible, and shaded red when it fails;
3. the band [sigma_min(J_w(t)), sigma_max(J_w(t))] against Lemma 6's limits sigma_min/2 and
   3 sigma_max/2 (the region between them shaded), always on a log axis: values at or below
   the axis floor (a collapsed sigma_min) are drawn on the floor and the legend says so.

Every point where a bound is violated (beyond the tolerance ``verify`` uses) is marked with a
red cross. The banner needs a :class:`~lazycheck.commands.verify.VerifyReport` of the run
(``run_verify(problem, simulation=run)``; ``lazycheck simulate --plot`` computes it): alpha
against alpha_min, B' against B, and the verdict, coloured green (pass), orange (the
hypothesis is unmet: the theorem promises nothing) or red (a check failed, or the solver).

The figure is built with matplotlib's object API on the Agg canvas (no pyplot, no global state)
and returned; given a path it is also written atomically, the suffix (.png, .svg or .pdf)
picking the format.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.jsonio import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lazycheck.commands.simulate import SimulationResult
    from lazycheck.commands.verify import VerifyReport

__all__ = ["PLOT_SUFFIXES", "VERDICT_COLORS", "figure_writer", "plot_run"]

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
VERDICT_COLORS = {
    "pass": "tab:green",
    "unguaranteed": "darkorange",
    "fail": "tab:red",
    "error": "tab:red",
    "none": "dimgray",
}
_VIOLATION = {"color": "red", "lw": 3.2, "alpha": 0.85, "zorder": 5}
_LEGEND = {"fontsize": 7.5, "loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncols": 1}


def plot_run(
    result: SimulationResult,
    path: str | Path | None = None,
    report: VerifyReport | None = None,
) -> Figure:
    """Draw the figure of the module docstring; write it to ``path`` (.png, .svg or .pdf)
    when given, and return it.

    ``report``: the verify report of this run, for the verdict, alpha_min and B (without
    it the banner says that no verdict was computed).
    """
    if path is not None:
        _check_suffix(path)
    fig = _figure(result, report)
    if path is not None:
        atomic_write(path, _writer(fig, path))
    return fig


def figure_writer(
    result: SimulationResult, path: str | Path, report: VerifyReport | None = None
) -> Callable[[Path], None]:
    """Draw the figure now; return a function writing it, in the format of ``path``'s
    suffix, to the path it is given (for an output transaction, :mod:`lazycheck.outputs`)."""
    _check_suffix(path)
    return _writer(_figure(result, report), path)


# ----------------------------------------------------------------------------- helpers


def _check_suffix(path: str | Path) -> None:
    target = Path(path)
    if target.suffix.lower() not in PLOT_SUFFIXES:
        raise LazycheckError(
            f"{target}: unsupported figure type {target.suffix or '(none)'!r}; "
            f"use {', '.join(PLOT_SUFFIXES)}"
        )


def _writer(fig: Figure, path: str | Path) -> Callable[[Path], None]:
    fmt = Path(path).suffix.lower().lstrip(".")

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            fig.savefig(fh, format=fmt, dpi=130, metadata=_metadata(fmt))

    return write


def _figure(result: SimulationResult, report: VerifyReport | None) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15.0, 7.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplot_mosaic([["verdict"] * 3, ["loss", "disp", "sig"]], height_ratios=[0.15, 1.0])
    t = np.asarray(result.t)
    pos = t > 0
    tol = _tolerances(result, report)
    _loss_panel(axes["loss"], result, pos, tol)
    _disp_panel(axes["disp"], result, pos, tol, report)
    _sigma_panel(axes["sig"], result, pos, tol)
    for name in ("loss", "disp", "sig"):
        axes[name].grid(True, which="major", alpha=0.3)
        axes[name].set_xlabel("t")
        axes[name].set_xscale("log")
    _banner(axes["verdict"], result, report)
    return fig


def _tolerances(result: SimulationResult, report: VerifyReport | None) -> dict[str, float]:
    """The tolerances ``verify`` compares with (its defaults when there is no report)."""
    from lazycheck.commands.checks import default_tolerances

    y_norm = math.sqrt(max(2.0 * float(result.loss_lin[0]), 0.0)) if len(result.loss_lin) else 0
    rtol, rtol_lin, atol = default_tolerances(result.rtol, result.L0, y_norm)
    tol = {"rtol": rtol, "rtol_linear": rtol_lin, "atol_loss": max(atol, 10 * result.loss_floor)}
    if report is not None:
        tol.update({k: v for k, v in report.tolerances.items() if k in tol})
    return tol


def _loss_panel(ax: Axes, result: SimulationResult, pos: np.ndarray, tol: dict) -> None:
    tp = np.asarray(result.t)[pos]
    bound = np.asarray(result.bound)[pos]
    loss, loss_lin = np.asarray(result.loss)[pos], np.asarray(result.loss_lin)[pos]
    floor = _positive_floor(loss, loss_lin, bound)
    a2s2 = result.alpha**2 * result.sigma_min**2
    ax.fill_between(
        tp, floor, bound, color="tab:gray", alpha=0.15, lw=0, label="allowed by Theorem 2"
    )
    ax.plot(
        tp, bound, color="black", lw=1.6, label=r"Theorem 2: $L_0e^{-\alpha^2\sigma_{\min}^2t/2}$"
    )
    ax.plot(
        tp,
        result.L0 * np.exp(-2.0 * a2s2 * tp),
        color="black",
        lw=1.0,
        ls=":",
        label=r"Lemma 4 (linear): $L_0e^{-2\alpha^2\sigma_{\min}^2t}$",
    )
    ax.plot(
        tp,
        np.maximum(loss, floor),
        color="tab:blue",
        lw=1.8,
        label=r"nonlinear $L(\alpha f(w(t)))$",
    )
    ax.plot(
        tp,
        np.maximum(loss_lin, floor),
        color="tab:orange",
        lw=1.4,
        ls="--",
        label=r"linear $L(\alpha f_0(u(t)))$",
    )
    # Lemma 4 for the nonlinear flow with the observed lambda(s) = alpha^2 sigma_min(J_s)^2
    lam_inf = result.alpha**2 * np.minimum.accumulate(np.asarray(result.sigma_min_t) ** 2)[pos]
    lemma4 = result.L0 * np.exp(-2.0 * lam_inf * tp)
    ax.plot(tp, np.maximum(lemma4, floor), color="tab:blue", lw=0.9, ls="-.",
            label=r"Lemma 4 (nonlinear, observed $\lambda$)")  # fmt: skip
    bad = loss > bound * (1 + tol["rtol"]) + tol["atol_loss"]
    _mark(ax, tp, np.maximum(loss, floor), bad, "above Theorem 2's bound")
    bad4 = (loss > lemma4 * (1 + tol["rtol"]) + tol["atol_loss"]) & ~bad
    _mark(ax, tp, np.maximum(loss, floor), bad4, "above Lemma 4 (observed lambda)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_title("loss")
    ax.legend(**_LEGEND)


def _disp_panel(
    ax: Axes,
    result: SimulationResult,
    pos: np.ndarray,
    tol: dict,
    report: VerifyReport | None,
) -> None:
    tp = np.asarray(result.t)[pos]
    disp, disp_lin = np.asarray(result.disp)[pos], np.asarray(result.disp_lin)[pos]
    ax.plot(tp, disp, color="tab:blue", lw=1.8, label=r"$\|w(t)-w_0\|$")
    ax.plot(tp, disp_lin, color="tab:orange", lw=1.4, ls="--", label=r"$\|u(t)-u_0\|$")
    Bp = result.B_prime
    levels = [v for v in (Bp, result.B_prime_lin) if math.isfinite(v) and v > 0]
    for value, style, label in (
        (Bp, "-", f"Theorem 2: B' = {Bp:.3g}"),
        (result.B_prime_lin, ":", f"linear: B'_lin = {result.B_prime_lin:.3g}"),
    ):
        if math.isfinite(value) and value > 0:
            ax.axhline(value, color="black", lw=1.2, ls=style, label=label)
        else:
            ax.plot([], [], " ", label=f"{label} (not drawn)")
    B, basis = _radius_B(report)
    if math.isfinite(B) and B > 0:
        levels.append(B)
        ax.axhline(
            B,
            color="tab:green",
            lw=1.6,
            ls="--",
            label=rf"B = $\sigma_{{\min}}/(2\beta)$ = {B:.3g} ($\beta$ {basis})",
        )
        if math.isfinite(Bp) and Bp > B:
            ax.axhspan(B, Bp, color="tab:red", alpha=0.12, lw=0, label="B' > B: hypothesis fails")
    elif report is not None:
        ax.plot([], [], " ", label=f"B = {B:.3g}: no ball on which beta holds")
    bad = disp > Bp * (1 + tol["rtol"]) if math.isfinite(Bp) else np.zeros(disp.shape, bool)
    _mark(ax, tp, disp, bad, "beyond B'")
    if np.any(disp > 0) or levels:
        ax.set_yscale("log")
        shown = np.concatenate([disp[disp > 0], disp_lin[disp_lin > 0], levels])
        if shown.size:
            ax.set_ylim(shown.min() / 3.0, shown.max() * 3.0)
    ax.set_title("distance from initialization")
    ax.legend(**_LEGEND)


def _sigma_panel(ax: Axes, result: SimulationResult, pos: np.ndarray, tol: dict) -> None:
    tp = np.asarray(result.t)[pos]
    smin_t, smax_t = np.asarray(result.sigma_min_t)[pos], np.asarray(result.sigma_max_t)[pos]
    lo_lim, hi_lim = 0.5 * result.sigma_min, 1.5 * result.sigma_max
    positive = np.concatenate([smin_t[smin_t > 0], smax_t[smax_t > 0], [lo_lim, hi_lim]])
    positive = positive[np.isfinite(positive) & (positive > 0)]
    top = float(positive.max()) if positive.size else 1.0
    floor = float(positive.min()) / 12.0 if positive.size else top * 1e-6
    if np.any(smin_t <= 0):  # a collapsed sigma_min: leave room to see it fall
        floor = min(floor, top * 1e-4)
    lo_shown, hi_shown = np.maximum(smin_t, floor), np.maximum(smax_t, floor)
    ax.fill_between(
        tp, lo_shown, hi_shown, color="tab:blue", alpha=0.25, lw=0,
        label=r"$[\sigma_{\min}(J_{w(t)}), \sigma_{\max}(J_{w(t)})]$",
    )  # fmt: skip
    ax.plot(tp, lo_shown, color="tab:blue", lw=1.2)
    ax.plot(tp, hi_shown, color="tab:blue", lw=1.2)
    if lo_lim > 0 and math.isfinite(hi_lim):
        ax.axhspan(lo_lim, hi_lim, color="tab:green", alpha=0.07, lw=0, label="allowed by Lemma 6")
    ax.axhline(
        hi_lim, color="black", lw=1.2, label=rf"Lemma 6: $3\sigma_{{\max}}/2$ = {hi_lim:.3g}"
    )
    if lo_lim > 0:
        ax.axhline(
            lo_lim,
            color="black",
            lw=1.2,
            ls="--",
            label=rf"Lemma 6: $\sigma_{{\min}}/2$ = {lo_lim:.3g}",
        )
    else:
        ax.plot([], [], " ", label=r"Lemma 6: $\sigma_{\min}/2$ = 0 (rank J0 < n)")
    if np.any(smin_t <= floor):
        ax.plot(
            [],
            [],
            " ",
            label=rf"$\sigma_{{\min}}(J) \leq$ {floor:.2g} at "
            f"{int(np.sum(smin_t <= floor))} points: drawn at the floor",
        )
    _mark(ax, tp, lo_shown, smin_t < lo_lim * (1 - tol["rtol"]), "sigma_min below its limit")
    _mark(ax, tp, hi_shown, smax_t > hi_lim * (1 + tol["rtol"]), "sigma_max above its limit")
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.5, top * 2.5)
    ax.set_title(r"singular values of $J_{w(t)}$")
    ax.legend(**_LEGEND)


def _mark(ax: Axes, x: np.ndarray, y: np.ndarray, bad: np.ndarray, what: str) -> None:
    """Draw the stretches of the curve (x, y) where ``bad`` holds in red, isolated points as
    crosses."""
    if not bad.any():
        return
    label = f"VIOLATED: {what} ({int(bad.sum())} of {bad.size})"
    ax.plot(x, np.where(bad, y, np.nan), label=label, **_VIOLATION)
    lone = bad & ~np.r_[False, bad[:-1]] & ~np.r_[bad[1:], False]
    if lone.any():
        ax.plot(x[lone], y[lone], ls="none", marker="x", ms=6, mew=1.6, color="red", zorder=5)


def _radius_B(report: VerifyReport | None) -> tuple[float, str]:
    if report is None:
        return math.nan, ""
    basis = report.bound.beta_basis
    try:
        return float(report.bound.quantity("B").value), basis
    except KeyError:
        return math.nan, basis


def _banner(ax: Axes, result: SimulationResult, report: VerifyReport | None) -> None:
    ax.set_axis_off()
    method = result.method if result.method != "gd" else f"gd, lr = {result.lr:.3g}"
    head = (
        f"lazycheck simulate: alpha = {result.alpha:g}, {method}, "
        f"sigma_min = {result.sigma_min:.3g}, sigma_max = {result.sigma_max:.3g}"
    )
    if not result.success:
        head += "   [integration FAILED: partial run]"
    status, lines = _verdict_lines(result, report)
    color = VERDICT_COLORS[status]
    ax.text(0.5, 1.0, head, ha="center", va="top", fontsize=12, transform=ax.transAxes)
    ax.text(
        0.5, 0.62, "\n".join(lines), ha="center", va="top", fontsize=9.5, color=color,
        transform=ax.transAxes,
        bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": color, "lw": 1.4},
    )  # fmt: skip


def _verdict_lines(result: SimulationResult, report: VerifyReport | None) -> tuple[str, list[str]]:
    if report is None:
        return "none", [
            "no verdict computed: pass the run's verify report "
            "(run_verify(problem, simulation=run)) to mark alpha_min, B and the checks"
        ]
    numbers = _hypothesis_numbers(report)
    verdict = f"verdict ({report.status}): {report.message}"
    return report.status, [numbers, *textwrap.wrap(verdict, 170)]


def _hypothesis_numbers(report: VerifyReport) -> str:
    b = report.bound
    sol = b.solutions.get(b.beta_basis)
    a = report.alpha
    if sol is None or not sol.feasible or not math.isfinite(sol.alpha_min):
        alpha = f"alpha = {a:g}, and no alpha satisfies it"
    else:
        alpha = (
            f"alpha = {a:g} {'>=' if a >= sol.alpha_min else '<'} alpha_min = {sol.alpha_min:.4g}"
        )
        if math.isfinite(sol.alpha_max):
            alpha += f", {'<=' if a <= sol.alpha_max else '>'} alpha_max = {sol.alpha_max:.4g}"
    B, basis = _radius_B(report)
    try:
        Bp = float(b.quantity("B_prime").value)
    except KeyError:
        Bp = math.nan
    return (
        f"Theorem 2's hypothesis with beta[{basis or 'none'}]: {alpha};  "
        f"B' = {Bp:.3g} {'<=' if Bp <= B else '>'} B = {B:.3g}"
    )


def _positive_floor(*curves: Any) -> float:
    """A lower y-limit for log axes: a bit below the smallest positive value shown."""
    vals = np.concatenate([np.asarray(c, dtype=np.float64) for c in curves])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if not vals.size:
        return 1e-300
    return float(vals.min()) / 3.0


def _metadata(fmt: str) -> dict[str, str | None]:
    # reproducible files: no creation dates
    if fmt == "pdf":
        return {"Creator": "lazycheck", "Producer": None, "CreationDate": None}
    if fmt == "svg":
        return {"Creator": "lazycheck", "Date": None}
    return {"Software": "lazycheck"}
