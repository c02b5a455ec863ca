"""Stage 1 of every job: admit it, then tell people it was seen (👀, tracking comment, check run).

Each GitHub side effect is saved on the job as soon as it happens, so running this stage
again after a crash edits what exists instead of posting it twice."""

from __future__ import annotations

import asyncio
import logging

import gidgethub

from app.pipeline.present import render, texts
from app.domain.config import BotConfig
from app.domain.job import Job, JobState, RunSettings
from app.domain.queue import Wait
from app.domain.untrusted import code_span
from app.agent.boundary.workspace import branch_name
from app.pipeline import followups
from app.pipeline.admit import Admission, admit, resolve_model, unauthorized_text
from app.pipeline.context import JobContext
from app.pipeline.review.incremental import previous_review

log = logging.getLogger(__name__)


async def acknowledge(ctx: JobContext) -> None:
    job = ctx.job
    if job.trigger.edited and followups.job_ahead(ctx.store, job) is None:  # before any API call, and again below
        ctx.update("rejected", to=JobState.REJECTED, reason=texts.REASON_EDITED)
        return
    admission = await admit(ctx.github, job, ctx.service_config, ctx.settings.ceilings)
    if admission.rule is None:
        ctx.update("rejected", to=JobState.REJECTED, reason=f"label {job.trigger.label!r} is not mapped")
        return
    if admission.skip is not None:
        ctx.update("rejected", to=JobState.REJECTED, reason=admission.skip)
        return
    if not admission.authorized:
        await _reject_unauthorized(ctx, admission)
        return
    worker, level = admission.rule.worker, admission.rule.level
    config = admission.config or ctx.service_config
    job = ctx.update(
        "admitted", log={"permission": admission.permission},
        worker=worker, level=level, model=resolve_model(job, config, worker), run=run_settings(config, worker),
        branch=branch_name(worker, job.issue_number, job.issue_title),
    )
    ahead = await _work_ahead(ctx, admission)
    if ctx.job.terminal:  # answered, or an edit with nothing left to add to
        return
    if job.is_pull_request and not await _pull_request_branch(ctx):
        return
    if not await _ci_head_current(ctx):
        return
    _reuse_review_comment(ctx)
    await asyncio.gather(_react(ctx), _resolve_head(ctx))
    if admission.config_error is not None:
        await _report_config_error(ctx, admission)
        return
    state = JobState.WAITING_FOR_APPROVAL if level == "human-required" else JobState.ACKNOWLEDGED
    if ahead is not None:
        state = JobState.WAITING_FOR_JOB  # approval, if its level needs one, comes when the job ahead has ended
    # People see the new state at once; the job moves to it only once both exist, so a crash in
    # between repeats this stage (which edits, never duplicates).
    shown = ctx.job.moved_to(state)
    wait = ctx.wait_of(shown)  # its place in line, or the job it follows, from the first showing on
    await asyncio.gather(_tracking_comment(ctx, shown, wait), _check_run(ctx, shown, wait))
    ctx.update("acknowledged", to=state)
    if ctx.queue is not None:
        ctx.queue.shown(ctx.job, wait)


async def _work_ahead(ctx: JobContext, admission: Admission) -> Job | None:
    """The job already queued or under way on the issue, if any: this one is then answered (and ends) or
    follows it (app/pipeline/followups.py). Never a second job beside it, never a silent cancel of it."""
    job = ctx.job
    await followups.after_earlier(ctx.store, job)
    ahead = followups.job_ahead(ctx.store, job)
    if ahead is None:
        if job.trigger.edited:  # the work it would have added to has ended meanwhile
            ctx.update("rejected", to=JobState.REJECTED, reason=texts.REASON_EDITED)
        return None
    answer = followups.how_to_answer(job, ahead, admission.permission)
    if answer == "follow":
        followups.follow(ctx, ahead)
    else:
        await followups.answer(ctx, ahead, answer)
    return ahead


def run_settings(config: BotConfig, worker: str) -> RunSettings:
    w = config.workers[worker]  # type: ignore[index]
    return RunSettings(
        prompt_template=config.prompt_template(worker),
        max_turns=w.max_turns,
        timeout_minutes=w.timeout_minutes,
        max_cost_usd=w.max_cost_usd,
        allowed_tools=list(w.allowed_tools),
        allowed_paths=list(w.allowed_paths),
        allow_workflow_changes=config.allow_workflow_changes,
        trigger_permission=config.permissions.trigger,
        approve_permission=config.permissions.approve,
        question_expiry_hours=config.questions.expire_hours,
        request_changes_on=config.review.request_changes_on,
        memory=config.sandbox.memory,
        cpus=config.sandbox.cpus,
        pids=config.sandbox.pids,
        setup=list(config.setup),
        verify=list(config.verify.commands),
        verify_max_attempts=config.verify.max_attempts,
        verify_on_failure=config.verify.on_failure,
        step_timeout_minutes=config.steps.timeout_minutes,
        step_output_kb=config.steps.output_kb,
        image=config.sandbox.image,
        **config.workspace.model_dump(),
        egress_allow=list(config.egress.allow),
        egress_during=config.egress.during,
    )


async def _reject_unauthorized(ctx: JobContext, admission: Admission) -> None:
    job = ctx.job
    config = admission.config or ctx.service_config
    reason = f"@{job.requester} has {admission.permission} access; {admission.required} is needed"
    # A push is no request to AgentVine: it gets no notice (the pusher may not even know the bot).
    notify = config.notify_unauthorized and job.trigger.kind != "push" and not _told_before(ctx)
    if notify:
        await ctx.github.comment(job.issue_number, unauthorized_text(job, admission))
    ctx.update("rejected", to=JobState.REJECTED, reason=reason,
               log={"permission": admission.permission, "notified": notify})


def _told_before(ctx: JobContext) -> bool:
    """Whether this person already got the notice on this issue (docs/usage.md: one reply, so a
    label added again, or a string of commands, does not make a string of replies)."""
    job = ctx.job
    earlier = [j for j in ctx.store.list_jobs([JobState.REJECTED], repo=job.repo)
               if j.id != job.id and j.issue_number == job.issue_number and j.requester.lower() == job.requester.lower()]
    return any(e.kind == "rejected" and e.data.get("notified") for j in earlier for e in ctx.store.events(j.id))


async def _pull_request_branch(ctx: JobContext) -> bool:
    """Work on a pull request happens on its own branch, only on a branch of this repository, and never
    on the default branch (protected branches are GitHub's to refuse: AgentVine must not be on a bypass list)."""
    job = ctx.job
    pull = await ctx.github.pull(job.issue_number)
    head = pull["head"]
    head_repo = (head.get("repo") or {}).get("full_name")
    if head_repo != job.repo:
        body = texts.FORK_REFUSED.format(head=code_span(str(head.get("label") or head_repo)))
        if job.trigger.kind != "push":  # said once, when someone asked; not again on every push
            await ctx.github.comment(job.issue_number, f"@{job.requester} {body}")
        ctx.update("rejected", to=JobState.REJECTED, reason=f"pull request from a fork ({head_repo})")
        return False
    if head["ref"] == job.default_branch and job.worker != "review":  # a review pushes nothing
        await ctx.github.comment(job.issue_number, f"@{job.requester} " + texts.DEFAULT_BRANCH_REFUSED.format(branch=head["ref"]))
        ctx.update("rejected", to=JobState.REJECTED, reason="the pull request's head is the default branch")
        return False
    ctx.update("pull_request", log={"head": head["ref"]}, branch=head["ref"], base_branch=head["ref"],
               head_sha=head["sha"], issue_title=pull.get("title") or job.issue_title, pull_url=pull.get("html_url"))
    return True


async def _ci_head_current(ctx: JobContext) -> bool:
    """A CI follow-up is for the commit CI failed on: if the pull request moved on since, it does not run."""
    job, failure = ctx.job, ctx.job.trigger.ci
    if failure is None or job.head_sha == failure.sha:
        return True
    await ctx.github.comment(job.issue_number, texts.CI_MOVED_ON.format(sha=code_span(failure.sha[:12])))
    ctx.update("rejected", to=JobState.REJECTED, reason=f"the pull request moved on from {failure.sha[:12]}")
    return False

def _reuse_review_comment(ctx: JobContext) -> None:
    """A review of a push edits the tracking comment of the pull request's last review instead of
    adding one more: with `review.on_push`, a comment per push would bury the conversation."""
    job = ctx.job
    if job.trigger.kind != "push" or job.tracking_comment_id is not None:
        return
    earlier = previous_review(ctx.store, job)
    if earlier is not None and earlier.tracking_comment_id is not None:
        ctx.update("tracking_comment", log={"comment_id": earlier.tracking_comment_id, "reused_from": earlier.id},
                   tracking_comment_id=earlier.tracking_comment_id)


async def _react(ctx: JobContext) -> None:
    job = ctx.job
    if job.reacted or job.trigger.kind == "push":  # a push is nothing people could see a 👀 on
        return
    if job.trigger.kind == "command" and job.trigger.comment_id:
        await ctx.github.react_to_comment(job.trigger.comment_id)
    else:
        await ctx.github.react_to_issue(job.issue_number)
    ctx.update("reacted", reacted=True)


async def _resolve_head(ctx: JobContext) -> None:
    """The commit the check run is about: the PR's head, or the default branch's tip."""
    job = ctx.job
    if job.head_sha:
        return
    ctx.update("head", head_sha=await ctx.github.branch_head(job.default_branch))


async def _tracking_comment(ctx: JobContext, shown: Job, wait: Wait | None) -> None:
    job = ctx.job
    body = render.tracking_comment(shown, prefix=ctx.service_config.command_prefix, public_url=ctx.settings.public_url,
                                   wait=wait)
    if job.tracking_comment_id is not None:
        try:
            await ctx.github.edit_comment(job.tracking_comment_id, body)
            return
        except gidgethub.BadRequest as exc:
            if exc.status_code != 404:
                raise
            # Someone deleted it (a reused review comment, say): a new one follows.
    comment = await ctx.github.comment(job.issue_number, body)
    ctx.update("tracking_comment", log={"comment_id": comment["id"]}, tracking_comment_id=comment["id"])


async def _check_run(ctx: JobContext, shown: Job, wait: Wait | None) -> None:
    job = ctx.job
    if job.check_run_id is not None:
        return
    await create_check_run(ctx, shown, wait)


async def create_check_run(ctx: JobContext, shown: Job, wait: Wait | None = None) -> None:
    """A check run for the job as `shown`, remembered with its link (GitHub's own, right on any GitHub host)."""
    body = render.check_run_create(shown, prefix=ctx.service_config.command_prefix, public_url=ctx.settings.public_url,
                                   wait=wait)
    run = await ctx.github.create_check_run(body)
    ctx.update("check_run", log={"check_run_id": run["id"]}, check_run_id=run["id"], check_run_url=run.get("html_url"))


async def _report_config_error(ctx: JobContext, admission: Admission) -> None:
    job, error = ctx.job, admission.config_error
    assert error is not None
    problems = render.config_problems(error.problems)
    body = texts.CONFIG_INVALID.format(source=error.source, problems=problems)
    await ctx.github.comment(job.issue_number, body)
    run = await ctx.github.create_check_run(render.check_run_config_invalid(job, body, public_url=ctx.settings.public_url))
    ctx.update("config_invalid", to=JobState.FAILED, reason=f"{error.source} is invalid", conclusion="failure",
               log={"problems": error.problems}, check_run_id=run["id"], check_run_url=run.get("html_url"))
