"""beta.units: with one hidden layer, a move's part in one unit does at least as well as the
whole move; the best unit's part, found by branch and bound, against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from lazycheck.beta import certified_beta_auto, jacobian_change, sampled_beta
from lazycheck.beta import units as units_mod
from lazycheck.beta.units import UnitSplit
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

ACTS = ["tanh", "gelu", "sin", "sigmoid", "softplus", "erf", "identity"]


def _net(seed: int):
    rng = np.random.default_rng(seed)
    act, bias = ACTS[seed % len(ACTS)], seed % 2 == 0
    par = "standard" if seed % 3 == 0 else "ntk"
    model = MLP(3, [int(rng.integers(2, 30))], act, par, bias, sigma_w=1.3, sigma_b=0.7)
    X = rng.standard_normal((int(rng.integers(2, 12)), 3))
    w0 = model.init(rng)
    if seed % 4 == 0:
        return CenteredModel(model, w0), X, w0, rng
    return model, X, w0, rng


def _ratio(model, X, lin0, w0, d) -> float:
    return jacobian_change(model, X, lin0, w0 + d, "dense") / float(np.linalg.norm(d))


@pytest.mark.parametrize("seed", range(14))
def test_the_best_part_is_the_best_unit_and_beats_the_whole_move(seed: int) -> None:
    model, X, w0, rng = _net(seed)
    split = UnitSplit.of(model, X, w0)
    assert split is not None
    lin0 = model.linearize(w0, X)
    for _ in range(4):
        d = rng.standard_normal(w0.size) * rng.uniform(0.01, 2.0)
        found = split.best_part(d, 0.0)
        assert found is not None
        part, ratio = found
        units = [idx for idx in split.index if np.any(d[idx])]
        brute = []
        for idx in units:
            dj = np.zeros_like(d)
            dj[idx] = d[idx]
            brute.append(_ratio(model, X, lin0, w0, dj))
        best = int(np.argmax(brute))
        np.testing.assert_array_equal(part[units[best]], d[units[best]])
        assert np.count_nonzero(part) <= split.index.shape[1]
        assert ratio == pytest.approx(brute[best], rel=1e-9)
        assert ratio == pytest.approx(_ratio(model, X, lin0, w0, part), rel=1e-9)
        assert _ratio(model, X, lin0, w0, d) <= ratio * (1 + 1e-12)  # the split's inequality
        assert split.best_part(d, ratio * (1 + 1e-9)) is None  # nothing above the floor


def test_blocks_and_batches_change_nothing(monkeypatch) -> None:
    model, X, w0, rng = _net(5)
    split = UnitSplit.of(model, X, w0)
    assert split is not None
    moves = [rng.standard_normal(w0.size) for _ in range(5)]
    ref = [split.best_part(d, 0.0) for d in moves]
    monkeypatch.setattr(units_mod, "_BLOCK_ELEMENTS", 7)
    monkeypatch.setattr(units_mod, "_EXACT_BATCH", 1)
    for d, r in zip(moves, ref, strict=True):
        got = split.best_part(d, 0.0)
        assert got is not None and r is not None
        np.testing.assert_array_equal(got[0], r[0])
        assert got[1] == pytest.approx(r[1], rel=1e-13)


def test_only_a_smooth_one_hidden_layer_mlp_is_split() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    for model in (MLP(3, [5, 5]), MLP(3, []), MLP(3, [5], "relu")):
        assert UnitSplit.of(model, X, model.init(rng)) is None
    pair = SymmetricModel(MLP(3, [5]))
    assert UnitSplit.of(pair, X, pair.init(rng)) is None
    one = MLP(3, [5])
    assert UnitSplit.of(CenteredModel(one, one.init(rng)), X, one.init(rng)) is not None


@pytest.mark.parametrize("seed", range(6))
def test_the_sampled_search_with_units_is_never_below_the_search_without(
    seed: int, monkeypatch
) -> None:
    """On a given ball the search without units is the search with them up to the last step,
    which can only add a better point (with the radius chosen by the search, a larger value
    shrinks the ball of the next round, so there the two searches part ways)."""
    model, X, w0, _ = _net(seed + 1)
    cert = certified_beta_auto(model, X, w0, 0.05)
    assert cert is not None
    R = cert.radius

    def search():
        return sampled_beta(model, X, w0, 0.05, np.random.default_rng(seed), radius=R, samples=8)

    with_units = search()
    monkeypatch.setattr(UnitSplit, "of", classmethod(lambda cls, *a: None))
    without = search()
    assert without.value <= with_units.value <= cert.value * (1 + 1e-12)
    assert with_units.samples >= without.samples


def test_on_iris_a_better_unit_raises_the_sampled_beta(monkeypatch) -> None:
    """samples/iris.toml: the search ends at a point 99.88% in one unit (ratio 3.5405); the
    part of that point in another unit has 3.7699, and the ascent from it reaches 3.78."""
    from pathlib import Path

    from lazycheck import load_problem
    from lazycheck.numerics.spectrum import jacobian_spectrum

    prob = load_problem(Path(__file__).resolve().parent.parent / "samples" / "iris.toml")
    smin = jacobian_spectrum(prob.linearize(prob.w0), prob.p).sigma_min

    def search():
        return sampled_beta(prob.model, prob.X, prob.w0, smin, prob.rng("beta"))

    with_units = search()
    monkeypatch.setattr(UnitSplit, "of", classmethod(lambda cls, *a: None))
    without = search()
    assert with_units.value > 1.05 * without.value
    assert with_units.radius == without.radius  # one round each: both consistent at once


def test_parts_at_the_rounding_level_are_left_out() -> None:
    """A part of 1e-13 of the move changes z by ~1e-14: phi(z') - phi(z) keeps a digit or two,
    and its ratio can look large. Such parts are never chosen; the part that is agrees with
    the model's own ratio."""
    model, X, w0, rng = _net(7)
    split = UnitSplit.of(model, X, w0)
    assert split is not None
    lin0 = model.linearize(w0, X)
    for j in range(3):
        d = 1e-13 * rng.standard_normal(w0.size)
        d[split.index[j]] = 0.1 * rng.standard_normal(split.index.shape[1])
        found = split.best_part(d, 0.0)
        assert found is not None
        part, ratio = found
        assert np.flatnonzero(part).tolist() == sorted(split.index[j].tolist())
        assert ratio == pytest.approx(_ratio(model, X, lin0, w0, part), rel=1e-9)
