"""What a review looks at: the whole pull request, or only what is new since AgentVine's last review
of it (its head, from the ledger that review left on its job), and the findings it must not repeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gidgethub

from app.domain.findings import ReviewLedger, TrackedFinding, same_finding
from app.domain.job import Job, JobState
from app.github.ops import RepoOps
from app.store.base import JobStore

# Why a review looks at what it looks at (texts.REVIEW_SCOPE has the words people see).
Reason = Literal["first", "asked", "same_head", "rewritten", "unknown", "new_commits"]


def previous_review(store: JobStore, job: Job) -> Job | None:
    """AgentVine's latest published review of the job's pull request, by another job."""
    reviews = [j for j in store.list_jobs([JobState.SUCCEEDED], repo=job.repo)
               if j.id != job.id and j.issue_number == job.issue_number and j.worker == "review" and j.review is not None]
    return max(reviews, key=lambda j: j.review.published_at if j.review else 0.0, default=None)


@dataclass
class Scope:
    """The diff the reviewer is shown: the pull request's, or the one since the last review."""

    kind: Literal["full", "incremental"]
    reason: Reason
    files: list[dict]
    since: str | None = None  # the head the last review read (an incremental review starts there)
    earlier: list[TrackedFinding] = field(default_factory=list)  # open findings of earlier reviews, followed to head


async def choose_scope(github: RepoOps, job: Job, previous: ReviewLedger | None, head: str,
                       pull_files: list[dict]) -> Scope:
    """Incremental when an earlier review exists, nobody asked for a full one, and the branch only moved
    on from what it read; otherwise the whole pull request (a force-push rewrote what it read)."""
    if previous is None:
        return Scope("full", "first", pull_files)
    if job.trigger.full:
        return Scope("full", "asked", pull_files, since=previous.head)
    if previous.head == head:
        return Scope("full", "same_head", pull_files, since=previous.head)  # nothing new: someone asked for it again
    try:
        comparison = await github.compare(previous.head, head)
    except gidgethub.BadRequest as exc:
        if exc.status_code in (404, 422):  # the old head is gone (force-pushed away)
            return Scope("full", "rewritten", pull_files, since=previous.head)
        return Scope("full", "unknown", pull_files, since=previous.head)
    except gidgethub.GitHubException:  # GitHub could not say (5xx after retries): more is reviewed, not less
        return Scope("full", "unknown", pull_files, since=previous.head)
    if not isinstance(comparison, dict) or not isinstance(comparison.get("files") or [], list):
        return Scope("full", "unknown", pull_files, since=previous.head)
    if comparison.get("status") != "ahead":
        return Scope("full", "rewritten", pull_files, since=previous.head)
    # Only files of the pull request: a merge of the base branch into it brings changes that are not its own.
    in_pull = {f.get("filename") for f in pull_files}
    files = [f for f in comparison.get("files") or [] if isinstance(f, dict) and f.get("filename") in in_pull]
    return Scope("incremental", "new_commits", files, since=previous.head)


@dataclass
class Sorted:
    """A review's findings against the open ones of earlier reviews."""

    new: list[TrackedFinding]  # to post
    repeated: list[TrackedFinding]  # reported again, already on the pull request: not posted
    still_open: list[TrackedFinding]  # earlier findings that stand (their code is still there)
    outdated: list[TrackedFinding]  # earlier findings whose code changed
    resolved: list[TrackedFinding]  # earlier findings a full review no longer reports


def sort_findings(found: list[TrackedFinding], scope: Scope) -> Sorted:
    """Nothing open is posted twice, nor a finding twice in one review. A full review is a fresh judgement
    of the whole pull request: an open finding it does not report again is resolved. An incremental one
    saw only the new changes, so the earlier findings it does not mention still stand."""
    earlier = [f for f in scope.earlier if f.status == "open"]
    outdated = [f for f in scope.earlier if f.status == "outdated"]
    new: list[TrackedFinding] = []
    repeated: list[TrackedFinding] = []
    for finding in found:
        if any(same_finding(finding, known) for known in earlier):
            repeated.append(finding)
        elif not any(same_finding(finding, other) for other in new):
            new.append(finding)
    if scope.kind == "full":
        confirmed = [e for e in earlier if any(same_finding(r, e) for r in repeated)]
        resolved = [e.model_copy(update={"status": "resolved"}) for e in earlier if e not in confirmed]
        return Sorted(new, repeated, confirmed, outdated, resolved)
    return Sorted(new, repeated, earlier, outdated, [])
