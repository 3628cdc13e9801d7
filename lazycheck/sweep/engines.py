"""Where the configurations run: in this process, in local worker processes, or on Dask.

Every engine takes the tasks (index, spec) and calls ``on_done(index, record)`` in the calling
thread as each finishes, in completion order, so records are stored as soon as they exist.
Workers cap BLAS at one thread (:func:`lazycheck.threads.set_threads`): a sweep's parallelism
is across configurations, and on a loaded machine BLAS threads only spin. Results do not depend
on the engine: each configuration is a pure function of its spec.

* :class:`Serial` (``--jobs 1``): one after the other in this process (BLAS threads as set by
  ``--threads``).
* :class:`LocalPool` (``--jobs N``): a ``concurrent.futures.ProcessPoolExecutor`` started with
  the ``forkserver`` method (``spawn`` where there is none), so no worker inherits the state of
  a threaded parent; the fork server imports what a run needs (lazycheck's verify, numpy,
  scipy) once, and every worker forks from it instead of importing them again.
* :class:`DaskEngine` (``--dask ADDRESS``): the tasks are submitted to a Dask distributed
  scheduler; needs ``pip install 'lazycheck[dask]'``. Workers must see the same data files.
  While a sweep runs, a worker plugin (workers that join meanwhile run it too) imports what a
  run needs and caps BLAS at one thread on every worker before its first configuration, the
  counterpart of the fork server's preload, and pauses Dask's statistical profiler on the
  workers (it samples every task's stack 100 times a second; it took about 9% of the runs' CPU
  time); unregistered at the end of the sweep, it restarts the profilers.

Both parallel engines hand out the configurations longest-expected first (:func:`by_cost`), so
that the last ones to start are short and no worker idles long at the end while another
finishes a long run (a cost model fitted to measured run times); Dask gets the order as
task priorities.

A worker that dies (killed, out of memory) fails only the configurations it was given; they are
recorded as failed with the reason and the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from lazycheck.errors import LazycheckError
from lazycheck.sweep.metrics import run_config

if TYPE_CHECKING:
    from lazycheck.spec import Spec
    from lazycheck.sweep.metrics import ProblemBuilder

__all__ = [
    "DaskEngine",
    "Engine",
    "LocalPool",
    "Serial",
    "by_cost",
    "default_jobs",
    "expected_cost",
    "make_engine",
]

Task = tuple[int, "Spec"]
#: what every configuration imports: the fork server imports it once, the workers inherit it
_PRELOAD = [
    "lazycheck.sweep.metrics",
    "lazycheck.verify",
    "lazycheck.simulate",
    "scipy.linalg",
    "scipy.optimize",
    "threadpoolctl",
]
OnDone = Callable[[int, dict[str, Any]], None]
_PLUGIN_NAME = "lazycheck-sweep"
#: a Dask worker's statistical profiler (its sampling and its cycling), paused during a sweep
_PROFILER = ("profile", "profile-cycle")
_YEAR_MS = 365 * 86400 * 1000.0
_plugin_cls: type | None = None


class Engine:
    """Runs tasks; ``name`` says which engine for the reports."""

    name = "engine"

    def run(self, tasks: Sequence[Task], build: ProblemBuilder | None, on_done: OnDone) -> None:
        raise NotImplementedError


@dataclass
class Serial(Engine):
    name = "serial"

    def run(self, tasks: Sequence[Task], build: ProblemBuilder | None, on_done: OnDone) -> None:
        for index, spec in tasks:
            on_done(index, run_config(spec, build))


@dataclass
class LocalPool(Engine):
    jobs: int
    name = "processes"

    def run(self, tasks: Sequence[Task], build: ProblemBuilder | None, on_done: OnDone) -> None:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not tasks:
            return
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":  # workers fork with lazycheck imported
            ctx.set_forkserver_preload(_PRELOAD)
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(tasks)), mp_context=ctx, initializer=_init_pool_worker
        )
        try:
            futures = {
                pool.submit(run_config, spec, build): index for index, spec in by_cost(tasks)
            }
            for fut in as_completed(futures):
                on_done(futures[fut], _result(fut))
        except BaseException:  # interrupted: stop the workers now, keep what is stored
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


@dataclass
class DaskEngine(Engine):
    address: Any  # a scheduler address, or a distributed.Client
    name = "dask"

    def run(self, tasks: Sequence[Task], build: ProblemBuilder | None, on_done: OnDone) -> None:
        distributed = _import_distributed()
        own = not isinstance(self.address, distributed.Client)
        if own:
            _check_reachable(str(self.address))
        try:
            client = distributed.Client(self.address, timeout=30) if own else self.address
        except OSError as exc:
            raise LazycheckError(
                f"--dask {self.address}: cannot reach the scheduler ({exc})"
            ) from None
        try:
            _warm_workers(client)
            ordered = by_cost(tasks)
            futures = {
                client.submit(
                    _dask_task, spec, build, pure=False, priority=len(ordered) - rank
                ): index
                for rank, (index, spec) in enumerate(ordered)
            }
            for fut in distributed.as_completed(list(futures)):
                on_done(futures[fut], _result(fut))
        finally:
            _release_workers(client)
            if own:
                client.close()


def by_cost(tasks: Sequence[Task]) -> list[Task]:
    """The tasks, longest expected first by :func:`expected_cost` (ties in the given order), so
    that the last configurations to start are short and no worker idles long at the end while
    another finishes a long run."""
    return sorted(tasks, key=lambda t: -expected_cost(t[1]))


def expected_cost(spec: Spec) -> float:
    """A relative run-time estimate, ``n^1.15 * P^0.2 * alpha^-0.08`` (``P``: the weights of
    a built-in MLP, 1 for other models), only used to order configurations. The exponents are
    fits to run times measured on the two-layer tanh sample (one BLAS thread): doubling n
    multiplied the time by about 2.2, quadrupling the width by about 1.35, and going from
    alpha = 0.01 to 1e4 divided it by about 3 (the flow far from the lazy regime is longer and
    stiffer); the seed moved it by up to 2x, which no model of the spec can predict."""
    weights = 1
    if spec.model.kind == "mlp":
        sizes = (spec.data.dim, *spec.model.widths, 1)
        weights = sum(a * b for a, b in pairwise(sizes))
    return float(spec.data.n**1.15 * weights**0.2 * spec.flow.alpha**-0.08)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_engine(jobs: int | None, dask: Any = None) -> Engine:
    """``--dask`` if given, else ``--jobs`` (default: the number of cores) processes; one job
    runs in this process."""
    if dask is not None:
        return DaskEngine(dask)
    n = default_jobs() if jobs is None else jobs
    if n < 1:
        raise LazycheckError(f"--jobs: must be >= 1, got {n}")
    return Serial() if n == 1 else LocalPool(n)


# ----------------------------------------------------------------------------- helpers


def _init_worker() -> None:
    from lazycheck.threads import set_threads

    set_threads(1)


def _init_pool_worker() -> None:
    """A local worker: one BLAS thread; Ctrl-C is the parent's to handle (it stops the pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker()


def _preload() -> None:
    """Import what every configuration needs and cap BLAS at one thread."""
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    _init_worker()


def _warm_workers(client: Any) -> None:
    """Register the worker plugin (:func:`_plugin_class`) on every worker, and on every worker
    that joins while the sweep runs."""
    import contextlib

    # a worker that cannot import lazycheck fails the registration: each task records why
    with contextlib.suppress(Exception):
        client.register_plugin(_plugin_class()(), name=_PLUGIN_NAME)


def _release_workers(client: Any) -> None:
    """Unregister the plugin: its teardown restarts each worker's profiler."""
    import contextlib

    with contextlib.suppress(Exception):  # a closed client or a lost worker: nothing to undo
        client.unregister_worker_plugin(_PLUGIN_NAME)


def _plugin_class() -> type:
    """A ``distributed.WorkerPlugin`` for the sweep's workers (defined on first use:
    distributed is imported only with ``--dask``). ``setup`` runs :func:`_preload` (imports
    once per worker, in parallel, before the first task, as the fork server does for
    ``--jobs``; one BLAS thread) and pauses the worker's statistical profiler, which samples
    every running task's stack 100 times a second for the dashboard: measured on the two-layer
    tanh sweep (21 runs, 2 workers), each worker's event-loop thread spent 2.2 s of CPU in a
    29 s sweep with it (about 9% of the runs' own CPU time), 1.05 s in a 23 s sweep with it
    disabled, 0.4 s in a 13-14 s sweep with it paused. ``teardown`` (when the sweep
    unregisters the plugin) restarts it."""
    global _plugin_cls
    if _plugin_cls is None:
        from distributed import WorkerPlugin

        class LazycheckSweepPlugin(WorkerPlugin):
            paused: dict[str, float] = {}  # noqa: RUF012 (replaced, never mutated)

            def setup(self, worker: Any) -> None:
                _preload()
                # a period of a year: stopping would not do for a worker that joins now, whose
                # periodic callbacks are started after its plugins (distributed itself sets
                # the heartbeat's callback_time the same way)
                callbacks = getattr(worker, "periodic_callbacks", {})
                self.paused = {k: callbacks[k].callback_time for k in _PROFILER if k in callbacks}
                for key in self.paused:
                    callbacks[key].callback_time = _YEAR_MS

            def teardown(self, worker: Any) -> None:
                callbacks = getattr(worker, "periodic_callbacks", {})
                for key, period in self.paused.items():
                    pc = callbacks.get(key)
                    if pc is not None:
                        pc.callback_time = period
                        if pc.is_running():  # reschedule now, not in a year
                            pc.stop()
                            pc.start()
                self.paused = {}

        _plugin_cls = LazycheckSweepPlugin
    return _plugin_cls


def _dask_task(spec: Spec, build: ProblemBuilder | None) -> dict[str, Any]:
    _init_worker()
    return run_config(spec, build)


def _result(fut: Any) -> dict[str, Any]:
    """The record of a finished future; a worker that died gives a failed record."""
    from lazycheck.sweep.metrics import failed_record

    try:
        return fut.result()
    except Exception as exc:
        return failed_record(
            f"the worker running this configuration died: {type(exc).__name__}: {exc}"
        )


def _check_reachable(address: str) -> None:
    """Fail fast (one line) when nothing listens at a ``tcp://host:port`` scheduler address."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or parts.hostname is None or parts.port is None:
        return  # another protocol: let distributed judge
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=10).close()
    except OSError as exc:
        raise LazycheckError(
            f"--dask {address}: no scheduler answers there ({exc.strerror or exc}); start one "
            "with `dask scheduler` or give its address"
        ) from None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise LazycheckError(
            "--dask needs Dask's distributed scheduler: pip install 'lazycheck[dask]'"
        ) from None
    return distributed
