"""A root of a scalar function on a bracket, by Brent's method, without importing scipy.optimize.

lazycheck needs one scalar root finder (the certified beta's self-consistent radius, r*'s
crossing along a direction). ``scipy.optimize.brentq`` is the reference, but importing
``scipy.optimize`` (linear programming, minimizers and all) took 0.24-0.31 s on the 2-core
machine, a quarter of ``lazycheck bound`` at n = 100 once the search itself was fast
(issue 9). This is the same method (Brent 1973, "Algorithms for minimization without
derivatives", ch. 4: inverse quadratic interpolation or the secant step when it falls well
inside the bracket and shrinks it fast enough, bisection otherwise), tested against scipy's
brentq on smooth, flat, kinked and steep functions (tests/test_numerics_roots.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["brent_bracket", "brent_root"]

_EPS = 2.220446049250313e-16


def brent_root(f: Callable[[float], float], a: float, b: float, **options: Any) -> float:
    """A root of ``f`` in [a, b], where f(a) and f(b) differ in sign (or one is zero), to
    within ``xtol + rtol |x|`` (scipy's brentq convention; ``options``: ``xtol`` (2e-12),
    ``rtol`` (4 eps), ``maxiter`` (100), as :func:`brent_bracket`). Raises ValueError for a
    bracket without a sign change; after ``maxiter`` evaluations, the best point so far."""
    return brent_bracket(f, a, b, **options)[0]


def brent_bracket(
    f: Callable[[float], float],
    a: float,
    b: float,
    xtol: float = 2e-12,
    rtol: float = 4 * _EPS,
    maxiter: int = 100,
) -> tuple[float, float]:
    """:func:`brent_root`'s root x (to ``xtol + rtol |x|``) and the other end of its last
    bracket: f changes sign between the two (or f(x) = 0, and the other end is x), which lie
    within twice the tolerance of each other unless ``maxiter`` ran out. Both points were
    evaluated, so a caller that remembers f's values knows both signs without evaluating
    again."""
    fa, fb = float(f(a)), float(f(b))
    if fa == 0:
        return a, a
    if fb == 0:
        return b, b
    if (fa > 0) == (fb > 0):
        raise ValueError(f"f(a) = {fa:g} and f(b) = {fb:g} must have different signs")
    pre, fpre, cur, fcur = a, fa, b, fb
    blk, fblk, spre, scur = a, fa, b - a, b - a
    for _ in range(maxiter):
        if (fpre > 0) != (fcur > 0):  # the bracket is [pre, cur]: cur's partner is pre
            blk, fblk = pre, fpre
            spre = scur = cur - pre
        if abs(fblk) < abs(fcur):  # cur is the best point so far
            pre, cur, blk = cur, blk, cur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = 0.5 * (xtol + rtol * abs(cur))
        sbis = 0.5 * (blk - cur)
        if fcur == 0:
            return cur, cur
        if abs(sbis) < delta:
            return cur, blk
        step = _interpolated(pre, fpre, cur, fcur, blk, fblk, spre, sbis, delta)
        if step is None:
            spre = scur = sbis
        else:
            spre, scur = scur, step
        pre, fpre = cur, fcur
        cur += scur if abs(scur) > delta else math.copysign(delta, sbis)
        fcur = float(f(cur))
    return cur, blk


def _interpolated(
    pre: float,
    fpre: float,
    cur: float,
    fcur: float,
    blk: float,
    fblk: float,
    spre: float,
    sbis: float,
    delta: float,
) -> float | None:
    """The secant (two distinct points) or inverse quadratic (three) step from cur, when the
    last step was not tiny, cur improved on pre, and the step lands well inside the bracket
    and shrinks faster than bisection would; else None (bisect)."""
    if not (abs(spre) > delta and abs(fcur) < abs(fpre)):
        return None
    if pre == blk:  # secant
        step = -fcur * (cur - pre) / (fcur - fpre)
    else:  # inverse quadratic through (pre, cur, blk)
        dpre = (fpre - fcur) / (pre - cur)
        dblk = (fblk - fcur) / (blk - cur)
        step = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
    if 2 * abs(step) < min(abs(spre), 3 * abs(sbis) - delta):
        return step
    return None
