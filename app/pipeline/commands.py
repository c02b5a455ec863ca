"""Commands about existing work, carried out by the worker: from slash commands, check-run
buttons, plain comments (answers to the agent's questions), review comments and installation
changes. Each checks the sender's permission; an unauthorized command does nothing at all."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.pipeline.present import render, texts
from app.domain.config import BotConfig, permission_at_least
from app.domain.intents import JobCommand
from app.domain.job import Job, JobState, Outcome, Trigger
from app.pipeline.admit import sender_permission
from app.pipeline.context import JobContext
from app.pipeline.present.render import Progress
from app.pipeline.present.reporter import ProgressReporter

log = logging.getLogger(__name__)

ACTIVE = (JobState.QUEUED, JobState.ACKNOWLEDGED, JobState.WAITING_FOR_APPROVAL, JobState.RUNNING,
          JobState.WAITING_FOR_ANSWER)


class CommandHandler:
    def __init__(self, make_context: Callable[[Job], JobContext], store, config: BotConfig, cancels: dict) -> None:
        self._context = make_context
        self._store = store
        self._config = config
        self._cancels = cancels  # job id → the asyncio.Event its running stage watches

    # --- finding the job --------------------------------------------------------------------

    def _job_for(self, command: JobCommand) -> Job | None:
        if command.job_id:
            job = self._store.get_job(command.job_id)
            return job if job is not None and job.repo == command.repo else None
        # On AgentVine's own pull request, the job that opened it counts as a job there too.
        jobs = [j for j in self._store.list_jobs(repo=command.repo)
                if command.issue_number in (j.issue_number, j.outcome.pr_number if j.outcome else None)]
        active = [j for j in jobs if j.state in ACTIVE]
        return (active or jobs or [None])[-1]

    # --- entry point ------------------------------------------------------------------------

    async def handle(self, command: JobCommand) -> str:
        if command.name == "remove_installation":
            return self._remove_installation(command)
        if command.name == "answer":
            # Every comment comes here: one indexed query, and no API call unless a question waits.
            waiting = [j for j in self._store.list_jobs([JobState.WAITING_FOR_ANSWER], repo=command.repo)
                       if j.issue_number == command.issue_number]
            if not waiting:
                return "ignored: no question waits here"
            job: Job | None = waiting[-1]
        else:
            job = self._job_for(command)
        if command.name == "review_comment" and (job is None or job.outcome is None or job.outcome.pr_number != command.issue_number):
            return "ignored: not a pull request of AgentVine's"
        ctx = self._context(job) if job is not None else self._bare_context(command)
        # The repository's own rule, as the job was admitted under it.
        required = job.run.trigger_permission if job is not None and job.run else self._config.permissions.trigger
        role = await sender_permission(ctx.api, ctx.job, command.sender)
        if not permission_at_least(role, required):
            return f"ignored: @{command.sender} has {role}, {required} is needed"
        handler = getattr(self, f"_{command.name}")
        outcome = await handler(ctx, command, job, role)
        return outcome

    def _bare_context(self, command: JobCommand) -> JobContext:
        """A context for commands on an issue without a job (help, status): a stand-in job."""
        stand_in = Job(delivery_id=command.delivery_id or "", installation_id=command.installation_id, repo=command.repo,
                       issue_number=command.issue_number or 0, requester=command.sender, trigger=Trigger(kind="command"))
        return self._context(stand_in)

    # --- replies ------------------------------------------------------------------------------

    async def _react(self, ctx: JobContext, command: JobCommand) -> None:
        if command.comment_id:
            job = ctx.job
            await ctx.api.post(
                "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
                {"owner": job.owner, "repo": job.name, "comment_id": command.comment_id},
                data={"content": "eyes"},
            )

    async def _reply(self, ctx: JobContext, command: JobCommand, body: str) -> None:
        if command.issue_number is None:
            return  # a button on a check run: the check run itself shows the result
        await ctx.api.post(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            {"owner": ctx.job.owner, "repo": ctx.job.name, "issue_number": command.issue_number},
            data={"body": body},
        )

    async def _show(self, ctx: JobContext) -> None:
        """The tracking comment and the check run, redrawn for the job's new state."""
        if ctx.job.tracking_comment_id is None or ctx.job.check_run_id is None:
            return
        reporter = ProgressReporter(ctx, Progress(), prefix=self._config.command_prefix, interval=0)
        await reporter.final()

    # --- the commands -------------------------------------------------------------------------

    async def _help(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        await self._react(ctx, command)
        await self._reply(ctx, command, render.help_text(self._config))
        return "help sent"

    async def _status(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        await self._react(ctx, command)
        if job is None:
            await self._reply(ctx, command, texts.NO_JOB.format(sender=command.sender, what=""))
            return "no job"
        reason = f" {job.reason}." if job.reason else ""
        await self._reply(ctx, command, texts.STATUS.format(
            job_id=job.id, worker=job.worker, level=job.level, headline=texts.STATE_HEADLINE[job.state.value],
            reason=reason, details_url=render.details_url(ctx.settings.public_url, job)))
        return f"status of {job.id}"

    async def _review(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        # `review` on a pull request starts a job (routing); here it came from an issue.
        await self._reply(ctx, command, texts.REVIEW_NEEDS_PULL.format(sender=command.sender, prefix=self._config.command_prefix))
        return "review needs a pull request"

    async def _approve(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        if job is None or job.state is not JobState.WAITING_FOR_APPROVAL:
            await self._reply(ctx, command, texts.NOT_WAITING_FOR_APPROVAL.format(sender=command.sender))
            return "nothing to approve"
        required = job.run.approve_permission if job.run else self._config.permissions.approve
        if not permission_at_least(role, required):
            await self._reply(ctx, command, texts.APPROVE_NEEDS.format(sender=command.sender, required=required, actual=role))
            return f"@{command.sender} may not approve"
        await self._react(ctx, command)
        ctx.job = job.moved_to(JobState.ACKNOWLEDGED, texts.APPROVED.format(sender=command.sender))
        ctx.save(ctx.job, "approved", by=command.sender)
        await self._show(ctx)
        return f"approved {job.id}"

    async def _cancel(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        if job is None or job.terminal:
            await self._reply(ctx, command, texts.NO_JOB.format(sender=command.sender, what=" to cancel"))
            return "nothing to cancel"
        await self._react(ctx, command)
        reason = texts.CANCELLED_BY.format(sender=command.sender)
        if job.state is JobState.RUNNING and job.id in self._cancels:
            self._cancels[job.id].set()  # the run stage stops the container and reports
            self._store.add_event(job.id, "cancel_requested", by=command.sender)
            return f"cancelling {job.id}"
        outcome = Outcome(conclusion="cancelled", title=texts.OUTCOME["cancelled"], detail=reason)
        ctx.job = job.model_copy(update={"outcome": outcome}).moved_to(JobState.CANCELLED, reason, conclusion="cancelled")
        ctx.save(ctx.job, "cancelled", by=command.sender)
        ctx.discard_files()
        await self._show(ctx)
        return f"cancelled {job.id}"

    async def _retry(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        if job is None:
            await self._reply(ctx, command, texts.NO_JOB.format(sender=command.sender, what=" to retry"))
            return "nothing to retry"
        if not job.terminal:
            await self._reply(ctx, command, texts.STILL_ACTIVE.format(
                sender=command.sender, job_id=job.id, state=job.state.value.replace("_", " "), prefix=self._config.command_prefix))
            return f"{job.id} is still active"
        await self._react(ctx, command)
        again = Job(
            delivery_id=command.delivery_id or job.delivery_id, installation_id=job.installation_id, repo=job.repo,
            default_branch=job.default_branch, issue_number=job.issue_number, is_pull_request=job.is_pull_request,
            issue_title=job.issue_title, requester=command.sender, trigger=job.trigger, labels=job.labels,
            head_sha=None,
        )
        self._store.save_job(again, "created", retry_of=job.id, by=command.sender)
        return f"retry of {job.id} is {again.id}"

    async def _answer(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        assert job is not None
        await self._react(ctx, command)
        ctx.job = job.model_copy(update={"answer": command.text, "answered_by": command.sender, "question": None}).moved_to(
            JobState.ACKNOWLEDGED, f"@{command.sender} answered; resuming"
        )
        ctx.save(ctx.job, "answered", by=command.sender)
        return f"{job.id} resumes"

    async def _review_comment(self, ctx: JobContext, command: JobCommand, job: Job | None, role: str) -> str:
        assert job is not None
        if job.level != "autonomous":
            return "ignored: supervised pull requests need a command for follow-ups"
        # (GitHub's API has reactions for review comments, but this build's OpenAPI subset does
        # not; the follow-up's tracking comment on the PR is the acknowledgement.)
        follow_up = Job(
            delivery_id=command.delivery_id or job.delivery_id, installation_id=job.installation_id, repo=job.repo,
            default_branch=job.default_branch, issue_number=command.issue_number or 0, is_pull_request=True,
            issue_title=job.issue_title, requester=command.sender,
            trigger=Trigger(kind="command", worker=job.worker, instruction=command.text), labels=job.labels,
        )
        self._store.save_job(follow_up, "created", follow_up_of=job.id, by=command.sender)
        return f"follow-up {follow_up.id}"

    def _remove_installation(self, command: JobCommand) -> str:
        """AgentVine lost access: waiting work is cancelled, running work is stopped."""
        stopped = 0
        for job in self._store.list_jobs([JobState.RUNNING], repo=command.repo):
            if job.id in self._cancels:
                self._cancels[job.id].set()
                stopped += 1
        cancelled = 0
        for job in self._store.list_jobs([JobState.QUEUED, JobState.WAITING_FOR_APPROVAL, JobState.WAITING_FOR_ANSWER],
                                         repo=command.repo):
            self._store.save_job(job.moved_to(JobState.CANCELLED, "AgentVine was removed from the repository"), "cancelled")
            self._context(job).discard_files()  # a waiting job's kept workspace and session go too
            cancelled += 1
        return f"cancelled {cancelled} job(s), stopping {stopped}"


def question_expired(job: Job, now: float) -> bool:
    hours = job.run.question_expiry_hours if job.run else 72.0
    return job.state is JobState.WAITING_FOR_ANSWER and now - job.updated_at > hours * 3600

