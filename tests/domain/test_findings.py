"""The rules a pull request's findings are tracked by: severities, line anchors that move with the code,
and when two findings are the same one."""

from __future__ import annotations

import pytest

from app.domain.findings import (
    ANNOTATION_LEVEL,
    SEVERITIES,
    FileIndex,
    ReviewLedger,
    TrackedFinding,
    anchor_of,
    at_least,
    keep_most_severe,
    relocate,
    same_finding,
    same_text,
    worst,
)

FILE = ["import os", "", "def main():", "    x = 1 / 0", "    return x", "", "def other():", "    return 1 / 0"]


def tracked(line: int, message: str = "Division by zero.", *, start: int | None = None, lines=FILE, **more) -> TrackedFinding:
    first = start or line
    return TrackedFinding(path="a.py", line=line, start_line=start, severity="major", message=message,
                          anchor=anchor_of(lines, first, line), **more)


@pytest.mark.parametrize("severity, threshold, expected", [
    ("critical", "critical", True), ("major", "critical", False), ("critical", "nit", True), ("nit", "minor", False),
    ("minor", "minor", True), ("critical", "never", False), ("nit", "never", False),
])
def test_at_least(severity, threshold, expected):
    assert at_least(severity, threshold) is expected


def test_every_severity_has_an_annotation_level_and_blocking_ones_fail():
    assert set(ANNOTATION_LEVEL) == set(SEVERITIES)
    assert [ANNOTATION_LEVEL[s] for s in SEVERITIES] == ["failure", "failure", "warning", "notice"]
    assert worst(["nit", "major", "minor"]) == "major" and worst([]) is None


def test_the_anchor_is_the_code_whatever_its_indentation_or_spacing():
    assert anchor_of(FILE, 4, 4) == anchor_of(["x = 1  /  0"], 1, 1)
    assert anchor_of(FILE, 4, 4) != anchor_of(FILE, 8, 8)
    assert anchor_of(FILE, 4, 5) != anchor_of(FILE, 4, 4)
    # Blank lines anchor to nothing (they are everywhere); lines past the end neither.
    assert anchor_of(FILE, 2, 2) == "" and anchor_of(FILE, 8, 9) == "" and anchor_of(FILE, 0, 1) == ""


def test_a_finding_moves_with_its_code_to_the_nearest_place_it_stands():
    finding = tracked(4)
    moved = relocate(finding, FileIndex(["# header", "# more", *FILE]))
    assert (moved.status, moved.line) == ("open", 6)
    several = tracked(5, start=4)
    moved = relocate(several, FileIndex(["#", *FILE]))
    assert (moved.status, moved.start_line, moved.line) == ("open", 5, 6)
    # The same code twice: the place nearest to where it was.
    twice = [*FILE, *[f"# {i}" for i in range(20)], "    x = 1 / 0"]  # at lines 4 and 29
    assert relocate(finding, FileIndex(twice)).line == 4
    assert relocate(finding.model_copy(update={"line": 26}), FileIndex(twice)).line == 29


def test_a_finding_whose_code_changed_or_went_is_outdated():
    finding = tracked(4)
    changed = [line.replace("1 / 0", "1 / 2") for line in FILE]
    assert relocate(finding, FileIndex(changed)).status == "outdated"
    assert relocate(finding, None).status == "outdated"  # the file is gone
    closed = finding.model_copy(update={"status": "resolved"})
    assert relocate(closed, FileIndex(FILE)) is closed
    unanchored = finding.model_copy(update={"anchor": ""})
    assert relocate(unanchored, FileIndex(FILE)) == unanchored
    assert relocate(unanchored, FileIndex(FILE[:2])).status == "outdated"


@pytest.mark.parametrize("a, b, same", [
    ("Division by zero.", "division by zero", True),
    ("`x / 0` divides by zero; guard it.", "x / 0 divides by zero: guard it!", True),
    ("Division by zero: `12 / 0` raises.", "Division by zero: 12 / 0 raises!", True),
    ("Division by zero.", "The variable name shadows a builtin.", False),
    ("Missing test.", "Missing docstring.", False),
])
def test_same_text_ignores_case_punctuation_and_markup(a, b, same):
    assert same_text(a, b) is same


def test_same_finding_needs_the_path_the_text_and_the_code_or_nearly_the_line():
    known = tracked(4)
    assert same_finding(tracked(4, "division by zero!"), known)
    assert not same_finding(tracked(8), known)  # the same words about other code, four lines away
    assert same_finding(tracked(7, lines=["#", "#", "#", *FILE]), known)  # the same code, moved three lines down
    assert not same_finding(tracked(4, "Unused variable."), known)
    assert not same_finding(tracked(4).model_copy(update={"path": "b.py"}), known)
    near = tracked(5).model_copy(update={"anchor": "other"})
    far = tracked(8).model_copy(update={"anchor": "other"})
    assert same_finding(near, known) and not same_finding(far, known)


def test_the_ledger_keeps_the_most_severe_open_findings():
    findings = [TrackedFinding(path="a", line=i, severity=SEVERITIES[i % 4], message=str(i)) for i in range(1, 9)]
    findings.append(TrackedFinding(path="a", line=99, severity="critical", message="x", status="outdated"))
    kept = keep_most_severe(findings, limit=3)
    assert [f.severity for f in kept] == ["critical", "critical", "major"] and all(f.status == "open" for f in kept)
    ledger = ReviewLedger(head="h", findings=findings)
    assert len(ledger.open) == 8
