"""The command line: version, help, `python -m lazycheck`, `info`, and light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lazycheck

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("info", "bound", "simulate", "verify")


def _python(code: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_version_option_prints_the_package_version(run_cli) -> None:
    result = run_cli(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"lazycheck {lazycheck.__version__}\n"


def test_version_is_a_dotted_release_number() -> None:
    parts = lazycheck.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_no_arguments_shows_help(run_cli) -> None:
    result = run_cli([])
    assert "Usage" in result.output
    for command in COMMANDS:
        assert command in result.output


def test_top_level_help_lists_every_command(run_cli) -> None:
    result = run_cli(["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, run_cli) -> None:
    result = run_cli([command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: lazycheck {command}" in " ".join(result.stdout.split())
    assert "The experiment spec (TOML)." in result.stdout and "--seed" in result.stdout


@pytest.mark.parametrize("command", ["bound", "simulate", "verify"])
def test_commands_that_scale_the_output_accept_alpha(command: str, run_cli) -> None:
    assert "--alpha" in run_cli([command, "--help"]).stdout


def test_unknown_command_is_a_usage_error(run_cli, one_line_error) -> None:
    one_line_error(run_cli(["prove"]), "no such command 'prove'", "lazycheck --help")


def test_info_describes_a_sample(run_cli) -> None:
    result = run_cli(["info", REPO / "samples" / "two_layer_tanh.toml"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "n = 10, d = 3" in out
    assert "centered tanh MLP" in out and "p = 800" in out
    assert "smooth: True" in out and "||f(w0)|| = 0" in out
    assert result.stderr == ""
    assert "data seed" not in out  # the data follows the seed unless told otherwise


def test_info_shows_the_data_seed_when_set(run_cli, tmp_path) -> None:
    spec = REPO / "samples" / "two_layer_tanh.toml"
    result = run_cli(["info", spec, "--seed", "3", "--data-seed", "7"])
    assert result.exit_code == 0, result.output
    assert "seed = 3; data seed = 7" in result.stdout
    own = tmp_path / "own.toml"
    own.write_text(spec.read_text(encoding="utf-8").replace("[data]", "[data]\nseed = 5", 1))
    result = run_cli(["info", own])
    assert result.exit_code == 0, result.output
    assert "seed = 0; data seed = 5" in result.stdout


def test_python_dash_m_lazycheck_prints_the_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lazycheck", "--version"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"lazycheck {lazycheck.__version__}\n"


def test_console_script_runs_info_with_an_error_exit_code(tmp_path) -> None:
    exe = Path(sys.executable).with_name("lazycheck")
    if not exe.exists():
        pytest.skip("the lazycheck console script is not installed next to this Python")
    proc = subprocess.run(
        [str(exe), "info", str(tmp_path / "missing.toml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


HEAVY = ("scipy", "matplotlib")
_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))
"""


def _imported_heavy_modules(body: str) -> list[str]:
    proc = _python(_PROBE.format(body=body, heavy=HEAVY))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_lazycheck_stays_light() -> None:
    assert _imported_heavy_modules("import lazycheck") == []


def test_help_stays_light() -> None:
    body = (
        "from lazycheck.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "try:\n    app(['verify', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0"
    )
    assert _imported_heavy_modules(body) == []


def test_the_probe_detects_heavy_imports() -> None:
    """Guard for the two tests above: the probe does see scipy when it is imported."""
    assert "scipy" in _imported_heavy_modules("import scipy.special")
