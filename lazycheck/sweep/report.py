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

__all__ = ["render", "result_dict", "to_csv"]


def result_dict(res: SweepResult) -> dict[str, Any]:
    """The JSON report (without timings; see the module docstring)."""
    from lazycheck.sweep.core import SWEEP_SCHEMA_VERSION

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

    for axis in res.axes:
        if axis.replicate:
            continue
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
    from rich.table import Table
    from rich.text import Text

    where = ", ".join(f"{k} = {v}" for k, v in group.items())
    reps = [a.name for a in res.axes if a.replicate]
    title = f"lazycheck sweep: {res.spec} — metrics against {axis.name}" + (
        f" ({where})" if where else ""
    )
    table = Table(title=Text(title), caption=_caption(reps))
    table.add_column("metric", no_wrap=True)
    for v in axis.values:
        table.add_column(_short(v), justify="right")
    if axis.numeric:
        table.add_column("slope [95% CI]", justify="right")
        table.add_column("theory", justify="right")
    slopes = {
        s.metric: s
        for s in res.slopes
        if s.axis == axis.name and {k: _short(v) for k, v in s.group.items()} == group
    }
    for m in METRICS:
        cells = []
        for v in axis.values:
            vals = [r["record"]["metrics"].get(m.name, math.nan) for r in members
                    if r["coords"][axis.name] == v]  # fmt: skip
            cells.append(_cell(vals))
        if all(c == "-" for c in cells):
            continue
        row = [m.name, *cells]
        if axis.numeric:
            row += _slope_cells(slopes.get(m.name))
        table.add_row(*row)
    lazy_row = ["lazy (all conclusions held)"]
    for v in axis.values:
        flags = [r["record"].get("lazy") for r in members if r["coords"][axis.name] == v]
        lazy_row.append(f"{sum(f is True for f in flags)}/{len(flags)}")
    table.add_row(*lazy_row, *([""] * (2 if axis.numeric else 0)))
    console.print(table)


def _caption(reps: list[str]) -> str:
    if not reps:
        return "one run per cell"
    return f"mean over {', '.join(reps)} ± relative standard deviation; slopes of log-log fits"


def _cell(vals: list[float]) -> str:
    st = cell_stats(vals)
    if st.count == 0:
        return "-"
    text = f"{st.mean:.3g}"
    if st.count > 1 and st.mean != 0 and math.isfinite(st.std):
        text += f" ±{100 * st.std / abs(st.mean):.0f}%"
    return text


def _slope_cells(s: Slope | None) -> list[str]:
    if s is None or not math.isfinite(s.slope):
        return ["-", "-"]
    ci = f" [{s.low:.3g}, {s.high:.3g}]" if math.isfinite(s.low) else ""
    theory = "-" if s.theory is None else f"{s.theory:g}"
    if s.consistent is False:
        theory += " ✗"
    elif s.consistent:
        theory += " ✓"
    return [f"{s.slope:.3g}{ci}", theory]


def _threshold_table(res: SweepResult, console: Any) -> None:
    from rich.table import Table

    if not res.thresholds:
        return
    rt = f" (bisection to rtol {res.threshold_rtol:g})" if res.threshold_rtol else ""
    table = Table(
        title=f"laziness threshold: smallest alpha with every conclusion held{rt}",
        caption="looseness = alpha_min / threshold: how much larger Theorem 2's alpha is",
    )
    for col in ("group", "threshold", "status", "alpha_min[certified]", "alpha_min[sampled]",
                "looseness[certified]", "looseness[sampled]"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("group", "status") else "right")
    for t in res.thresholds:
        group = ", ".join(f"{k}={_short(v)}" for k, v in t.group.items()) or "all"
        table.add_row(
            group,
            _threshold_text(t),
            t.status,
            _num(t.alpha_min_certified),
            _num(t.alpha_min_sampled),
            _num(t.looseness_certified),
            _num(t.looseness_sampled),
        )
    console.print(table)


def _threshold_text(t: Any) -> str:
    if t.status == "above":
        return f"> {t.low:.4g}"
    if t.status == "at_most":
        return f"<= {t.alpha:.4g}"
    if t.status == "bracketed":
        return f"{t.alpha:.4g} (in ({t.low:.4g}, {t.alpha:.4g}])"
    return "-"


def _num(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


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
