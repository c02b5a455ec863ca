"""Publishing a review: one review on the pull request (COMMENT, or REQUEST_CHANGES when configured;
never APPROVE), each finding inline on its lines when they are part of the diff, with a suggested
change GitHub can commit, the rest listed in its body; the same findings as check-run annotations,
and the check's conclusion. Everything the agent wrote is defused before it reaches GitHub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gidgethub
from pydantic import BaseModel

from app.domain.findings import ANNOTATION_LEVEL, TrackedFinding, at_least
from app.domain.untrusted import (MAX_ANNOTATION_MESSAGE, MAX_ANNOTATION_TITLE, MAX_COMMENT, cap, cap_plain, defuse,
                                  one_line, suggestion_block)
from app.github.ops import RepoOps
from app.pipeline.present import texts
from app.pipeline.review.diff import file_diffs

CUT = "…(cut here: GitHub takes no more; every finding is an annotation on the check run)"


def _placed(finding: TrackedFinding, diffs: dict) -> tuple[dict[str, Any] | None, bool]:
    """Where GitHub takes `finding` inline ({"line", "start_line"?}), or None; and whether its suggested
    change goes with it: only when its lines are exactly the comment's, all within one hunk."""
    diff = diffs.get(finding.path)
    if diff is None:
        return None, False
    if finding.start_line is not None and diff.spans(finding.start_line, finding.line):
        return {"start_line": finding.start_line, "line": finding.line}, True
    if finding.line not in diff.lines:
        return None, False
    return {"line": finding.line}, finding.start_line is None


def inline_body(finding: TrackedFinding, with_suggestion: bool) -> str:
    text = texts.INLINE_FINDING.format(severity=texts.SEVERITY_LABEL[finding.severity], message=defuse(finding.message))
    if finding.suggestion is not None:
        text += "\n\n" + (suggestion_block(finding.suggestion) if with_suggestion else texts.SUGGESTION_LEFT_OUT)
    return cap(text, MAX_COMMENT, CUT)


def review_comments(findings: list[TrackedFinding], files: list[dict]) -> tuple[list[dict], list[TrackedFinding]]:
    """The inline comments (RIGHT side, `start_line` for several lines) and the findings left for the body."""
    diffs = file_diffs(files)
    comments: list[dict] = []
    outside: list[TrackedFinding] = []
    for finding in findings:
        lines, with_suggestion = _placed(finding, diffs)
        if lines is None:
            outside.append(finding)
            continue
        comment: dict[str, Any] = {"path": finding.path, "side": "RIGHT", **lines,
                                   "body": inline_body(finding, with_suggestion)}
        if "start_line" in lines:
            comment["start_side"] = "RIGHT"
        comments.append(comment)
    return comments, outside


def review_event(open_findings: list[TrackedFinding], request_changes_on: str, *, own_pull: bool) -> str:
    """COMMENT, or REQUEST_CHANGES when an open finding is at least `request_changes_on` (GitHub refuses
    it on the App's own pull request). Never APPROVE: a bot's approval must not stand in for a person's,
    whatever the model asked for (RepoOps.create_review refuses it too)."""
    if not own_pull and any(at_least(f.severity, request_changes_on) for f in open_findings):
        return "REQUEST_CHANGES"
    return "COMMENT"


def _title(finding: TrackedFinding, earlier: bool) -> str:
    first = one_line(finding.message.splitlines()[0], MAX_ANNOTATION_TITLE) if finding.message.strip() else ""
    title = f"{finding.severity}: {first}" if first else finding.severity
    suffix = texts.REVIEW_EARLIER_TITLE if earlier else ""
    return one_line(title, MAX_ANNOTATION_TITLE - len(suffix)) + suffix


def check_annotations(findings: list[TrackedFinding], earlier: list[TrackedFinding] | None = None) -> list[dict]:
    """The open findings as check-run annotations (GitHub takes at most 50 per request): this review's,
    then those of earlier reviews that still stand, at their lines now."""
    return [
        {
            "path": f.path,
            "start_line": f.first,
            "end_line": f.line,
            "annotation_level": ANNOTATION_LEVEL[f.severity],
            "message": cap_plain(f.message, MAX_ANNOTATION_MESSAGE),  # plain text: GitHub shows it as it is
            "title": _title(f, was_earlier),
        }
        for group, was_earlier in ((findings, False), (earlier or [], True)) for f in group
    ]


def review_conclusion(open_findings: list[TrackedFinding]) -> str:
    """"failure" if an open finding must be fixed before merging (critical, major), "neutral" if only
    minor ones and nits, "success" if none."""
    if any(ANNOTATION_LEVEL[f.severity] == "failure" for f in open_findings):
        return "failure"
    return "neutral" if open_findings else "success"


class PublishedReview(BaseModel):
    review_id: int
    html_url: str | None
    event: str
    inline: int  # findings published as inline comments
    outside_diff: list[TrackedFinding]  # findings listed in the review's body instead


@dataclass
class ReviewRequest:
    """One review to submit: `files` must describe the diff at `commit_sha` (fetched for that head);
    `body` renders the summary for the findings that go into it."""

    pull_number: int
    commit_sha: str
    event: str
    findings: list[TrackedFinding]
    files: list[dict]
    body: Callable[[list[TrackedFinding]], str]


async def publish_review(github: RepoOps, request: ReviewRequest) -> PublishedReview:
    """Publish one review: findings on lines of the diff inline, the rest in its body.

    If GitHub still refuses an inline comment (422: the branch moved on since the files were read), the
    review is posted once more with every finding in the body, so it is never lost. Other errors propagate."""
    comments, outside = review_comments(request.findings, request.files)

    def payload(comments: list[dict], outside: list[TrackedFinding]) -> dict[str, Any]:
        data: dict[str, Any] = {"commit_id": request.commit_sha, "event": request.event, "body": request.body(outside)}
        if comments:
            data["comments"] = comments
        return data

    try:
        review = await github.create_review(request.pull_number, payload(comments, outside))
    except gidgethub.BadRequest as exc:
        if exc.status_code != 422 or not comments:
            raise
        comments, outside = [], list(request.findings)
        review = await github.create_review(request.pull_number, payload(comments, outside))
    return PublishedReview(review_id=int(review["id"]), html_url=review.get("html_url"), event=request.event,
                           inline=len(comments), outside_diff=outside)
