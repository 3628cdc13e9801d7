"""The sweep engines' scheduling: longest-expected configurations first, and Dask workers warmed
by the lazycheck plugin (imports done, one BLAS thread) before their first configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sweep_helpers import TINY_TANH

from lazycheck.spec import load_spec
from lazycheck.sweep.engines import by_cost, expected_size


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "tiny.toml"
    path.write_text(TINY_TANH, encoding="utf-8")
    return path


def test_expected_size_is_n_times_the_weights_of_the_mlp(tiny: Path) -> None:
    spec = load_spec(tiny)  # n = 5 points in R^3, one hidden layer of 16, scalar output
    assert expected_size(spec) == 5 * (3 * 16 + 16 * 1)
    deep = spec.with_settings({"model.widths": [8, 4], "data.n": 7})
    assert expected_size(deep) == 7 * (3 * 8 + 8 * 4 + 4 * 1)


def test_longest_expected_first_largest_problem_then_smallest_alpha(tiny: Path) -> None:
    base = load_spec(tiny)
    grid = [
        (w, a, s)
        for w in ([8], [32])
        for a in (10.0, 0.1, 1000.0)
        for s in (0, 1)  # same cost: kept in the grid's order
    ]
    tasks = [
        (i, base.with_settings({"model.widths": w, "flow.alpha": a, "seed": s}))
        for i, (w, a, s) in enumerate(grid)
    ]
    order = [grid[i] for i, _ in by_cost(tasks)]
    expected = [(w, a, s) for w in ([32], [8]) for a in (0.1, 10.0, 1000.0) for s in (0, 1)]
    assert order == expected
    assert sorted(i for i, _ in by_cost(tasks)) == list(range(len(tasks)))


def _worker_state() -> dict:
    from threadpoolctl import threadpool_info

    return {
        "preloaded": all(m in sys.modules for m in ("lazycheck.verify", "scipy.linalg")),
        "blas": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}),
    }


@pytest.mark.slow
def test_dask_workers_are_warmed_before_their_first_configuration(tiny: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    from lazycheck.sweep import run_sweep

    # without Dask's own OPENBLAS_NUM_THREADS=1 for the worker processes: the plugin must cap it
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": {}}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        before = client.run(_worker_state)
        assert not any(s["preloaded"] for s in before.values()), before
        res = run_sweep(tiny, alpha=[3.0], seeds=[0], dask=client)
        assert res.engine == "dask" and res.computed == 1 and res.failed == 0
        after = client.run(_worker_state)
        assert len(after) == 2
        for state in after.values():
            assert state == {"preloaded": True, "blas": [1]}, after
        # a worker that joins later is warmed by the registered plugin as well
        cluster.scale(3)
        client.wait_for_workers(3, timeout=60)
        late = client.run(_worker_state)
        assert len(late) == 3 and all(s["preloaded"] for s in late.values()), late
