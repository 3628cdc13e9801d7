"""Reports that cannot contradict themselves: for every check of a real run over every sample,
observed, relation and bound are read back from every format (table, JSON, JUnit, GitHub
annotations, step summary) and must agree with the check's ``sense``, its ``held`` and its
status. Also: JUnit valid for any spec path, its counts on a solver failure, several reports
in one document, and no import cycle between reports and verify."""

from __future__ import annotations

import io
import json
import math
import operator
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from helpers import verified_sample

from lazycheck.commands.checks import CHECK_IDS, Check
from lazycheck.commands.reports import github_summary, to_github, to_json, to_junit
from lazycheck.commands.verify import VerifyReport

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_NAMES = sorted(p.stem for p in SAMPLES.glob("*.toml"))
OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
       "==": operator.eq, "=": operator.eq}  # fmt: skip
NUM = r"(n/a|-?inf|[-+0-9.e]+)"


def _cases() -> list:
    return [
        pytest.param(name, cid, id=f"{name}-{cid}") for name in SAMPLE_NAMES for cid in CHECK_IDS
    ]


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """Every sample verified once, and each report rendered in every format."""
    from rich.console import Console

    out = {}
    for name in SAMPLE_NAMES:
        rep = verified_sample(name)
        buf = io.StringIO()
        rep.render(Console(file=buf, width=400, no_color=True, force_terminal=False))
        out[name] = {
            "report": rep,
            "table": buf.getvalue(),
            "json": json.loads(to_json(rep)),
            "junit": ET.fromstring(to_junit(rep)),
            "github": to_github(rep),
            "summary": github_summary(rep),
        }
    return out


def _num(text: str) -> float:
    return math.nan if text == "n/a" else float(text)


def _close(printed: float, value: float, digits: int) -> bool:
    if math.isnan(value) or math.isinf(value):
        return printed == value or (math.isnan(printed) and math.isnan(value))
    return math.isclose(printed, value, rel_tol=10.0 ** (1 - digits), abs_tol=1e-300)


def _agrees(c: Check, o: float, rel: str, b: float, held: bool, slack: float, atol: float) -> bool:
    """``held`` is what ``o rel b`` says, within the check's tolerance and the print slack."""
    if math.isnan(o) or math.isnan(b):
        return held is False  # a NaN satisfies no inequality
    tol = c.tolerance + slack
    if rel in ("<=", "<"):
        satisfied, violated = o <= b * (1 + tol) + atol, o > b * (1 - slack)
    elif rel in (">=", ">"):
        satisfied, violated = o >= b * (1 - tol) - atol, o < b * (1 + slack)
    else:
        satisfied = violated = None
    exact_only = rel in ("==", "=", "<", ">") or math.isinf(o) or math.isinf(b)
    if exact_only:
        return bool(OPS[rel](o, b)) == held
    if slack == 0:
        return bool(satisfied) == held
    return bool(satisfied) if held else bool(violated)


def _status_held(status: str, held: bool | None) -> None:
    if status == "pass":
        assert held is True
    elif status in ("fail", "unmet"):
        assert held is False
    elif status == "skipped":
        assert held is None


@pytest.mark.parametrize(("name", "cid"), _cases())
def test_relation_read_back_from_every_format(runs, name, cid) -> None:
    run = runs[name]
    rep: VerifyReport = run["report"]
    c = rep.check(cid)
    _status_held(c.status, c.held)
    atol = rep.tolerances.get("atol_loss", 0.0) if "loss" in cid or "lemma4" in cid else 0.0
    # the check itself: held is what its relation says, exactly as tested
    if c.held is not None:
        assert c.sense in OPS
        assert _agrees(c, c.observed, c.sense, c.bound, c.held, 0.0, atol), c

    # JSON: the numbers in full, the relation, held, status
    (d,) = [x for x in run["json"]["checks"] if x["id"] == cid]
    assert (d["sense"], d["status"], d["held"]) == (c.sense, c.status, c.held)
    if c.held is not None:
        o, b = float(d["observed"]), float(d["bound"])
        assert _agrees(c, o, d["sense"], b, d["held"], 0.0, atol)

    # table: "observed | <sense> bound"
    row = next(ln for ln in run["table"].splitlines() if re.match(rf"│ {re.escape(cid)}\s", ln))
    cells = [x.strip() for x in row.strip("│").split("│")]
    _, status, held_cell, obs_cell, bound_cell = cells[:5]
    assert status.lower() == c.status
    rel, b_text = bound_cell.split(" ", 1)
    assert rel == c.sense, f"table prints {rel!r}, the check tested {c.sense!r}"
    _read_back(c, obs_cell, rel, b_text, held_cell, 4, atol)

    # JUnit: "observed X <sense> bound Y, held yes|no"
    (case,) = [x for x in run["junit"].iter("testcase") if x.get("name") == cid]
    m = re.search(
        rf"observed {NUM} (\S+) bound {NUM}, held (yes|no|-)", case.find("system-out").text
    )
    assert m, case.find("system-out").text
    assert m.group(2) == c.sense
    _read_back(c, m.group(1), m.group(2), m.group(3), m.group(4), 6, atol)
    if c.status == "fail":
        assert case.find("failure") is not None
    elif c.status in ("skipped", "unguaranteed", "unmet"):
        assert case.find("skipped") is not None

    # GitHub annotations (printed for fail, unmet, and unguaranteed checks that did not hold)
    lines = [ln for ln in run["github"].splitlines() if f"lazycheck {cid}%3A" in ln]
    notable = c.status in ("fail", "unmet") or (c.status == "unguaranteed" and c.held is False)
    assert len(lines) == int(notable)
    for ln in lines:
        assert ln.startswith("::error" if c.status == "fail" else "::warning")
        m = re.search(rf"tested observed {NUM} (\S+) bound {NUM}", ln)
        assert m and m.group(2) == c.sense, ln
        _read_back(c, m.group(1), m.group(2), m.group(3), "no", 6, atol)

    # step summary: | `id` | status | held | observed | `sense` | bound | margin |
    row = next(ln for ln in run["summary"].splitlines() if ln.startswith(f"| `{cid}` |"))
    cells = [x.strip() for x in row.strip("|").split("|")]
    assert cells[1] == c.status and cells[4] == f"`{c.sense}`"
    _read_back(c, cells[3], c.sense, cells[5], cells[2], 4, atol)


def _read_back(c: Check, o: str, rel: str, b: str, held: str, digits: int, atol: float) -> None:
    o_val, b_val = _num(o), _num(b)
    assert _close(o_val, c.observed, digits), (o, c.observed)
    assert _close(b_val, c.bound, digits), (b, c.bound)
    held_val = {"yes": True, "no": False, "NO": False, "-": None}[held]
    assert held_val == c.held
    if held_val is not None:
        slack = 10.0 ** (1 - digits)
        assert _agrees(c, o_val, rel, b_val, held_val, slack, atol), (o, rel, b, held)


# ----------------------------------------------------------------------------- JUnit


@pytest.fixture(scope="module")
def one(runs) -> VerifyReport:
    return runs["two_layer_tanh"]["report"]


@pytest.mark.parametrize(
    "spec", ["a\x01b\x1b[31m.toml", "tab\there\nnewline.toml", "nul\x00x.toml", "bad\udc80.toml"]
)
def test_junit_is_valid_xml_for_any_spec_path(one, spec) -> None:
    import dataclasses

    rep = dataclasses.replace(one, spec=spec, message=f"verdict for {spec}")
    text = to_junit(rep)
    text.encode("utf-8")  # no lone surrogates
    root = ET.fromstring(text)
    allowed = "\t\n\r"
    expected = "".join(
        ch if ch in allowed or (ord(ch) >= 0x20 and not 0xD800 <= ord(ch) <= 0xDFFF)
        else f"\\x{ord(ch):02x}"
        for ch in spec
    )  # fmt: skip
    assert root.get("name") == expected
    ET.fromstring(to_junit([rep, one]))


def test_junit_counts_on_solver_failure(one) -> None:
    import dataclasses

    rep = dataclasses.replace(one, status="error", message="the solver failed", checks=())
    root = ET.fromstring(to_junit(rep))
    cases = root.findall("testcase")
    assert len(cases) == 1 and cases[0].find("error") is not None
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
    both = ET.fromstring(to_junit([rep, one]))
    assert both.tag == "testsuites"
    assert int(both.get("tests")) == 1 + len(one.checks)
    assert int(both.get("errors")) == 1
    assert int(both.get("tests")) == sum(len(s.findall("testcase")) for s in both)


def test_several_reports_in_one_document(runs) -> None:
    reps = [runs[n]["report"] for n in ("two_layer_tanh", "wrong_beta")]
    root = ET.fromstring(to_junit(reps))
    assert [s.get("name") for s in root.findall("testsuite")] == [r.spec for r in reps]
    assert int(root.get("failures")) == sum(r.counts()["fail"] for r in reps)
    many = json.loads(to_json(reps))
    assert many["schema"] == "lazycheck.verify_many"
    assert [r["spec"] for r in many["reports"]] == [r.spec for r in reps]
    assert many["exit_code"] == 1 and many["counts"] == {"pass": 1, "fail": 1}
    text = to_github(reps)
    assert text.count("::notice") == 2
    assert github_summary(reps).count("### lazycheck verify:") == 2
    # one report stays the single-report format
    assert json.loads(to_json(reps[:1]))["schema"] == "lazycheck.verify"
    assert ET.fromstring(to_junit(reps[:1])).tag == "testsuite"


def test_no_import_cycle_between_reports_and_verify() -> None:
    """Importing either module alone does not import the other (in a fresh interpreter)."""
    for mod, other in (("reports", "verify"), ("verify", "reports")):
        code = (
            f"import sys, lazycheck.commands.{mod}; "
            f"assert 'lazycheck.commands.{other}' not in sys.modules"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def test_one_status_type_covers_every_result(runs) -> None:
    from lazycheck.status import (
        BOUND_STATUSES,
        CHECK_STATUSES,
        SIMULATION_STATUSES,
        STATUSES,
        VERIFY_STATUSES,
    )

    for run in runs.values():
        rep = run["report"]
        assert rep.status in VERIFY_STATUSES and rep.bound.status in BOUND_STATUSES
        assert {c.status for c in rep.checks} <= set(CHECK_STATUSES)
        if rep.simulation is not None:
            assert rep.simulation.outcome in SIMULATION_STATUSES
    assert set(CHECK_STATUSES + VERIFY_STATUSES + BOUND_STATUSES + SIMULATION_STATUSES) == set(
        STATUSES
    )
