"""``lazycheck verify``: every inequality of the theorem, run as a test suite.

Several specs (and directories, standing for their ``*.toml`` files) run in one call: every
spec is loaded first, so a mistake in any of them stops the run before anything is computed
or written; then each is verified, and the exit code is the worst of all. One spec prints
exactly what it printed alone; several print one report per spec and a summary line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lazycheck.cli._app import (
    AlphaOpt,
    BetaOpt,
    DataSeedOpt,
    MemoryOpt,
    NoProgressOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    SetOpt,
    SpecsArg,
    ThreadsOpt,
    VerifyFormat,
    VerifyFormatOpt,
    app,
    beta_value,
    declare_outputs,
    emit,
    guard,
    plain_text,
    print_rich,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, epilog, expand_specs

if TYPE_CHECKING:
    from rich.console import Console

    from lazycheck.commands.verify import VerifyReport
    from lazycheck.outputs import Outputs


@app.command(cls=Command, epilog=epilog("verify"))
@guard
def verify(
    specs: SpecsArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    beta: BetaOpt = None,
    set_: SetOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when the theorem's hypothesis is unmet.")
    ] = False,
    format: VerifyFormatOpt = VerifyFormat.table,
    output: OutOpt = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit", metavar="FILE", help="Also write the JUnit XML report to FILE (.xml)."
        ),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the JSON report to FILE (.json)."),
    ] = None,
    github: Annotated[
        bool,
        typer.Option(
            "--github",
            help="Also print GitHub workflow annotations on stdout and append the summary to "
            "$GITHUB_STEP_SUMMARY.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Check every inequality of Assumption 1, Lemmas 4-6 and Theorem 2."""
    runtime(threads, memory_limit)
    from lazycheck.commands.verify import run_verify
    from lazycheck.console import progress
    from lazycheck.problem import load_problem

    paths = expand_specs(specs)
    problems = [
        load_problem(
            path,
            alpha=alpha,
            seed=seed,
            data_seed=data_seed,
            beta=beta_value(beta),
            settings=settings_of(set_),
        )
        for path in paths
    ]
    outputs = declare_outputs(
        paths,
        problems,
        (output, "-o", None),
        (junit, "--junit", (".xml",)),
        (json_file, "--json", (".json",)),
    )
    from lazycheck.resources import require_kernel

    for prob in problems:
        require_kernel(prob.n, "verify (the flows and the checks on the ball decompose K)")
    reports = []
    for prob in problems:
        with progress(not no_progress) as bar:
            reports.append(run_verify(prob, progress=bar))
    _write(reports, format, output, junit, json_file, github, quiet, strict, outputs)
    from lazycheck.commands.reports import exit_code

    raise typer.Exit(exit_code(reports, strict=strict))


def _write(
    reports: list[VerifyReport],
    format: VerifyFormat,
    output: Path | None,
    junit: Path | None,
    json_file: Path | None,
    github: bool,
    quiet: bool,
    strict: bool,
    outputs: Outputs,
) -> None:
    """Every report asked for: the files first (all or none), then stdout."""
    from lazycheck.commands import reports as rep

    def render(console: Console) -> None:
        _table(console, reports, strict)

    text = None
    if format is not VerifyFormat.table:
        text = {
            VerifyFormat.json: rep.to_json,
            VerifyFormat.junit: rep.to_junit,
            VerifyFormat.github: rep.to_github,
        }[format](reports, strict)
    with outputs.transaction():
        if junit is not None:
            outputs.stage("--junit", rep.to_junit(reports, strict))
        if json_file is not None:
            outputs.stage("--json", rep.to_json(reports))
        if output is not None:
            outputs.stage("-o", text if text is not None else plain_text(render))
        outputs.commit()
    if output is None and not quiet:
        if text is None:
            print_rich(render, None)
        else:
            emit(text, None)
    if github and (format is not VerifyFormat.github or output is not None):
        emit(rep.to_github(reports, strict), None)
    if github or format is VerifyFormat.github:
        rep.write_github_summary(reports, strict=strict)
    if quiet:
        for line in _verdict_lines(reports, strict):
            typer.echo(line)


def _table(console: Console, reports: list[VerifyReport], strict: bool) -> None:
    for report in reports:
        report.render(console)
    if len(reports) > 1:
        from rich.text import Text

        from lazycheck.commands.reports import summary_line

        console.print(Text(summary_line(reports, strict), style="bold"))


def _verdict_lines(reports: list[VerifyReport], strict: bool) -> list[str]:
    if len(reports) == 1:
        return [reports[0].verdict_line()]
    from lazycheck.commands.reports import summary_line

    return [f"{r.spec}: {r.verdict_line()}" for r in reports] + [summary_line(reports, strict)]
