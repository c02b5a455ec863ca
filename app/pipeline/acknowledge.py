"""Stage 1 of every job: admit it, then tell people it was seen (👀, tracking comment, check run).

Each GitHub side effect is saved on the job as soon as it happens, so running this stage
again after a crash edits what exists instead of posting it twice."""

from __future__ import annotations

import asyncio
import logging

from app.pipeline.present import render, texts
from app.domain.config import BotConfig
from app.domain.job import Job, JobState, RunSettings
from app.agent.workspace import branch_name
from app.pipeline.admit import Admission, admit, resolve_model, unauthorized_text
from app.pipeline.context import JobContext

log = logging.getLogger(__name__)


async def acknowledge(ctx: JobContext) -> None:
    job = ctx.job
    admission = await admit(ctx.api, job, ctx.service_config)
    if admission.rule is None:
        ctx.save(job.moved_to(JobState.REJECTED, f"label {job.trigger.label!r} is not mapped"), "rejected")
        return
    if not admission.authorized:
        await _reject_unauthorized(ctx, admission)
        return
    worker, level = admission.rule.worker, admission.rule.level
    config = admission.config or ctx.service_config
    job = ctx.save(
        job.model_copy(
            update={
                "worker": worker,
                "level": level,
                "model": resolve_model(job, config, worker),
                "run": run_settings(config, worker),
                "branch": branch_name(worker, job.issue_number, job.issue_title),
            }
        ),
        "admitted",
        permission=admission.permission,
    )
    if job.is_pull_request and not await _pull_request_branch(ctx):
        return
    await asyncio.gather(_react(ctx), _resolve_head(ctx))
    if admission.config_error is not None:
        await _report_config_error(ctx, admission)
        return
    state = JobState.WAITING_FOR_APPROVAL if level == "human-required" else JobState.ACKNOWLEDGED
    # People see the new state at once; the job moves to it only once both exist, so a crash in
    # between repeats this stage (which edits, never duplicates).
    shown = ctx.job.moved_to(state)
    await asyncio.gather(_tracking_comment(ctx, shown), _check_run(ctx, shown))
    ctx.save(ctx.job.moved_to(state), "acknowledged")


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
        memory=config.sandbox.memory,
        cpus=config.sandbox.cpus,
        pids=config.sandbox.pids,
        **config.workspace.model_dump(),
    )


async def _reject_unauthorized(ctx: JobContext, admission: Admission) -> None:
    job = ctx.job
    config = admission.config or ctx.service_config
    reason = f"@{job.requester} has {admission.permission} access; {admission.required} is needed"
    if config.notify_unauthorized:
        await ctx.api.post(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
            data={"body": unauthorized_text(job, admission)},
        )
    ctx.save(job.moved_to(JobState.REJECTED, reason), "rejected", permission=admission.permission)


async def _pull_request_branch(ctx: JobContext) -> bool:
    """Work on a pull request happens on its own branch, and only on a branch of this repository."""
    job = ctx.job
    pull = await ctx.api.getitem(
        "/repos/{owner}/{repo}/pulls/{pull_number}", {"owner": job.owner, "repo": job.name, "pull_number": job.issue_number}
    )
    head = pull["head"]
    head_repo = (head.get("repo") or {}).get("full_name")
    if head_repo != job.repo:
        body = texts.FORK_REFUSED.format(head=f"`{head.get('label') or head_repo}`")
        await ctx.api.post(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
            data={"body": f"@{job.requester} {body}"},
        )
        ctx.save(job.moved_to(JobState.REJECTED, f"pull request from a fork ({head_repo})"), "rejected")
        return False
    ctx.job = ctx.save(
        job.model_copy(update={"branch": head["ref"], "base_branch": head["ref"], "head_sha": head["sha"],
                               "issue_title": pull.get("title") or job.issue_title}),
        "pull_request", head=head["ref"],
    )
    return True


async def _react(ctx: JobContext) -> None:
    job = ctx.job
    if job.reacted:
        return
    if job.trigger.kind == "command" and job.trigger.comment_id:
        url = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"
        url_vars = {"owner": job.owner, "repo": job.name, "comment_id": job.trigger.comment_id}
    else:
        url = "/repos/{owner}/{repo}/issues/{issue_number}/reactions"
        url_vars = {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number}
    await ctx.api.post(url, url_vars, data={"content": "eyes"})
    ctx.save(ctx.job.model_copy(update={"reacted": True}), "reacted")


async def _resolve_head(ctx: JobContext) -> None:
    """The commit the check run is about: the PR's head, or the default branch's tip."""
    job = ctx.job
    if job.head_sha:
        return
    ref = await ctx.api.getitem(
        "/repos/{owner}/{repo}/git/ref/heads/{+branch}",
        {"owner": job.owner, "repo": job.name, "branch": job.default_branch},
    )
    ctx.job = ctx.job.model_copy(update={"head_sha": ref["object"]["sha"]})


async def _tracking_comment(ctx: JobContext, shown: Job) -> None:
    job = ctx.job
    body = render.tracking_comment(shown, prefix=ctx.service_config.command_prefix, public_url=ctx.settings.public_url)
    if job.tracking_comment_id is None:
        comment = await ctx.api.post(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
            data={"body": body},
        )
        ctx.job = ctx.job.model_copy(update={"tracking_comment_id": comment["id"]})
        ctx.save(ctx.job, "tracking_comment", comment_id=comment["id"])
    else:
        await ctx.api.patch(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {"owner": job.owner, "repo": job.name, "comment_id": job.tracking_comment_id},
            data={"body": body},
        )


async def _check_run(ctx: JobContext, shown: Job) -> None:
    job = ctx.job
    if job.check_run_id is not None:
        return
    run = await ctx.api.post(
        "/repos/{owner}/{repo}/check-runs",
        {"owner": job.owner, "repo": job.name},
        data=render.check_run_create(shown, prefix=ctx.service_config.command_prefix, public_url=ctx.settings.public_url),
    )
    ctx.job = ctx.job.model_copy(update={"check_run_id": run["id"]})
    ctx.save(ctx.job, "check_run", check_run_id=run["id"])


async def _report_config_error(ctx: JobContext, admission: Admission) -> None:
    job, error = ctx.job, admission.config_error
    assert error is not None
    problems = render.config_problems(error.problems)
    body = texts.CONFIG_INVALID.format(source=error.source, problems=problems)
    await ctx.api.post(
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
        data={"body": body},
    )
    run = await ctx.api.post(
        "/repos/{owner}/{repo}/check-runs",
        {"owner": job.owner, "repo": job.name},
        data={
            "name": render.check_run_name(job),
            "head_sha": job.head_sha,
            "external_id": texts.CHECK_RUN_EXTERNAL_ID.format(job_id=job.id),
            "details_url": render.details_url(ctx.settings.public_url, job),
            "status": "completed",
            "conclusion": "failure",
            "output": {"title": texts.CONFIG_INVALID_TITLE, "summary": body},
        },
    )
    failed = ctx.job.model_copy(update={"check_run_id": run["id"]}).moved_to(
        JobState.FAILED, f"{error.source} is invalid", conclusion="failure"
    )
    ctx.save(failed, "config_invalid", problems=error.problems)
