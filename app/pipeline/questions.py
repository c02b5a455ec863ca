"""Clarifying questions: the agent stops with a final message that starts with `QUESTION:`
(texts.QUESTION_CONVENTION tells it so). The job then waits: the container is gone, the
workspace and Claude's session (in the job's home) are kept. The next comment from an
authorized person resumes the same session (`claude --resume`)."""

from __future__ import annotations

import re

from app.pipeline.present import render, texts
from app.domain.config import BotConfig
from app.domain.job import JobState, Outcome
from app.pipeline.context import JobContext
from app.pipeline.present.render import Progress
from app.pipeline.present.reporter import ProgressReporter

_QUESTION = re.compile(r"^\s*\**QUESTION:?\**:?\s*(.+)", re.IGNORECASE | re.DOTALL)
MAX_QUESTION_CHARS = 4_000


def parse_question(final_text: str | None) -> str | None:
    """The question, when the agent's final message is one."""
    match = _QUESTION.match(final_text or "")
    if not match:
        return None
    question = match.group(1).strip()
    return question[:MAX_QUESTION_CHARS] or None


async def ask(ctx: JobContext, reporter: ProgressReporter, question: str) -> None:
    job = ctx.job
    assert job.run is not None
    await ctx.api.post(
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
        data={"body": texts.QUESTION_COMMENT.format(
            requester=job.requester, quoted=render.quote(question), permission=job.run.trigger_permission,
            prefix=ctx.service_config.command_prefix, hours=job.run.question_expiry_hours)},
    )
    ctx.job = job.model_copy(update={"question": question, "answer": None}).moved_to(
        JobState.WAITING_FOR_ANSWER, texts.QUESTION_TITLE
    )
    await reporter.final()
    ctx.save(ctx.job, "question", question=question)


async def expire_question(ctx: JobContext, config: BotConfig) -> None:
    job = ctx.job
    hours = job.run.question_expiry_hours if job.run else config.questions.expire_hours
    detail = texts.QUESTION_EXPIRED.format(hours=hours, prefix=config.command_prefix)
    await ctx.api.post(
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        {"owner": job.owner, "repo": job.name, "issue_number": job.issue_number},
        data={"body": detail},
    )
    outcome = Outcome(conclusion="timed_out", title="No answer", detail=detail)
    ctx.job = job.model_copy(update={"outcome": outcome}).moved_to(JobState.FAILED, detail, conclusion="timed_out")
    await ProgressReporter(ctx, Progress(), prefix=config.command_prefix, interval=0).final()
    ctx.save(ctx.job, "question_expired")
    ctx.discard_files()
