"""The command line follows the conventions of ruff, pytest and mypy: -h, help for every
option, exit codes and examples in each command's help, a plain usage line, shell completion,
-q, several specs in one call, "did you mean", case-insensitive choices, COLUMNS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import typer

from lazycheck.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
COMMANDS = tuple(typer.main.get_command(app).commands)  # every command, as registered
FAST = ["--set", "flow.n_times=20", "--set", "check.ball_points=2", "--no-progress"]


def _click_app():
    return typer.main.get_command(app)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_help(command) -> None:
    cmd = _click_app().commands[command]
    missing = [p.name for p in cmd.params if not getattr(p, "help", None)]
    assert not missing, f"{command}: no help for {missing}"
    assert cmd.help and cmd.epilog


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_exit_codes_examples_and_a_plain_usage(run_cli, command) -> None:
    short, long = run_cli([command, "-h"]), run_cli([command, "--help"])
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout
    text = short.stdout
    usage = text.splitlines()[0]
    assert "SPEC" in usage and "{" not in usage and "}" not in usage, usage
    assert "Exit codes:" in text and "  2  " in text
    examples = text.split("Examples:")[1].strip().splitlines()
    assert len(examples) == 2 and all(
        ex.strip().startswith(f"lazycheck {command} ") for ex in examples
    )
    for opt in ("--no-progress", "-q, --quiet", "--rtol", "--atol", "-f, --format"):
        cmd = _click_app().commands[command]
        if any(opt.split(", ")[-1] in p.opts for p in cmd.params):
            assert opt in text


def test_examples_in_the_help_run(run_cli, tmp_path, monkeypatch) -> None:
    """Every example names options that exist (parsing them is enough: --help stops it)."""
    for command in COMMANDS:
        text = run_cli([command, "-h"]).stdout
        for ex in text.split("Examples:")[1].strip().splitlines():
            args = ex.split()[1:]
            res = run_cli([*args, "-h"])
            assert res.exit_code == 0, (ex, res.output)


def test_root_help_and_completion(run_cli) -> None:
    res = run_cli(["-h"])
    assert res.exit_code == 0 and "--install-completion" in res.stdout
    assert "-h, --help" in res.stdout
    # the completion script, from the installed console script (in a fresh process: click's
    # completion reads process-wide state that other in-process tests may have touched)
    exe = Path(sys.executable).with_name("lazycheck")
    out = subprocess.run(
        [str(exe), "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "complete -o default -F _lazycheck_completion lazycheck" in out.stdout


def test_quiet_prints_only_the_verdict_line(run_cli, tmp_path) -> None:
    spec = SAMPLES / "two_layer_tanh.toml"
    res = run_cli(["bound", spec, "-q", "--no-progress"])
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [res.stdout.strip()]
    assert res.stdout.startswith("verdict: Theorem 2 applies")
    out = tmp_path / "v.json"
    res = run_cli(["verify", spec, "-q", "-f", "json", "-o", out, *FAST])
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == 1 and res.stdout.startswith("verdict: ")
    assert json.loads(out.read_text())["status"] == "pass"  # the file is still written
    res = run_cli(["simulate", spec, "--quiet", "--no-progress", "--set", "flow.n_times=20"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 1


def test_several_specs_and_a_directory_in_one_call(run_cli, tmp_path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("two_layer_tanh", "wrong_beta"):
        (specs / f"{name}.toml").write_text((SAMPLES / f"{name}.toml").read_text())
    (specs / "notes.txt").write_text("not a spec")
    single = run_cli(["verify", specs / "two_layer_tanh.toml", *FAST])
    junit, js = tmp_path / "r.xml", tmp_path / "r.json"
    res = run_cli(["verify", specs, specs / "two_layer_tanh.toml", "--junit", junit,
                   "--json", js, *FAST])  # fmt: skip
    assert res.exit_code == 1, res.output  # the worst: wrong_beta fails a check
    # one report per spec (the directory's specs sorted, the repeat dropped), one summary
    assert res.stdout.count("lazycheck verify: ") == 3
    assert res.stdout.index("two_layer_tanh.toml") < res.stdout.index("wrong_beta.toml")
    assert res.stdout.strip().splitlines()[-1].startswith("lazycheck verify: 2 specs: ")
    assert "exit code 1" in res.stdout.strip().splitlines()[-1]
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    names = [s.get("name") for s in root.findall("testsuite")]
    assert [Path(n).name for n in names] == ["two_layer_tanh.toml", "wrong_beta.toml"]
    many = json.loads(js.read_text())
    assert many["exit_code"] == 1 and len(many["reports"]) == 2
    # one spec alone prints what it printed before: its table and verdict, no summary line
    assert single.exit_code == 0
    assert "specs:" not in single.stdout and single.stdout.count("lazycheck verify: ") == 1


def test_a_bad_spec_among_several_stops_before_anything_runs(run_cli, one_line_error, tmp_path):
    out = tmp_path / "r.xml"
    res = run_cli(["verify", SAMPLES / "two_layer_tanh.toml", tmp_path / "missing.toml",
                   "--junit", out, "--no-progress"])  # fmt: skip
    one_line_error(res, "missing.toml")
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run_cli(["verify", empty]), "empty", "*.toml")


def test_github_option_writes_annotations_and_summary_with_the_table(
    run_cli, tmp_path, monkeypatch
):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = run_cli(["verify", SAMPLES / "wrong_beta.toml", "--github", *FAST])
    assert res.exit_code == 1
    assert "verdict:" in res.stdout and "::error file=" in res.stdout
    assert "| `theorem2.loss` | fail |" in summary.read_text()


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("flow.aplha=2", "unknown key 'aplha' in [flow] (did you mean 'alpha'?)"),
        ('model.activation="tanhh"', "(did you mean 'tanh'?)"),
        ('check.beta="certfied"', "(did you mean 'certified'?)"),
        ('flow.method="RK54"', "(did you mean 'RK45'?)"),
    ],
)
def test_did_you_mean_for_keys_and_choices(run_cli, one_line_error, setting, fragment) -> None:
    res = run_cli(["info", SAMPLES / "two_layer_tanh.toml", "--set", setting])
    one_line_error(res, fragment)


def test_did_you_mean_in_a_spec_file(run_cli, one_line_error, write_file) -> None:
    spec = write_file("s.toml", '[data]\nsource = "synthetic"\n[model]\nwidht = [10]\n')
    one_line_error(run_cli(["info", spec]), "unknown key 'widht'", "did you mean 'widths'?")


def test_choices_are_case_insensitive_and_canonicalised(run_cli) -> None:
    from lazycheck.spec import load_spec

    spec = load_spec(SAMPLES / "two_layer_tanh.toml")
    changed = spec.with_settings(
        {"model.activation": "Tanh", "flow.method": "rk45", "check.beta": "CERTIFIED"}
    )
    assert changed.model.activation == "tanh"
    assert changed.flow.method == "RK45"
    assert changed.check.beta == "certified"
    res = run_cli(["bound", SAMPLES / "two_layer_tanh.toml", "-f", "JSON", "--no-progress"])
    assert res.exit_code == 0 and json.loads(res.stdout)["schema"] == "lazycheck.bound"


def test_cli_choice_typo_suggests(run_cli) -> None:
    res = run_cli(["bound", SAMPLES / "two_layer_tanh.toml", "-f", "jsno"])
    assert res.exit_code == 2
    assert "did you mean 'json'?" in " ".join(res.stderr.split())


@pytest.mark.parametrize(("columns", "width"), [("60", 60), ("200", 200), (None, 120)])
def test_piped_output_respects_columns(columns, width) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    res = subprocess.run(
        [sys.executable, "-m", "lazycheck", "bound", str(SAMPLES / "two_layer_tanh.toml"),
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    table_lines = [ln for ln in res.stdout.splitlines() if ln.startswith(("┏", "└"))]
    assert table_lines and max(len(ln) for ln in table_lines) <= width
    assert max(len(ln) for ln in res.stdout.splitlines()) <= width
    if width < 120:
        assert max(len(ln) for ln in table_lines) >= width - 5  # uses the room it has


def test_info_counts_p_once_for_the_symmetric_pair(run_cli) -> None:
    res = run_cli(["info", SAMPLES / "uncentered.toml", "--set", 'model.init="symmetric"',
                   "--set", "model.widths=[200]"])  # fmt: skip
    assert res.exit_code == 0, res.output
    model = next(ln for ln in res.stdout.splitlines() if ln.startswith("model:"))
    smooth = next(ln for ln in res.stdout.splitlines() if ln.startswith("smooth:"))
    p = smooth.split("p = ")[1].split(";")[0]
    assert f"p = {p} " in model + " " and model.count(f"p = {p}") == 1, (model, smooth)
