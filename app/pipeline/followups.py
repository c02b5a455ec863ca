"""A second trigger where AgentVine is already working: a label again, another label, a slash command, an
edited comment on an issue or pull request with a job queued or under way. It never starts a second job
and never cancels the first. It is answered once, or, when it is a new instruction, read into the job that
has not started yet (which reads the comments when it starts), or queued as a follow-up that runs after
the job under way, on its branch. docs/usage.md, "When AgentVine is already working", says it to users.

Acknowledgements run side by side; a second trigger waits, once it is itself admitted, until the jobs
asked for before it on the issue have been admitted or refused (`after_earlier`): a label from someone
without permission must not swallow the maintainer's one after it, nor a second job start beside the first.
Refused requests never wait, so comments from anyone cannot hold up the stage."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from app.domain.config import permission_at_least
from app.domain.job import TERMINAL_STATES, Job, JobState
from app.domain.untrusted import code_span
from app.pipeline.context import JobContext
from app.pipeline.present import texts
from app.store.base import JobStore

log = logging.getLogger(__name__)

Answer = Literal["answer", "fold", "follow"]
EARLIER_WAIT_S = 60.0  # an earlier acknowledgement takes a few API calls; past this, something else is wrong
EARLIER_POLL_S = 0.05

# Work admitted and not ended. A QUEUED job is still to be admitted (it may be refused).
UNDER_WAY = tuple(s for s in JobState if s not in TERMINAL_STATES and s is not JobState.QUEUED)


def _earlier(job: Job, jobs: list[Job]) -> list[Job]:
    return [j for j in jobs if j.id != job.id and (j.created_at, j.id) < (job.created_at, job.id)]


async def after_earlier(store: JobStore, job: Job) -> None:
    """Until every job asked for before `job` on its issue is admitted or refused (their acknowledgements run
    beside this one). The dispatcher takes the oldest first, so those are in the stage already."""
    deadline = time.monotonic() + EARLIER_WAIT_S
    while _earlier(job, store.list_jobs([JobState.QUEUED], repo=job.repo, issue_number=job.issue_number)):
        if time.monotonic() > deadline:
            log.warning("job %s: an earlier job on %s#%s is still not admitted; going on", job.id, job.repo,
                        job.issue_number)
            return
        await asyncio.sleep(EARLIER_POLL_S)


def job_ahead(store: JobStore, job: Job) -> Job | None:
    """The newest job on the same issue or pull request, asked for before `job`, that is admitted and not ended."""
    earlier = _earlier(job, store.list_jobs(UNDER_WAY, repo=job.repo, issue_number=job.issue_number))
    return earlier[-1] if earlier else None


def how_to_answer(job: Job, ahead: Job, sender_permission: str = "admin") -> Answer:
    """A label, or a command without an instruction (a review), is the same request again: it is answered. A new
    instruction is read into a job that has not started (it reads the comments then, as they are, of people with
    the permission it was admitted under: `sender_permission` must reach it) and follows one that has. Work no
    person asked for in a comment (a trigger of another kind) follows."""
    trigger = job.trigger
    if trigger.kind == "label" or (trigger.kind == "command" and (not trigger.instruction or trigger.worker == "review")):
        return "answer"
    reads_it = ahead.run is None or permission_at_least(sender_permission, ahead.run.trigger_permission)
    can_do_it = ahead.worker != "review"  # a review changes nothing: an instruction runs after it
    if trigger.kind != "command" or ahead.agent_started or not reads_it or not can_do_it:
        return "follow"
    # The job's own command comment is its instruction as it was stored: an edit of it is not read into it.
    return "follow" if trigger.edited and trigger.comment_id == ahead.trigger.comment_id else "fold"


def _answered_before(ctx: JobContext, ahead: Job, kind: Answer) -> bool:
    """Whether this person already got this answer about `ahead` (one reply, however many labels or comments)."""
    job = ctx.job
    earlier = [j for j in ctx.store.list_jobs([JobState.REJECTED], repo=job.repo, issue_number=job.issue_number)
               if j.id != job.id and j.requester.lower() == job.requester.lower()]
    return any(e.kind == "rejected" and e.data.get("ahead") == ahead.id and e.data.get("answer") == kind
               and e.data.get("answered") for j in earlier for e in ctx.store.events(j.id))


def _reply(ctx: JobContext, ahead: Job, kind: Answer) -> str:
    job = ctx.job
    fields = {"sender": job.requester, "worker": ahead.worker, "job_id": ahead.id,
              "state": texts.STATE_HEADLINE[ahead.state.value]}
    if kind == "fold":  # the job ahead reads the comments, under the rule it was admitted with
        permission = ahead.run.trigger_permission if ahead.run else ctx.service_config.permissions.trigger
        return texts.FOLDED.format(permission=permission, **fields)
    what = texts.ALREADY_WORKING_WHAT.get(job.trigger.kind, texts.ALREADY_WORKING_WHAT["command"]).format(
        label=code_span(job.trigger.label or ""))
    return texts.ALREADY_WORKING.format(what=what, prefix=ctx.service_config.command_prefix, **fields)


async def answer(ctx: JobContext, ahead: Job, kind: Answer) -> None:
    """The same request again, or an instruction the job ahead reads when it starts: 👀 on a comment, one reply
    per person, and this job ends `rejected` (it never starts) with what became of it."""
    job = ctx.job
    if job.trigger.kind == "command" and job.trigger.comment_id:
        await ctx.github.react_to_comment(job.trigger.comment_id)
    notify = not _answered_before(ctx, ahead, kind)  # (not `notified`: that is the unauthorized notice's)
    if notify:
        await ctx.github.comment(job.issue_number, _reply(ctx, ahead, kind))
    reason = (texts.REASON_FOLDED if kind == "fold" else texts.REASON_ALREADY_WORKING).format(job_id=ahead.id)
    ctx.update("rejected", to=JobState.REJECTED, reason=reason, log={"ahead": ahead.id, "answer": kind, "answered": notify})


def follow(ctx: JobContext, ahead: Job) -> Job:
    """This job runs after `ahead`; on an issue, on its branch (a pull request's jobs all work on its head)."""
    fields: dict[str, object] = {"follows": ahead.id}
    if not ctx.job.is_pull_request and ahead.branch:
        fields["branch"] = ahead.branch
    return ctx.update("follow_up", log={"ahead": ahead.id}, **fields)


def followers(store: JobStore, job: Job) -> list[Job]:
    """The follow-ups queued behind `job`, directly or behind another of them, oldest first."""
    chain, ids = [], {job.id}
    for waiting in store.list_jobs([JobState.WAITING_FOR_JOB], repo=job.repo, issue_number=job.issue_number):
        if waiting.follows in ids:
            chain.append(waiting)
            ids.add(waiting.id)
    return chain


def release_follow_ups(store: JobStore) -> list[str]:
    """Follow-ups whose job ahead has ended go on: to wait for a free place, or for approval. Synchronous, so
    nothing else changes the job between the look and the save (the dispatcher calls it between passes)."""
    released = []
    for job in store.list_jobs([JobState.WAITING_FOR_JOB]):
        ahead = store.get_job(job.follows) if job.follows else None
        if ahead is not None and not ahead.terminal:
            continue
        store.save_job(_released(job, ahead), "released", ahead=job.follows,
                       ahead_conclusion=ahead.conclusion if ahead else None)
        released.append(job.id)
    return released


def _released(job: Job, ahead: Job | None) -> Job:
    fields: dict[str, object] = {}
    where = texts.FOLLOW_UP_FROM_BASE.format(branch=job.base_branch or job.default_branch)
    if ahead is not None and not job.is_pull_request:
        pushed = ahead.outcome is not None and ahead.outcome.pr_number is not None and ahead.worker != "review"
        base = ahead.branch if pushed else ahead.base_branch
        fields.update(branch=ahead.branch or job.branch, base_branch=base)
        where = (texts.FOLLOW_UP_FROM_BRANCH.format(branch=ahead.branch) if pushed
                 else texts.FOLLOW_UP_FROM_BASE.format(branch=base or job.default_branch))
    reason = texts.FOLLOW_UP_RELEASED.format(job_id=job.follows, conclusion=(ahead.conclusion if ahead else None) or "gone",
                                             where=where)
    state = JobState.WAITING_FOR_APPROVAL if job.level == "human-required" else JobState.ACKNOWLEDGED
    return job.model_copy(update=fields).moved_to(state, reason)
