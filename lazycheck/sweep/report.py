"""What a sweep prints and writes: rich tables per axis, JSON (schema), CSV (one row per run).

The JSON follows ``lazycheck/schemas/sweep.schema.json`` (``schema_version`` 1; non-finite
floats as the strings ``"inf"``, ``"-inf"``, ``"nan"``). It is a pure function of the spec, the
grid and lazycheck's version: timings and cache counts go to stderr only, so a resumed sweep
writes the same JSON as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

from lazycheck._version import __version__
from lazycheck.sweep.aggregate import Slope, cell_stats
from lazycheck.sweep.metrics import METRICS

if TYPE_CHECKING:
    from rich.console import Console

    from lazycheck.sweep.core import SweepResult

__all__ = ["SWEEP_SCHEMA_VERSION", "render", "result_dict", "to_csv"]

SWEEP_SCHEMA_VERSION = 1


def result_dict(res: SweepResult) -> dict[str, Any]:
    """The JSON report (without timings; see the module docstring)."""
    return {
        "schema": "lazycheck.sweep",
        "schema_version": SWEEP_SCHEMA_VERSION,
        "lazycheck_version": __version__,
        "spec": res.spec,
        "status": res.status,
        "message": res.message,
        "failed": res.failed,
        "exit_code": res.exit_code,
        "axes": [
            {
                "name": a.name,
                "key": a.key,
                "values": list(a.values),
                "numeric": a.numeric,
                "replicate": a.replicate,
            }
            for a in res.axes
        ],
        "fixed": res.fixed,
        "metrics": [
            {
                "name": m.name,
                "formula": m.formula,
                "kind": m.kind,
                "rate_alpha": m.rate_alpha,
                "rate_width": m.rate_width,
            }
            for m in METRICS
        ],
        "runs": [_run_dict(r) for r in res.runs],
        "cells": res.cells(),
        "slopes": [s.to_dict() for s in res.slopes],
        "thresholds": [t.to_dict() for t in res.thresholds],
        "threshold_rtol": res.threshold_rtol,
        "fit_alpha": None if res.fit_alpha is None else list(res.fit_alpha),
    }


def to_csv(res: SweepResult) -> str:
    """One row per run: index, key, the axes, status, verdict, lazy, every metric, message.
    Floats with 17 significant digits (they parse back exactly); nan/inf as text."""
    names = [a.name for a in res.axes]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "key", *names, "status", "verify_status", "lazy",
                *(m.name for m in METRICS), "message"])  # fmt: skip
    for r in res.runs:
        rec = r["record"]
        coords = [_csv_value(r["coords"][n]) for n in names]
        vals = [_csv_value(rec["metrics"].get(m.name, math.nan)) for m in METRICS]
        lazy = "" if rec.get("lazy") is None else str(rec["lazy"]).lower()
        w.writerow([r["index"], r["key"], *coords, rec["status"], rec.get("verify_status", ""),
                    lazy, *vals, rec["message"]])  # fmt: skip
    return buf.getvalue()


def render(res: SweepResult, console: Console) -> None:
    """One table per non-seed axis (per group of the other axes), the thresholds, failures."""
    from rich.text import Text

    shown = [a for a in res.axes if not a.replicate and len(a.values) > 1]
    for axis in shown or [a for a in res.axes if not a.replicate][:1]:
        others = [a.name for a in res.axes if a.name != axis.name and not a.replicate]
        for group, members in _groups(res.runs, others).items():
            _axis_table(res, axis, dict(group), members, console)
    _threshold_table(res, console)
    for r in res.runs:
        if r["record"]["status"] != "ok":
            where = ", ".join(f"{k}={_short(v)}" for k, v in r["coords"].items())
            console.print(Text(f"FAILED {where}: {r['record']['message']}", style="bold red"))
    style = "bold green" if res.status == "ok" else "bold red"
    console.print(Text(f"sweep: {res.message}", style=style))


# ----------------------------------------------------------------------------- helpers


def _run_dict(r: dict[str, Any]) -> dict[str, Any]:
    rec = r["record"]
    return {
        "index": r["index"],
        "key": r["key"],
        "coords": r["coords"],
        "settings": r["settings"],
        "status": rec["status"],
        "message": rec["message"],
        "verify_status": rec.get("verify_status", "error"),
        "lazy": rec.get("lazy"),
        "metrics": rec["metrics"],
        "checks": rec.get("checks", {}),
        "notes": rec.get("notes", []),
    }


def _groups(runs: Any, names: list[str]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        key = tuple((n, _short(r["coords"][n])) for n in names)
        out.setdefault(key, []).append(r)
    return out


def _axis_table(
    res: SweepResult, axis: Any, group: dict[str, Any], members: list[dict[str, Any]], console: Any
) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    where = ", ".join(f"{k} = {v}" for k, v in group.items())
    reps = [a.name for a in res.axes if a.replicate]
    title = f"lazycheck sweep: {res.spec} — metrics against {axis.name}" + (
        f" ({where})" if where else ""
    )
    table = Table(
        title=Text(title), caption=Text(_caption(reps, res)), box=box.SIMPLE_HEAD, padding=0,
        pad_edge=False, show_edge=False,
    )  # fmt: skip
    table.add_column("metric", no_wrap=True)
    for v in axis.values:
        table.add_column(Text(_short(v)), justify="right", no_wrap=True)
    if reps:
        table.add_column("spread", justify="right", no_wrap=True, min_width=6)
    if axis.numeric:
        table.add_column("slope±95%", justify="right", no_wrap=True)
        table.add_column("theory", justify="right", no_wrap=True, min_width=6)
    slopes = {
        s.metric: s
        for s in res.slopes
        if s.axis == axis.name and {k: _short(v) for k, v in s.group.items()} == group
    }
    for m in METRICS:
        stats = []
        for v in axis.values:
            vals = [r["record"]["metrics"].get(m.name, math.nan) for r in members
                    if r["coords"][axis.name] == v]  # fmt: skip
            stats.append(cell_stats(vals))
        if all(st.count == 0 for st in stats):
            continue
        row = [m.name, *(_num3(st.mean) for st in stats)]
        if reps:
            row.append(_spread(stats))
        if axis.numeric:
            row += _slope_cells(slopes.get(m.name))
        table.add_row(*(Text(c) for c in row))
    lazy_row = ["lazy runs"]
    for v in axis.values:
        flags = [r["record"].get("lazy") for r in members if r["coords"][axis.name] == v]
        lazy_row.append(f"{sum(f is True for f in flags)}/{len(flags)}")
    pad = int(bool(reps)) + (2 if axis.numeric else 0)
    table.add_row(*(Text(c) for c in lazy_row), *([""] * pad))
    console.print(table)


def _caption(reps: list[str], res: SweepResult) -> str:
    fit = ""
    if res.fit_alpha is not None:
        fit = f"; slopes fitted on alpha in [{res.fit_alpha[0]:g}, {res.fit_alpha[1]:g}]"
    if not reps:
        return "one run per cell; slope of the log-log fit with its 95% interval" + fit
    return (
        f"mean over {', '.join(reps)}; spread: largest relative standard deviation over "
        f"{', '.join(reps)}; slope of the log-log fit with its 95% interval"
        + fit
        + "; theory: the exponent the theory implies (✓ inside the interval, ✗ outside; "
        "≤: a bound, ✓ when the interval reaches below it)"
    )


def _spread(stats: list[Any]) -> str:
    rel = [
        st.std / abs(st.mean) for st in stats if st.count > 1 and st.mean and math.isfinite(st.std)
    ]
    return f"{100 * max(rel):.0f}%" if rel else "-"


def _num3(x: float, digits: int = 3) -> str:
    """A compact number: 3 significant digits, exponents without padding (4.22e-4, 7.09e7)."""
    if not math.isfinite(x):
        return "-" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    sci = x != 0 and not 1e-3 <= abs(x) < 10.0**5
    text = f"{x:.{digits - 1}e}" if sci else f"{x:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        text = f"{mant}e{int(exp)}"
    return text


def _slope_cells(s: Slope | None) -> list[str]:
    if s is None or not math.isfinite(s.slope):
        return ["-", "-"]
    half = 0.5 * (s.high - s.low)
    ci = f"±{_num3(_tiny0(half), 2)}" if math.isfinite(half) else ""
    rel = "≤" if s.theory_relation == "<=" else ""
    theory = "-" if s.theory is None else f"{rel}{s.theory:g}"
    if s.consistent is False:
        theory += " ✗"
    elif s.consistent:
        theory += " ✓"
    return [f"{_num3(_tiny0(s.slope))}{ci}", theory]


def _tiny0(x: float) -> float:
    """Slopes and intervals below 1e-12 are rounding noise of an exact fit: shown as 0."""
    return 0.0 if abs(x) < 1e-12 else x


def _threshold_table(res: SweepResult, console: Any) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if not res.thresholds:
        return
    rt = f" (bisection to rtol {res.threshold_rtol:g})" if res.threshold_rtol else ""
    table = Table(
        title=Text(f"laziness threshold: smallest alpha with every conclusion held{rt}"),
        box=box.SIMPLE_HEAD,
        padding=0,
        pad_edge=False,
        show_edge=False,
        caption=Text(
            "alpha_min: the largest over the seeds; looseness = alpha_min / threshold: how many "
            "times larger an alpha Theorem 2 asks for than the one at which training is lazy"
        ),
    )
    for col in ("group", "threshold", "bracket", "alpha_min cert.", "alpha_min sampled",
                "looseness cert.", "looseness sampled"):  # fmt: skip
        table.add_column(Text(col), justify="left" if col in ("group", "status") else "right")
    for t in res.thresholds:
        group = ", ".join(f"{k}={_short(v)}" for k, v in t.group.items()) or "all"
        cells = (
            group,
            _threshold_text(t),
            _bracket_text(t),
            _num(t.alpha_min_certified),
            _num(t.alpha_min_sampled),
            _num(t.looseness_certified),
            _num(t.looseness_sampled),
        )
        table.add_row(*(Text(c) for c in cells))
    console.print(table)


def _threshold_text(t: Any) -> str:
    if t.status == "above":
        return f"> {_num3(t.low, 4)}"
    if t.status == "at_most":
        return f"<= {_num3(t.alpha, 4)}"
    return "-" if t.alpha is None else _num3(t.alpha, 4)


def _bracket_text(t: Any) -> str:
    if t.status == "bracketed":
        return f"({_num3(t.low, 4)}, {_num3(t.alpha, 4)}]"
    return {"at_most": "lazy at every grid alpha", "above": "lazy at no grid alpha"}.get(
        t.status, "no run"
    )


def _num(x: float) -> str:
    return "-" if x is None else _num3(x, 4)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)


def _csv_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return (
            repr(v)
            if math.isfinite(v)
            else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
        )
    if isinstance(v, list | tuple):
        return " ".join(_csv_value(x) for x in v)
    return str(v)
