"""``lazycheck kernel``: the empirical tangent kernel K0 against its infinite-width limit."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from lazycheck.cli._app import (
    DataSeedOpt,
    MemoryOpt,
    NoProgressOpt,
    OutOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    ThreadsOpt,
    app,
    declare_outputs,
    emit,
    guard,
    print_rich,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, choice_parser, epilog


class KernelFormat(StrEnum):
    table = "table"
    json = "json"


@app.command(cls=Command, epilog=epilog("kernel"))
@guard
def kernel(
    spec: SpecArg,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    set_: SetOpt = None,
    format: Annotated[
        KernelFormat,
        typer.Option(
            "--format",
            "-f",
            parser=choice_parser(KernelFormat),
            metavar="table|json",
            help="Report format on stdout (or in -o FILE): table or json (any case).",
        ),
    ] = KernelFormat.table,
    output: OutOpt = None,
    no_progress: NoProgressOpt = False,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """The tangent kernel K0 = J0 J0^T against the analytic infinite-width kernel."""
    runtime(threads, memory_limit)
    from lazycheck.commands.kernel_report import compare_kernels
    from lazycheck.console import progress
    from lazycheck.problem import load_problem

    prob = load_problem(spec, seed=seed, data_seed=data_seed, settings=settings_of(set_))
    outputs = declare_outputs(spec, prob, (output, "-o", None))
    from lazycheck.resources import require_kernel

    require_kernel(prob.n, "kernel (K0 and its infinite-width limit)")
    with progress(not no_progress) as bar:
        report = compare_kernels(prob, progress=bar)
    if format is KernelFormat.json:
        from lazycheck.jsonio import dumps

        emit(dumps(report.to_dict()), output, outputs)
    else:
        print_rich(report.render, output, outputs)
