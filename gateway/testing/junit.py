"""JUnit XML reports, the format CI systems read test results from."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "error"]
# Characters XML 1.0 cannot carry at all (a bot may well send them); replaced, not escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass
class CaseResult:
    """One test: how it ended, in how many seconds, and the failure text (a chat log)."""

    name: str
    outcome: Outcome
    seconds: float
    message: str = ""


@dataclass
class SuiteResult:
    """One scenario file."""

    name: str
    path: str
    cases: list[CaseResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(case.outcome == outcome for case in self.cases)


def write_junit(suites: list[SuiteResult], path: str | Path) -> None:
    """Write `suites` as `<testsuites>` with one `<testsuite>` per scenario file."""
    root = ET.Element("testsuites", name="onebot-gateway test")
    for suite in suites:
        element = ET.SubElement(
            root,
            "testsuite",
            name=xml_text(suite.name),
            file=xml_text(suite.path),
            tests=str(len(suite.cases)),
            failures=str(suite.count("failed")),
            errors=str(suite.count("error")),
            time=f"{sum(case.seconds for case in suite.cases):.3f}",
        )
        for case in suite.cases:
            testcase = ET.SubElement(
                element,
                "testcase",
                classname=xml_text(suite.name),
                name=xml_text(case.name),
                time=f"{case.seconds:.3f}",
            )
            if case.outcome != "passed":
                tag = "failure" if case.outcome == "failed" else "error"
                message = xml_text(case.message)
                detail = ET.SubElement(testcase, tag, message=message.split("\n", 1)[0])
                detail.text = message
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
