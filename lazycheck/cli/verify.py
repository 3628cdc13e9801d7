"""``lazycheck verify``: every inequality of the theorem, run as a test suite."""

from __future__ import annotations

from typing import Annotated

import typer

from lazycheck.cli._app import (
    AlphaOpt,
    BetaOpt,
    DataSeedOpt,
    MemoryOpt,
    OutOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    ThreadsOpt,
    VerifyFormat,
    app,
    beta_value,
    declare_outputs,
    emit,
    guard,
    print_rich,
    runtime,
    settings_of,
)


@app.command()
@guard
def verify(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    beta: BetaOpt = None,
    set_: SetOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when the theorem's hypothesis is unmet.")
    ] = False,
    format: Annotated[VerifyFormat, typer.Option("--format", "-f")] = VerifyFormat.table,
    output: OutOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Check every inequality of Assumption 1, Lemmas 4-6 and Theorem 2."""
    runtime(threads, memory_limit)
    from lazycheck.console import progress
    from lazycheck.problem import load_problem
    from lazycheck.verify import run_verify

    prob = load_problem(
        spec,
        alpha=alpha,
        seed=seed,
        data_seed=data_seed,
        beta=beta_value(beta),
        settings=settings_of(set_),
    )
    outputs = declare_outputs(spec, prob, (output, "-o", None))
    from lazycheck.resources import require_kernel

    require_kernel(prob.n, "verify (the flows and the checks on the ball decompose K)")
    with progress(not no_progress) as bar:
        report = run_verify(prob, progress=bar)
    if format is VerifyFormat.table:
        print_rich(report.render, output, outputs)
    else:
        from lazycheck import reports

        text = {
            VerifyFormat.json: reports.to_json,
            VerifyFormat.junit: reports.to_junit,
            VerifyFormat.github: reports.to_github,
        }[format](report)
        emit(text, output, outputs)
        if format is VerifyFormat.github:
            reports.write_github_summary(report)
    raise typer.Exit(report.exit_code(strict=strict))
