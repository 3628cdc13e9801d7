"""``lazycheck.run_sweep``: the grid, the runs (stored and resumed), the aggregates.

:func:`run_sweep` builds the grid (:mod:`lazycheck.sweep.grid`), resolves and validates every
configuration's spec before running anything (a bad value is a one-line error and nothing
runs), loads the configurations already stored under ``out``, runs the others on the engine
(:mod:`lazycheck.sweep.engines`) storing each as it finishes, refines the laziness threshold
when asked (:mod:`lazycheck.sweep.threshold`), and returns a frozen :class:`SweepResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lazycheck.errors import LazycheckError
from lazycheck.spec import Spec, load_spec
from lazycheck.sweep.aggregate import Slope, cell_stats, slopes
from lazycheck.sweep.engines import Engine, make_engine
from lazycheck.sweep.grid import (
    ALPHA,
    Axis,
    Grid,
    SweepOptions,
    build_grid,
    round_alpha,
    sweep_options,
)
from lazycheck.sweep.metrics import METRICS, ProblemBuilder, kinf_available
from lazycheck.sweep.report import render, result_dict
from lazycheck.sweep.store import Store, config_key
from lazycheck.sweep.threshold import Threshold, bisect_point, group_key, thresholds, update

__all__ = ["SweepResult", "exit_code_for", "run_sweep"]

_MAX_BISECTION_ROUNDS = 60


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep.

    Attributes:
        status: ``"ok"`` (every configuration ran) or ``"failed"`` (``failed`` of them did not).
        message: one line.
        spec: the spec's label; ``axes``: the grid's axes; ``fixed``: settings on every run.
        runs: one dict per configuration: ``index``, ``key``, ``coords``, ``settings``,
            ``record`` (``status``, ``message``, ``metrics``, ``checks``, ``lazy``, ...).
        slopes: every log-log slope (:class:`~lazycheck.sweep.aggregate.Slope`).
        thresholds: the laziness threshold of every group.
        computed, cached: how many configurations ran now and how many were read back.
    """

    status: str
    message: str
    spec: str
    axes: tuple[Axis, ...]
    fixed: dict[str, Any]
    runs: tuple[dict[str, Any], ...]
    slopes: tuple[Slope, ...]
    thresholds: tuple[Threshold, ...]
    failed: int
    threshold_rtol: float | None = None
    fit_alpha: tuple[float, float] | None = None
    engine: str = ""
    computed: int = 0
    cached: int = 0
    wall_time: float = 0.0
    out: Path | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.failed)

    def cells(self) -> list[dict[str, Any]]:
        """Mean and spread over the seeds at every point of the grid without its seed axes."""
        names = [a.name for a in self.axes if not a.replicate]
        groups: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs:
            groups.setdefault(group_key(run["coords"], names), []).append(run)
        out = []
        for members in groups.values():
            coords = {n: members[0]["coords"][n] for n in names}
            stats = {
                m.name: cell_stats(
                    [r["record"]["metrics"].get(m.name, math.nan) for r in members]
                ).to_dict()
                for m in METRICS
            }
            lazy = [r["record"]["lazy"] for r in members]
            out.append({"coords": coords, "runs": len(members), "lazy": lazy, "stats": stats})
        return out

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self)

    def render(self, console: Any) -> None:
        render(self, console)


def exit_code_for(failed: int) -> int:
    """0 when every configuration ran; 10 + (number failed), at most 110 (see docs/sweep.md)."""
    return 0 if failed <= 0 else 10 + min(failed, 100)


def run_sweep(
    spec: str | Path | Spec,
    *,
    alpha: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    data_seeds: Sequence[int] | None = None,
    sets: Mapping[str, Sequence[Any]] | None = None,
    threshold: bool | None = None,
    threshold_rtol: float | None = None,
    fit_alpha: tuple[float, float] | None = None,
    out: str | Path | None = None,
    jobs: int | None = None,
    dask: Any = None,
    build: ProblemBuilder | None = None,
    progress: bool = False,
) -> SweepResult:
    """Run a sweep of ``spec`` over the product of its axes and aggregate it.

    ``alpha``, ``seeds``, ``data_seeds``: the values of those axes; ``sets``: dotted spec key ->
    values (one value: a fixed setting). Each replaces the same axis of the spec's ``[sweep]``
    table. ``threshold``: refine the laziness threshold by bisection to ``threshold_rtol``.
    ``fit_alpha``: (low, high), only runs with alpha in it enter the slope fits.
    ``out``: the directory where each configuration is stored (and read back on a rerun).
    ``jobs``: local worker processes (default: the number of cores; 1 runs in this process);
    ``dask``: a Dask scheduler address or ``distributed.Client`` instead. ``build``: how a spec
    becomes a problem (default :func:`lazycheck.problem.make_problem`; must be picklable for
    worker processes). ``progress``: one bar with an ETA on stderr.
    """
    start = time.perf_counter()
    base = spec if isinstance(spec, Spec) else load_spec(spec)
    opts = _options(base, alpha, seeds, data_seeds, sets, threshold, threshold_rtol, out)
    if fit_alpha is not None:
        opts = replace(opts, fit_alpha=(round_alpha(fit_alpha[0]), round_alpha(fit_alpha[1])))
    grid = build_grid(opts, base.flow.alpha)
    base = base.with_settings(grid.fixed)
    engine = make_engine(jobs, dask)
    store = Store(opts.out)
    runner = _Runner(base, build, engine, store, progress)
    try:
        runs = runner.run([(c.coords, c.settings) for c in grid.configs()])
        for i, run in enumerate(runs):
            run["index"] = i
        group_names = [a.name for a in grid.axes if not a.replicate and a.key != ALPHA]
        ths = thresholds(runs, group_names)
        if opts.threshold:
            ths = _refine(ths, grid, runner, opts.threshold_rtol)
    finally:
        runner.close()
    failed = sum(1 for r in runs if r["record"]["status"] != "ok")
    return SweepResult(
        status="ok" if failed == 0 else "failed",
        message=_message(len(runs), failed),
        spec=base.label,
        axes=grid.axes,
        fixed=grid.fixed,
        runs=tuple(runs),
        slopes=tuple(slopes(runs, grid.axes, opts.fit_alpha)),
        thresholds=tuple(ths.values()),
        failed=failed,
        threshold_rtol=opts.threshold_rtol if opts.threshold else None,
        fit_alpha=opts.fit_alpha,
        engine=engine.name,
        computed=runner.computed,
        cached=runner.cached,
        wall_time=time.perf_counter() - start,
        out=opts.out,
    )


# ----------------------------------------------------------------------------- helpers


class _Runner:
    """Resolves configurations to specs, reads stored ones, runs the rest, stores each."""

    def __init__(
        self, base: Spec, build: ProblemBuilder | None, engine: Engine, store: Store, bar: bool
    ) -> None:
        self.base, self.build, self.engine, self.store = base, build, engine, store
        self.kinf = kinf_available()
        self.computed = self.cached = 0
        self._bar = _Bar(bar)

    def run(self, points: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
        """One run dict per (coords, settings), in order."""
        specs = [self._resolve(settings) for _, settings in points]
        runs = []
        for (coords, settings), spec in zip(points, specs, strict=True):
            key = config_key(spec, self.build, self.kinf)
            runs.append({"key": key, "coords": coords, "settings": settings, "record": None})
        todo = []
        for i, run in enumerate(runs):
            run["record"] = self.store.load(run["key"])
            if run["record"] is None:
                todo.append((i, specs[i]))
        self.cached += len(runs) - len(todo)
        self._bar.add(len(runs), len(runs) - len(todo))

        def done(i: int, record: dict[str, Any]) -> None:
            runs[i]["record"] = record
            if not record.pop("transient", False):
                self.store.save(runs[i]["key"], record, runs[i]["settings"])
            self.computed += 1
            self._bar.advance()

        self.engine.run(todo, self.build, done)
        return runs

    def close(self) -> None:
        self._bar.close()

    def _resolve(self, settings: dict[str, Any]) -> Spec:
        return self.base.with_settings(settings)


class _Bar:
    """One rich progress bar with an ETA over the whole sweep, on stderr (terminal only)."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Any = None
        self.task: Any = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from lazycheck.console import stderr_console

        console = stderr_console()
        self.progress = Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.progress.start()
        self.task = self.progress.add_task("sweep", total=0)

    def add(self, total: int, done: int) -> None:
        """``total`` more configurations, ``done`` of them read back (not counted in the ETA)."""
        if self.progress is not None:
            t = self.progress.tasks[0]
            new_total, completed = (t.total or 0) + total, t.completed + done
            if done:  # restart the rate estimate: read-back configurations took no time
                self.progress.reset(self.task, total=new_total, completed=completed)
            else:
                self.progress.update(self.task, total=new_total)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _options(
    base: Spec,
    alpha: Sequence[float] | None,
    seeds: Sequence[int] | None,
    data_seeds: Sequence[int] | None,
    sets: Mapping[str, Sequence[Any]] | None,
    threshold: bool | None,
    threshold_rtol: float | None,
    out: str | Path | None,
) -> SweepOptions:
    """The ``[sweep]`` table with the arguments given replacing its values."""
    where = str(base.path) if base.path else "<spec>"
    root = base.path.parent if base.path else Path.cwd()
    opts = sweep_options(base.raw.get("sweep", {}), where, root)
    merged = dict(opts.sets)
    merged.update({k: tuple(v) for k, v in (sets or {}).items()})
    if threshold_rtol is not None and not 0 < threshold_rtol < 1:
        raise LazycheckError(f"--threshold-rtol: must be in (0, 1), got {threshold_rtol}")
    return replace(
        opts,
        alpha=tuple(round_alpha(a) for a in alpha) if alpha else opts.alpha,
        seeds=tuple(seeds) if seeds else opts.seeds,
        data_seeds=tuple(data_seeds) if data_seeds else opts.data_seeds,
        sets=merged,
        threshold=opts.threshold if threshold is None else threshold,
        threshold_rtol=opts.threshold_rtol if threshold_rtol is None else threshold_rtol,
        out=Path(out) if out is not None else opts.out,
    )


def _refine(
    ths: dict[str, Threshold], grid: Grid, runner: _Runner, rtol: float
) -> dict[str, Threshold]:
    """Bisect every bracketed threshold in lockstep: each round runs all seeds of every group
    still open at its midpoint, in one batch on the engine."""
    reps = [a for a in grid.axes if a.replicate]
    keys = {a.name: a.key for a in grid.axes}
    for _ in range(_MAX_BISECTION_ROUNDS):
        batch: list[tuple[str, float, dict[str, Any], dict[str, Any]]] = []
        for gk, th in ths.items():
            mid = bisect_point(th, rtol)
            if mid is None:
                continue
            mid = round_alpha(mid)
            for combo in _replicate_combos(reps):
                coords = {**th.group, **combo, "alpha": mid}
                settings = dict(grid.fixed)
                settings.update({keys[n]: v for n, v in coords.items()})
                batch.append((gk, mid, coords, settings))
        if not batch:
            break
        done = runner.run([(c, s) for _, _, c, s in batch])
        for gk in {b[0] for b in batch}:
            mine = [r for b, r in zip(batch, done, strict=True) if b[0] == gk]
            mid = next(b[1] for b in batch if b[0] == gk)
            ths[gk] = update(ths[gk], mid, mine)
    return ths


def _replicate_combos(reps: list[Axis]) -> list[dict[str, Any]]:
    import itertools

    return [
        dict(zip([a.name for a in reps], combo, strict=True))
        for combo in itertools.product(*[a.values for a in reps])
    ]


def _message(total: int, failed: int) -> str:
    if failed:
        return f"{failed} of {total} configurations FAILED (each recorded with its message)"
    return f"every configuration ran ({total})"
