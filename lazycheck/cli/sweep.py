"""``lazycheck sweep``: verify over a grid of alpha, spec settings and seeds, and aggregate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lazycheck.cli._app import (
    BoundFormat,
    BoundFormatOpt,
    MemoryOpt,
    NoProgressOpt,
    OutOpt,
    QuietOpt,
    SpecArg,
    ThreadsOpt,
    app,
    check_output_suffix,
    emit,
    guard,
    print_rich,
    runtime,
)
from lazycheck.cli._conventions import Command, epilog

AlphasOpt = Annotated[
    str | None,
    typer.Option(
        "--alpha",
        metavar="ALPHAS",
        help="alpha values: a list 1,10,100 or a log range LO:HI:COUNT.",
    ),
]
SetAxisOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=V1,V2,...",
        help="An axis over any spec key, the values in TOML, split on commas outside "
        "brackets (--set model.widths=[50],[200] --set model.activation=tanh,erf); one "
        "value is a fixed setting. Repeatable.",
    ),
]
SeedsOpt = Annotated[
    str | None, typer.Option("--seeds", help="Initialization seeds: 0-4, 0,3,7 or 0-2,5.")
]
DataSeedsOpt = Annotated[
    str | None, typer.Option("--data-seeds", help="Data seeds ([data].seed), same syntax.")
]
ThresholdOpt = Annotated[
    bool | None,
    typer.Option(
        "--threshold/--no-threshold",
        help="Refine the laziness threshold by bisection in log alpha.",
    ),
]
ThresholdRtolOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold-rtol", metavar="RTOL", help="Bisect until high/low <= 1 + RTOL (0.05)."
    ),
]
FitAlphaOpt = Annotated[
    str | None,
    typer.Option("--fit-alpha", metavar="LO:HI", help="Fit slopes on alpha in [LO, HI]."),
]
JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", help="Worker processes (default: the cores)."),
]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask", metavar="ADDRESS", help="Run on this Dask scheduler instead."),
]
OutDirOpt = Annotated[
    Path | None,
    typer.Option("--out", metavar="DIR", help="Store every configuration here; a rerun resumes."),
]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="One row per run (.csv).")]
PlotOpt = Annotated[
    Path | None, typer.Option("--plot", help="Log-log panels (.png, .svg or .pdf).")
]


@app.command(cls=Command, epilog=epilog("sweep"))
@guard
def sweep(
    spec: SpecArg,
    alpha: AlphasOpt = None,
    set_: SetAxisOpt = None,
    seeds: SeedsOpt = None,
    data_seeds: DataSeedsOpt = None,
    threshold: ThresholdOpt = None,
    threshold_rtol: ThresholdRtolOpt = None,
    fit_alpha: FitAlphaOpt = None,
    jobs: JobsOpt = None,
    dask: DaskOpt = None,
    out: OutDirOpt = None,
    format: BoundFormatOpt = BoundFormat.table,
    output: OutOpt = None,
    quiet: QuietOpt = False,
    csv: CsvOpt = None,
    plot: PlotOpt = None,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Run verify over a grid (alpha x settings x seeds): metrics, slopes, laziness threshold."""
    runtime(threads, memory_limit)
    from lazycheck.sweep import run_sweep
    from lazycheck.sweep.grid import parse_alpha, parse_fit_alpha, parse_seeds, parse_set_axis

    check_output_suffix(csv, (".csv",), "--csv")
    check_output_suffix(plot, (".png", ".svg", ".pdf"), "--plot")
    res = run_sweep(
        spec,
        alpha=parse_alpha(alpha) if alpha else None,
        seeds=parse_seeds(seeds) if seeds else None,
        data_seeds=parse_seeds(data_seeds, "--data-seeds") if data_seeds else None,
        sets=dict(parse_set_axis(s) for s in set_ or ()),
        threshold=threshold,
        threshold_rtol=threshold_rtol,
        fit_alpha=parse_fit_alpha(fit_alpha) if fit_alpha else None,
        out=out,
        jobs=jobs,
        dask=dask,
        progress=not no_progress,
    )
    _write(res, format, output, csv, plot, quiet)
    raise typer.Exit(res.exit_code)


def _write(
    res: Any,
    format: BoundFormat,
    output: Path | None,
    csv: Path | None,
    plot: Path | None,
    quiet: bool,
) -> None:
    """The figure, the CSV, the report on stdout or in ``-o`` (with ``-q`` only the verdict line
    on stdout), and the cache summary on stderr."""
    from lazycheck.console import stderr_console
    from lazycheck.jsonio import atomic_write, dumps

    if plot is not None:  # first: a sweep it cannot draw is an error before any output
        from lazycheck.sweep.plot import plot_sweep

        plot_sweep(res, plot)
    if csv is not None:
        from lazycheck.sweep.report import to_csv

        atomic_write(csv, to_csv(res))
    if not quiet or output is not None:
        if format is BoundFormat.table:
            print_rich(res.render, output)
        else:
            emit(dumps(res.to_dict()), output)
    if quiet:
        typer.echo(f"sweep: {res.message}")
    stored = res.out if res.out else "(no --out: nothing stored)"
    stderr_console().print(
        f"sweep: {res.computed} computed, {res.cached} read back from {stored}, "
        f"engine {res.engine}, {res.wall_time:.1f} s",
        markup=False,
        highlight=False,
    )
