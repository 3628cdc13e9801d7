"""Benchmark: ``lazycheck sweep`` on one core, on two worker processes, and on a Dask cluster.

The case: ``samples/two_layer_tanh.toml`` over 7 alphas (1e-2 to 1e4, log-spaced) x 3 seeds =
21 configurations, nothing stored (no ``--out``), run side by side in this process through
:func:`lazycheck.run_sweep`; each row's clock covers the whole call (grid, runs, aggregates):

* ``--jobs 1``: every configuration in this process, one after the other, 1 BLAS thread;
* ``--jobs 2``: two worker processes (forkserver), 1 BLAS thread each; the pool's start-up (the
  fork server importing lazycheck and scipy once) is inside the clock;
* ``--dask (2 workers)``: a ``distributed.LocalCluster`` of two worker processes with one
  thread each on 127.0.0.1, started before the clock (a lab's cluster is already running);
  the warm-up of its workers (``client.run``: imports, one BLAS thread) is inside the clock,
  as the fork server's is for ``--jobs 2``;
* ``--dask, warm workers``: the same sweep again on the same cluster, whose workers are warm
  (as a lab's long-running cluster is after its first sweep): not a goal, for comparison;
* ``--dask, profiler on``: the same again with the tasks' pause of Dask's statistical
  profiler switched off on the workers (the baseline of that pause, side by side).

``busy`` is the configurations' own time (the sum of the records' ``wall_time``) over wall time
x workers: the share of the workers' time spent in runs (start-up, scheduling, the tail and
the aggregates make the rest). ``CPU s`` is the CPU time of this process and all below it
(workers, fork server; the LocalCluster's scheduler and nannies run in this process): the
engine's own overhead shows there even when other sessions' load makes the wall times noisy.
``loop s`` is the CPU time of the Dask workers' main threads, where their event loops run
(the profiler's sampling, heartbeats, messages; the configurations run in other threads).

* ``--jobs 2, after Dask``: ``--jobs 2`` once more at the end of the round, so that each
  round's Dask sweep is bracketed by two ``--jobs 2`` sweeps seconds apart (A B A): the
  machine's speed drifts over minutes, and the bracketed ratio (Dask over the geometric mean
  of the two) cancels the drift that the best of each engine over all rounds does not.

Targets: ``--jobs 2`` at least 1.7x faster than ``--jobs 1`` on 2 cores; Dask within 20% of
``--jobs 2`` (the best of each over the rounds, and the median of the bracketed ratios). The
JSON reports must be identical. The load average is printed before and after: on a shared
machine the ratios are only meaningful when the load is below the core count.
Linux's autogroup scheduler (``/proc/sys/kernel/sched_autogroup_enabled``) gives each login
session one fair share of the CPUs: when other sessions keep the cores busy, two processes of
this session get little more CPU than one, and the speed-up cannot show.

Measured (``python -m benchmarks.bench_sweep``, five rounds, the shared 2-core machine at load
0.3-0.5 at the start and about 2 by the end), four runs; run 4 on this round's final code:

============================  =======  =======  =======  =======
                              run 1    run 2    run 3    run 4
============================  =======  =======  =======  =======
--jobs 1, best                16.28 s  14.50 s  13.33 s  16.69 s
--jobs 2, best                7.38 s   8.24 s   7.10 s   8.85 s
speed-up                      2.21x    1.76x    1.88x    1.89x
Dask, best                    9.54 s   9.27 s   7.53 s   10.54 s
Dask / --jobs 2, best of each 1.29     1.12     1.06     1.19
bracketed, median of five     1.02     1.02     1.12     1.17
============================  =======  =======  =======  =======

The bracketed ratios by round: 1.00 0.96 1.11 1.18 1.02 | 1.22 1.01 1.18 1.02 0.99 | 0.96 0.94
1.14 1.25 1.12 | 1.24 0.97 1.17 1.37 1.06; over the 20 rounds the median is 1.09 and 16 of 20
are within 1.2. The JSON reports were identical every time. The best-of ratio swings with the
fastest --jobs 2 minute: in run 1, --jobs 2 took 7.38 s to 11.48 s by round, Dask 9.54 s to
10.39 s. (Runs 1 and 2 took the best --jobs 2 over the bracketing sweeps too, ten samples
against Dask's five; the best was a first sweep each time, so the ratios are the same.)

What the engine costs, measured per thread with psutil in earlier rounds: the configurations'
own threads use the same CPU in a Dask worker as in a plain process once the profiler is
paused; the rest is the engine's own, about 7-10% of a sweep's CPU:
- the workers' event loops, 0.3-0.6 CPU-s each per sweep;
- the scheduler and its nannies, 0.7-0.9 CPU-s per sweep, in this process.
Left on, the workers' statistical profiler took about 9% of the runs' CPU; the ``profiler on``
row keeps that comparison (its loop CPU was 1.9-2.8x the paused one's in every round above).
--jobs 2 stays below 2x because of the fork server's start-up and imports (about 0.7 s, one
core idle meanwhile) and the aggregates after the runs.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
SEEDS = (0, 1, 2)
SPEC = Path(__file__).resolve().parent.parent / "samples" / "two_layer_tanh.toml"


#: interleaved rounds: every engine once per round, the best wall time of each kept. The
#: machine's speed drifts (one run here: the same --jobs 1 sweep took 23.9 and 33.8 CPU-s in two
#: rounds minutes apart), so a single sequential pass can favour whichever engine ran in a fast
#: minute; the best of several rounds compares each engine at its undisturbed speed. Five, not
#: three: in one run of five the same --jobs 2 sweep took 7.75 s to 12.87 s by round and
#: --jobs 1 14.2 s to 21.9 s, so three rounds could miss every engine's undisturbed minute.
ROUNDS = int(os.environ.get("BENCH_SWEEP_ROUNDS", "5"))


def main() -> None:
    """Time the engines over :data:`ROUNDS` interleaved rounds; print the best of each and
    every round's wall times."""
    from lazycheck.jsonio import dumps
    from lazycheck.threads import set_threads

    set_threads(1)
    n = len(ALPHAS) * len(SEEDS)
    print(f"bench_sweep: {SPEC.name}, {len(ALPHAS)} alphas x {len(SEEDS)} seeds = {n} runs")
    print(
        f"cores available: {len(os.sched_getaffinity(0))}; load average {_load()}; "
        f"autogroup scheduling: {_autogroup()}; {ROUNDS} interleaved rounds, best of each"
    )
    rounds = [_round(dumps) for _ in range(ROUNDS)]
    rows = {label: min((r[label] for r in rounds), key=lambda t: t[0]) for label in rounds[0]}
    base = rows["--jobs 1"][0]
    print(
        f"{'engine':<26} {'wall s':>8} {'speed-up':>9} {'CPU s':>7} {'loop s':>6} {'busy':>5} "
        f"{'failed':>6} {'same JSON':>9}  every round's wall s"
    )
    for label, (wall, cpu, _doc, failed, busy, loop) in rows.items():
        same = "yes" if all(r[label][2] == rounds[0]["--jobs 1"][2] for r in rounds) else "NO"
        walls = " ".join(f"{r[label][0]:.2f}" for r in rounds)
        loops = "     -" if loop != loop else f"{loop:6.2f}"  # nan: not a Dask row
        print(
            f"{label:<26} {wall:8.2f} {base / wall:9.2f} {cpu:7.1f} {loops} {busy:5.0%} "
            f"{failed:6d} {same:>9}  {walls}"
        )
    # the best of the same number of sweeps on each side: the best of the 2 x ROUNDS --jobs 2
    # sweeps (with the bracketing ones) against the best of ROUNDS Dask sweeps would favour
    # --jobs 2 on a machine whose speed drifts (a minimum over more samples is lower)
    two, dask = rows["--jobs 2"], rows[_DASK]
    print(
        f"--jobs 2 speed-up {base / two[0]:.2f}x (goal >= 1.7); Dask / --jobs 2 time "
        f"{dask[0] / two[0]:.2f} (goal <= 1.2), CPU {dask[1] / two[1]:.2f}; "
        f"load average {_load()}"
    )
    paired = _bracketed(rounds)
    if paired:
        print(
            "Dask / --jobs 2 within each round (bracketed by the --jobs 2 sweeps before and "
            f"after it): {' '.join(f'{x:.2f}' for x in paired)}; median "
            f"{statistics.median(paired):.2f} (goal <= 1.2)"
        )
    if _DASK_ON in rows:  # every round's, not the best: the same round's two sweeps compared
        ratios = " ".join(
            f"{r[_DASK_ON][5] / r[_DASK_WARM][5]:.2f}/{r[_DASK_ON][1] / r[_DASK_WARM][1]:.2f}"
            for r in rounds
        )
        print(f"warm Dask, profiler on / paused, workers' loop CPU / all CPU, by round: {ratios}")


Row = tuple[float, float, str, int, float, float]  # wall, CPU, JSON, failed, busy, loop CPU


def _round(dumps) -> dict[str, Row]:
    """One round: --jobs 1, --jobs 2, then Dask (fresh cluster, then warm)."""
    from lazycheck.sweep import run_sweep

    kwargs = {"alpha": ALPHAS, "seeds": SEEDS}
    rows = {}
    for label, opts in (("--jobs 1", {"jobs": 1}), ("--jobs 2", {"jobs": 2})):
        with _Clock() as clock:
            res = run_sweep(SPEC, **kwargs, **opts)
        rows[label] = _row(clock, res, opts["jobs"], dumps)
    rows.update(_dask(run_sweep, kwargs, dumps))
    with _Clock() as clock:  # --jobs 2 again: the Dask sweeps bracketed (A B A)
        res = run_sweep(SPEC, **kwargs, jobs=2)
    rows[_JOBS2_AFTER] = _row(clock, res, 2, dumps)
    return rows


def _bracketed(rounds: list[dict[str, Row]]) -> list[float]:
    """Each round's Dask time over the geometric mean of the --jobs 2 times before and after
    it, seconds apart: the machine's speed drifts over minutes (one run here: the same --jobs 2
    sweep took 7.75 s to 12.87 s by round), which the best of each engine over all rounds
    does not cancel and the bracket does."""
    return [
        r[_DASK][0] / math.sqrt(r["--jobs 2"][0] * r[_JOBS2_AFTER][0])
        for r in rounds
        if _DASK in r and r[_DASK][0] == r[_DASK][0]
    ]


_DASK = "--dask (2 workers)"
_JOBS2_AFTER = "--jobs 2, after Dask"
_DASK_WARM = "--dask, warm workers"
_DASK_ON = "--dask, profiler on"


class _Clock:
    """Wall time, and the CPU time of this process and every process below it (the workers,
    the fork server; psutil samples the tree every 0.1 s, so a process that ends between two
    samples loses at most its last 0.1 s)."""

    def __enter__(self) -> _Clock:
        import threading

        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._sample()
        self._base = dict(self._cpu)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self._sample()
        spent = [t - self._base.get(pid, 0.0) for pid, t in self._cpu.items()]
        self.cpu = sum(spent) if spent else float("nan")

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def _sample(self) -> None:
        try:
            import psutil  # comes with distributed
        except ImportError:
            return
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                self._cpu[proc.pid] = t.user + t.system
            except psutil.Error:
                pass


def _row(clock: _Clock, res, workers: int, dumps, loop: float = float("nan")) -> Row:
    """(wall, CPU, JSON, failed, busy, loop): busy is the configurations' own time (each
    record's ``wall_time``) over wall x workers, i.e. how much of the workers' time went to
    runs; loop the Dask workers' event-loop CPU time (nan for the other engines)."""
    own = sum(r["record"].get("wall_time", 0.0) for r in res.runs)
    busy = own / (clock.wall * workers)
    return clock.wall, clock.cpu, dumps(res.to_dict()), res.failed, busy, loop


def _dask(run_sweep, kwargs, dumps) -> dict[str, Row]:
    """The sweep on a fresh LocalCluster (its workers warmed inside the clock), again on the
    same cluster (warmed already, as a lab's long-running cluster is after its first sweep),
    and once more with the tasks' pause of the profiler switched off on its workers."""
    try:
        import distributed
    except ImportError:
        print("--dask: skipped (pip install 'lazycheck[dask]')")
        nan = float("nan")
        return {_DASK: (nan, nan, "", 0, nan, nan)}
    rows = {}
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        for label in (_DASK, _DASK_WARM, _DASK_ON):
            if label == _DASK_ON:
                client.run(_profiler_left_on)
            loop = _loop_cpu(pids)
            with _Clock() as clock:  # the engine's own client, as from the command line
                res = run_sweep(SPEC, **kwargs, dask=cluster.scheduler_address)
            rows[label] = _row(clock, res, 2, dumps, _loop_cpu(pids) - loop)
    return rows


def _profiler_left_on() -> None:
    """On a Dask worker: the configurations no longer pause its profiler."""
    import contextlib

    from lazycheck.sweep import engines

    engines._profiler_paused = contextlib.nullcontext


def _loop_cpu(pids: list[int]) -> float:
    """The CPU time of the main threads (the event loops) of the processes ``pids``."""
    import psutil

    spent = 0.0
    for pid in pids:
        spent += sum(
            t.user_time + t.system_time for t in psutil.Process(pid).threads() if t.id == pid
        )
    return spent


def _autogroup() -> str:
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return "unknown"
    return "on (one CPU share per session)" if on else "off"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
