"""Exact Hessian-vector products of the MLP against central differences of the VJP (with
Richardson extrapolation), against a dense Hessian on a tiny network, and their symmetry;
the one-hidden-layer path against the general recursion."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel


def _case(widths, act="tanh", bias=False, par="ntk", n=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    model = MLP(d, list(widths), act, parameterization=par, bias=bias)
    X = rng.standard_normal((n, d)) / math.sqrt(d)
    w = model.init(rng)
    return model, X, w, rng.standard_normal(n), rng.standard_normal(w.size)


def _differenced(model, X, w, a, v, eps=1e-3):
    """Central differences of J^T a along v, Richardson-extrapolated (error O(eps^4))."""

    def central(e: float) -> np.ndarray:
        gp = model.linearize(w + e * v, X).vjp(a)
        gm = model.linearize(w - e * v, X).vjp(a)
        return (gp - gm) / (2 * e)

    return (4 * central(eps / 2) - central(eps)) / 3


@pytest.mark.parametrize("widths", [(), (9,), (6, 5), (5, 4, 6)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("par", ["ntk", "standard"])
def test_hvp_matches_differences(widths, bias: bool, par: str) -> None:
    model, X, w, a, v = _case(widths, bias=bias, par=par)
    exact = model.linearize(w, X).hvp(a, v)
    ref = _differenced(model, X, w, a, v)
    assert exact is not None and exact.shape == w.shape
    scale = max(float(np.linalg.norm(ref)), 1e-12)
    assert np.linalg.norm(exact - ref) <= 1e-8 * scale
    if not widths:  # no hidden layer: f is linear in w
        assert not np.any(exact)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu", "erf", "sin", "identity"])
@pytest.mark.parametrize("widths", [(8,), (8, 5)])  # the one-hidden-layer path and the recursion
def test_hvp_for_every_smooth_activation(act: str, widths: tuple[int, ...]) -> None:
    model, X, w, a, v = _case(widths, act=act, bias=True, seed=2)
    exact = model.linearize(w, X).hvp(a, v)
    ref = _differenced(model, X, w, a, v)
    assert np.linalg.norm(exact - ref) <= 1e-8 * max(float(np.linalg.norm(ref)), 1e-12)


def test_hvp_is_the_dense_hessian_and_symmetric() -> None:
    """sum_i a_i H_i as a dense matrix, column by column from the exact products, equals the
    Jacobian of J^T a by differences and is symmetric to rounding."""
    model, X, w, a, _ = _case((4, 3), bias=True, n=5, seed=3)
    lin = model.linearize(w, X)
    p = w.size
    H = np.column_stack([lin.hvp(a, e) for e in np.eye(p)])
    ref = np.column_stack([_differenced(model, X, w, a, e) for e in np.eye(p)])
    assert np.linalg.norm(H - ref) <= 1e-8 * np.linalg.norm(ref)
    assert np.linalg.norm(H - H.T) <= 1e-13 * np.linalg.norm(H)


def test_hvp_through_the_wrappers_and_where_there_is_none() -> None:
    model, X, w, a, v = _case((10,), seed=4)
    centered = CenteredModel(model, w)
    assert np.array_equal(centered.linearize(w, X).hvp(a, v), model.linearize(w, X).hvp(a, v))
    sym = SymmetricModel(model)
    ws = np.concatenate([w, w + 0.1 * v])
    vs = np.concatenate([v, -v])
    exact = sym.linearize(ws, X).hvp(a, vs)
    ref = _differenced(sym, X, ws, a, vs)
    assert np.linalg.norm(exact - ref) <= 1e-8 * np.linalg.norm(ref)
    relu = MLP(3, [6], "relu")
    assert relu.linearize(relu.init(np.random.default_rng(0)), X).hvp(a, v[: relu.n_params]) is None


@pytest.mark.parametrize("bias", [False, True])
def test_one_hidden_layer_path_agrees_with_the_recursion(bias: bool) -> None:
    from lazycheck.models import mlp_second

    model, X, w, a, v = _case((30,), bias=bias, par="standard", seed=6)
    lin = model.linearize(w, X)
    fused = lin.hvp(a, v)
    d1, d2 = lin.second_order()
    general = mlp_second._recursion(lin, a, model.unpack(v), d1, d2)
    assert np.linalg.norm(fused - general) <= 1e-13 * np.linalg.norm(general)


@pytest.mark.parametrize("bias", [False, True])
def test_one_hidden_layer_path_in_blocks_of_units(bias: bool, monkeypatch) -> None:
    """Forced into blocks of 64 units (width 150: blocks of 64, 64 and 22), the product agrees
    with the one-piece path and with the differences; the blocks cover every unit once."""
    from lazycheck.models import mlp_second

    model, X, w, a, v = _case((150,), bias=bias, seed=9)
    lin = model.linearize(w, X)
    whole = lin.hvp(a, v)
    monkeypatch.setattr(mlp_second, "_BLOCK_MIN_ELEMENTS", 0)
    monkeypatch.setattr(mlp_second, "_BLOCK_ELEMENTS", 1)
    blocks = mlp_second._unit_blocks(X.shape[0], 150)
    assert blocks == [(0, 64), (64, 128), (128, 150)]
    blocked = lin.hvp(a, v)
    assert np.linalg.norm(blocked - whole) <= 1e-14 * np.linalg.norm(whole)
    ref = _differenced(model, X, w, a, v)
    assert np.linalg.norm(blocked - ref) <= 1e-8 * np.linalg.norm(ref)


def test_unit_blocks_only_past_the_threshold() -> None:
    from lazycheck.models.mlp_second import _BLOCK_ELEMENTS, _BLOCK_MIN_ELEMENTS, _unit_blocks

    assert _unit_blocks(100, 2000) == [(0, 2000)]
    assert _unit_blocks(1, _BLOCK_MIN_ELEMENTS) == [(0, _BLOCK_MIN_ELEMENTS)]
    n, width = 50, 100_000
    blocks = _unit_blocks(n, width)
    assert blocks[0] == (0, _BLOCK_ELEMENTS // n) and blocks[-1][1] == width
    assert all(e == s2 for (_, e), (s2, _) in pairwise(blocks))


def test_hvp_through_the_guard_of_user_models() -> None:
    from lazycheck.models.guard import GuardedModel

    model, X, w, a, v = _case((7,), seed=8)
    guarded = GuardedModel(model, "net.py:make")
    assert np.array_equal(guarded.linearize(w, X).hvp(a, v), model.linearize(w, X).hvp(a, v))
