"""BLAS threads chosen by size: results identical to the last bit whatever the thread count."""

from __future__ import annotations

import numpy as np
import pytest

from lazycheck import threads


@pytest.fixture
def all_parallel(monkeypatch: pytest.MonkeyPatch):
    """Every product counts as large: run on the cap (so a cap of 2 really uses 2 threads)."""
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 0.0)
    yield
    threads.set_threads(None)


def test_bound_json_is_byte_identical_under_one_and_two_threads(run_cli, all_parallel) -> None:
    out = []
    for k in ("1", "2", "1"):
        res = run_cli(["bound", "samples/deep_tanh.toml", "--format", "json", "--threads", k])
        assert res.exit_code == 0, res.output
        out.append(res.stdout)
    assert out[0] == out[1] == out[2]


def test_blas_threads_sets_and_restores_the_count(all_parallel) -> None:
    threads.set_threads(2)
    libs = threads._blas_libs()
    assert libs and all(lib.get_num_threads() == 1 for lib in libs)  # the default outside
    with threads.blas_threads(1e12):
        assert all(lib.get_num_threads() == 2 for lib in libs)
    assert all(lib.get_num_threads() == 1 for lib in libs)
    threads.set_threads(1)
    with threads.blas_threads(1e12):
        assert all(lib.get_num_threads() == 1 for lib in libs)


def test_blas_threads_leaves_small_products_alone_under_the_policy(monkeypatch) -> None:
    threads.set_threads(2)
    calls: list[int] = []
    for lib in threads._blas_libs():
        monkeypatch.setattr(lib, "set_num_threads", calls.append)
    try:
        with threads.blas_threads(threads.PARALLEL_FLOPS / 2):  # one thread already: untouched
            pass
        assert calls == []
        with threads.blas_threads(threads.PARALLEL_FLOPS):
            pass
        assert calls and set(calls) == {1, 2}  # raised to the cap, then restored
    finally:
        monkeypatch.undo()
        threads.set_threads(None)


def test_kernel_is_identical_on_one_and_two_threads(all_parallel) -> None:
    from lazycheck.models.mlp import MLP

    rng = np.random.default_rng(0)
    model = MLP(5, [300, 200], "tanh", bias=True)
    X = rng.standard_normal((150, 5))
    lin = model.linearize(model.init(rng), X)
    lin1 = model.linearize(model.init(rng), X)
    res = {}
    for k in (1, 2):
        threads.set_threads(k)
        res[k] = (lin.kernel(), lin.difference_kernel(lin1))
    assert np.array_equal(res[1][0], res[2][0])
    assert np.array_equal(res[1][1], res[2][1])


def test_a_flow_through_the_python_api_is_identical_on_one_and_two_threads(all_parallel) -> None:
    # the integrator's path from n = 256 on (the kernel's eigenbasis kept across steps, the
    # sigma's along the path matrix-free), through the Python API with set_threads, as the
    # CLI's --threads calls it: the same bits on one thread and on two
    from lazycheck.commands.simulate import simulate
    from lazycheck.problem import load_problem

    spec = "benchmarks/specs/wide_tanh.toml"
    prob = load_problem(spec, settings={"data.n": 260, "model.widths": [200]})
    runs = {}
    for k in (1, 2):
        threads.set_threads(k)
        runs[k] = simulate(prob)
    one, two = runs[1], runs[2]
    assert one.success and two.success, (one.message, two.message)
    assert "matrix-free" in one.sigma_path and one.n_steps == two.n_steps
    for name in ("loss", "loss_lin", "disp", "sigma_min_t", "sigma_max_t", "jdiff", "w_final"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
