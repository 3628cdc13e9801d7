"""``lazycheck simulate``: the gradient flows of the model and of its linearization."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    check_output_suffix,
    emit,
    fail,
    guard,
    print_rich,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, epilog


@app.command(cls=Command, epilog=epilog("simulate"))
@guard
def simulate(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    set_: SetOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="auto (default: exp, or gd for a non-smooth model), exp, RK45, DOP853, "
            "LSODA, Radau, BDF or gd.",
        ),
    ] = None,
    rtol: Annotated[
        float | None,
        typer.Option(
            "--rtol", help="Relative tolerance of the integrator (default [flow].rtol, 1e-6)."
        ),
    ] = None,
    atol: Annotated[
        float | None,
        typer.Option(
            "--atol", help="Absolute tolerance of the integrator (default [flow].atol, 1e-12)."
        ),
    ] = None,
    horizon: Annotated[
        float | None, typer.Option("--horizon", help="Stop time t (unscaled).")
    ] = None,
    decay: Annotated[
        float | None,
        typer.Option("--decay", help="Stop when the Theorem 2 bound fell by exp(-DECAY)."),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate for --method gd.")] = None,
    save: Annotated[Path | None, typer.Option("--save", help="Write run data (.npz).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write trajectories (.csv).")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a figure (.png, .svg or .pdf) that states the verdict: it also "
            "computes the constants and the checks of verify for this run.",
        ),
    ] = None,
    format: BoundFormatOpt = BoundFormat.table,
    output: OutOpt = None,
    quiet: QuietOpt = False,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Run the gradient flows of the model and of its linearization."""
    runtime(threads, memory_limit)
    from lazycheck.console import progress
    from lazycheck.problem import load_problem
    from lazycheck.simulate import simulate as run_simulation

    check_output_suffix(save, (".npz",), "--save")
    check_output_suffix(csv, (".csv",), "--csv")
    check_output_suffix(plot, (".png", ".svg", ".pdf"), "--plot")
    prob = load_problem(
        spec,
        alpha=alpha,
        seed=seed,
        data_seed=data_seed,
        settings=settings_of(set_),
        method=method,
        rtol=rtol,
        atol=atol,
        horizon=horizon,
        decay=decay,
        lr=lr,
    )
    with progress(not no_progress) as bar:
        result = run_simulation(prob, progress=bar)
        report = None
        if plot is not None and result.success:
            from lazycheck.verify import run_verify

            # the figure states the verdict: alpha_min, B and the checks of this very run
            report = run_verify(prob, simulation=result, progress=bar)
    if save is not None:
        from lazycheck.simulate import save_npz

        save_npz(result, prob, save)
    if csv is not None:
        from lazycheck.simulate import save_csv

        save_csv(result, csv)
    if plot is not None:
        from lazycheck.plotting import plot_run

        plot_run(result, plot, report)
    if output is not None or not quiet:
        if format is BoundFormat.json:
            from lazycheck.jsonio import dumps

            emit(dumps(result.to_dict()), output)
        else:
            print_rich(result.render, output)
    if quiet:
        typer.echo(result.message)
    if not result.success:
        fail(result.message)
