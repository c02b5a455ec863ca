"""Pull request reviews: create (inline comments checked against the real diff, suggested changes
held to what GitHub can commit) and dismiss."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from . import render
from .handlers_pulls import _pull
from .rest import ApiRequest, ApiResponse, Handler, not_found, unprocessable_simple
from .suggestions import suggestion_blocks

if TYPE_CHECKING:
    from .gitrepo import FileChange
    from .state import FakeGitHub

REVIEW_STATES = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
DOC = "https://docs.github.com/rest/pulls/reviews"
# The fake's own words for what GitHub would take but could never offer to commit (docs/github-fake.md).
SUGGESTION_LEFT = "A suggested change must be on the RIGHT side of the diff (GitHub cannot commit it on the left)"
SUGGESTION_UNCLOSED = "A suggested change's block must be closed (GitHub would take the rest of the comment as code)"
SUGGESTION_NOT_ON_LINES = "A suggested change must be on lines of the diff (line, and start_line for several)"
SUGGESTION_MANY = "A comment holds at most one suggested change (GitHub commits one per comment)"


def _same_hunk(change: "FileChange", side: str, first: int, last: int) -> bool:
    return any(first in hunk and last in hunk for hunk in change.hunks.get(side, []))


def _line_error(change: "FileChange", comment: dict[str, Any]) -> str | None:
    side = comment.get("side", "RIGHT")
    if side not in ("LEFT", "RIGHT"):
        return f"Side must be LEFT or RIGHT, got {side}"
    if comment["line"] not in change.commentable.get(side, set()):
        return "Pull request review thread line must be part of the diff"
    if "start_line" in comment:
        start_side = comment.get("start_side", side)
        if comment["start_line"] >= comment["line"] and start_side == side:
            return "Pull request review thread start line must precede the end line"
        if comment["start_line"] not in change.commentable.get(start_side, set()):
            return "Pull request review thread start line must be part of the diff"
        if start_side == side and not _same_hunk(change, side, comment["start_line"], comment["line"]):
            return "Pull request review thread start line must be part of the same hunk as the line"
    return None


def _suggestion_error(comment: dict[str, Any]) -> str | None:
    """A ```suggestion block replaces exactly lines start_line..line of the RIGHT side, once, whole."""
    blocks = suggestion_blocks(comment.get("body") or "")
    if not blocks:
        return None
    if "line" not in comment or comment.get("subject_type") == "file":
        return SUGGESTION_NOT_ON_LINES
    if comment.get("side", "RIGHT") != "RIGHT" or comment.get("start_side", "RIGHT") != "RIGHT":
        return SUGGESTION_LEFT
    if any(block is None for block in blocks):
        return SUGGESTION_UNCLOSED
    if len(blocks) > 1:
        return SUGGESTION_MANY
    return None


def comment_error(changes: dict[str, "FileChange"], comment: dict[str, Any]) -> str | None:
    """Why GitHub would refuse this review comment (or could not commit its suggestion); None if fine."""
    change = changes.get(comment["path"])
    if change is None:
        return "Path could not be resolved"
    if "position" in comment and "line" not in comment:
        if not 1 <= comment["position"] <= change.positions:
            return "Position could not be resolved"
        return _suggestion_error(comment)
    if "line" not in comment:
        return "Line could not be resolved"
    return _line_error(change, comment) or _suggestion_error(comment)


def _refusal(fake: "FakeGitHub", pull: dict[str, Any], actor: dict[str, Any], body: dict[str, Any]) -> ApiResponse | None:
    event = body.get("event")
    if event in ("APPROVE", "REQUEST_CHANGES") and pull["user"]["id"] == actor["id"]:
        verb = "approve" if event == "APPROVE" else "request changes on"
        return unprocessable_simple(f"Review Can not {verb} your own pull request")
    if event == "REQUEST_CHANGES" and not body.get("body"):
        return unprocessable_simple("Review body is required when requesting changes")
    if event == "COMMENT" and not body.get("body") and not body.get("comments"):
        return unprocessable_simple("Review body or comments are required for a COMMENT review")
    if event is None and any(r["state"] == "PENDING" and r["user"]["id"] == actor["id"]
                             and r["pull_request_url"] == pull["url"] for r in fake.reviews):
        return unprocessable_simple("User can only have one pending review per pull request")
    return None


async def create_review(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    pull = _pull(fake, req)
    repo, actor, body = req.repo, req.actor, req.body or {}
    if pull is None:
        return not_found(f"{DOC}#create-a-review-for-a-pull-request")
    assert repo is not None and actor is not None
    await asyncio.to_thread(fake.refresh_pull, repo, pull)
    refused = _refusal(fake, pull, actor, body)
    if refused:
        return refused
    comments = body.get("comments", [])
    commit_id = body.get("commit_id") or pull["head"]["sha"]
    if not await asyncio.to_thread(repo.git.has_commit, commit_id):
        return unprocessable_simple("Commit could not be resolved")
    changes = {c.filename: c for c in await asyncio.to_thread(repo.git.diff, pull["base"]["sha"], commit_id)}
    problems = [p for p in (comment_error(changes, c) for c in comments) if p]
    if problems:
        return unprocessable_simple(*problems)
    state = REVIEW_STATES.get(body.get("event") or "", "PENDING")
    association = fake.association(repo, actor["login"])
    review = render.review(fake.urls, repo.full_name, fake.next_id("review"), pull["number"], author=actor,
                           body=body.get("body", ""), state=state, commit_id=commit_id,
                           submitted=None if state == "PENDING" else render.now_iso(), association=association)
    fake.reviews.append(review)
    for c in comments:
        hunk = changes[c["path"]].patch.split("\n", 1)[0]
        fake.review_comments.append(render.review_comment(
            fake.urls, repo.full_name, fake.next_id("review_comment"), pull["number"], review["id"], author=actor,
            comment=c, commit_id=commit_id, diff_hunk=hunk, created=render.now_iso(), association=association))
        pull["review_comments"] += 1
    return ApiResponse(200, copy.deepcopy(review))


async def dismiss_review(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    """Only a submitted review can be dismissed; GitHub keeps its body and says DISMISSED."""
    pull = _pull(fake, req)
    review_id = req.int_param("review_id")
    review = next((r for r in fake.reviews if pull is not None and r["id"] == review_id
                   and r["pull_request_url"] == pull["url"]), None)
    if review is None:
        return not_found(f"{DOC}#dismiss-a-review-for-a-pull-request")
    if review["state"] == "PENDING":
        return unprocessable_simple("Can not dismiss a pending review")
    if review["state"] == "COMMENTED":
        return unprocessable_simple("Can not dismiss a commented pull request review")
    review["state"] = "DISMISSED"
    fake.review_dismissals[review_id] = (req.body or {})["message"]
    return ApiResponse(200, copy.deepcopy(review))


HANDLERS: dict[str, Handler] = {
    "pulls/create-review": create_review,
    "pulls/dismiss-review": dismiss_review,
}
