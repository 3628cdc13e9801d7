"""``lazycheck info``: describe the problem a spec builds."""

from __future__ import annotations

import typer

from lazycheck.cli._app import (
    DataSeedOpt,
    MemoryOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    ThreadsOpt,
    app,
    guard,
    runtime,
    settings_of,
)
from lazycheck.cli._conventions import Command, epilog


@app.command(cls=Command, epilog=epilog("info"))
@guard
def info(
    spec: SpecArg,
    seed: SeedOpt = None,
    data_seed: DataSeedOpt = None,
    set_: SetOpt = None,
    threads: ThreadsOpt = None,
    memory_limit: MemoryOpt = None,
) -> None:
    """Load a spec and describe the problem it builds (data, model, n, p)."""
    runtime(threads, memory_limit)
    from lazycheck.problem import load_problem

    prob = load_problem(spec, seed=seed, data_seed=data_seed, settings=settings_of(set_))
    typer.echo(f"spec:   {spec}")
    typer.echo(f"data:   {prob.data_source}; n = {prob.n}, d = {prob.X.shape[1]}")
    typer.echo(f"model:  {prob.model.describe()}")
    seeds = f"seed = {prob.seed}"
    if prob.spec.data.seed is not None:  # --data-seed or [data].seed: the data has its own
        seeds += f"; data seed = {prob.spec.data_seed}"
    typer.echo(f"smooth: {prob.model.smooth}; p = {prob.p}; {seeds}")
    f0 = prob.f(prob.w0)
    typer.echo(
        f"||f(w0)|| = {float((f0 @ f0) ** 0.5):.6g}; ||y|| = {float(prob.y @ prob.y) ** 0.5:.6g}"
    )
