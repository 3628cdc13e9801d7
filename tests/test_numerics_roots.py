"""lazycheck.numerics.roots.brent_root against scipy.optimize.brentq (the reference)."""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq

from lazycheck.numerics.roots import brent_bracket, brent_root

CASES = [
    (lambda x: x**3 - 2 * x - 5, 2.0, 3.0),  # Wallis's cubic
    (lambda x: math.cos(x) - x, 0.0, 1.0),
    (lambda x: math.exp(x) - 1e6, 0.0, 30.0),  # steep
    (lambda x: (x - 0.3) ** 9, 0.0, 1.0),  # flat: a root of multiplicity 9
    (lambda x: -1.0 if x < 0.37 else 2.0, 0.0, 1.0),  # a jump: the bracket shrinks onto it
    (lambda x: math.atan(1e4 * (x - 1e-3)), -1.0, 1.0),  # a sharp step near one end
    (lambda x: x * (1 + x) ** 40 - 1e-8, 0.0, 1.0),  # R beta(R) = half, as in certified
]


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("xtol", [2e-12, 1e-6])
def test_matches_brentq(i: int, xtol: float) -> None:
    f, a, b = CASES[i]
    calls: list[float] = []

    def counted(x: float) -> float:
        calls.append(x)
        return f(x)

    ours = brent_root(counted, a, b, xtol=xtol, maxiter=500)
    ref = brentq(f, a, b, xtol=xtol, full_output=True, maxiter=500)
    root, info = ref
    tol = xtol + 4 * 2.22e-16 * abs(root)
    assert abs(ours - root) <= 2 * tol
    assert a <= ours <= b
    assert len(calls) <= info.function_calls + 3  # as economical as the reference


def test_endpoints_and_bad_brackets() -> None:
    assert brent_root(lambda x: x, 0.0, 1.0) == 0.0
    assert brent_root(lambda x: x - 1.0, 0.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="different signs"):
        brent_root(lambda x: x * x + 1, -1.0, 1.0)
    # the bracket may be given either way round
    assert brent_root(lambda x: x - 0.25, 1.0, 0.0) == pytest.approx(0.25, abs=1e-12)


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("xtol", [2e-12, 1e-6])
def test_the_last_bracket_holds_the_root_and_was_evaluated(i: int, xtol: float) -> None:
    """brent_bracket's two points: the root brent_root returns and the other end of the last
    bracket, both evaluated, f changing sign between them, within twice the tolerance."""
    f, a, b = CASES[i]
    seen: dict[float, float] = {}

    def counted(x: float) -> float:
        seen[x] = f(x)
        return seen[x]

    x, other = brent_bracket(counted, a, b, xtol=xtol, maxiter=500)
    assert x == brent_root(f, a, b, xtol=xtol, maxiter=500)
    assert x in seen and other in seen
    assert seen[x] == 0 or (seen[x] > 0) != (seen[other] > 0)
    assert abs(x - other) <= 2 * (xtol + 4 * 2.22e-16 * abs(x))
    root = brentq(f, a, b, xtol=1e-15, maxiter=1000)
    assert min(x, other) - 1e-15 <= root <= max(x, other) + 1e-15 or seen[x] == 0
