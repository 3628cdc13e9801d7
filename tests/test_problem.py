"""Problems built from the bundled samples, and the named random streams."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lazycheck.errors import LazycheckError
from lazycheck.models.wrappers import CenteredModel, SymmetricModel
from lazycheck.problem import Problem, build_model, load_problem, make_problem, rng_for
from lazycheck.spec import load_spec, parse_spec

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.toml"))


def test_the_expected_samples_are_bundled() -> None:
    names = {p.name for p in SAMPLES}
    assert {"two_layer_tanh.toml", "deep_tanh.toml", "relu.toml", "p_le_n.toml", "iris.toml"} <= (
        names
    )


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_builds_a_consistent_problem(path: Path) -> None:
    framework = {"torch_cnn": "torch", "jax_mlp": "jax"}.get(path.stem)
    if framework:
        pytest.importorskip(framework)
    prob = load_problem(path)
    assert isinstance(prob, Problem)
    n = prob.X.shape[0]
    assert prob.y.shape == (n,) and prob.n == n
    assert prob.w0.shape == (prob.p,) and prob.p == prob.model.n_params
    assert np.all(np.isfinite(prob.X)) and np.all(np.isfinite(prob.y))
    f0 = prob.f(prob.w0)
    assert f0.shape == (n,)
    if prob.spec.model.center or prob.spec.model.init == "symmetric":
        assert np.all(f0 == 0.0)
    K = prob.kernel(prob.w0)
    J = prob.jacobian(prob.w0)
    assert K.shape == (n, n) and J.shape == (n, prob.p)
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-10, atol=1e-12 * np.abs(K).max())
    assert prob.loss(prob.w0) == pytest.approx(
        0.5 * float((prob.alpha * f0 - prob.y) @ (prob.alpha * f0 - prob.y))
    )


def _min_eig(path: str) -> tuple[float, float]:
    prob = load_problem(Path(__file__).resolve().parent.parent / "samples" / path)
    ev = np.linalg.eigvalsh(prob.kernel(prob.w0))
    return float(ev[0]), float(ev[-1])


def test_samples_are_in_the_regimes_they_document() -> None:
    # p <= n: rank J0 <= p < n, so the tangent kernel is singular
    prob = load_problem(Path(__file__).resolve().parent.parent / "samples" / "p_le_n.toml")
    assert prob.p <= prob.n
    assert np.linalg.matrix_rank(prob.jacobian(prob.w0)) <= prob.p < prob.n
    # relu is not smooth; the others are
    assert not load_problem(SAMPLES[0].parent / "relu.toml").model.smooth
    assert load_problem(SAMPLES[0].parent / "deep_tanh.toml").model.smooth
    # Assumption 1's rank condition holds on the others: lambda_min(K0) is clearly positive
    for name in ("two_layer_tanh.toml", "deep_tanh.toml", "relu.toml", "iris.toml"):
        lo, hi = _min_eig(name)
        assert lo > 1e-6 * hi, name


def test_iris_sample_rows_have_distinct_inputs() -> None:
    prob = load_problem(SAMPLES[0].parent / "iris.toml")
    assert prob.n == 40 and prob.X.shape[1] == 3
    assert len({tuple(row) for row in prob.X}) == prob.n


def test_alpha_and_seed_overrides_reach_the_problem() -> None:
    path = SAMPLES[0].parent / "two_layer_tanh.toml"
    prob = load_problem(path, alpha=250.0, seed=3)
    assert prob.alpha == 250.0 and prob.seed == 3 and prob.spec.seed == 3
    assert load_problem(path).alpha == load_spec(path).flow.alpha


def test_load_problem_takes_overrides_as_dotted_keys() -> None:
    """``overrides=`` (issue 8's name) sets any spec key, exactly as ``settings=`` does."""
    path = SAMPLES[0].parent / "two_layer_tanh.toml"
    by_overrides = load_problem(path, overrides={"model.widths": [8], "data.n": 6})
    by_settings = load_problem(path, settings={"model.widths": [8], "data.n": 6})
    assert tuple(by_overrides.spec.model.widths) == (8,)
    assert by_overrides.p == by_settings.p == 3 * 8 + 8 and by_overrides.n == 6
    assert np.array_equal(by_overrides.w0, by_settings.w0)
    both = load_problem(path, settings={"data.n": 6}, overrides={"model.widths": [8]}, seed=2)
    assert (both.n, both.p, both.seed) == (6, 32, 2)
    with pytest.raises(LazycheckError, match=r"model\.nonsense"):
        load_problem(path, overrides={"model.nonsense": 1})


# ----------------------------------------------------------------------------- random streams


def test_rng_streams_are_reproducible() -> None:
    a = rng_for(7, "init").standard_normal(5)
    b = rng_for(7, "init").standard_normal(5)
    np.testing.assert_array_equal(a, b)


def test_rng_streams_differ_by_name_and_seed() -> None:
    draws = {
        (seed, name): rng_for(seed, name).standard_normal(4).tobytes()
        for seed in (0, 1)
        for name in ("data", "init", "beta", "ball")
    }
    assert len(set(draws.values())) == len(draws)


def test_rng_streams_are_stable_across_versions() -> None:
    """(seed, name) -> stream is a fixed function (crc32 of the name, PCG64): pin raw output."""
    assert list(rng_for(0, "data").bit_generator.random_raw(2)) == [
        8396933752253546773,
        2736684055898990943,
    ]
    assert list(rng_for(3, "init").bit_generator.random_raw(2)) == [
        13610681902698184279,
        9910595867515325145,
    ]


def test_problem_rng_uses_the_spec_seed() -> None:
    prob = load_problem(SAMPLES[0].parent / "two_layer_tanh.toml", seed=4)
    np.testing.assert_array_equal(
        prob.rng("beta").standard_normal(3), rng_for(4, "beta").standard_normal(3)
    )


def test_changing_the_model_does_not_shift_the_data() -> None:
    raw = {"seed": 5, "data": {"source": "synthetic", "n": 8}, "model": {"widths": [10]}}
    a = make_problem(parse_spec(raw))
    raw["model"] = {"widths": [30, 4], "activation": "sin"}
    b = make_problem(parse_spec(raw))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)


def test_changing_the_data_does_not_shift_the_initial_weights() -> None:
    raw = {"seed": 5, "data": {"source": "synthetic", "n": 8}, "model": {"widths": [10]}}
    a = make_problem(parse_spec(raw))
    raw["data"] = {"source": "synthetic", "n": 20, "noise": 0.3}
    b = make_problem(parse_spec(raw))
    np.testing.assert_array_equal(a.w0, b.w0)


def test_symmetric_init_halves_the_widths_and_centering_wraps() -> None:
    spec = parse_spec(
        {"data": {"source": "synthetic"}, "model": {"widths": [8, 6], "init": "symmetric"}}
    )
    X = np.random.default_rng(0).standard_normal((5, 3))
    model, w0 = build_model(spec.model, 3, X, rng_for(0, "init"))
    assert isinstance(model, SymmetricModel)
    assert model.base.widths == (4, 3)
    assert np.all(model.forward(w0, X) == 0.0)
    centered = dataclasses.replace(spec.model, center=True)
    model2, w02 = build_model(centered, 3, X, rng_for(0, "init"))
    assert isinstance(model2, CenteredModel) and isinstance(model2.base, SymmetricModel)
    np.testing.assert_array_equal(w0, w02)
