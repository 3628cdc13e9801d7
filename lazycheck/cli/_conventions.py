"""Command-line conventions every command shares: the usage line, the help epilogs (exit codes
and examples), and several spec paths (directories expanded)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from lazycheck.errors import LazycheckError
from lazycheck.suggest import did_you_mean, match_choice

__all__ = ["Command", "choice_parser", "epilog", "expand_specs"]

E = TypeVar("E", bound=Enum)


class Command(TyperCommand):
    """A Typer command whose usage line names its arguments plainly (``SPEC``, ``SPEC...``),
    as ruff, pytest and mypy do, instead of Typer's ``{SPEC}``; and whose help shows plain
    metavars (``SPEC...``, ``--threads N``, ``-o FILE``) instead of Typer's type names
    (``SPEC... <list[Path]>``, ``<int range>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _plain_metavar(param)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [p.replace("{", "").replace("}", "") for p in super().collect_usage_pieces(ctx)]
        return [p[:-3] if p.endswith("......") else p for p in pieces]


class _PlainArgument(TyperArgument):
    """An argument whose help names it by its metavar alone (no ``<list[Path]>`` after it)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


_EXIT = {
    "info": ["0  the spec loads and the problem is built", "2  a bad spec, data file or option"],
    "bound": [
        "0  the constants were computed (whatever the verdict says)",
        "2  a bad spec, data file or option",
    ],
    "simulate": [
        "0  both flows were integrated to the horizon",
        "2  a bad spec, data file or option, or the solver failed",
    ],
    "kernel": [
        "0  both kernels were computed and compared",
        "2  a bad spec, data file or option, or a model other than the built-in MLP",
    ],
    "sweep": [
        "0  every configuration ran (whatever its checks say: read them in the report)",
        "2  a bad spec, option or value (nothing ran), or an unreachable --dask scheduler",
        "10+k  k configurations failed (at most 110), each recorded with its message",
        "130  interrupted; the configurations finished so far are stored under --out",
    ],
    "verify": [
        "0  every guaranteed check passes (the hypothesis may be unmet: see --strict)",
        "1  a check fails; with --strict, also a hypothesis that is unmet",
        "2  a bad spec, data file or option, or numerics that cannot be trusted",
        "Several specs: the worst exit code of all of them.",
    ],
}

_EXAMPLES = {
    "info": [
        "lazycheck info samples/two_layer_tanh.toml",
        "lazycheck info samples/iris.toml --set model.widths=[64]",
    ],
    "bound": [
        "lazycheck bound samples/two_layer_tanh.toml",
        "lazycheck bound samples/small_alpha.toml --alpha 1e6 -f json -o bound.json",
    ],
    "simulate": [
        "lazycheck simulate samples/two_layer_tanh.toml --alpha 100 --plot run.png",
        "lazycheck simulate samples/relu.toml --method gd --lr 0.5 --csv run.csv -q",
    ],
    "kernel": [
        "lazycheck kernel samples/two_layer_tanh.toml",
        "lazycheck kernel samples/deep_tanh.toml --set model.widths=[512,512] -f json",
    ],
    "sweep": [
        "lazycheck sweep samples/two_layer_tanh.toml --alpha 1e-2:1e4:7 --seeds 0-2 --plot s.png",
        "lazycheck sweep samples/two_layer_tanh.toml --set model.widths=[50],[200] --out runs/",
    ],
    "verify": [
        "lazycheck verify samples/two_layer_tanh.toml --strict",
        "lazycheck verify samples/ --junit lazycheck.xml --github --no-progress",
    ],
}


def epilog(command: str) -> str:
    """The exit codes and two examples, for the end of ``COMMAND --help``.

    ``\\b`` keeps click from re-wrapping the lines of a paragraph.
    """
    codes = "\n".join(f"  {line}" for line in _EXIT[command])
    examples = "\n".join(f"  {line}" for line in _EXAMPLES[command])
    return f"\b\nExit codes:\n{codes}\n\n\b\nExamples:\n{examples}"


def expand_specs(paths: Sequence[Path]) -> list[Path]:
    """The spec files named by ``paths``: a directory stands for its ``*.toml`` files
    (sorted); duplicates are dropped, the order is kept."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                raise LazycheckError(f"{path}: a directory without any *.toml spec")
            out += found
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def choice_parser(enum: type[E]) -> Callable[[Any], E]:
    """A Typer ``parser`` for an enum option: case-insensitive, with "did you mean" on a
    value that is not a choice."""
    names = [str(e.value) for e in enum]

    def parse(value: Any) -> E:
        if isinstance(value, enum):
            return value
        match = match_choice(str(value), names)
        if match is None:
            raise typer.BadParameter(
                f"{value!r} is not one of {', '.join(names)}{did_you_mean(str(value), names)}"
            )
        return enum(match)

    return parse


def _plain_metavar(param: Any) -> None:
    """An option without its own metavar gets FILE (a path), N (an integer) or its name in
    capitals (``--decay DECAY``); an argument named by a metavar shows no type after it."""
    if isinstance(param, TyperArgument) and param.metavar:
        param.__class__ = _PlainArgument
    elif isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
        kind = param.type_descriptor.annotation
        param.metavar = {Path: "FILE", int: "N"}.get(kind) or str(param.name).upper()
