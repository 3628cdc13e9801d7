"""Machine-readable reports of ``lazycheck verify``: JSON, JUnit XML and GitHub annotations.

Every function takes one :class:`~lazycheck.commands.verify.VerifyReport` or a sequence of them
(one per spec of ``lazycheck verify a.toml b.toml dir/``). Every format prints, for each check, the
relation actually tested: ``observed <sense> bound`` with the check's own ``sense`` (``<=``,
``>=``, ...), so a reader never sees "12 <= 10 pass".

* JSON: one report gives the report of ``lazycheck/schemas/verify.schema.json``
  (``schema_version`` 1); several give ``{"schema": "lazycheck.verify_many",
  "schema_version": 1, "exit_code", "exit_code_strict", "counts", "reports": [...]}`` with one
  such report per spec. Non-finite numbers are the strings ``"inf"``, ``"-inf"``, ``"nan"``.
* JUnit: one ``<testsuite>`` per spec, named by the spec path (several inside one
  ``<testsuites>``); one ``<testcase>`` per check. ``fail`` is a ``<failure>``; ``skipped``,
  ``unguaranteed`` and ``unmet`` are ``<skipped>`` with the reason (so CI gates on real
  failures only). With ``strict`` (``--strict``, which exits 1 on an unmet hypothesis) every
  hypothesis that did not pass is a ``<failure>`` ("hypothesis unmet (--strict)") and is
  counted in ``failures``, so the report and the exit code agree; a solver failure is one
  ``<testcase>`` with an ``<error>``. Characters XML 1.0 cannot hold (control characters
  of a path) are written as ``\\xNN`` escapes.
* GitHub: workflow commands (``::error``, ``::warning``, ``::notice``) on stdout, and a
  Markdown table per spec appended to ``$GITHUB_STEP_SUMMARY`` when that variable is set.
  With ``strict`` an unmet hypothesis is an ``::error`` (not a ``::warning``) and the summary
  marks it as failing.

The JSON dict itself is built by :meth:`VerifyReport.to_dict` (this module imports
:mod:`lazycheck.commands.verify` only for type checking: no import cycle).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from lazycheck._version import __version__
from lazycheck.jsonio import dumps

if TYPE_CHECKING:
    from lazycheck.commands.checks import Check
    from lazycheck.commands.verify import VerifyReport

__all__ = [
    "MANY_SCHEMA_VERSION",
    "exit_code",
    "relation",
    "report_dict",
    "summary_line",
    "to_github",
    "to_json",
    "to_junit",
    "write_github_summary",
]

MANY_SCHEMA_VERSION = 1
STRICT_UNMET = "hypothesis unmet (--strict)"
_SKIPS = ("skipped", "unguaranteed", "unmet")


def report_dict(report: VerifyReport) -> dict[str, Any]:
    """The JSON-ready dict of one verify report (:meth:`VerifyReport.to_dict`)."""
    return report.to_dict()


def relation(c: Check, digits: int = 6) -> str:
    """The inequality the check tested, e.g. ``observed 0.2 >= bound 0.01457``."""
    return f"observed {_num(c.observed, digits)} {c.sense} bound {_num(c.bound, digits)}"


def exit_code(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> int:
    """The worst exit code of the reports (2 > 1 > 0)."""
    return max((r.exit_code(strict=strict) for r in _many(reports)), default=0)


def summary_line(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> str:
    """One line over several specs: how many ended in each status, and the exit code."""
    many = _many(reports)
    counts: dict[str, int] = {}
    for r in many:
        counts[r.status] = counts.get(r.status, 0) + 1
    told = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"lazycheck verify: {len(many)} specs: {told}; exit code {exit_code(many, strict)}"


def to_json(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> str:
    """Strict JSON text: the report of one spec, or the ``verify_many`` object of several."""
    many = _many(reports)
    if len(many) == 1:
        return dumps(many[0].to_dict())
    counts: dict[str, int] = {}
    for r in many:
        counts[r.status] = counts.get(r.status, 0) + 1
    return dumps(
        {
            "schema": "lazycheck.verify_many",
            "schema_version": MANY_SCHEMA_VERSION,
            "lazycheck_version": __version__,
            "exit_code": exit_code(many),
            "exit_code_strict": exit_code(many, strict=True),
            "counts": counts,
            "reports": [r.to_dict() for r in many],
        }
    )


def to_junit(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> str:
    """JUnit XML: one ``<testsuite>`` per spec inside one ``<testsuites>`` (one spec: the
    ``<testsuite>`` alone). ``strict``: an unmet hypothesis is a ``<failure>``."""
    many = _many(reports)
    if len(many) == 1:
        return _xml_text(_junit_suite(many[0], strict))
    root = ET.Element("testsuites", name="lazycheck verify")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for report in many:
        suite = _junit_suite(report, strict)
        root.append(suite)
        for k in totals:
            totals[k] += int(suite.get(k, "0"))
    for k, v in totals.items():
        root.set(k, str(v))
    return _xml_text(root)


def to_github(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> str:
    """GitHub Actions workflow commands, one per notable check, and a closing notice per spec.
    ``strict``: an unmet hypothesis is an ``::error``."""
    lines = []
    for report in _many(reports):
        where = f"file={_escape_prop(report.spec)},"
        for c in report.checks:
            msg = _escape(f"{c.formula}: tested {relation(c)}; {c.message}")
            title = _escape_prop(f"lazycheck {c.id}: {c.status}")
            if _strict_failure(c, strict):
                msg += _escape(f" ({STRICT_UNMET})")
                lines.append(f"::error {where}title={title}::{msg}")
            elif c.status == "fail":
                lines.append(f"::error {where}title={title}::{msg}")
            elif c.status == "unmet" or (c.status == "unguaranteed" and c.held is False):
                lines.append(f"::warning {where}title={title}::{msg}")
        if report.status == "error":
            lines.append(f"::error {where}title=lazycheck solver::{_escape(report.message)}")
        title = _escape_prop(f"lazycheck verify {report.spec}: {report.status}")
        lines.append(f"::notice {where}title={title}::{_escape(report.message)}")
    return "\n".join(lines) + "\n"


def github_summary(reports: VerifyReport | Sequence[VerifyReport], strict: bool = False) -> str:
    """The Markdown the step summary gets: per spec, the verdict and a table of the checks
    (``strict``: an unmet hypothesis is marked failing, and the exit code is given)."""
    parts = []
    for report in _many(reports):
        rows = [
            "| check | status | held | observed | relation | bound | margin |",
            "|---|---|---|---|:---:|---|---|",
        ]
        for c in report.checks:
            held = "-" if c.held is None else ("yes" if c.held else "no")
            status = c.status
            if _strict_failure(c, strict):
                status = f"**fail**: {c.status}, {STRICT_UNMET}"
            rows.append(
                f"| `{c.id}` | {status} | {held} | {_num(c.observed, 4)} | `{c.sense}` | "
                f"{_num(c.bound, 4)} | {_num(c.margin, 4)} |"
            )
        spec = _md(report.spec)
        strictly = f" (--strict: exit code {report.exit_code(strict=True)})" if strict else ""
        parts.append(
            f"### lazycheck verify: `{spec}` (alpha = {report.alpha:g}): {report.status}"
            f"{strictly}\n\n**{_md(report.message)}**\n\n" + "\n".join(rows) + "\n\n"
        )
    return "".join(parts)


def write_github_summary(
    reports: VerifyReport | Sequence[VerifyReport], path: str | None = None, strict: bool = False
) -> None:
    """Append :func:`github_summary` to ``path`` (default ``$GITHUB_STEP_SUMMARY``; nothing
    happens when neither is set)."""
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(github_summary(reports, strict))


# ----------------------------------------------------------------------------- helpers


def _many(reports: VerifyReport | Sequence[VerifyReport]) -> list[VerifyReport]:
    return list(reports) if isinstance(reports, Sequence) else [reports]


def _xml_text(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _strict_failure(c: Check, strict: bool) -> bool:
    """Whether ``c`` is a failure only because of ``--strict``: a hypothesis that did not pass
    (exactly what makes :meth:`VerifyReport.exit_code` return 1 under strict)."""
    return strict and c.role == "hypothesis" and c.status not in ("pass", "fail")


def _junit_suite(report: VerifyReport, strict: bool = False) -> ET.Element:
    counts = report.counts()
    error = report.status == "error"
    by_strict = [c for c in report.checks if _strict_failure(c, strict)]
    skipped = counts["skipped"] + counts["unguaranteed"] + counts["unmet"]
    suite = ET.Element(
        "testsuite",
        name=_xml(report.spec),
        tests=str(len(report.checks) + int(error)),
        failures=str(counts["fail"] + len(by_strict)),
        errors=str(int(error)),
        skipped=str(skipped - sum(c.status in _SKIPS for c in by_strict)),
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("spec", report.spec),
        ("seed", report.seed),
        ("alpha", report.alpha),
        ("status", report.status),
        ("lazycheck_version", __version__),
        ("verdict", report.message),
    ):
        ET.SubElement(props, "property", name=k, value=_xml(str(v)))
    if error:
        case = ET.SubElement(suite, "testcase", classname="lazycheck.solver", name="simulate")
        ET.SubElement(case, "error", message=_xml(report.message), type="solver")
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"lazycheck.{c.role}", name=c.id)
        text = _xml(
            f"{c.formula}: tested {relation(c)}, held "
            f"{'-' if c.held is None else ('yes' if c.held else 'no')}, "
            f"margin {_num(c.margin, 4)}; {c.message}"
        )
        if _strict_failure(c, strict):
            message = _xml(f"{STRICT_UNMET}: {c.status}: {c.message}")
            ET.SubElement(case, "failure", message=message, type="strict").text = text
        elif c.status == "fail":
            ET.SubElement(case, "failure", message=_xml(c.message), type="fail").text = text
        elif c.status in _SKIPS:
            ET.SubElement(case, "skipped", message=_xml(f"{c.status}: {c.message}"))
        ET.SubElement(case, "system-out").text = text
    return suite


# XML 1.0 allows tab, newline, carriage return, and the planes below minus surrogates/FFFE/FFFF
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(s: str) -> str:
    """``s`` with every character XML 1.0 cannot hold written as a visible escape."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def _num(x: float | None, digits: int) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def _escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape(s).replace(":", "%3A").replace(",", "%2C")
