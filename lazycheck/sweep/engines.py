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
  Before submitting, every current worker imports what a run needs and caps BLAS at one thread
  (``client.run``: a one-off call, nothing stays registered), the counterpart of the fork
  server's preload. Each worker's statistical profiler (it samples every running task's stack
  100 times a second; it took about 9% of the runs' CPU time) is paused by the tasks
  themselves, only while lazycheck configurations run on that worker
  (:func:`_profiler_paused`), so nothing outlives the sweep even when its client dies: the
  scheduler cancels the queued tasks when the client goes, and the last running one restores
  the profiler when it ends.

Both parallel engines hand out the configurations longest-expected first (:func:`by_cost`), so
that the last ones to start are short and no worker idles long at the end while another
finishes a long run (a cost model fitted to measured run times); Dask gets the order as
task priorities.

A worker that dies (killed, out of memory) fails only the configurations it was given; they are
recorded as failed with the reason and the others go on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
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
    "lazycheck.commands.verify",
    "lazycheck.commands.simulate",
    "scipy.linalg",
    "threadpoolctl",
]
OnDone = Callable[[int, dict[str, Any]], None]
#: the worker plugin an earlier lazycheck registered for a sweep (removed if a dead client left it)
_PLUGIN_NAME = "lazycheck-sweep"
#: a Dask worker's statistical profiler (its sampling and its cycling), paused while
#: lazycheck configurations run on the worker
_PROFILER = ("profile", "profile-cycle")
#: worker statuses in which a restored profiler is restarted (not a closing or closed worker)
_LIVE = frozenset({"running", "paused", "closing_gracefully"})


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
    """Import what a run needs and cap BLAS at one thread on every current worker, in parallel,
    before the first task (a one-off ``client.run``: a worker that joins later imports on its
    first task); remove the worker plugin an earlier lazycheck registered for its sweeps if a
    client that died left it on the cluster (its teardown restarts the profilers)."""
    # a worker that cannot import lazycheck fails here: each of its tasks records why
    with contextlib.suppress(Exception):
        left_over = any(client.run(_warm_worker).values())
        if left_over:  # asked only then: the scheduler logs an error for a plugin it lacks
            client.unregister_worker_plugin(_PLUGIN_NAME)


def _warm_worker(dask_worker: Any) -> bool:
    """On a Dask worker: :func:`_preload`; whether it runs an earlier lazycheck's plugin."""
    _preload()
    return _PLUGIN_NAME in getattr(dask_worker, "plugins", {})


def _dask_task(spec: Spec, build: ProblemBuilder | None) -> dict[str, Any]:
    with _profiler_paused():
        _init_worker()
        return run_config(spec, build)


@contextlib.contextmanager
def _profiler_paused() -> Iterator[None]:
    """Pause the Dask worker's statistical profiler while this task runs.

    Why not a worker plugin registered for the sweep (what lazycheck did before): only the
    client can unregister it, so a client that died mid-sweep (killed, connection lost) left
    it on the scheduler and the profilers of a shared cluster paused for good, also on every
    worker that joined later. A lease renewed by the client would need a timer on every worker
    and a lease length to tune. Here the pause lives in the tasks: a per-worker count of the
    running lazycheck tasks pauses the profiler when it goes from 0 to 1 and restores it when
    it falls back to 0, so it never outlives the last running configuration, whoever submitted
    it, and a sweep whose client died leaves nothing behind (the scheduler cancels its queued
    tasks; the running ones end). Several tasks on one worker (threads) or concurrent sweeps
    share the count; the profiler is the worker's, so other tasks running there meanwhile go
    unsampled too. The stop and the restart run on the worker's event loop
    (``loop.add_callback``, the thread-safe way in): tornado's ``PeriodicCallback`` is not
    thread-safe.

    Why pause it: it samples every running task's stack 100 times a second for the dashboard;
    measured on the two-layer tanh sweep (21 runs, 2 workers), each worker's event-loop thread
    spent 2.2 s of CPU in a 29 s sweep with it (about 9% of the runs' own CPU time), 1.05 s in
    a 23 s sweep with it disabled. Outside a Dask worker (the task called directly) nothing is
    paused."""
    worker = _current_worker()
    if worker is None:
        yield
        return
    _count_task(worker, +1)
    try:
        yield
    finally:
        _count_task(worker, -1)


@dataclass
class _Pause:
    running: int = 0  # lazycheck tasks running on the worker
    stopped: tuple[str, ...] | None = None  # the profiler's callbacks stopped, None: not paused


_PAUSE_LOCK = threading.Lock()
_PAUSES: weakref.WeakKeyDictionary[Any, _Pause] = weakref.WeakKeyDictionary()


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not on a Dask worker
        return None


def _count_task(worker: Any, step: int) -> None:
    """Count a lazycheck task starting (+1) or ending (-1) on ``worker``; when the count goes
    0 -> 1 or back to 0, bring the profiler in line on the worker's event loop."""
    with _PAUSE_LOCK:
        state = _PAUSES.setdefault(worker, _Pause())
        state.running += step
        changed = state.running == (1 if step > 0 else 0)
    if changed:
        with contextlib.suppress(RuntimeError):  # the worker's loop is closed: it is gone
            worker.loop.add_callback(_sync_profiler, worker)


def _sync_profiler(worker: Any) -> None:
    """On the worker's event loop: stop the profiler's running callbacks while lazycheck tasks
    run, start them again when none does (idempotent: the latest count decides)."""
    callbacks = getattr(worker, "periodic_callbacks", {})
    with _PAUSE_LOCK:
        state = _PAUSES.get(worker)
        if state is None:
            return
        if state.running > 0 and state.stopped is None:
            state.stopped = tuple(
                k for k in _PROFILER if k in callbacks and callbacks[k].is_running()
            )
            for key in state.stopped:
                callbacks[key].stop()
        elif state.running == 0 and state.stopped is not None:
            if getattr(worker.status, "name", "") in _LIVE:  # not on a closing worker
                for pc in filter(None, map(callbacks.get, state.stopped)):
                    if not pc.is_running():
                        pc.start()
            state.stopped = None


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
