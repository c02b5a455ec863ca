"""Publishing a review: one COMMENT review on the pull request (findings on commentable lines inline,
the rest in its body), the same findings as check-run annotations, and the check's conclusion.
Everything the agent wrote is defused before it reaches GitHub."""

from __future__ import annotations

from typing import Any

import gidgethub
from pydantic import BaseModel

from app.domain.untrusted import (MAX_ANNOTATION_MESSAGE, MAX_ANNOTATION_TITLE, MAX_COMMENT, cap, cap_plain, code_span,
                                  defuse, list_item, markdown_block, one_line)
from app.github.ops import RepoOps
from app.pipeline.review.diff import commentable_lines
from app.pipeline.review.report import Finding, ReviewReport

MAX_BODY_CHARS = 60_000  # the findings listed in the body; GitHub refuses a review body over 65,536 (MAX_COMMENT)
MAX_TITLE_CHARS = MAX_ANNOTATION_TITLE
CUT = "…(cut here: GitHub takes no more; every finding is an annotation on the check run)"

_defuse = defuse  # the agent read untrusted code: what it writes must not ping anyone nor backlink an issue


def _list_item(finding: Finding) -> str:
    """One finding as one list item: its path in a code span, its message unable to leave the item."""
    return f"- **{finding.severity}** {code_span(f'{finding.path}:{finding.line}')}: {list_item(finding.message)}"


def review_body(report: ReviewReport, outside_diff: list[Finding]) -> str:
    """The review's main text: the summary, then the findings that could not be placed inline."""
    summary = markdown_block(report.summary) if report.summary else ""
    if not summary:
        summary = "No findings." if not report.findings else "Review findings below."
    parts = [summary]
    if outside_diff:
        parts.append(
            f"**Findings outside the diff** ({len(outside_diff)}): GitHub takes inline comments only on "
            "lines this pull request shows, so these are listed here."
        )
        items: list[str] = []
        used = sum(len(p) + 2 for p in parts)
        for i, finding in enumerate(outside_diff):
            item = _list_item(finding)
            if used + len(item) + 1 > MAX_BODY_CHARS - 200:
                rest = len(outside_diff) - i
                items.append(f"- … and {rest} more (see the check run's annotations)")
                break
            items.append(item)
            used += len(item) + 1
        parts.append("\n".join(items))
    return cap("\n\n".join(parts), MAX_COMMENT, CUT)


def _title(finding: Finding) -> str:
    first = one_line(finding.message.splitlines()[0], MAX_TITLE_CHARS) if finding.message.strip() else ""
    return one_line(f"{finding.severity}: {first}" if first else finding.severity, MAX_TITLE_CHARS)


def check_annotations(report: ReviewReport) -> list[dict]:
    """The findings as check-run annotations (GitHub takes at most 50 per request)."""
    return [
        {
            "path": f.path,
            "start_line": f.line,
            "end_line": f.line,
            "annotation_level": f.severity,
            "message": cap_plain(f.message, MAX_ANNOTATION_MESSAGE),  # plain text: GitHub shows it as it is
            "title": _title(f),
        }
        for f in report.findings
    ]


def _inline_body(finding: Finding) -> str:
    return cap(f"**{finding.severity}**: {_defuse(finding.message)}", MAX_COMMENT, CUT)


def review_conclusion(report: ReviewReport) -> str:
    """"failure" if any finding is a failure, "neutral" if only warnings, "success" if none."""
    if any(f.severity == "failure" for f in report.findings):
        return "failure"
    return "neutral" if report.findings else "success"


class PublishedReview(BaseModel):
    review_id: int
    html_url: str | None
    inline: int  # findings published as inline comments
    outside_diff: list[Finding]  # findings listed in the review's body instead


async def publish_review(github: RepoOps, *, pull_number: int, commit_sha: str, report: ReviewReport,
                         files: list[dict]) -> PublishedReview:
    """Publish one COMMENT review: findings on commentable lines inline, the rest in the body.

    `files` must describe the diff at `commit_sha` (fetch them for that head). If GitHub still
    refuses an inline comment (422), the review is posted once more with every finding in the
    body, so it is never lost. Other errors propagate.
    """
    allowed = commentable_lines(files)
    inline = [f for f in report.findings if f.line in allowed.get(f.path, ())]
    outside = [f for f in report.findings if f.line not in allowed.get(f.path, ())]

    def payload(inline: list[Finding], outside: list[Finding]) -> dict[str, Any]:
        data: dict[str, Any] = {"commit_id": commit_sha, "event": "COMMENT", "body": review_body(report, outside)}
        if inline:
            data["comments"] = [
                {"path": f.path, "line": f.line, "side": "RIGHT", "body": _inline_body(f)}
                for f in inline
            ]
        return data

    try:
        review = await github.create_review(pull_number, payload(inline, outside))
    except gidgethub.BadRequest as exc:
        if exc.status_code != 422 or not inline:
            raise
        inline, outside = [], list(report.findings)
        review = await github.create_review(pull_number, payload(inline, outside))
    return PublishedReview(
        review_id=int(review["id"]), html_url=review.get("html_url"), inline=len(inline), outside_diff=outside
    )
