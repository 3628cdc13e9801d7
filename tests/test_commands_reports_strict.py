"""Under ``--strict`` the reports agree with the exit code: an unmet hypothesis exits 1, so JUnit
counts it as a ``<failure>``, the GitHub annotation is an ``::error`` and the step summary marks
it failing. Without ``--strict`` the same checks stay ``<skipped>`` / ``::warning``."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from helpers import SAMPLES, verified_sample

from lazycheck.commands.reports import STRICT_UNMET, exit_code, github_summary, to_github, to_junit


@pytest.fixture(scope="module")
def unmet():
    rep = verified_sample("p_le_n")
    ids = [c.id for c in rep.checks if c.role == "hypothesis" and c.status != "pass"]
    assert ids, "p_le_n is expected to leave a hypothesis unmet"
    assert exit_code(rep) == 0 and exit_code(rep, strict=True) == 1
    return rep, ids


def _failed(suite: ET.Element) -> dict[str, ET.Element]:
    return {
        case.get("name"): case.find("failure")
        for case in suite.iter("testcase")
        if case.find("failure") is not None
    }


def test_junit_counts_unmet_hypotheses_as_failures_only_under_strict(unmet) -> None:
    rep, ids = unmet
    loose, strict = ET.fromstring(to_junit(rep)), ET.fromstring(to_junit(rep, strict=True))
    assert loose.get("failures") == "0" and not _failed(loose)
    failed = _failed(strict)
    assert sorted(failed) == sorted(ids)
    assert int(strict.get("failures")) == len(ids)
    assert all(STRICT_UNMET in f.get("message") for f in failed.values())
    # nothing counted twice: every check is a failure, a skip or a pass
    assert int(strict.get("skipped")) == int(loose.get("skipped")) - len(ids)
    for suite in (loose, strict):
        skips = sum(case.find("skipped") is not None for case in suite.iter("testcase"))
        assert int(suite.get("skipped")) == skips
        assert int(suite.get("failures")) == len(_failed(suite))


def test_junit_of_several_reports_totals_strict_failures(unmet) -> None:
    rep, ids = unmet
    root = ET.fromstring(to_junit([rep, rep], strict=True))
    assert int(root.get("failures")) == 2 * len(ids)


def test_github_annotations_are_errors_under_strict(unmet) -> None:
    rep, ids = unmet
    for cid in ids:
        tag = f"lazycheck {cid}%3A"
        loose = [ln for ln in to_github(rep).splitlines() if tag in ln]
        strict = [ln for ln in to_github(rep, strict=True).splitlines() if tag in ln]
        assert all(ln.startswith("::warning ") for ln in loose)
        assert len(strict) == 1 and strict[0].startswith("::error ")
        assert STRICT_UNMET in strict[0]


def test_step_summary_marks_unmet_hypotheses_failing_under_strict(unmet) -> None:
    rep, ids = unmet
    assert STRICT_UNMET not in github_summary(rep)
    text = github_summary(rep, strict=True)
    assert "--strict: exit code 1" in text
    for cid in ids:
        (row,) = [ln for ln in text.splitlines() if ln.startswith(f"| `{cid}` |")]
        assert "**fail**" in row and STRICT_UNMET in row


def test_cli_strict_junit_agrees_with_the_exit_code(run_cli, tmp_path) -> None:
    spec = SAMPLES / "p_le_n.toml"
    out = tmp_path / "r.xml"
    res = run_cli(["verify", spec, "--strict", "-f", "junit", "--junit", out, "--no-progress"])
    assert res.exit_code == 1, res.output
    for text in (res.stdout, out.read_text()):
        suite = ET.fromstring(text)
        assert int(suite.get("failures")) >= 1
    loose = run_cli(["verify", spec, "-f", "junit", "--no-progress"])
    assert loose.exit_code == 0 and ET.fromstring(loose.stdout).get("failures") == "0"
