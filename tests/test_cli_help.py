"""Every command's --help names its arguments and option values plainly (``SPEC...``,
``--threads N``, ``-o FILE``), never by Typer's type names (``<list[Path]>``, ``<int range>``)."""

from __future__ import annotations

import re

import pytest

COMMANDS = ("info", "bound", "simulate", "kernel", "verify")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_plain_metavars(command: str, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    res = run_cli([command, "--help"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert not re.search(r"<[a-zA-Z][^>]*>", out), out  # no <int>, <path>, <list[Path]>, ...
    spec = "SPEC..." if command == "verify" else "SPEC"
    assert re.search(rf"^  {re.escape(spec)}  +The experiment spec", out, re.M), out
    assert re.search(r"^  --threads N  ", out, re.M), out
    assert re.search(r"^  --seed N  ", out, re.M) and re.search(r"^  --data-seed N  ", out, re.M)
    if command != "info":
        assert re.search(r"^  -o, --output FILE  ", out, re.M), out
    # every option that takes a value shows one plain word in capitals (or the choices)
    for line in re.findall(r"^  (-\S.*?)(?:  |$)", out, re.M):
        names = [w for w in line.replace(",", " ").split() if not w.startswith("-")]
        assert all(re.fullmatch(r"[A-Z][A-Z=_.]*|[a-z|]+", w) for w in names), line


def test_simulate_options_are_named_by_what_they_take(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = run_cli(["simulate", "--help"]).stdout
    for opt, metavar in (("--decay", "DECAY"), ("--csv", "FILE"), ("--alpha", "ALPHA")):
        assert re.search(rf"^  {opt} {metavar}  ", out, re.M), (opt, out)


def test_a_bad_threads_value_still_names_the_option(run_cli) -> None:
    res = run_cli(["info", "samples/two_layer_tanh.toml", "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.stderr
