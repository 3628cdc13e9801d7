"""The laziness threshold: the smallest alpha at which every conclusion of verify holds.

A configuration is *lazy* when every conclusion check of ``verify`` that could be evaluated
held in the simulation (``held`` true, whatever the theorem guarantees). At a given alpha, a
group (a combination of the non-alpha, non-seed axes) is lazy when every seed's run is lazy and
none failed. The threshold of the group is the smallest grid alpha from which on the group is
lazy at every larger grid alpha too (robust to a non-monotone grid). It is *bracketed* by the
largest grid alpha below it that is not lazy; ``refine`` bisects that bracket in log alpha
(each step runs every seed at sqrt(low high)) until high / low <= 1 + rtol, which assumes
laziness is monotone inside the bracket. When the smallest grid alpha is already lazy, the
threshold is only known to be at most that alpha (``status = "at_most"``); when the largest is
not, it is above the grid (``"above"``).

Looseness: ``alpha_min / threshold`` for alpha_min with the certified and with the sampled beta
(the largest over the seeds, the alpha from which the theorem covers every seed): how many times
larger an alpha Theorem 2 asks for than the one at which training is lazy in this simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Threshold", "bisect_point", "group_key", "thresholds", "update"]


@dataclass(frozen=True)
class Threshold:
    """The laziness threshold of one group."""

    group: dict[str, Any]
    status: str  # "bracketed", "at_most", "above", "none"
    alpha: float | None  # smallest alpha known lazy (with every larger grid alpha)
    low: float | None  # largest alpha below it known not lazy
    alpha_min_certified: float
    alpha_min_sampled: float
    refined: bool = False
    points: tuple[tuple[float, bool], ...] = field(default_factory=tuple)

    @property
    def looseness_certified(self) -> float:
        return _ratio(self.alpha_min_certified, self.alpha)

    @property
    def looseness_sampled(self) -> float:
        return _ratio(self.alpha_min_sampled, self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status,
            "alpha": self.alpha,
            "low": self.low,
            "refined": self.refined,
            "bisection": [{"alpha": a, "lazy": lz} for a, lz in self.points],
            "alpha_min_certified": self.alpha_min_certified,
            "alpha_min_sampled": self.alpha_min_sampled,
            "looseness_certified": self.looseness_certified,
            "looseness_sampled": self.looseness_sampled,
        }


def group_key(coords: dict[str, Any], names: Sequence[str]) -> str:
    """A stable text key for the coordinates ``names`` of a run."""
    return repr(tuple((n, coords[n]) for n in names))


def thresholds(runs: Sequence[dict[str, Any]], group_names: Sequence[str]) -> dict[str, Threshold]:
    """The threshold of every group (keyed by :func:`group_key`) from the grid's runs."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_group.setdefault(group_key(run["coords"], group_names), []).append(run)
    out = {}
    for key, members in by_group.items():
        group = {n: members[0]["coords"][n] for n in group_names}
        lazy = _lazy_by_alpha(members)
        out[key] = _from_grid(
            group, lazy, _alpha_min(members, "certified"), _alpha_min(members, "sampled")
        )
    return out


def bisect_point(th: Threshold, rtol: float) -> float | None:
    """The next alpha to try, sqrt(low high), or None when the bracket is narrow enough."""
    if th.status != "bracketed" or th.low is None or th.alpha is None:
        return None
    if th.alpha / th.low <= 1.0 + rtol:
        return None
    return math.sqrt(th.low * th.alpha)


def update(th: Threshold, alpha: float, runs: Sequence[dict[str, Any]]) -> Threshold:
    """The bracket after every seed ran at ``alpha``."""
    lazy = all(r["record"]["status"] == "ok" and r["record"]["lazy"] is True for r in runs)
    points = (*th.points, (alpha, lazy))
    if lazy:
        return replace(th, alpha=alpha, refined=True, points=points)
    return replace(th, low=alpha, refined=True, points=points)


# ----------------------------------------------------------------------------- helpers


def _lazy_by_alpha(members: Sequence[dict[str, Any]]) -> dict[float, bool]:
    lazy: dict[float, bool] = {}
    for run in members:
        a = float(run["coords"]["alpha"])
        rec = run["record"]
        ok = rec["status"] == "ok" and rec["lazy"] is True
        lazy[a] = lazy.get(a, True) and ok
    return lazy


def _from_grid(
    group: dict[str, Any], lazy: dict[float, bool], am_cert: float, am_samp: float
) -> Threshold:
    alphas = sorted(lazy)
    k = len(alphas)
    while k > 0 and lazy[alphas[k - 1]]:
        k -= 1
    if k == len(alphas):
        status = "above" if alphas else "none"
        return Threshold(group, status, None, alphas[-1] if alphas else None, am_cert, am_samp)
    if k == 0:
        return Threshold(group, "at_most", alphas[0], None, am_cert, am_samp)
    return Threshold(group, "bracketed", alphas[k], alphas[k - 1], am_cert, am_samp)


def _alpha_min(members: Sequence[dict[str, Any]], which: str) -> float:
    vals = [r["record"]["metrics"].get(f"alpha_min_{which}", math.nan) for r in members]
    vals = [v for v in vals if isinstance(v, float) and not math.isnan(v)]
    return max(vals) if vals else math.nan


def _ratio(a: float, b: float | None) -> float:
    if b is None or not (b > 0) or math.isnan(a):
        return math.nan
    return a / b
