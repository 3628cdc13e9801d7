"""The ``lazycheck`` command line: a thin layer that parses options, calls the core, prints.

One module per command (``info``, ``bound``, ``simulate``, ``verify``), each registering itself
on the shared Typer :data:`app` of :mod:`lazycheck.cli._app`; the work lives in plain functions
of the core (:func:`lazycheck.compute_bound`, :func:`lazycheck.simulate`, ...).
"""

from __future__ import annotations

import lazycheck.cli.sweep  # noqa: F401  (registers lazycheck sweep)
from lazycheck.cli import bound, info, simulate, verify  # noqa: F401  (registers the commands)
from lazycheck.cli import kernel as _kernel  # noqa: F401
from lazycheck.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
