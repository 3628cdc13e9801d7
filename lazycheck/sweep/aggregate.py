"""Aggregates over a sweep: mean and spread over the seeds, and log-log slopes.

* For each point of the grid without its seed axes (a *cell*), every metric's mean, sample
  standard deviation, minimum and maximum over the seeds (non-finite values left out, counted).
* For each metric and each numeric axis X, and each combination of the other non-seed axes
  (a *group*): the least-squares slope s of log(metric) against log(X) over every run of the
  group, with the 95% interval s +- t_{0.975, dof} stderr(s). With one seed, by
  ordinary least squares (dof = m - 2); with several, every seed is a point with its own
  intercept and one common slope (the within estimator, dof = m - seeds - 1), so a seed that
  scales a metric by a constant factor does not widen the interval, while seeds whose slopes
  differ do. Runs with a non-positive or non-finite value are left out (and counted). Beside it,
  the exponent the theory implies (``docs/sweep.md``) where it implies one for these runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lazycheck.sweep.grid import ALPHA, Axis, axis_number
from lazycheck.sweep.metrics import METRICS, Metric

__all__ = ["CellStats", "Slope", "cell_stats", "fit_slope", "slopes", "theory_rate"]

#: metrics whose width exponent is the rate itself (a central limit), not a bound
_WIDTH_EXACT = frozenset({"kinf_dist"})


@dataclass(frozen=True)
class Slope:
    """A fitted log-log slope of ``metric`` against ``axis`` within ``group``."""

    axis: str
    metric: str
    group: dict[str, Any]
    points: int
    slope: float
    low: float
    high: float
    stderr: float
    intercept: float
    theory: float | None
    theory_note: str
    #: "=": the theory's exponent is the rate; "<=": it bounds the rate (width: O(m^-1/2))
    theory_relation: str = "="

    @property
    def consistent(self) -> bool | None:
        """The theory's exponent lies in the 95% interval, or for a bound ("<="), the interval
        reaches below it (None: no rate or no interval)."""
        if self.theory is None or not math.isfinite(self.low):
            return None
        tol = 1e-9 * max(1.0, abs(self.theory))
        if self.theory_relation == "<=":
            return self.low - tol <= self.theory
        return self.low - tol <= self.theory <= self.high + tol

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "metric": self.metric,
            "group": self.group,
            "points": self.points,
            "slope": self.slope,
            "ci95": [self.low, self.high],
            "stderr": self.stderr,
            "intercept": self.intercept,
            "theory": self.theory,
            "theory_note": self.theory_note,
            "theory_relation": self.theory_relation,
            "consistent": self.consistent,
        }


@dataclass(frozen=True)
class CellStats:
    """One metric at one cell, over the seeds."""

    mean: float
    std: float
    min: float
    max: float
    count: int
    missing: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("mean", "std", "min", "max", "count", "missing")}


def fit_slope(
    x: Sequence[float], y: Sequence[float], replicate: Sequence[Any] | None = None
) -> tuple[float, float, float, float, float]:
    """(slope, low, high, stderr, intercept) of log y against log x, the interval the 95% t
    interval (nan when the residual has no degree of freedom; zero width for an exact fit).

    With ``replicate`` labels (the seeds), each replicate gets its own intercept and the slope
    is common (the within estimator): a seed that shifts a metric by a constant factor then
    does not widen the interval; with one replicate this is ordinary least squares (the same
    numbers as ``scipy.stats.linregress``, which the tests compare with). The t quantile is
    ``scipy.special.stdtrit`` (what ``scipy.stats.t.ppf`` evaluates): importing scipy.stats
    took 1.3-1.9 s of every sweep, serial, in the parent process."""
    from scipy.special import stdtrit

    lx, ly = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    labels = [0] * lx.size if replicate is None else list(replicate)
    groups = sorted(set(map(repr, labels)))
    if lx.size < 2 or np.ptp(lx) == 0:
        return (math.nan,) * 5
    cx, cy = lx.copy(), ly.copy()
    for g in groups:
        idx = np.array([repr(lab) == g for lab in labels])
        cx[idx] -= lx[idx].mean()
        cy[idx] -= ly[idx].mean()
    sxx = float(cx @ cx)
    if sxx == 0:
        return (math.nan,) * 5
    slope = float(cx @ cy) / sxx
    resid = cy - slope * cx
    dof = lx.size - len(groups) - 1
    se = math.sqrt(float(resid @ resid) / dof / sxx) if dof > 0 else math.nan
    b = float(ly.mean() - slope * lx.mean())
    if dof < 1 or not math.isfinite(se):
        return slope, math.nan, math.nan, math.nan, b
    half = float(stdtrit(dof, 0.975)) * se
    return slope, slope - half, slope + half, se, b


def cell_stats(values: Sequence[float]) -> CellStats:
    a = np.asarray(values, dtype=np.float64)
    ok = a[np.isfinite(a)]
    if ok.size == 0:
        return CellStats(math.nan, math.nan, math.nan, math.nan, 0, int(a.size))
    std = float(np.std(ok, ddof=1)) if ok.size > 1 else 0.0
    return CellStats(
        float(ok.mean()), std, float(ok.min()), float(ok.max()), int(ok.size), int(a.size - ok.size)
    )


def slopes(
    runs: Sequence[dict[str, Any]],
    axes: Sequence[Axis],
    fit_alpha: tuple[float, float] | None = None,
) -> list[Slope]:
    """Every metric against every numeric axis, per group of the other non-seed axes; only
    runs with alpha in ``fit_alpha`` (inclusive) enter the fits."""
    reps = [a.name for a in axes if a.replicate]
    if fit_alpha is not None:
        lo, hi = fit_alpha
        runs = [r for r in runs if lo <= r["coords"]["alpha"] <= hi]
    out = []
    for axis in axes:
        if not axis.numeric:
            continue
        others = [a.name for a in axes if a.name != axis.name and not a.replicate]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for run in runs:
            if run["record"]["status"] == "ok":
                key = tuple(_hashable(run["coords"][o]) for o in others)
                groups.setdefault(key, []).append(run)
        for members in groups.values():
            group = {o: members[0]["coords"][o] for o in others}
            out.extend(_group_slopes(axis, group, members, reps))
    return out


def theory_rate(
    m: Metric, axis: Axis, records: Sequence[dict[str, Any]]
) -> tuple[float | None, str]:
    """The exponent the theory implies for ``m`` against ``axis`` on these runs, and why not."""
    if axis.key == ALPHA:
        rate = m.rate_alpha
    elif axis.key == "model.widths":
        rate = m.rate_width
        if rate is not None and any(r.get("parameterization") != "ntk" for r in records):
            return None, "width rates are for the NTK parameterization"
    else:
        return None, ""
    if rate is None:
        return None, ""
    if not all(r.get("f0_zero") for r in records):
        return None, "f(w0) != 0: L0 grows with alpha, no rate (center the model)"
    return rate, ""


# ----------------------------------------------------------------------------- helpers


def _group_slopes(
    axis: Axis, group: dict[str, Any], members: list[dict[str, Any]], reps: list[str]
) -> list[Slope]:
    records = [r["record"] for r in members]
    xs = [axis_number(r["coords"][axis.name]) for r in members]
    labels = [tuple(r["coords"][n] for n in reps) for r in members]
    out = []
    for m in METRICS:
        pts = [
            (x, r["metrics"].get(m.name, math.nan), lab)
            for x, r, lab in zip(xs, records, labels, strict=True)
            if x is not None and _positive(r["metrics"].get(m.name, math.nan))
        ]
        if len({p[0] for p in pts}) < 2:
            continue
        s, lo, hi, se, b = fit_slope([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
        rate, note = theory_rate(m, axis, records)
        bound = axis.key == "model.widths" and rate is not None and rate < 0
        rel = "<=" if bound and m.name not in _WIDTH_EXACT else "="
        out.append(Slope(axis.name, m.name, group, len(pts), s, lo, hi, se, b, rate, note, rel))
    return out


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v) and v > 0


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list | tuple) else v
