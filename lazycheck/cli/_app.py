"""The Typer application and what every command shares: options, the error guard, output.

Every user mistake raises :class:`~lazycheck.errors.LazycheckError`, printed by :func:`guard`
as one line on stderr with exit code 2. Results go to stdout; progress and diagnostics to
stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from lazycheck._version import __version__
from lazycheck.cli._conventions import choice_parser
from lazycheck.errors import LazycheckError

if TYPE_CHECKING:
    from lazycheck.outputs import Outputs

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
    "declare_outputs",
    "emit",
    "fail",
    "guard",
    "plain_text",
    "print_rich",
    "runtime",
    "settings_of",
]

F = TypeVar("F", bound=Callable[..., Any])

#: exit codes (README, "Errors and exit codes")
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; raised in the main thread so that every ``finally`` runs
    (temporary output files are removed) before the process exits with 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Group(TyperGroup):
    """The root command: Typer's, with click's own usage errors (a bad option value, an
    unknown option, a missing argument) printed as one ``lazycheck: error:`` line, exit 2,
    like every other error."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except UsageError as exc:
            typer.echo(f"lazycheck: error: {one_line(usage_message(exc, argv))}", err=True)
            code = EXIT_USAGE
        except typer.Abort:  # end of input at a prompt
            typer.echo("lazycheck: error: aborted", err=True)
            code = EXIT_INTERRUPTED
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="lazycheck",
    help="Check the lazy-training theorem (Theorem 2) on a concrete network and dataset.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_Group,
)


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
    typer.echo(f"lazycheck: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def one_line(message: object) -> str:
    """``message`` on one line, with control characters (from a file name, say) escaped so
    that nothing can break the line or drive the terminal."""
    text = " ".join(str(message).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def guard(fn: F) -> F:
    """Run a command so that it ends as its report, or as one ``lazycheck: error:`` line.

    LazycheckError, a failed linear-algebra routine, a floating-point error, running out of
    memory, a file error: one line and exit code 2 (the error's own code for a
    LazycheckError). SIGINT: 130; SIGTERM/SIGHUP: 128 + the signal, after the temporary
    files are removed. Anything else is a bug: one line and exit code 3 (``LAZYCHECK_DEBUG=1``
    shows the traceback). Warnings (numpy's RuntimeWarnings on overflow, say) are silenced:
    the run reports what it found itself (unless ``-W``/``PYTHONWARNINGS`` asks for them)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _signals_raise(), _quiet_warnings():
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, BrokenPipeError):
                raise  # a closed stdout (`| head`): Typer exits quietly
            except LazycheckError as exc:
                fail(str(exc), exc.exit_code)
            except MemoryError:
                fail(
                    "out of memory: an array did not fit although the estimates said it "
                    "would; lower --memory-limit, or reduce [data].n, [model].widths or "
                    "[flow].n_times"
                )
            except RecursionError:
                fail("the input is nested too deeply to process (a recursion limit was hit)")
            except ArithmeticError as exc:  # OverflowError, ZeroDivisionError, FloatingPointError
                fail(_numerics_message(exc))
            except OSError as exc:
                fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
            except KeyboardInterrupt:
                fail("interrupted", EXIT_INTERRUPTED)
            except Terminated as exc:
                fail(f"terminated by {_signal_name(exc.signum)}", 128 + exc.signum)
            except Exception as exc:
                if _is_linalg_error(exc):
                    fail(_numerics_message(exc))
                if os.environ.get("LAZYCHECK_DEBUG"):
                    raise
                fail(
                    f"internal error ({type(exc).__name__}: {exc}); this is a bug in "
                    "lazycheck: please report it with the spec (LAZYCHECK_DEBUG=1 shows the "
                    "traceback)",
                    EXIT_INTERNAL,
                )

    return wrapper  # type: ignore[return-value]


def usage_message(exc: Any, argv: Sequence[str]) -> str:
    """One line for one of click's usage errors: the option, the value given, what is wrong
    and where the help is."""
    from typer._click.exceptions import BadParameter, MissingParameter, NoSuchOption

    ctx = getattr(exc, "ctx", None)
    see = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
    if isinstance(exc, NoSuchOption):
        close = sorted(exc.possibilities or ())
        maybe = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"{exc.option_name}: no such option{maybe}{see}"
    param = getattr(exc, "param", None)
    if isinstance(exc, MissingParameter):
        kind = "argument" if param is not None and not param.opts[0].startswith("-") else "option"
        name = _param_name(param) if param is not None else ""
        return f"missing {kind} {name}".rstrip() + see
    if isinstance(exc, BadParameter) and param is not None:
        name = _param_name(param)
        value = _given_value(argv, param.opts)
        what = _sentence(exc.message.removeprefix("Value error, "))
        given = f"{value!r} is not valid: " if value is not None else ""
        return f"{name}: {given}{what}{see}"
    return _sentence(exc.format_message()) + see


def settings_of(items: list[str] | None) -> dict[str, Any]:
    """The ``--set KEY=VALUE`` options as a mapping of dotted keys to TOML values."""
    from lazycheck.spec import parse_setting

    return dict(parse_setting(item) for item in items or ())


def runtime(threads: int | None, memory_limit: str | None) -> None:
    """Apply the runtime options every command shares (``--threads``, ``--memory-limit``)."""
    from lazycheck.resources import memory_limit as current_limit
    from lazycheck.resources import set_memory_limit
    from lazycheck.threads import set_threads

    set_memory_limit(memory_limit)
    current_limit()  # a bad LAZYCHECK_MEMORY_LIMIT is refused now, whatever the run needs
    set_threads(threads)


def beta_value(beta: str | None) -> str | float | None:
    if beta is None:
        return None
    try:
        return float(beta)
    except ValueError:
        return beta


def declare_outputs(
    spec: Path | Sequence[Path],
    problem: Any,
    *items: tuple[Path | None, str, tuple[str, ...] | None],
) -> Outputs:
    """The run's output files, each ``(path, option, suffixes)``, checked now (before the
    run): refused if it is an input of the run (a spec, a data file; ``spec`` and ``problem``
    may be lists, one problem per spec), another output, a directory, or of the wrong type.
    Written later, all or none (:mod:`lazycheck.outputs`)."""
    from lazycheck.outputs import Outputs, input_paths

    outputs = Outputs()
    for path, option, suffixes in items:
        outputs.declare(path, option, suffixes)
    specs = list(spec) if isinstance(spec, list | tuple) else [spec]
    problems = list(problem) if isinstance(problem, list | tuple) else [problem]
    for one_spec, one_problem in zip(specs, problems, strict=True):
        outputs.check_inputs(input_paths(one_spec, getattr(one_problem, "spec", None)))
    return outputs


def emit(text: str, output: Path | None, outputs: Outputs | None = None) -> None:
    """``text`` to stdout, or to the ``-o`` file (through ``outputs`` when given)."""
    if output is None:
        sys.stdout.write(text)
    elif outputs is None:
        from lazycheck.jsonio import atomic_write

        atomic_write(output, text)
    else:
        with outputs.transaction():
            outputs.stage("-o", text)
            outputs.commit()


def check_output_suffix(path: Path | None, allowed: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        raise LazycheckError(
            f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use {', '.join(allowed)}"
        )


def print_rich(
    render: Callable[[Any], None], output: Path | None, outputs: Outputs | None = None
) -> None:
    """Call ``render(console)`` on stdout, or on a plain-text file console for ``-o``."""
    if output is None:
        from lazycheck.console import stdout_console

        render(stdout_console())
        return
    emit(plain_text(render), output, outputs)


def plain_text(render: Callable[[Any], None]) -> str:
    """What ``render(console)`` prints, as plain text 120 columns wide (for files)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    render(Console(file=buf, width=120, no_color=True, force_terminal=False))
    return buf.getvalue()


def _sentence(text: str) -> str:
    """One line, lower-case start, no final period (it is followed by "; see ...")."""
    text = " ".join(str(text).split()).rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _param_name(param: Any) -> str:
    opts = [o for o in param.opts if o.startswith("--")] or list(param.opts)
    if opts and opts[0].startswith("-"):
        return opts[0]
    return str(getattr(param, "metavar", None) or param.name or "").upper()


def _given_value(argv: Sequence[str], opts: Sequence[str]) -> str | None:
    """The value given to an option on the command line (its last occurrence)."""
    found = None
    for i, arg in enumerate(argv):
        for opt in opts:
            if not opt.startswith("-"):
                continue
            if arg == opt and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(opt + "=") and opt.startswith("--"):
                found = arg[len(opt) + 1 :]
    return found


def _is_linalg_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "LinAlgError"


def _numerics_message(exc: BaseException) -> str:
    return (
        f"numerics failed and cannot be trusted ({type(exc).__name__}: {exc}): values "
        "overflow float64 or are not finite; reduce [model].sigma_w, alpha or the scale of "
        "the data"
    )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a command runs (in the main
    thread; elsewhere signals cannot be handled), restoring the handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    sigs = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    old = {s: signal.signal(s, raise_terminated) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def _quiet_warnings() -> Iterator[None]:
    if sys.warnoptions:  # -W or PYTHONWARNINGS: the user asked to see them
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
