"""The sweep engines' scheduling: longest-expected configurations first; Dask workers warmed
(imports done, one BLAS thread) before their first configuration, and their statistical profiler
paused only while lazycheck configurations run on them, also when the client dies mid-sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sweep_helpers import TINY_TANH, profiler_plugin

from lazycheck.jsonio import dumps
from lazycheck.spec import load_spec
from lazycheck.sweep import engines, run_sweep
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


class _Callback:
    """A stand-in for tornado's PeriodicCallback that counts its starts and stops."""

    def __init__(self) -> None:
        self.running, self.starts, self.stops = True, 0, 0

    def is_running(self) -> bool:
        return self.running

    def start(self) -> None:
        self.running, self.starts = True, self.starts + 1

    def stop(self) -> None:
        self.running, self.stops = False, self.stops + 1


class _FakeWorker:
    """A Dask worker as the pause sees it: its profiler's callbacks, a status and an event loop
    whose ``add_callback`` only queues (``run_loop`` runs the queue, as the loop would)."""

    def __init__(self) -> None:
        self.periodic_callbacks = {"profile": _Callback(), "profile-cycle": _Callback()}
        self.status = SimpleNamespace(name="running")
        self.queue: list[tuple[Callable[..., None], tuple]] = []
        self.loop = SimpleNamespace(add_callback=lambda f, *args: self.queue.append((f, args)))

    def run_loop(self) -> None:
        while self.queue:
            f, args = self.queue.pop(0)
            f(*args)


def _paused(worker: _FakeWorker) -> bool:
    return not any(pc.is_running() for pc in worker.periodic_callbacks.values())


def test_the_profiler_is_paused_from_the_first_running_task_to_the_last(monkeypatch) -> None:
    worker = _FakeWorker()
    monkeypatch.setattr(engines, "_current_worker", lambda: worker)
    first, second = engines._profiler_paused(), engines._profiler_paused()
    first.__enter__()
    assert not _paused(worker)  # nothing touched off the event loop
    worker.run_loop()
    assert _paused(worker)
    second.__enter__()  # two tasks at once on the worker (two threads)
    first.__exit__(None, None, None)
    worker.run_loop()
    assert _paused(worker)  # one task still runs
    second.__exit__(None, None, None)
    worker.run_loop()
    assert not _paused(worker)
    assert all(pc.stops == 1 and pc.starts == 1 for pc in worker.periodic_callbacks.values())
    # a task ending and the next starting before the loop runs: the latest count decides
    with engines._profiler_paused():
        worker.run_loop()
    with engines._profiler_paused():
        worker.run_loop()
        assert _paused(worker)
    worker.run_loop()
    assert not _paused(worker)


def test_the_pause_is_undone_by_a_failing_task_and_spares_stopped_or_closing_workers(
    monkeypatch,
) -> None:
    worker = _FakeWorker()
    monkeypatch.setattr(engines, "_current_worker", lambda: worker)
    with pytest.raises(RuntimeError), engines._profiler_paused():
        worker.run_loop()
        raise RuntimeError("a failing configuration")
    worker.run_loop()
    assert not _paused(worker)
    worker.periodic_callbacks["profile-cycle"].stop()  # not ours to start
    with engines._profiler_paused():
        worker.run_loop()
    worker.run_loop()
    assert worker.periodic_callbacks["profile"].is_running()
    assert not worker.periodic_callbacks["profile-cycle"].is_running()
    with engines._profiler_paused():
        worker.run_loop()
        worker.status.name = "closing"  # the worker closes meanwhile: nothing restarted
    worker.run_loop()
    assert _paused(worker)


def test_concurrent_tasks_share_one_pause(monkeypatch) -> None:
    worker = _FakeWorker()
    monkeypatch.setattr(engines, "_current_worker", lambda: worker)
    barrier = threading.Barrier(8)

    def task() -> None:  # eight threads starting and ending tasks at once
        barrier.wait()
        for _ in range(200):
            with engines._profiler_paused():
                pass

    threads = [threading.Thread(target=task) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    worker.run_loop()
    assert engines._PAUSES[worker].running == 0
    assert not _paused(worker)


def _worker_state(dask_worker) -> dict:
    from threadpoolctl import threadpool_info

    return {
        "preloaded": all(m in sys.modules for m in ("lazycheck.commands.verify", "scipy.linalg")),
        "blas": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}),
        "profiling": _profiling(dask_worker),
    }


def _profiling(worker) -> bool:
    """The profiler samples: its callbacks run, at their configured periods (not paused)."""
    import dask
    from dask.utils import parse_timedelta

    periods = {
        "profile": dask.config.get("distributed.worker.profile.interval"),
        "profile-cycle": dask.config.get("distributed.worker.profile.cycle"),
    }
    return all(
        worker.periodic_callbacks[key].is_running()
        and worker.periodic_callbacks[key].callback_time
        == pytest.approx(parse_timedelta(period, default="ms") * 1000)
        for key, period in periods.items()
    )


def _scheduler_state(dask_scheduler) -> dict:
    return {"plugins": sorted(dask_scheduler.worker_plugins), "tasks": len(dask_scheduler.tasks)}


@pytest.fixture(scope="module")
def cluster() -> Iterator:
    """Two worker processes of one thread on 127.0.0.1, without Dask's own
    OPENBLAS_NUM_THREADS=1 for them (the warm-up must cap BLAS itself)."""
    distributed = pytest.importorskip("distributed")
    import dask

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": {}}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        yield cluster


@pytest.mark.slow
def test_dask_workers_are_warmed_and_a_left_over_plugin_removed(cluster) -> None:
    import distributed

    with distributed.Client(cluster) as client:
        before = client.run(_worker_state)
        assert all(not s["preloaded"] and s["profiling"] for s in before.values()), before
        dasks_own = _scheduler(client)["plugins"]  # distributed's own ("shuffle")
        # what an earlier lazycheck left registered when its client died: profilers stopped
        client.register_plugin(profiler_plugin(), name=engines._PLUGIN_NAME)
        assert _scheduler(client)["plugins"] == sorted([*dasks_own, engines._PLUGIN_NAME])
        assert not any(s["profiling"] for s in client.run(_worker_state).values())
        engines._warm_workers(client)  # what DaskEngine does before submitting
        after = client.run(_worker_state)
        for state in after.values():
            assert state == {"preloaded": True, "blas": [1], "profiling": True}, after
        assert _scheduler(client)["plugins"] == dasks_own


_DEAD_CLIENT = """
import sys
from lazycheck.spec import load_spec
from lazycheck.sweep.engines import DaskEngine
from sweep_helpers import GatedBuild

address, spec, gate = sys.argv[1:]
base = load_spec(spec)
tasks = [(i, base.with_settings({"seed": i})) for i in range(3)]
DaskEngine(address).run(tasks, GatedBuild(gate), lambda i, record: print(i, flush=True))
"""


def _wait_for(what: str, condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_client_leaves_no_plugin_and_the_profilers_restored(
    cluster, tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import distributed

    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    cmd = [sys.executable, "-c", _DEAD_CLIENT, cluster.scheduler_address, str(tiny), str(gate)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = lambda: len(list(gate.glob("started-*")))  # noqa: E731
        _wait_for("two configurations running", lambda: started() == 2 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        with distributed.Client(cluster) as client:
            dasks_own = [name for name in _scheduler(client)["plugins"] if "lazycheck" not in name]
            paused = client.run(_worker_state)
            assert not any(s["profiling"] for s in paused.values()), paused
            os.kill(proc.pid, signal.SIGKILL)  # the sweep's client dies: no finally runs
            proc.wait()
            # the scheduler forgets the dead client's tasks, the queued third one included
            _wait_for("the tasks released", lambda: not _scheduler(client)["tasks"])
            assert _scheduler(client)["plugins"] == dasks_own
            assert not any(s["profiling"] for s in client.run(_worker_state).values())
            (gate / "open").touch()  # the two running configurations end
            _wait_for(
                "the profilers restored",
                lambda: all(s["profiling"] for s in client.run(_worker_state).values()),
            )
            assert started() == 2  # the queued configuration never ran
            # the same cluster runs the next sweep as --jobs 1 does, and is left as it was
            kwargs = {"alpha": [3.0, 300.0], "seeds": [0]}
            by_dask = run_sweep(tiny, **kwargs, dask=client)
            assert by_dask.engine == "dask" and by_dask.failed == 0
            assert dumps(by_dask.to_dict()) == dumps(run_sweep(tiny, **kwargs, jobs=1).to_dict())
            assert all(s["profiling"] for s in client.run(_worker_state).values())
            assert _scheduler(client)["plugins"] == dasks_own
            assert "Exception while handling op" not in caplog.text  # the scheduler's log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        (gate / "open").touch()


def _scheduler(client) -> dict:
    return client.run_on_scheduler(_scheduler_state)
