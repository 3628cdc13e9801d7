"""The sweep figure: one log-log panel per metric against the sweep's main axis.

The main axis is alpha when alpha has several values, else the first numeric axis. In each
panel, for each group of the other non-seed axes (one colour each): every seed's run (small
points), the mean over the seeds (line), the seeds' range (shaded min to max), and the fitted
line with its slope and 95% interval in the legend (dashed, over the fitted range), beside the
theory's exponent. Against alpha, vertical lines mark alpha_min with the certified beta (red
dashed), with the sampled beta (orange dotted) and the laziness threshold (green): the gap
between green and red is how loose Theorem 2 is. matplotlib's object API on the Agg canvas,
written atomically like :func:`lazycheck.plotting.plot_run`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lazycheck.errors import LazycheckError
from lazycheck.jsonio import atomic_write
from lazycheck.sweep.grid import axis_number
from lazycheck.sweep.metrics import METRICS

if TYPE_CHECKING:
    from lazycheck.sweep.core import SweepResult

__all__ = ["plot_sweep"]


def plot_sweep(res: SweepResult, path: str | Path) -> None:
    """Draw the panels of the module docstring to ``path`` (.png, .svg or .pdf)."""
    from lazycheck.plotting import PLOT_SUFFIXES, _metadata

    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if f".{fmt}" not in PLOT_SUFFIXES:
        raise LazycheckError(f"--plot {target}: use {', '.join(PLOT_SUFFIXES)}")
    axis = _main_axis(res)
    if axis is None:
        raise LazycheckError(
            "--plot: the sweep has no numeric axis with two values or more (alpha, a width, ...)"
        )
    fig = _figure(res, axis)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            fig.savefig(fh, format=fmt, dpi=110, metadata=_metadata(fmt))

    atomic_write(target, write)


# ----------------------------------------------------------------------------- helpers


def _main_axis(res: SweepResult) -> Any:
    numeric = [a for a in res.axes if a.numeric]
    return next((a for a in numeric if a.name == "alpha"), numeric[0] if numeric else None)


def _figure(res: SweepResult, axis: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [m.name for m in METRICS if m.plot and _has_values(res, m.name)]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.9 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    others = [a.name for a in res.axes if a.name != axis.name and not a.replicate]
    groups = _groups(res, others)
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        for (gkey, runs), colour in zip(groups.items(), colours, strict=True):
            _panel_group(ax, res, axis, name, dict(gkey), runs, colour, len(groups) > 1)
            if name == "alpha_disp":
                _lazy_limit(ax, runs, colour)
        if axis.name == "alpha":
            _alpha_marks(ax, res, labels=k == 0)
        metric = next(m for m in METRICS if m.name == name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{name}: {metric.formula}", fontsize=8.5)
        ax.set_xlabel(axis.name)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")
    fig.suptitle(f"lazycheck sweep: {res.spec}{_looseness(res)}", fontsize=11)
    return fig


def _panel_group(
    ax: Any, res: Any, axis: Any, name: str, group: dict, runs: list, colour: str, label: bool
) -> None:
    xs_all, ys_all = [], []
    by_x: dict[float, list[float]] = {}
    for r in runs:
        x = axis_number(r["coords"][axis.name])
        y = r["record"]["metrics"].get(name, math.nan)
        if x is None or not (isinstance(y, float) and math.isfinite(y) and y > 0):
            continue
        xs_all.append(x)
        ys_all.append(y)
        by_x.setdefault(x, []).append(y)
    if not xs_all:
        return
    tag = ", ".join(f"{k}={v}" for k, v in group.items()) if label else ""
    ax.scatter(xs_all, ys_all, s=9, color=colour, alpha=0.45, linewidths=0)
    xs = np.array(sorted(by_x))
    mean = np.array([np.exp(np.mean(np.log(by_x[x]))) for x in xs])  # geometric: log-log
    lo = np.array([np.min(by_x[x]) for x in xs])
    hi = np.array([np.max(by_x[x]) for x in xs])
    ax.plot(xs, mean, "-o", color=colour, ms=3, lw=1.2, label=f"geometric mean {tag}".strip())
    if np.any(hi > lo):
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.15, linewidth=0)
    fit = next(
        (
            s
            for s in res.slopes
            if s.axis == axis.name
            and s.metric == name
            and {k: _freeze(v) for k, v in s.group.items()} == group
        ),
        None,
    )
    if fit is not None and math.isfinite(fit.slope):
        fx = [x for x in xs if _in_fit(res, axis, x)]
        if len(fx) >= 2:
            fx = np.array([min(fx), max(fx)])
            ci = f" [{fit.low:.2f}, {fit.high:.2f}]" if math.isfinite(fit.low) else ""
            rel = "<= " if fit.theory_relation == "<=" else ""
            th = "" if fit.theory is None else f"; theory {rel}{fit.theory:g}"
            ax.plot(fx, np.exp(fit.intercept) * fx**fit.slope, "--", color=colour, lw=1.0,
                    label=f"slope {fit.slope:.2f}{ci}{th}")  # fmt: skip


def _lazy_limit(ax: Any, runs: list, colour: str) -> None:
    """The lazy limit of alpha ||w - w0||, sqrt(r0^T K0^+ r0), geometric mean over the seeds."""
    vals = [r["record"]["metrics"].get("alpha_disp_lazy", math.nan) for r in runs]
    vals = [v for v in vals if isinstance(v, float) and math.isfinite(v) and v > 0]
    if vals:
        ax.axhline(float(np.exp(np.mean(np.log(vals)))), color=colour, ls=":", lw=1.0,
                   label="lazy limit sqrt(r0^T K0^+ r0)")  # fmt: skip


def _in_fit(res: Any, axis: Any, x: float) -> bool:
    if axis.name != "alpha" or res.fit_alpha is None:
        return True
    return res.fit_alpha[0] <= x <= res.fit_alpha[1]


def _alpha_marks(ax: Any, res: Any, labels: bool) -> None:
    cert = [t.alpha_min_certified for t in res.thresholds if math.isfinite(t.alpha_min_certified)]
    samp = [t.alpha_min_sampled for t in res.thresholds if math.isfinite(t.alpha_min_sampled)]
    lazy = [t.alpha for t in res.thresholds if t.alpha is not None and t.status != "above"]
    marks = (
        (cert, "red", "--", "alpha_min[certified]"),
        (samp, "darkorange", ":", "alpha_min[sampled]"),
        (lazy, "green", "-", "laziness threshold"),
    )
    for values, colour, style, label in marks:
        for i, v in enumerate(sorted(set(values))):
            if v > 0:
                ax.axvline(v, color=colour, ls=style, lw=1.1, alpha=0.8,
                           label=label if i == 0 and labels else None)  # fmt: skip


def _looseness(res: Any) -> str:
    """The threshold and looseness of a single-group sweep, for the title."""
    if len(res.thresholds) != 1:
        return ""
    t = res.thresholds[0]
    if t.alpha is None or t.status == "above":
        return ""
    rel = "<= " if t.status == "at_most" else ""
    out = f"\nlaziness threshold {rel}{t.alpha:.3g}"
    for kind in ("certified", "sampled"):
        am, loose = getattr(t, f"alpha_min_{kind}"), getattr(t, f"looseness_{kind}")
        if math.isfinite(am):
            out += f"; alpha_min[{kind}] = {am:.3g} ({'>= ' if rel else ''}{loose:.3g}x)"
    return out


def _has_values(res: Any, name: str) -> bool:
    for r in res.runs:
        v = r["record"]["metrics"].get(name, math.nan)
        if isinstance(v, float) and math.isfinite(v) and v > 0:
            return True
    return False


def _groups(res: Any, names: list[str]) -> dict[tuple, list]:
    out: dict[tuple, list] = {}
    for r in res.runs:
        key = tuple((n, _freeze(r["coords"][n])) for n in names)
        out.setdefault(key, []).append(r)
    return out


def _freeze(v: Any) -> Any:
    return tuple(_freeze(x) for x in v) if isinstance(v, list | tuple) else v
