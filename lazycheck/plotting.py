"""Figures of a simulation run (matplotlib, imported only when a figure is drawn).

:func:`plot_run` draws three panels against time t (log scale, t > 0):

1. the losses of the nonlinear and the linear flow under Theorem 2's envelope
   L0 exp(-alpha^2 sigma_min^2 t / 2) (shaded below it), and Lemma 4's faster linear rate
   L0 exp(-2 alpha^2 sigma_min^2 t);
2. the displacements ||w(t) - w0|| and ||u(t) - u0|| against Theorem 2's radius B' and the
   linear model's radius B'_lin;
3. the band [sigma_min(J_w(t)), sigma_max(J_w(t))] against Lemma 6's limits sigma_min/2 and
   3 sigma_max/2.

The figure is built with matplotlib's object API on the Agg canvas (no pyplot, no global state)
and written atomically; the suffix of the path (.png, .svg or .pdf) picks the format.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.jsonio import atomic_write

if TYPE_CHECKING:
    from lazycheck.simulate import SimulationResult

__all__ = ["PLOT_SUFFIXES", "figure_writer", "plot_run"]

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_run(result: SimulationResult, path: str | Path) -> None:
    """Draw the three panels of the module docstring to ``path`` (.png, .svg or .pdf)."""
    atomic_write(path, figure_writer(result, path))


def figure_writer(result: SimulationResult, path: str | Path) -> Callable[[Path], None]:
    """Draw the figure now; return a function writing it, in the format of ``path``'s
    suffix, to the path it is given (for an output transaction)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise LazycheckError(
            f"{target}: unsupported figure type {target.suffix or '(none)'!r}; "
            f"use {', '.join(PLOT_SUFFIXES)}"
        )
    fig = _figure(result)
    fmt = suffix.lstrip(".")

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            fig.savefig(fh, format=fmt, dpi=130, metadata=_metadata(fmt))

    return write


# ----------------------------------------------------------------------------- helpers


def _figure(result: SimulationResult) -> object:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_disp, ax_sig = fig.subplots(1, 3)
    t = np.asarray(result.t)
    pos = t > 0
    tp = t[pos]
    a2s2 = result.alpha**2 * result.sigma_min**2

    # 1. losses under the envelope
    bound = result.bound[pos]
    floor = _positive_floor(result.loss[pos], result.loss_lin[pos], bound)
    ax_loss.fill_between(tp, floor, bound, color="tab:gray", alpha=0.15, lw=0)
    ax_loss.plot(
        tp, bound, color="black", lw=1.6, label=r"Theorem 2: $L_0e^{-\alpha^2\sigma_{\min}^2t/2}$"
    )
    ax_loss.plot(
        tp,
        result.L0 * np.exp(-2.0 * a2s2 * tp),
        color="black",
        lw=1.0,
        ls=":",
        label=r"Lemma 4 (linear): $L_0e^{-2\alpha^2\sigma_{\min}^2t}$",
    )
    ax_loss.plot(
        tp,
        np.maximum(result.loss[pos], floor),
        color="tab:blue",
        lw=1.8,
        label=r"nonlinear $L(\alpha f(w(t)))$",
    )
    ax_loss.plot(
        tp,
        np.maximum(result.loss_lin[pos], floor),
        color="tab:orange",
        lw=1.4,
        ls="--",
        label=r"linear $L(\alpha f_0(u(t)))$",
    )
    ax_loss.set_xscale("log")
    ax_loss.set_yscale("log")
    ax_loss.set_ylim(bottom=floor)
    ax_loss.set_title("loss")
    ax_loss.set_xlabel("t")
    ax_loss.legend(fontsize=8, loc="lower left")

    # 2. displacements against the radii
    ax_disp.plot(tp, result.disp[pos], color="tab:blue", lw=1.8, label=r"$\|w(t)-w_0\|$")
    ax_disp.plot(
        tp, result.disp_lin[pos], color="tab:orange", lw=1.4, ls="--", label=r"$\|u(t)-u_0\|$"
    )
    for value, style, label in (
        (result.B_prime, "-", f"Theorem 2: B' = {result.B_prime:.3g}"),
        (result.B_prime_lin, ":", f"linear: B'_lin = {result.B_prime_lin:.3g}"),
    ):
        if math.isfinite(value) and value > 0:
            ax_disp.axhline(value, color="black", lw=1.2, ls=style, label=label)
    ax_disp.set_xscale("log")
    if np.any(result.disp[pos] > 0):
        ax_disp.set_yscale("log")
    ax_disp.set_title("distance from initialization")
    ax_disp.set_xlabel("t")
    ax_disp.legend(fontsize=8, loc="lower right")

    # 3. singular-value band against Lemma 6
    smin_t, smax_t = result.sigma_min_t[pos], result.sigma_max_t[pos]
    ax_sig.fill_between(
        tp,
        smin_t,
        smax_t,
        color="tab:blue",
        alpha=0.25,
        lw=0,
        label=r"$[\sigma_{\min}(J_{w(t)}), \sigma_{\max}(J_{w(t)})]$",
    )
    ax_sig.plot(tp, smin_t, color="tab:blue", lw=1.2)
    ax_sig.plot(tp, smax_t, color="tab:blue", lw=1.2)
    ax_sig.axhline(
        1.5 * result.sigma_max,
        color="tab:red",
        lw=1.2,
        label=rf"Lemma 6: $3\sigma_{{\max}}/2$ = {1.5 * result.sigma_max:.3g}",
    )
    ax_sig.axhline(
        0.5 * result.sigma_min,
        color="tab:red",
        lw=1.2,
        ls="--",
        label=rf"Lemma 6: $\sigma_{{\min}}/2$ = {0.5 * result.sigma_min:.3g}",
    )
    ax_sig.set_xscale("log")
    lo = min(0.5 * result.sigma_min, float(np.min(smin_t, initial=np.inf)))
    hi = max(1.5 * result.sigma_max, float(np.max(smax_t, initial=0.0)))
    if lo > 0 and math.isfinite(lo):
        ax_sig.set_yscale("log")
        ax_sig.set_ylim(lo / 12.0, hi * 1.6)  # room for the legend below the band
    elif hi > 0:
        ax_sig.set_ylim(-0.35 * hi, hi * 1.1)
    ax_sig.set_title(r"singular values of $J_{w(t)}$")
    ax_sig.set_xlabel("t")
    ax_sig.legend(fontsize=8, loc="lower right")

    for ax in (ax_loss, ax_disp, ax_sig):
        ax.grid(True, which="major", alpha=0.3)
    status = "" if result.success else "  [integration FAILED: partial run]"
    label = result.method if result.method != "gd" else f"gd, lr = {result.lr:.3g}"
    fig.suptitle(
        f"lazycheck simulate: alpha = {result.alpha:g}, {label}, "
        f"sigma_min = {result.sigma_min:.3g}, sigma_max = {result.sigma_max:.3g}{status}"
    )
    return fig


def _positive_floor(*curves: np.ndarray) -> float:
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
