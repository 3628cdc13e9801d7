"""Memory limits and BLAS threads: parsing, refusal messages, the options on every command."""

from __future__ import annotations

import pytest

from lazycheck import resources
from lazycheck.errors import LazycheckError


@pytest.fixture(autouse=True)
def _restore_limit():
    yield
    resources.set_memory_limit(None)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)), ("4096", 4096)],
)
def test_parse_bytes(text: str, nbytes: int) -> None:
    assert resources.parse_bytes(text, "--memory-limit") == nbytes


@pytest.mark.parametrize("text", ["1X", "-2G", "0", "G", ""])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(LazycheckError, match="--memory-limit"):
        resources.parse_bytes(text, "--memory-limit")


def test_require_names_need_limit_and_change() -> None:
    resources.set_memory_limit("1M")
    resources.require(2**19, "the kernel", "reduce n")  # fits: no error
    with pytest.raises(LazycheckError) as info:
        resources.require(3 * 2**30, "the tangent kernel (n x n)", "reduce [data].n")
    msg = str(info.value)
    assert "3 GiB" in msg and "1 MiB" in msg and "reduce [data].n" in msg


def test_memory_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAZYCHECK_MEMORY_LIMIT", "3G")
    assert resources.memory_limit() == 3 * 2**30
    resources.set_memory_limit("1G")  # the option wins over the environment
    assert resources.memory_limit() == 2**30


def test_options_on_every_command(run_cli, one_line_error) -> None:
    for cmd in ("info", "bound", "simulate", "verify"):
        result = run_cli([cmd, "samples/two_layer_tanh.toml", "--memory-limit", "1X"])
        one_line_error(result, "--memory-limit", "1X")
    ok = run_cli(["info", "samples/two_layer_tanh.toml", "--threads", "1", "--memory-limit", "1G"])
    assert ok.exit_code == 0, ok.output
