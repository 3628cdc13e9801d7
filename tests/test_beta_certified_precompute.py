"""The certified beta's radius-independent precomputation changes no bound by a single bit.

``certified_beta_auto`` builds the forward pass at w0, the pre-activations and the norms once
and evaluates each radius of its bisection from them. The references below are the direct
per-radius formulas as they were before (frozen copies, each radius from scratch, phi' and
phi'' bounded by separate calls); every value must be equal to the last bit.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lazycheck.beta import certified_beta, certified_beta_auto
from lazycheck.beta.certified import (
    _EPS,
    _ROUNDING,
    _bound_on_radii,
    _deep_bound,
    _opnorm,
    _preactivations,
    _two_layer_bound,
)
from lazycheck.models.activations import ACTIVATIONS
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

Array = np.ndarray
SMOOTH = ["tanh", "sigmoid", "softplus", "gelu", "erf", "sin", "identity"]
RADII = [0.0, 1e-9, 0.05, 0.3, 1.0, 7.0, 1e8]


def _net(act: str, depth: int, seed: int, par: str = "ntk", bias: bool = True):
    rng = np.random.default_rng(seed)
    d, n = int(rng.integers(2, 6)), int(rng.integers(3, 12))
    widths = [int(m) for m in rng.integers(3, 40, size=depth)]
    model = MLP(d, widths, act, par, bias, sigma_w=1.3, sigma_b=0.7)
    X = rng.standard_normal((n, d)) * [0.3, 3.0][seed % 2]
    return model, X, model.init(rng)


@pytest.mark.parametrize(("act", "depth"), list(itertools.product(SMOOTH, (1, 2, 3))))
def test_precomputed_bound_equals_the_direct_formula_bit_for_bit(act: str, depth: int) -> None:
    for seed, (par, bias) in enumerate(itertools.product(("ntk", "standard"), (False, True))):
        model, X, w0 = _net(act, depth, 10 * depth + seed, par, bias)
        bound = _bound_on_radii(model, X, w0)  # one precomputation, every radius, any order
        for R in [*RADII, *reversed(RADII)]:
            with np.errstate(over="ignore", invalid="ignore"):
                ref = _ref_deep(model, X, w0, R)
                if depth == 1:
                    assert _two_layer_bound(model, X, w0, R) == _ref_two_layer(model, X, w0, R)
                    ref = min(_ref_two_layer(model, X, w0, R), ref)
            ref = math.inf if math.isnan(ref) else ref
            assert _deep_bound(model, X, w0, R) == _ref_deep(model, X, w0, R)
            assert bound(R) == ref
            assert certified_beta(model, X, w0, R) == ref


def test_wrappers_and_the_bisection_use_the_same_values() -> None:
    model, X, w0 = _net("tanh", 1, 3)
    rng = np.random.default_rng(1)
    w1 = model.init(rng)
    sym = SymmetricModel(model)
    ws = np.concatenate([w0, w1])
    for R in RADII:
        expect = max(_ref(model, X, w0, R), _ref(model, X, w1, R)) / math.sqrt(2.0)
        assert certified_beta(sym, X, ws, R) == expect
        assert certified_beta(CenteredModel(model, w0), X, w0, R) == _ref(model, X, w0, R)
    est = certified_beta_auto(model, X, w0, 0.4)
    assert est is not None and est.value == _ref(model, X, w0, est.radius)
    assert est.radius * est.value >= 0.2  # the self-consistent radius, from the same values


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_joint_sup_bounds_equal_the_separate_ones(name: str) -> None:
    act = ACTIVATIONS[name]
    rng = np.random.default_rng(5)
    for scale in (1e-3, 1.0, 30.0, 1e200):
        z = rng.standard_normal((20, 15)) * scale
        w = np.abs(rng.standard_normal((20, 15))) * scale * rng.random()
        lo, hi = z - w, z + w
        lo[0, 0], hi[1, 1], lo[2, 2] = np.nan, np.inf, -np.inf
        with np.errstate(all="ignore"):
            s1, s2 = act.sup_abs_d1_d2(lo, hi)
            assert np.array_equal(s1, act.sup_abs_d1(lo, hi))
            assert np.array_equal(s2, act.sup_abs_d2(lo, hi))
            assert s1[0, 0] == s2[0, 0] == np.inf


def _ref(model: MLP, X: Array, w0: Array, R: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return min(_ref_two_layer(model, X, w0, R), _ref_deep(model, X, w0, R))


def _ref_two_layer(model: MLP, X: Array, w0: Array, radius: float) -> float:
    """The neuron-by-neuron bound as computed before the precomputation, on one radius."""
    (W1, b1), (W2, _) = model.unpack(w0)
    l1, l2 = model.layers
    G = l1.c_w * X
    if model.bias:
        G = np.hstack([G, np.full((X.shape[0], 1), l1.c_b)])
    # ||(c1 x_i, c1b)|| as the layer recursion computes it (since the two bounds share their
    # evaluation of the sups; before, np.linalg.norm of the rows of G: equal to a few ulps)
    cb = l1.c_b if model.bias else 0.0
    gnorm = np.sqrt((l1.c_w * np.linalg.norm(X, axis=1)) ** 2 + cb**2)  # (n,)
    G_op = float(np.linalg.norm(G, 2))
    z0, zerr = _preactivations(X, W1, b1, l1.c_w, l1.c_b)
    spread = gnorm[:, None] * radius + zerr
    act = model.activation
    d1 = act.sup_abs_d1(z0 - spread, z0 + spread).max(axis=0)  # (m,)
    d2 = act.sup_abs_d2(z0 - spread, z0 + spread).max(axis=0)
    v = np.abs(W2[0]) + radius
    s = l2.c_w * v * d2 * G_op**2
    t = l2.c_w * d1 * G_op
    block = 0.5 * s + np.sqrt(0.25 * s * s + t * t)
    return float(block.max()) * _ROUNDING


def _ref_deep(model: MLP, X: Array, w0: Array, radius: float) -> float:
    """The layer recursion as computed before the precomputation, on one radius."""
    X = np.asarray(X, dtype=np.float64)
    R = float(radius)
    act = model.activation
    k = model.depth + 1  # number of weight layers, the length of eta
    n = X.shape[0]
    A0 = X  # a^(l-1) at w0, n x fan_in
    delta = np.zeros(n)  # delta_i >= ||a_i^(l-1)(xi) - a_i^(l-1)(w0)|| over the ball
    p = q = np.zeros(k)
    S = np.zeros((k, k))
    u = d2u = np.zeros(0)  # per-unit sup |phi'|, |phi''| of the previous hidden layer
    for idx, (layer, (W0, b0)) in enumerate(zip(model.layers, model.unpack(w0), strict=True)):
        c = layer.c_w
        cb = layer.c_b if layer.bias else 0.0
        G0 = c * A0
        if layer.bias:
            G0 = np.hstack([G0, np.full((n, 1), cb)])
        g = _opnorm(G0) + c * float(np.linalg.norm(delta))
        anorm = np.linalg.norm(A0, axis=1) + delta  # >= ||a_i^(l-1)(xi)||
        rows = np.sqrt((c * anorm) ** 2 + cb**2)  # >= ||(c a_i^(l-1)(xi), c_b)||
        e = np.zeros(k)
        e[idx] = 1.0
        if idx == 0:
            p, q = g * e, float(rows.max()) * e
        else:
            rho = _opnorm(W0 * u) + R * float(u.max())
            kappa = float(((np.linalg.norm(W0, axis=0) + R) * d2u).max())
            cross = float(u.max()) * (np.outer(e, p) + np.outer(p, e))
            curv = 0.5 * kappa * (np.outer(p, q) + np.outer(q, p))
            S = c * (cross + curv + rho * S)
            p = g * e + c * rho * p
            q = float(rows.max()) * e + c * rho * q
        if idx == model.depth:
            break
        # pre-activations at w0 (computed, with a bound on their rounding error) and how far
        # the exact ones can be from them over the ball, per sample and unit
        z0, zerr = _preactivations(A0, W0, b0, c, cb)
        direct = R * rows  # from the layer's own weights
        spread = direct[:, None] + c * np.linalg.norm(W0, axis=1)[None, :] * delta[:, None] + zerr
        moved = direct + c * _opnorm(W0) * delta + np.linalg.norm(zerr, axis=1)
        s1 = act.sup_abs_d1(z0 - spread, z0 + spread)
        s2 = act.sup_abs_d2(z0 - spread, z0 + spread)
        A0 = act.fn(z0)
        # delta_i >= ||a_i(xi) - A0_i|| with A0 as computed: the move plus phi's rounding
        aerr = 4 * _EPS * np.abs(A0) + 1e-300
        delta = np.minimum(
            np.linalg.norm(s1 * spread + aerr, axis=1),
            s1.max(axis=1) * moved + np.linalg.norm(aerr, axis=1),
        )
        u, d2u = s1.max(axis=0), s2.max(axis=0)
    top = float(np.linalg.eigvalsh(0.5 * (S + S.T))[-1])
    return max(top, 0.0) * _ROUNDING


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "erf"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_the_reduced_sups_change_no_bound_by_a_single_bit(act: str, depth: int) -> None:
    """The per-unit and per-sample maxima by reduction (Activation.interval_sup_maxima) and
    the unit-by-unit form of delta computed only where it can be the smaller: the bound is the
    one the elementwise sups give, on layers narrow (the unit-by-unit form wins) and wide (it
    is skipped), at every radius of a self-consistent search."""
    import dataclasses

    from lazycheck.models.activations import get_activation

    plain = dataclasses.replace(get_activation(act), even=False)
    for seed, width in enumerate((4, 60, 400)):
        rng = np.random.default_rng(100 + seed)
        d, n = 5, 30
        X = rng.standard_normal((n, d)) * [0.3, 1.0, 3.0][seed]
        fast = MLP(d, [width] * depth, act, "ntk", True, sigma_w=1.3, sigma_b=0.7)
        slow = MLP(d, [width] * depth, plain, "ntk", True, sigma_w=1.3, sigma_b=0.7)
        w0 = fast.init(rng)
        bound_fast, bound_slow = _bound_on_radii(fast, X, w0), _bound_on_radii(slow, X, w0)
        for R in [*RADII, 1e-4, 2e-3]:
            with np.errstate(over="ignore", invalid="ignore"):
                assert bound_fast(R) == bound_slow(R)
        est = certified_beta_auto(fast, X, w0, 0.3)
        ref = certified_beta_auto(slow, X, w0, 0.3)
        assert est is not None and ref is not None
        assert (est.value, est.radius) == (ref.value, ref.radius)
