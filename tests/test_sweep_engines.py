"""The sweep engines' scheduling: longest-expected configurations first, and Dask workers warmed
by the lazycheck plugin (imports done, one BLAS thread) before their first configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sweep_helpers import TINY_TANH

from lazycheck.spec import load_spec
from lazycheck.sweep.engines import by_cost, expected_cost


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "tiny.toml"
    path.write_text(TINY_TANH, encoding="utf-8")
    return path


def test_expected_cost_grows_with_n_and_width_and_falls_with_alpha(tiny: Path) -> None:
    spec = load_spec(tiny)  # n = 5 points in R^3, one hidden layer of 16, scalar output
    weights = 3 * 16 + 16 * 1
    assert expected_cost(spec) == pytest.approx(5**1.15 * weights**0.2 * 10.0**-0.08)
    deep = spec.with_settings({"model.widths": [8, 4], "data.n": 7, "flow.alpha": 1.0})
    assert expected_cost(deep) == pytest.approx(7**1.15 * (3 * 8 + 8 * 4 + 4) ** 0.2)
    assert expected_cost(spec.with_settings({"data.n": 10})) > expected_cost(spec)
    assert expected_cost(spec.with_settings({"model.widths": [64]})) > expected_cost(spec)
    assert expected_cost(spec.with_settings({"flow.alpha": 1e4})) < expected_cost(spec)


def test_longest_expected_first_ties_in_the_grid_order(tiny: Path) -> None:
    base = load_spec(tiny)
    grid = [
        (n, a, s)
        for n in (5, 20)
        for a in (10.0, 0.01, 1000.0)
        for s in (0, 1)  # same cost: kept in the grid's order
    ]
    tasks = [
        (i, base.with_settings({"data.n": n, "flow.alpha": a, "seed": s}))
        for i, (n, a, s) in enumerate(grid)
    ]
    order = [grid[i] for i, _ in by_cost(tasks)]
    expected = [(n, a, s) for n in (20, 5) for a in (0.01, 10.0, 1000.0) for s in (0, 1)]
    assert order == expected
    # a small problem far from the lazy regime before a large one deep in it
    mixed = [
        (0, base.with_settings({"flow.alpha": 0.01})),
        (1, base.with_settings({"flow.alpha": 1e4, "model.widths": [18]})),
    ]
    assert [i for i, _ in by_cost(mixed[::-1])] == [0, 1]


def _worker_state(dask_worker) -> dict:
    from threadpoolctl import threadpool_info

    return {
        "preloaded": all(m in sys.modules for m in ("lazycheck.verify", "scipy.linalg")),
        "blas": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}),
        "profiling": _profiling(dask_worker),
    }


def _profiling(worker) -> bool:
    """The profiler samples: its callback runs, at its configured period (not paused)."""
    import dask
    from dask.utils import parse_timedelta

    pc = worker.periodic_callbacks["profile"]
    period = parse_timedelta(dask.config.get("distributed.worker.profile.interval"), default="ms")
    return pc.is_running() and pc.callback_time == pytest.approx(period * 1000)


@pytest.mark.slow
def test_dask_workers_are_warmed_and_their_profiler_paused_during_a_sweep(tiny: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    from lazycheck.sweep import run_sweep
    from lazycheck.sweep.engines import _release_workers, _warm_workers

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
        assert all(not s["preloaded"] and s["profiling"] for s in before.values()), before
        _warm_workers(client)  # what DaskEngine does before submitting
        cluster.scale(3)  # a worker that joins during the sweep is warmed as well
        client.wait_for_workers(3, timeout=60)
        during = client.run(_worker_state)
        assert len(during) == 3
        for state in during.values():
            assert state == {"preloaded": True, "blas": [1], "profiling": False}, during
        _release_workers(client)  # what DaskEngine does at the end
        assert all(s["profiling"] for s in client.run(_worker_state).values())
        res = run_sweep(tiny, alpha=[3.0], seeds=[0], dask=client)
        assert res.engine == "dask" and res.computed == 1 and res.failed == 0
        after = client.run(_worker_state)
        assert all(s["profiling"] and s["blas"] == [1] for s in after.values()), after
