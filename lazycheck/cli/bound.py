"""``lazycheck bound``: the constants of Theorem 2 and the minimum alpha."""

from __future__ import annotations

import typer

from lazycheck.cli._app import (
    AlphaOpt,
    BetaOpt,
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
    beta_value,
    declare_outputs,
    emit,
    guard,
    print_rich,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, epilog


@app.command(cls=Command, epilog=epilog("bound"))
@guard
def bound(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    beta: BetaOpt = None,
    set_: SetOpt = None,
    format: BoundFormatOpt = BoundFormat.table,
    output: OutOpt = None,
    quiet: QuietOpt = False,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """The constants of Theorem 2 and the minimum alpha it requires."""
    runtime(threads, memory_limit)
    from lazycheck.commands.bound import compute_bound
    from lazycheck.console import progress
    from lazycheck.problem import load_problem

    prob = load_problem(
        spec,
        alpha=alpha,
        seed=seed,
        data_seed=data_seed,
        beta=beta_value(beta),
        settings=settings_of(set_),
    )
    outputs = declare_outputs(spec, prob, (output, "-o", None))
    with progress(not no_progress) as bar:
        report = compute_bound(prob, progress=bar)
    if output is not None or not quiet:
        if format is BoundFormat.json:
            from lazycheck.jsonio import dumps

            emit(dumps(report.to_dict()), output, outputs)
        else:
            print_rich(report.render, output, outputs)
    if quiet:
        typer.echo(report.verdict_line())
