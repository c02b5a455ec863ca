"""Commands about existing work, carried out by the worker: from slash commands, check-run
buttons, plain comments (answers to the agent's questions), review comments and installation
changes. Each checks the sender's permission; an unauthorized command does nothing at all."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.pipeline.present import render, texts
from app.domain.config import BotConfig, permission_at_least
from app.domain.intents import Command, JobCommand
from app.domain.job import Job, JobState, Outcome, Trigger
from app.agent.boundary import workspace
from app.pipeline.ci_follow import CIFollower
from app.pipeline.context import JobContext
from app.pipeline.followups import UNDER_WAY, followers
from app.pipeline.progress import ProgressReporter
from app.pipeline.questions import expire_question, still_asking

log = logging.getLogger(__name__)

ACTIVE = (JobState.QUEUED, JobState.ACKNOWLEDGED, JobState.WAITING_FOR_APPROVAL, JobState.WAITING_FOR_JOB,
          JobState.RUNNING, JobState.WAITING_FOR_ANSWER)


@dataclass
class Request:
    """One command being carried out: the job it is about (None: the issue has none), and the role of
    the person who gave it."""

    ctx: JobContext
    command: JobCommand
    job: Job | None
    role: str

    @property
    def sender(self) -> str:
        return self.command.sender


class CommandHandler:
    def __init__(self, make_context: Callable[[Job], JobContext], store, config: BotConfig,
                 cancel_running: Callable[[str], bool]) -> None:
        self._context = make_context
        self._store = store
        self._config = config
        # Asks the stage running a job to stop (the dispatcher owns the signal); False if none runs it.
        self._cancel_running = cancel_running
        self._ci = CIFollower(make_context, store, config)  # CI's results: no person to check the permission of
        self._handlers: dict[Command, Callable[[Request], Awaitable[str]]] = {
            Command.HELP: self._help, Command.STATUS: self._status, Command.REVIEW: self._review,
            Command.APPROVE: self._approve, Command.CANCEL: self._cancel, Command.RETRY: self._retry,
            Command.ANSWER: self._answer, Command.REVIEW_COMMENT: self._review_comment, Command.RUN_CI: self._run_ci,
            Command.EDIT: self._edit,
        }

    @property
    def handled(self) -> frozenset[Command]:
        return frozenset({*self._handlers, Command.REMOVE_INSTALLATION, Command.CI_COMPLETED, Command.EXPIRE_QUESTION})

    # --- finding the job --------------------------------------------------------------------

    def _job_for(self, command: JobCommand) -> Job | None:
        """The job a command is about: the one it names, the one waiting for an answer, or on the issue the
        oldest active one (the work under way, not a follow-up queued behind it), else the latest. A retry
        only ever looks at work someone was allowed to ask for: a rejected request is not a job to run
        again, or anyone could have a maintainer's `retry` run their words."""
        if command.name is Command.ANSWER:
            # Every comment comes here: one indexed query, and no API call unless a question waits.
            waiting = self._store.list_jobs([JobState.WAITING_FOR_ANSWER], repo=command.repo,
                                            issue_number=command.issue_number)
            return waiting[-1] if waiting else None
        if command.name is Command.EDIT:  # the same: one indexed query, no API call unless work is under way
            under_way = self._store.list_jobs(UNDER_WAY, repo=command.repo, issue_number=command.issue_number)
            return under_way[-1] if under_way else None
        if command.job_id:
            job = self._store.get_job(command.job_id)
            if command.name is Command.RETRY and job is not None and job.state is JobState.REJECTED:
                return None
            return job if job is not None and job.repo == command.repo else None
        # On AgentVine's own pull request, the job that opened it counts as a job there too.
        jobs = [j for j in self._store.list_jobs(repo=command.repo)
                if command.issue_number in (j.issue_number, j.outcome.pr_number if j.outcome else None)]
        if command.name is Command.RETRY:
            jobs = [j for j in jobs if j.state is not JobState.REJECTED]
        active = [j for j in jobs if j.state in ACTIVE]
        return active[0] if active else (jobs or [None])[-1]

    # --- entry point ------------------------------------------------------------------------

    async def handle(self, command: JobCommand) -> str:
        if command.name is Command.REMOVE_INSTALLATION:
            return self._remove_installation(command)
        if command.name is Command.CI_COMPLETED:
            return await self._ci.handle(command)
        if command.name is Command.EXPIRE_QUESTION:  # the housekeeping's own: no person to check
            return await self._expire(command)
        job = self._job_for(command)
        if command.name is Command.ANSWER and job is None:
            return "ignored: no question waits here"
        if command.name is Command.EDIT and job is None:
            return "ignored: an edited comment starts nothing"
        if command.name is Command.REVIEW_COMMENT and (job is None or job.outcome is None or job.outcome.pr_number != command.issue_number):
            return "ignored: not a pull request of AgentVine's"
        ctx = self._context(job) if job is not None else self._bare_context(command)
        # The repository's own rule, as the job was admitted under it.
        required = job.run.trigger_permission if job is not None and job.run else self._config.permissions.trigger
        role = await ctx.github.permission(command.sender)
        if not permission_at_least(role, required):
            return f"ignored: @{command.sender} has {role}, {required} is needed"
        return await self._handlers[command.name](Request(ctx, command, job, role))

    def _bare_context(self, command: JobCommand) -> JobContext:
        """A context for commands on an issue without a job (help, status): a stand-in job."""
        stand_in = Job(delivery_id=command.delivery_id or "", installation_id=command.installation_id, repo=command.repo,
                       issue_number=command.issue_number or 0, requester=command.sender, trigger=Trigger(kind="command"))
        return self._context(stand_in)

    # --- replies ------------------------------------------------------------------------------

    async def _react(self, req: Request) -> None:
        if req.command.comment_id:
            await req.ctx.github.react_to_comment(req.command.comment_id)

    async def _reply(self, req: Request, body: str) -> None:
        if req.command.issue_number is None:
            return  # a button on a check run: the check run itself shows the result
        await req.ctx.github.comment(req.command.issue_number, body)

    async def _show(self, ctx: JobContext) -> None:
        """The tracking comment and the check run, redrawn for the job's new state."""
        if ctx.job.tracking_comment_id is not None and ctx.job.check_run_id is not None:
            await ProgressReporter.redraw(ctx)

    # --- the commands -------------------------------------------------------------------------

    async def _help(self, req: Request) -> str:
        await self._react(req)
        await self._reply(req, render.help_text(self._config))
        return "help sent"

    async def _status(self, req: Request) -> str:
        await self._react(req)
        job = req.job
        if job is None:
            await self._reply(req, texts.NO_JOB.format(sender=req.sender, what=""))
            return "no job"
        reason = f" {job.reason}." if job.reason else ""
        await self._reply(req, texts.STATUS.format(
            job_id=job.id, worker=job.worker, level=job.level, headline=texts.STATE_HEADLINE[job.state.value],
            reason=reason, details_url=render.details_url(req.ctx.settings.public_url, job)))
        return f"status of {job.id}"

    async def _review(self, req: Request) -> str:
        # `review` on a pull request starts a job (routing); here it came from an issue.
        await self._reply(req, texts.REVIEW_NEEDS_PULL.format(sender=req.sender, prefix=self._config.command_prefix))
        return "review needs a pull request"

    async def _approve(self, req: Request) -> str:
        job = req.job
        if job is None or job.state is not JobState.WAITING_FOR_APPROVAL:
            await self._reply(req, texts.NOT_WAITING_FOR_APPROVAL.format(sender=req.sender))
            return "nothing to approve"
        required = job.run.approve_permission if job.run else self._config.permissions.approve
        if not permission_at_least(req.role, required):
            await self._reply(req, texts.APPROVE_NEEDS.format(sender=req.sender, required=required, actual=req.role))
            return f"@{req.sender} may not approve"
        await self._react(req)
        req.ctx.update("approved", to=JobState.ACKNOWLEDGED, reason=texts.APPROVED.format(sender=req.sender),
                       log={"by": req.sender})
        await self._show(req.ctx)
        return f"approved {job.id}"

    async def _cancel(self, req: Request) -> str:
        job = req.job
        if job is None or job.terminal:
            await self._reply(req, texts.NO_JOB.format(sender=req.sender, what=" to cancel"))
            return "nothing to cancel"
        await self._react(req)
        # Follow-ups build on the job: they go with it (each one's own Cancel button stops only it and those after).
        behind = followers(self._store, job)
        for follower in behind:
            await self._cancel_waiting(self._context(follower), texts.CANCELLED_WITH.format(sender=req.sender, job_id=job.id),
                                       req.sender)
        also = f" and {len(behind)} follow-up(s)" if behind else ""
        # Held by a stage here or on another worker (running, or being acknowledged): that stage, or the
        # run after it, ends the job cancelled. Written from here, its next save would overwrite the cancel.
        if self._cancel_running(job.id):
            self._store.add_event(job.id, "cancel_requested", by=req.sender)  # the run stops and reports
            return f"cancelling {job.id}{also}"
        await self._cancel_waiting(req.ctx, texts.CANCELLED_BY.format(sender=req.sender), req.sender)
        return f"cancelled {job.id}{also}"

    async def _cancel_waiting(self, ctx: JobContext, reason: str, sender: str) -> None:
        """A job no stage runs ends `cancelled`, and shows it."""
        outcome = Outcome(conclusion="cancelled", title=texts.OUTCOME["cancelled"], detail=reason)
        ctx.update("cancelled", to=JobState.CANCELLED, reason=reason, conclusion="cancelled", log={"by": sender},
                   outcome=outcome)
        ctx.discard_files()
        await self._show(ctx)

    async def _run_ci(self, req: Request) -> str:
        """A maintainer read the diff: an empty commit on the pull request's branch lets CI run on it."""
        job = req.job
        if job is None or not job.ci_held_back:
            return "no CI held back here"
        required = job.run.approve_permission if job.run else self._config.permissions.approve
        if not permission_at_least(req.role, required):  # CI runs the agent's code with the secrets
            await self._reply(req, texts.APPROVE_NEEDS.format(sender=req.sender, required=required, actual=req.role))
            return f"@{req.sender} may not run CI"
        assert job.outcome is not None and job.outcome.pr_number is not None
        head = (await req.ctx.github.pull(job.outcome.pr_number))["head"]
        if (head.get("repo") or {}).get("full_name") != job.repo or head["ref"] == job.default_branch:
            return "the pull request's branch is not AgentVine's to push"
        settings = req.ctx.settings
        bot = f"{settings.app_slug}[bot]"
        sha = await workspace.push_empty_commit(
            req.ctx.workspace(), settings.clone_url(job.repo), head["ref"], await req.ctx.api.token(),
            message=texts.RUN_CI_COMMIT.format(sender=req.sender), author=(bot, settings.noreply_email(settings.app_bot_user_id, bot)))
        self._store.add_event(job.id, "ci_requested", by=req.sender, commit=sha)
        return f"CI requested on {head['ref']} ({sha[:12]})"

    async def _retry(self, req: Request) -> str:
        job = req.job
        if job is None:
            await self._reply(req, texts.NO_JOB.format(sender=req.sender, what=" to retry"))
            return "nothing to retry"
        if not job.terminal:
            await self._reply(req, texts.STILL_ACTIVE.format(
                sender=req.sender, job_id=job.id, state=job.state.value.replace("_", " "), prefix=self._config.command_prefix))
            return f"{job.id} is still active"
        await self._react(req)
        # The instruction keeps its author: the prompt says who wrote it and who asked again.
        # Asked for again, it is no edit any more (an edit only adds to work under way).
        trigger = job.trigger.model_copy(update={"instruction_by": job.trigger.instruction_by or job.requester,
                                                 "edited": False})
        again = self._new_job(req, job, issue_number=job.issue_number, is_pull_request=job.is_pull_request,
                              trigger=trigger, head_sha=None)
        self._store.save_job(again, "created", retry_of=job.id, by=req.sender)
        return f"retry of {job.id} is {again.id}"

    async def _answer(self, req: Request) -> str:
        assert req.job is not None
        await self._react(req)
        req.ctx.update("answered", to=JobState.ACKNOWLEDGED, reason=f"@{req.sender} answered; resuming",
                       log={"by": req.sender}, answer=req.command.text, answered_by=req.sender, question=None)
        return f"{req.job.id} resumes"

    async def _expire(self, command: JobCommand) -> str:
        """The worker that stored it found the question expired (its clock and settings decided, not this
        one's); an answer or another expiry taken first leaves nothing to do."""
        job = self._store.get_job(command.job_id) if command.job_id else None
        if not still_asking(job, command):
            return "ignored: no expired question waits"
        await expire_question(self._context(job), self._config)
        return f"{job.id}: the question expired"

    async def _review_comment(self, req: Request) -> str:
        job = req.job
        assert job is not None
        if job.level != "autonomous":
            return "ignored: supervised pull requests need a command for follow-ups"
        if req.command.comment_id:  # 👀 on the review comment itself: seen, the follow-up starts
            await req.ctx.github.react_to_review_comment(req.command.comment_id)
        follow_up = self._new_job(req, job, issue_number=req.command.issue_number or 0, is_pull_request=True,
                                  trigger=Trigger(kind="command", worker=job.worker, instruction=req.command.text))
        self._store.save_job(follow_up, "created", follow_up_of=job.id, by=req.sender)
        return f"follow-up {follow_up.id}"

    async def _edit(self, req: Request) -> str:
        """A comment edited to hold a new instruction, where work is under way: a job of its own, which the
        acknowledge stage reads into the job ahead or queues behind it (app/pipeline/followups.py)."""
        job = req.job
        assert job is not None
        trigger = Trigger(kind="command", instruction=req.command.text, comment_id=req.command.comment_id, edited=True)
        edited = self._new_job(req, job, issue_number=job.issue_number, is_pull_request=job.is_pull_request,
                               trigger=trigger)
        self._store.save_job(edited, "created", edited_comment=req.command.comment_id, by=req.sender)
        return f"edited instruction: {edited.id}"

    @staticmethod
    def _new_job(req: Request, job: Job, **fields: object) -> Job:
        """A new job asked for by the command's sender, about the same repository and issue as `job`."""
        return Job(delivery_id=req.command.delivery_id or job.delivery_id, installation_id=job.installation_id,
                   repo=job.repo, default_branch=job.default_branch, issue_title=job.issue_title,
                   requester=req.sender, labels=job.labels, **fields)

    def _remove_installation(self, command: JobCommand) -> str:
        """AgentVine lost access: waiting work is cancelled, running work is stopped."""
        stopped = sum(self._cancel_running(job.id) for job in self._store.list_jobs([JobState.RUNNING], repo=command.repo))
        cancelled = 0
        for job in self._store.list_jobs([JobState.QUEUED, JobState.WAITING_FOR_APPROVAL, JobState.WAITING_FOR_JOB,
                                          JobState.WAITING_FOR_ANSWER], repo=command.repo):
            ctx = self._context(job)
            ctx.update("cancelled", to=JobState.CANCELLED, reason="AgentVine was removed from the repository")
            ctx.discard_files()  # a waiting job's kept workspace and session go too
            cancelled += 1
        return f"cancelled {cancelled} job(s), stopping {stopped}"
