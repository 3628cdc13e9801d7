"""Shared fixtures: files written to a temporary directory, running the command line in-process,
and the check that a user error came out as one line on stderr."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lazycheck.errors import LazycheckError


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_file(name, text)``: write ``text`` to ``tmp_path / name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_cli() -> Callable[[Sequence[str]], Result]:
    """``run_cli(args)``: invoke ``lazycheck ARGS`` in-process; stdout and stderr separate."""
    from lazycheck.cli import app

    def run(args: Sequence[str]) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args])

    return run


def _assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    err = result.stderr
    assert "Traceback" not in err
    assert not isinstance(result.exception, LazycheckError)  # handled, not escaped
    text = " ".join(err.split())
    assert text.startswith("lazycheck: error: ")
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"stderr is {len(lines)} lines: {err!r}"


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """``one_line_error(result, *fragments)``: the CLI exited with code 2, printed nothing on
    stdout and exactly one line on stderr (no traceback) holding every fragment."""
    return _assert_one_line_error
