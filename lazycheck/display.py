"""How a report shows itself: on a console, in a REPL, and in a Jupyter notebook.

:class:`Displayable` gives a result class, from one method ``_renderables()`` (the rich
renderables of its report, in order):

* ``render(console=None)``: print them (to a stdout console by default);
* ``__rich_console__``: rich's protocol, so ``rich.print(report)`` and rich's IPython
  extension show the report;
* ``_repr_html_``: the same report as HTML for Jupyter (inline styles, no JavaScript);
* ``_short_repr``: a one-line ``repr`` built from ``_repr_fields()`` (the dataclass repr
  of a report runs to thousands of characters of arrays and nested tables).

rich is imported only when something is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType

__all__ = ["REPR_LIMIT", "Displayable"]

REPR_LIMIT = 300
"""A short repr stays under this many characters."""


class Displayable:
    """Mixin: rich, HTML and short-repr display from ``_renderables()``."""

    def _renderables(self) -> list[RenderableType]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _repr_fields(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self, console: Console | None = None) -> None:
        """Print the report on ``console`` (default: a console on stdout)."""
        if console is None:
            from lazycheck.console import stdout_console

            console = stdout_console()
        for item in self._renderables():
            console.print(item)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        yield from self._renderables()

    def _repr_html_(self) -> str:
        """The report as an HTML fragment (Jupyter's rich display)."""
        import io

        from rich.console import Console

        console = Console(file=io.StringIO(), record=True, width=120, force_jupyter=False)
        for item in self._renderables():
            console.print(item)
        return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")

    def _short_repr(self) -> str:
        parts = ", ".join(f"{k}={_short(v)}" for k, v in self._repr_fields().items())
        return f"{type(self).__name__}({parts})"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if not math.isfinite(v) else f"{v:.6g}"
    if isinstance(v, str) and len(v) > 90:
        return repr(v[:87] + "...")
    return repr(v)
