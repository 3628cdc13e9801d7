"""Machine-readable reports of ``lazycheck verify``: JSON, JUnit XML and GitHub annotations.

* JSON: schema ``lazycheck/schemas/verify.schema.json`` (``schema_version`` 1). Non-finite
  numbers are the strings ``"inf"``, ``"-inf"``, ``"nan"``.
* JUnit: one ``<testcase>`` per check in one ``<testsuite name="lazycheck verify">``; ``fail``
  is a ``<failure>``; ``skipped``, ``unguaranteed`` and ``unmet`` are ``<skipped>`` with the
  reason (so CI gates on real failures only; ``--strict`` still exits 1 on unmet).
* GitHub: workflow commands (``::error``, ``::warning``, ``::notice``) on stdout, and a
  Markdown table appended to ``$GITHUB_STEP_SUMMARY`` when that variable is set.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from lazycheck._version import __version__
from lazycheck.jsonio import dumps, encode_float

if TYPE_CHECKING:
    from lazycheck.verify import VerifyReport

__all__ = [
    "VERIFY_SCHEMA_VERSION",
    "report_dict",
    "to_github",
    "to_json",
    "to_junit",
    "write_github_summary",
]

VERIFY_SCHEMA_VERSION = 1


def report_dict(report: VerifyReport) -> dict[str, Any]:
    """The JSON-ready dict of a verify report."""
    return {
        "schema": "lazycheck.verify",
        "schema_version": VERIFY_SCHEMA_VERSION,
        "lazycheck_version": __version__,
        "spec": report.spec,
        "seed": report.seed,
        "alpha": encode_float(report.alpha),
        "n": report.n,
        "p": report.p,
        "status": report.status,
        "message": report.message,
        "exit_code": report.exit_code(),
        "exit_code_strict": report.exit_code(strict=True),
        "counts": report.counts(),
        "lazy_gap": encode_float(report.lazy_gap),
        "flow": {
            "method": report.simulation.method if report.simulation is not None else "",
            "note": report.flow_note,
        },
        "tolerances": {k: encode_float(v) for k, v in report.tolerances.items()},
        "beta_basis": report.bound.beta_basis,
        "checks": [
            {
                "id": c.id,
                "title": c.title,
                "role": c.role,
                "formula": c.formula,
                "status": c.status,
                "held": c.held,
                "observed": encode_float(c.observed),
                "bound": encode_float(c.bound),
                "sense": c.sense,
                "margin": encode_float(c.margin),
                "tolerance": encode_float(c.tolerance),
                "at": encode_float(c.at),
                "requires": list(c.requires),
                "basis": c.basis,
                "message": c.message,
            }
            for c in report.checks
        ],
        "bound": report.bound.to_dict(),
    }


def to_json(report: VerifyReport) -> str:
    """Strict JSON text."""
    return dumps(report_dict(report))


def to_junit(report: VerifyReport) -> str:
    """JUnit XML: one test case per check."""
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name="lazycheck verify",
        tests=str(len(report.checks)),
        failures=str(counts["fail"]),
        errors="1" if report.status == "error" else "0",
        skipped=str(counts["skipped"] + counts["unguaranteed"] + counts["unmet"]),
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("spec", report.spec),
        ("seed", report.seed),
        ("alpha", report.alpha),
        ("lazycheck_version", __version__),
        ("verdict", report.message),
    ):
        ET.SubElement(props, "property", name=k, value=str(v))
    if report.status == "error":
        case = ET.SubElement(suite, "testcase", classname="lazycheck.solver", name="simulate")
        ET.SubElement(case, "error", message=report.message)
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"lazycheck.{c.role}", name=c.id)
        text = (
            f"{c.formula}: observed {c.observed:.6g} {c.sense} bound {c.bound:.6g}, "
            f"margin {c.margin:.4g}; {c.message}"
        )
        if c.status == "fail":
            ET.SubElement(case, "failure", message=c.message, type="fail").text = text
        elif c.status in ("skipped", "unguaranteed", "unmet"):
            ET.SubElement(case, "skipped", message=f"{c.status}: {c.message}")
        ET.SubElement(case, "system-out").text = text
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def to_github(report: VerifyReport) -> str:
    """GitHub Actions workflow commands, one per notable check, and a closing notice."""
    spec = report.spec
    lines = []
    for c in report.checks:
        msg = _escape(f"{c.formula}: observed {c.observed:.6g}, bound {c.bound:.6g}; {c.message}")
        title = _escape_prop(f"lazycheck {c.id}: {c.status}")
        if c.status == "fail":
            lines.append(f"::error file={_escape_prop(spec)},title={title}::{msg}")
        elif c.status == "unmet" or (c.status == "unguaranteed" and c.held is False):
            lines.append(f"::warning file={_escape_prop(spec)},title={title}::{msg}")
    if report.status == "error":
        lines.append(f"::error title=lazycheck solver::{_escape(report.message)}")
    lines.append(f"::notice title=lazycheck verify::{_escape(report.message)}")
    return "\n".join(lines) + "\n"


def write_github_summary(report: VerifyReport) -> None:
    """Append a Markdown summary to ``$GITHUB_STEP_SUMMARY`` when running in GitHub Actions."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    rows = ["| check | status | observed | bound | margin |", "|---|---|---|---|---|"]
    for c in report.checks:
        rows.append(
            f"| `{c.id}` | {c.status} | {c.observed:.4g} | {c.sense} {c.bound:.4g} | "
            f"{c.margin:.4g} |"
        )
    text = (
        f"### lazycheck verify: `{report.spec}` (alpha = {report.alpha:g})\n\n"
        f"**{report.message}**\n\n" + "\n".join(rows) + "\n\n"
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def _escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape(s).replace(":", "%3A").replace(",", "%2C")
