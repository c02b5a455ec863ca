"""What AgentVine's reviews found on a pull request, tracked across pushes so that no review repeats a
finding that is still open. Pure data and rules, no I/O.

A finding is known by its path, its *line anchor* (a digest of the code it points at, which moves
with the code when lines are added above it) and its text. Each published review stores the ledger
as it left it (`Job.review`); the next review of the pull request starts from there."""

from __future__ import annotations

import hashlib
import re
from difflib import SequenceMatcher
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["critical", "major", "minor", "nit"]
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor", "nit")  # most severe first
# Check-run annotation levels (GitHub has three): what blocks a merge fails the check run.
ANNOTATION_LEVEL: dict[str, str] = {"critical": "failure", "major": "failure", "minor": "warning", "nit": "notice"}
RequestChangesOn = Literal["never", "critical", "major", "minor", "nit"]
Status = Literal["open", "outdated", "resolved"]

MAX_TRACKED = 200  # open findings a ledger carries, at most (the most severe are kept)
NEAR_LINES = 2  # a finding this close to a tracked one, with the same text, is the same finding
SAME_TEXT = 0.8  # SequenceMatcher ratio of the normalized texts from which they count as the same
TEXT_COMPARED = 300  # characters of each text compared: a finding says what it is about first


def at_least(severity: str, threshold: str) -> bool:
    """Whether `severity` is `threshold` or worse; nothing is at least "never"."""
    if threshold not in SEVERITIES or severity not in SEVERITIES:
        return False
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)  # type: ignore[arg-type]


def worst(severities: list[str]) -> str | None:
    ranked = [SEVERITIES.index(s) for s in severities if s in SEVERITIES]  # type: ignore[arg-type]
    return SEVERITIES[min(ranked)] if ranked else None


class TrackedFinding(BaseModel):
    """A finding as a review posted it, at the line it points at in the ledger's head."""

    path: str
    line: int
    start_line: int | None = None  # a multi-line finding's first line
    severity: Severity
    message: str  # as the agent wrote it: untrusted, defused wherever it is shown
    suggestion: str | None = None  # the replacement of lines first..line it offered, if any
    anchor: str = ""  # digest of the code at start_line..line ("" when it could not be read)
    status: Status = "open"
    first_seen: str = ""  # the head the review that posted it read
    review_id: int | None = None  # the review it was posted in

    @property
    def first(self) -> int:
        return self.start_line or self.line


class ReviewLedger(BaseModel):
    """A published review and the pull request's findings as it left them."""

    head: str  # the commit this review read
    scope: Literal["full", "incremental"] = "full"
    since: str | None = None  # the head the review before it read (an incremental review starts there)
    review_id: int | None = None
    event: str = "COMMENT"
    published_at: float = 0.0
    findings: list[TrackedFinding] = Field(default_factory=list)
    # AgentVine's REQUEST_CHANGES reviews still in force: dismissed once nothing asks for changes.
    changes_requested: list[int] = Field(default_factory=list)

    @property
    def open(self) -> list[TrackedFinding]:
        return [f for f in self.findings if f.status == "open"]


# --------------------------------------------------------------------------- anchors and text


def _code(line: str) -> str:
    return " ".join(line.split())


def anchor_of(lines: list[str], first: int, last: int) -> str:
    """The anchor of lines `first`..`last` (1-based) of a file: "" when they are not all there or hold
    nothing but whitespace (a blank line is everywhere, so it would anchor to anything)."""
    if first < 1 or last < first or last > len(lines):
        return ""
    code = [_code(line) for line in lines[first - 1:last]]
    if not any(code):
        return ""
    return hashlib.sha256("\n".join(code).encode()).hexdigest()[:24]


class FileIndex:
    """One version of a file, for finding where anchored code stands now (windows hashed once per span)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self._by_span: dict[int, dict[str, list[int]]] = {}

    def starts(self, anchor: str, span: int) -> list[int]:
        """The first lines of every window of `span + 1` lines whose anchor is `anchor`."""
        if span not in self._by_span:
            table: dict[str, list[int]] = {}
            for i in range(1, len(self.lines) - span + 1):
                table.setdefault(anchor_of(self.lines, i, i + span), []).append(i)
            self._by_span[span] = table
        return self._by_span[span].get(anchor, [])


def relocate(finding: TrackedFinding, file: FileIndex | None) -> TrackedFinding:
    """`finding` in a newer version of its file (None when the file is gone): open at the nearest
    place its anchored code still stands, else outdated (the code it was about changed)."""
    if finding.status != "open":
        return finding
    if file is None:
        return finding.model_copy(update={"status": "outdated"})
    if not finding.anchor:  # nothing to follow: it stays where it was while the file is that long
        return finding if finding.line <= len(file.lines) else finding.model_copy(update={"status": "outdated"})
    span = finding.line - finding.first
    starts = file.starts(finding.anchor, span)
    if not starts:
        return finding.model_copy(update={"status": "outdated"})
    start = min(starts, key=lambda i: (abs(i - finding.first), i))
    return finding.model_copy(update={"line": start + span, "start_line": start if finding.start_line else None})


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def same_text(a: str, b: str) -> bool:
    """Whether two findings' texts say the same (the model words a finding a little differently each time)."""
    wa, wb = _words(a)[:TEXT_COMPARED], _words(b)[:TEXT_COMPARED]
    if wa == wb:
        return True
    matcher = SequenceMatcher(None, wa, wb, autojunk=False)
    # The quick ratios are upper bounds of ratio(), which is quadratic: most pairs end there.
    return matcher.real_quick_ratio() >= SAME_TEXT and matcher.quick_ratio() >= SAME_TEXT and matcher.ratio() >= SAME_TEXT


def same_finding(new: TrackedFinding, known: TrackedFinding) -> bool:
    """Same path, the same code (anchor) or nearly the same line, and the same text (compared last: it
    is the costly part)."""
    if new.path != known.path:
        return False
    if not (new.anchor and new.anchor == known.anchor) and abs(new.line - known.line) > NEAR_LINES:
        return False
    return same_text(new.message, known.message)


def keep_most_severe(findings: list[TrackedFinding], limit: int = MAX_TRACKED) -> list[TrackedFinding]:
    """At most `limit` open findings, the most severe first kept; closed ones are not carried."""
    ranked = sorted((f for f in findings if f.status == "open"), key=lambda f: SEVERITIES.index(f.severity))
    return ranked[:limit]
