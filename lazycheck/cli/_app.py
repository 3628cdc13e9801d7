"""The Typer application and what every command shares: options, the error guard, output.

Every user mistake raises :class:`~lazycheck.errors.LazycheckError`, printed by :func:`guard`
as one line on stderr with exit code 2. Results go to stdout; progress and diagnostics to
stderr.
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
from lazycheck.cli._conventions import choice_parser
from lazycheck.errors import LazycheckError

__all__ = [
    "AlphaOpt",
    "BetaOpt",
    "BoundFormat",
    "BoundFormatOpt",
    "DataSeedOpt",
    "MemoryOpt",
    "NoProgressOpt",
    "OutOpt",
    "QuietOpt",
    "SeedOpt",
    "SetOpt",
    "SpecArg",
    "SpecsArg",
    "ThreadsOpt",
    "VerifyFormat",
    "VerifyFormatOpt",
    "app",
    "beta_value",
    "check_output_suffix",
    "emit",
    "fail",
    "guard",
    "print_rich",
    "runtime",
    "settings_of",
]

app = typer.Typer(
    name="lazycheck",
    help="Check the lazy-training theorem (Theorem 2) on a concrete network and dataset.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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
SpecsArg = Annotated[
    list[Path],
    typer.Argument(
        help="The experiment spec (TOML). Several specs, and directories (for their *.toml "
        "files), run in one call.",
        show_default=False,
        metavar="SPEC...",
    ),
]
BoundFormatOpt = Annotated[
    BoundFormat,
    typer.Option(
        "--format",
        "-f",
        parser=choice_parser(BoundFormat),
        metavar="table|json",
        help="Report format on stdout (or in -o FILE): table or json (any case).",
    ),
]
VerifyFormatOpt = Annotated[
    VerifyFormat,
    typer.Option(
        "--format",
        "-f",
        parser=choice_parser(VerifyFormat),
        metavar="table|json|junit|github",
        help="Report format on stdout (or in -o FILE): table, json, junit or github (GitHub "
        "workflow annotations, plus the step summary); any case. --junit, --json and --github "
        "write further reports in the same run.",
    ),
]
NoProgressOpt = Annotated[
    bool,
    typer.Option(
        "--no-progress",
        help="No progress bar (it is drawn on stderr, and only when stderr is a terminal).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "-q",
        "--quiet",
        help="Print only the verdict line on stdout (files named by options are still written).",
    ),
]
AlphaOpt = Annotated[
    float | None,
    typer.Option("--alpha", metavar="ALPHA", help="Override [flow].alpha (the output scale)."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        metavar="N",
        help="Override the spec's seed (initialization, and data by default).",
    ),
]
DataSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--data-seed",
        metavar="N",
        help="Override [data].seed, the data's own seed (default: --seed).",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set any spec key by its dotted path, the value in TOML "
        "(--set model.widths=[64,64] --set model.activation=erf). Repeatable.",
    ),
]
BetaOpt = Annotated[
    str | None,
    typer.Option(
        "--beta",
        metavar="BETA",
        help="Override [check].beta: auto, certified, sampled or a number.",
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1, metavar="N", help="BLAS threads (default: the library's choice)."
    ),
]
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        metavar="SIZE",
        help="Largest allocation allowed, e.g. 512M or 8G (default: 80% of available memory).",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("-o", "--output", metavar="FILE", help="Write the report to FILE (atomically)."),
]


def fail(message: str, code: int = 2) -> None:
    """One unwrapped line on stderr, then exit."""
    one_line = " ".join(str(message).split())
    typer.echo(f"lazycheck: error: {one_line}", err=True)
    raise typer.Exit(code)


def guard(fn: F) -> F:
    """Turn LazycheckError (and unreadable output paths) into one line and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LazycheckError as exc:
            fail(str(exc), exc.exit_code)
        except ArithmeticError as exc:  # numpy's LinAlgError and floating-point errors
            fail(f"numerics failed and cannot be trusted: {type(exc).__name__}: {exc}")
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        except KeyboardInterrupt:
            fail("interrupted", 130)

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


def settings_of(items: list[str] | None) -> dict[str, Any]:
    """The ``--set KEY=VALUE`` options as a mapping of dotted keys to TOML values."""
    from lazycheck.spec import parse_setting

    return dict(parse_setting(item) for item in items or ())


def runtime(threads: int | None, memory_limit: str | None) -> None:
    """Apply the runtime options every command shares (``--threads``, ``--memory-limit``)."""
    from lazycheck.resources import set_memory_limit
    from lazycheck.threads import set_threads

    set_memory_limit(memory_limit)
    set_threads(threads)


def beta_value(beta: str | None) -> str | float | None:
    if beta is None:
        return None
    try:
        return float(beta)
    except ValueError:
        return beta


def emit(text: str, output: Path | None) -> None:
    from lazycheck.jsonio import atomic_write

    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


def check_output_suffix(path: Path | None, allowed: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        raise LazycheckError(
            f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use {', '.join(allowed)}"
        )


def print_rich(render: Callable[[Any], None], output: Path | None) -> None:
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
