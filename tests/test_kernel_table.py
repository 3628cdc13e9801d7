"""The kernel table wraps its cells on a narrow terminal instead of cutting them: every label
and every kind is printed in full (whitespace aside), at COLUMNS=80 and narrower."""

from __future__ import annotations

import io
import re

import pytest
from helpers import SAMPLES

from lazycheck.commands.kernel_report import _LABELS, compare_kernels
from lazycheck.problem import load_problem


@pytest.fixture(scope="module")
def report():
    return compare_kernels(load_problem(SAMPLES / "two_layer_tanh.toml"))


def _columns(text: str) -> list[str]:
    """The text of each table column, its wrapped lines joined, all whitespace removed."""
    cols: list[str] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = line.strip().strip("│").split("│")
        cols += [""] * (len(cells) - len(cols))
        for k, cell in enumerate(cells):
            cols[k] += re.sub(r"\s", "", cell)
    return cols


def _expected(report) -> list[list[str]]:
    labels = ["lambda_min", "lambda_max", *_LABELS.values(), "kind"]
    return [labels, ["exact (this w0)"], [report.limit_kind]]


@pytest.mark.parametrize("width", [80, 50])
def test_kernel_table_prints_every_cell_in_full(report, width) -> None:
    from rich.console import Console

    buf = io.StringIO()
    report.render(Console(file=buf, width=width, no_color=True, force_terminal=False))
    text = buf.getvalue()
    assert "…" not in text
    cols = _columns(text)
    for col, wanted in zip(cols, _expected(report), strict=True):
        for item in wanted:
            assert re.sub(r"\s", "", item) in col, (item, text)


def test_kernel_cli_at_80_columns_loses_nothing(run_cli, monkeypatch, report) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    res = run_cli(["kernel", SAMPLES / "two_layer_tanh.toml", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    assert max(len(ln) for ln in res.stdout.splitlines()) <= 80
    cols = _columns(res.stdout)
    for col, wanted in zip(cols, _expected(report), strict=True):
        for item in wanted:
            assert re.sub(r"\s", "", item) in col, (item, res.stdout)
