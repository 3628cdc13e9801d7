"""Rich consoles: results to stdout, progress and diagnostics to stderr.

Both honour ``NO_COLOR`` (rich reads it) and plain output when not a terminal, and ``COLUMNS``
for their width (120 when it is unset and the output is piped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported lazily by callers that print
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["PIPE_WIDTH", "console_width", "progress", "stage", "stderr_console", "stdout_console"]

PIPE_WIDTH = 120
"""Width of piped output when ``COLUMNS`` is not set."""


def stdout_console() -> Console:
    """A console for results on stdout (wide enough for tables when piped)."""
    from rich.console import Console

    return Console(width=console_width(1), soft_wrap=False)


def stderr_console() -> Console:
    """A console for progress and diagnostics on stderr."""
    from rich.console import Console

    return Console(stderr=True, width=console_width(2))


def console_width(fd: int) -> int | None:
    """The width for output on ``fd``: ``COLUMNS`` when set (a positive integer), else the
    terminal's (``None``: rich asks it), else 120 when piped."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if os.isatty(fd) else PIPE_WIDTH


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress | None]:
    """A rich progress display on stderr, or ``None`` when disabled or stderr is no terminal."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = stderr_console()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        yield bar


def stage(
    bar: Progress | None, description: str, total: float = 1.0
) -> Callable[[float], None] | None:
    """A task on ``bar`` (None when there is no bar) and its callback: ``advance(fraction)``
    sets the task to that fraction of ``total`` done, so the ETA column has real numbers."""
    if bar is None:
        return None
    task = bar.add_task(description, total=total)

    def advance(fraction: float) -> None:
        bar.update(task, completed=min(max(fraction, 0.0), 1.0) * total)

    return advance
