"""``lazycheck simulate``: the gradient flows of the model and of its linearization."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lazycheck.cli._app import (
    AlphaOpt,
    BoundFormat,
    BoundFormatOpt,
    DataSeedOpt,
    MemoryOpt,
    NoProgressOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    ThreadsOpt,
    app,
    declare_outputs,
    emit,
    fail,
    guard,
    plain_text,
    print_rich,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, epilog

if TYPE_CHECKING:
    from lazycheck.commands.simulate import SimulationResult
    from lazycheck.commands.verify import VerifyReport
    from lazycheck.outputs import Outputs
    from lazycheck.problem import Problem


MethodOpt = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="auto (default: exp, or gd for a non-smooth model), exp, RK45, DOP853, "
        "LSODA, Radau, BDF or gd.",
    ),
]
RtolOpt = Annotated[
    float | None,
    typer.Option(
        "--rtol", help="Relative tolerance of the integrator (default [flow].rtol, 1e-6)."
    ),
]
AtolOpt = Annotated[
    float | None,
    typer.Option(
        "--atol", help="Absolute tolerance of the integrator (default [flow].atol, 1e-12)."
    ),
]
HorizonOpt = Annotated[float | None, typer.Option("--horizon", help="Stop time t (unscaled).")]
DecayOpt = Annotated[
    float | None,
    typer.Option("--decay", help="Stop when the Theorem 2 bound fell by exp(-DECAY)."),
]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Learning rate for --method gd.")]
SaveOpt = Annotated[Path | None, typer.Option("--save", help="Write run data (.npz).")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="Write trajectories (.csv).")]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Write a figure (.png, .svg or .pdf) that states the verdict: it also "
        "computes the constants and the checks of verify for this run.",
    ),
]


@app.command(cls=Command, epilog=epilog("simulate"))
@guard
def simulate(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    set_: SetOpt = None,
    method: MethodOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    horizon: HorizonOpt = None,
    decay: DecayOpt = None,
    lr: LrOpt = None,
    save: SaveOpt = None,
    csv: CsvOpt = None,
    plot: PlotOpt = None,
    format: BoundFormatOpt = BoundFormat.table,
    output: OutOpt = None,
    quiet: QuietOpt = False,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Run the gradient flows of the model and of its linearization."""
    runtime(threads, memory_limit)
    from lazycheck.commands.simulate import simulate as run_simulation
    from lazycheck.console import progress
    from lazycheck.plotting import PLOT_SUFFIXES
    from lazycheck.problem import load_problem

    prob = load_problem(
        spec, alpha=alpha, seed=seed, data_seed=data_seed, settings=settings_of(set_),
        method=method, rtol=rtol, atol=atol, horizon=horizon, decay=decay, lr=lr,
    )  # fmt: skip
    outputs = declare_outputs(
        spec,
        prob,
        (save, "--save", (".npz",)),
        (csv, "--csv", (".csv",)),
        (plot, "--plot", PLOT_SUFFIXES),
        (output, "-o", None),
    )
    with progress(not no_progress) as bar:
        result = run_simulation(prob, progress=bar)
        report = None
        if plot is not None and result.success:
            from lazycheck.commands.verify import run_verify

            # the figure states the verdict: alpha_min, B and the checks of this very run
            report = run_verify(prob, simulation=result, progress=bar)
    _finish(result, prob, outputs, format, output, quiet, save=save, csv=csv, plot=plot,
            report=report)  # fmt: skip


def _finish(
    result: SimulationResult,
    prob: Problem,
    outputs: Outputs,
    format: BoundFormat,
    output: Path | None,
    quiet: bool,
    **files: Any,
) -> None:
    """Write the outputs (all or none) and print the report; a failed run writes nothing and
    exits with its message."""
    if not result.success:  # nothing is written; the report (if on stdout) says how far it got
        if output is None and not quiet:
            _print(result, format)
        if quiet:
            typer.echo(result.message)
        fail(result.message)
    with outputs.transaction():  # all or none: a failure below leaves every file as it was
        _stage_outputs(result, prob, outputs, **files)
        if output is not None:
            outputs.stage("-o", _report_text(result, format))
        outputs.commit()
    if output is None and not quiet:
        _print(result, format)
    if quiet:
        typer.echo(result.message)


def _stage_outputs(
    result: SimulationResult,
    prob: Problem,
    outputs: Outputs,
    *,
    save: Path | None,
    csv: Path | None,
    plot: Path | None,
    report: VerifyReport | None,
) -> None:
    """Render ``--save``, ``--csv`` and ``--plot`` to their temporary files."""
    if save is not None:
        from lazycheck.commands.simulate import npz_writer

        outputs.stage("--save", npz_writer(result, prob))
    if csv is not None:
        from lazycheck.commands.simulate import csv_text

        outputs.stage("--csv", csv_text(result))
    if plot is not None:
        from lazycheck.plotting import figure_writer

        outputs.stage("--plot", figure_writer(result, plot, report))


def _report_text(result: SimulationResult, format: BoundFormat) -> str:
    if format is BoundFormat.json:
        from lazycheck.jsonio import dumps

        return dumps(result.to_dict())
    return plain_text(result.render)


def _print(result: SimulationResult, format: BoundFormat) -> None:
    if format is BoundFormat.json:
        emit(_report_text(result, format), None)
    else:
        print_rich(result.render, None)
