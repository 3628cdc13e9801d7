"""The ``lazycheck`` command line: parses options, calls the core, prints.

Results go to stdout; progress and diagnostics to stderr. Every user mistake raises
:class:`~lazycheck.errors.LazycheckError`, printed here as one line with exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lazycheck._version import __version__
from lazycheck.errors import LazycheckError

__all__ = ["app", "main"]

app = typer.Typer(
    name="lazycheck",
    help="Check the lazy-training theorem (Theorem 2) on a concrete network and dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


class BoundFormat(StrEnum):
    table = "table"
    json = "json"


class VerifyFormat(StrEnum):
    table = "table"
    json = "json"
    junit = "junit"
    github = "github"


SpecArg = Annotated[
    Path, typer.Argument(help="The experiment spec (TOML).", show_default=False, metavar="SPEC")
]
AlphaOpt = Annotated[
    float | None, typer.Option("--alpha", help="Override [flow].alpha (the output scale).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the spec's seed.")]
BetaOpt = Annotated[
    str | None,
    typer.Option("--beta", help="Override [check].beta: auto, certified, sampled or a number."),
]
OutOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Write the report to FILE (atomically).")
]


def _fail(message: str, code: int = 2) -> None:
    """One unwrapped line on stderr, then exit."""
    one_line = " ".join(str(message).split())
    typer.echo(f"lazycheck: error: {one_line}", err=True)
    raise typer.Exit(code)


def _guard(fn: F) -> F:
    """Turn LazycheckError (and unreadable output paths) into one line and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LazycheckError as exc:
            _fail(str(exc), exc.exit_code)
        except ArithmeticError as exc:  # numpy's LinAlgError and floating-point errors
            _fail(f"numerics failed and cannot be trusted: {type(exc).__name__}: {exc}")
        except OSError as exc:
            _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lazycheck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """lazycheck: does Theorem 2 hold here, and how loosely?"""


def _beta_value(beta: str | None) -> str | float | None:
    if beta is None:
        return None
    try:
        return float(beta)
    except ValueError:
        return beta


def _emit(text: str, output: Path | None) -> None:
    from lazycheck.jsonio import atomic_write

    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


def _check_output_suffix(path: Path | None, allowed: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        raise LazycheckError(
            f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use {', '.join(allowed)}"
        )


@app.command()
@_guard
def info(spec: SpecArg, seed: SeedOpt = None) -> None:
    """Load a spec and describe the problem it builds (data, model, n, p)."""
    from lazycheck.problem import load_problem

    prob = load_problem(spec, seed=seed)
    typer.echo(f"spec:   {spec}")
    typer.echo(f"data:   {prob.data_source}; n = {prob.n}, d = {prob.X.shape[1]}")
    typer.echo(f"model:  {prob.model.describe()}")
    typer.echo(f"smooth: {prob.model.smooth}; p = {prob.p}; seed = {prob.seed}")
    f0 = prob.f(prob.w0)
    typer.echo(
        f"||f(w0)|| = {float((f0 @ f0) ** 0.5):.6g}; ||y|| = {float(prob.y @ prob.y) ** 0.5:.6g}"
    )


@app.command()
@_guard
def bound(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    beta: BetaOpt = None,
    format: Annotated[BoundFormat, typer.Option("--format", "-f")] = BoundFormat.table,
    output: OutOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """The constants of Theorem 2 and the minimum alpha it requires."""
    from lazycheck.bound import compute_bound
    from lazycheck.console import progress
    from lazycheck.problem import load_problem

    prob = load_problem(spec, alpha=alpha, seed=seed, beta=_beta_value(beta))
    with progress(not no_progress) as bar:
        report = compute_bound(prob, progress=bar)
    if format is BoundFormat.json:
        from lazycheck.jsonio import dumps

        _emit(dumps(report.to_dict()), output)
    else:
        _print_rich(report.render, output)


@app.command()
@_guard
def simulate(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="auto (default: exp, or gd for a non-smooth model), exp, RK45, DOP853, "
            "LSODA, Radau, BDF or gd.",
        ),
    ] = None,
    rtol: Annotated[float | None, typer.Option("--rtol")] = None,
    atol: Annotated[float | None, typer.Option("--atol")] = None,
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
        Path | None, typer.Option("--plot", help="Write a figure (.png, .svg or .pdf).")
    ] = None,
    format: Annotated[BoundFormat, typer.Option("--format", "-f")] = BoundFormat.table,
    output: OutOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Run the gradient flows of the model and of its linearization."""
    from lazycheck.console import progress
    from lazycheck.problem import load_problem
    from lazycheck.simulate import simulate as run_simulation

    _check_output_suffix(save, (".npz",), "--save")
    _check_output_suffix(csv, (".csv",), "--csv")
    _check_output_suffix(plot, (".png", ".svg", ".pdf"), "--plot")
    prob = load_problem(
        spec,
        alpha=alpha,
        seed=seed,
        method=method,
        rtol=rtol,
        atol=atol,
        horizon=horizon,
        decay=decay,
        lr=lr,
    )
    with progress(not no_progress) as bar:
        result = run_simulation(prob, progress=bar)
    if save is not None:
        from lazycheck.simulate import save_npz

        save_npz(result, prob, save)
    if csv is not None:
        from lazycheck.simulate import save_csv

        save_csv(result, csv)
    if plot is not None:
        from lazycheck.plotting import plot_run

        plot_run(result, plot)
    if format is BoundFormat.json:
        from lazycheck.jsonio import dumps

        _emit(dumps(result.to_dict()), output)
    else:
        _print_rich(result.render, output)
    if not result.success:
        _fail(result.message)


@app.command()
@_guard
def verify(
    spec: SpecArg,
    alpha: AlphaOpt = None,
    seed: SeedOpt = None,
    beta: BetaOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when the theorem's hypothesis is unmet.")
    ] = False,
    format: Annotated[VerifyFormat, typer.Option("--format", "-f")] = VerifyFormat.table,
    output: OutOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Check every inequality of Assumption 1, Lemmas 4-6 and Theorem 2."""
    from lazycheck.console import progress
    from lazycheck.problem import load_problem
    from lazycheck.verify import run_verify

    prob = load_problem(spec, alpha=alpha, seed=seed, beta=_beta_value(beta))
    with progress(not no_progress) as bar:
        report = run_verify(prob, progress=bar)
    if format is VerifyFormat.table:
        _print_rich(report.render, output)
    else:
        from lazycheck import reports

        text = {
            VerifyFormat.json: reports.to_json,
            VerifyFormat.junit: reports.to_junit,
            VerifyFormat.github: reports.to_github,
        }[format](report)
        _emit(text, output)
        if format is VerifyFormat.github:
            reports.write_github_summary(report)
    raise typer.Exit(report.exit_code(strict=strict))


def _print_rich(render: Callable[[Any], None], output: Path | None) -> None:
    """Call ``render(console)`` on stdout, or on a plain-text file console for ``-o``."""
    if output is None:
        from lazycheck.console import stdout_console

        render(stdout_console())
        return
    import io

    from rich.console import Console

    from lazycheck.jsonio import atomic_write

    buf = io.StringIO()
    render(Console(file=buf, width=120, no_color=True, force_terminal=False))
    atomic_write(output, buf.getvalue())


def main() -> None:
    """Console-script entry point."""
    app()
