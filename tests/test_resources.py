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


def test_kernel_estimate_and_refusal() -> None:
    assert resources.kernel_bytes(1000) == resources.KERNEL_COPIES * 8 * 10**6
    resources.set_memory_limit("1G")
    resources.require_kernel(5000)  # 800 MB: fits
    with pytest.raises(LazycheckError) as info:
        resources.require_kernel(200_000, "the linear flow")
    msg = str(info.value)
    assert "the linear flow" in msg and "n = 200000" in msg and "1.16 TiB" in msg
    assert "reduce [data].n" in msg and "1 GiB" in msg


def test_default_limit_honours_the_address_space_limit() -> None:
    """Under ``ulimit -v`` the default limit is 80% of what the process can still map."""
    import subprocess
    import sys

    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30));"
        "from lazycheck import resources; print(resources.memory_limit())"
    )
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    limit = int(proc.stdout)
    assert 0 < limit <= 0.8 * 2**30
