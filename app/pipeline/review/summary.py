"""The one summary of a review (its body): what it looked at, what the pull request does (the agent's
words), the findings by severity, what earlier reviews found that still stands or no longer applies,
the findings GitHub takes no inline comment for, the files reviewed, and the cost and turns."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.findings import SEVERITIES, TrackedFinding
from app.domain.job import Figures
from app.domain.untrusted import MAX_COMMENT, cap, code_span, list_item, markdown_block
from app.pipeline.present import texts
from app.pipeline.present.render import figures_line
from app.pipeline.review.incremental import Scope, Sorted
from app.pipeline.review.publish import CUT

MAX_BODY_CHARS = 60_000  # what the lists may fill; GitHub refuses a review body over 65,536 (MAX_COMMENT)
MAX_NAMES = 30  # files (and places of open findings) named before "and N more"


@dataclass
class Summary:
    """What the body says besides the findings that go into it."""

    agent_summary: str  # untrusted Markdown
    scope: Scope
    head: str
    found: Sorted
    figures: Figures
    model: str | None


def _sha(sha: str | None) -> str:
    return code_span((sha or "")[:7])


def _names(names: list[str]) -> str:
    shown = ", ".join(code_span(n) for n in names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def counts(findings: list[TrackedFinding]) -> str:
    """"🔴 1 critical · 🟡 2 minor", or "none"."""
    parts = [f"{texts.SEVERITY_LABEL[s].split()[0]} {n} {s}" for s in SEVERITIES
             if (n := sum(f.severity == s for f in findings))]
    return " · ".join(parts) or texts.REVIEW_NO_FINDINGS


def _item(finding: TrackedFinding) -> str:
    return (f"- **{texts.SEVERITY_LABEL[finding.severity]}** {code_span(f'{finding.path}:{finding.line}')}: "
            f"{list_item(finding.message)}")


def _outside(findings: list[TrackedFinding], room: int) -> str:
    lines = [texts.REVIEW_OUTSIDE.format(count=len(findings)), ""]
    for i, finding in enumerate(findings):
        item = _item(finding)
        if len(item) + 1 > room:
            lines.append(texts.REVIEW_OUTSIDE_MORE.format(count=len(findings) - i))
            break
        lines.append(item)
        room -= len(item) + 1
    return "\n".join(lines)


def _earlier(found: Sorted) -> list[str]:
    parts = []
    if found.still_open:
        places = [f"{f.path}:{f.line}" for f in found.still_open]
        parts.append(texts.REVIEW_STILL_OPEN.format(count=len(places), where=_names(places)))
    if found.outdated:
        parts.append(texts.REVIEW_OUTDATED.format(count=len(found.outdated)))
    if found.resolved:
        parts.append(texts.REVIEW_RESOLVED.format(count=len(found.resolved)))
    return parts


def review_body(summary: Summary, outside: list[TrackedFinding]) -> str:
    scope = summary.scope
    where = texts.REVIEW_SCOPE[scope.reason].format(since=_sha(scope.since), head=_sha(summary.head))
    files = [str(f.get("filename", "?")) for f in scope.files]
    parts = [texts.REVIEW_HEADING.format(scope=where),
             markdown_block(summary.agent_summary) if summary.agent_summary else texts.REVIEW_NO_SUMMARY,
             texts.REVIEW_COUNTS.format(counts=counts(summary.found.new)),
             *_earlier(summary.found),
             texts.REVIEW_FILES.format(count=len(files), files=_names(files) or "none"),
             texts.REVIEW_FOOTER.format(figures=figures_line(summary.figures), model=code_span(summary.model or "?"))]
    if outside:
        room = MAX_BODY_CHARS - sum(len(p) + 2 for p in parts)
        parts.insert(3, _outside(outside, room))
    return cap("\n\n".join(parts), MAX_COMMENT, CUT)
