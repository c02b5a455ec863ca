"""Clarifying questions: the agent stops with a final message that starts with `QUESTION:`
(texts.QUESTION_CONVENTION tells it so). The job then waits: the container is gone, the
workspace and Claude's session (in the job's home) are kept. The next comment from an
authorized person resumes the same session (`claude --resume`)."""

from __future__ import annotations

import logging
import re

from app.pipeline.present import render, texts
from app.domain.config import BotConfig
from app.domain.intents import Command, JobCommand
from app.domain.job import Delivery, Job, JobState, Outcome
from app.pipeline.context import JobContext
from app.pipeline.progress import ProgressReporter

log = logging.getLogger(__name__)

_QUESTION = re.compile(r"^\s*\**QUESTION:?\**:?\s*(.+)", re.IGNORECASE | re.DOTALL)
MAX_QUESTION_CHARS = 4_000
OUTCOME_EXPIRY = "stored by a worker: a question went unanswered too long"


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
    await ctx.github.comment(job.issue_number, texts.QUESTION_COMMENT.format(
        requester=job.requester, quoted=render.quote(question), permission=job.run.trigger_permission,
        prefix=ctx.service_config.command_prefix, hours=job.run.question_expiry_hours))
    await ctx.update_shown(reporter.final, "question", to=JobState.WAITING_FOR_ANSWER, reason=texts.QUESTION_TITLE,
                           log={"question": question}, question=question, answer=None)


def asked(ctx: JobContext) -> str:
    """The question the job last asked (its log has it; the job forgets it once answered)."""
    for event in reversed(ctx.store.events(ctx.job.id)):
        if event.kind == "question" and isinstance(event.data.get("question"), str):
            return event.data["question"]
    return ""


def expiry_hours(job: Job, config: BotConfig) -> float:
    """How long a question waits: the job's own setting, else the shipped default."""
    return job.run.question_expiry_hours if job.run else config.questions.expire_hours


def question_expired(job: Job, config: BotConfig, now: float) -> bool:
    return job.state is JobState.WAITING_FOR_ANSWER and now - job.updated_at > expiry_hours(job, config) * 3600


EXPIRY_RETRY_S = 60  # an expiry that failed (GitHub away) is stored again after this


def expiry_request(job: Job, now: float) -> tuple[Delivery, JobCommand]:
    """What a worker stores when it finds the job's question expired: a command, carried out in turn with
    the issue's other commands (an answer taken first leaves nothing to expire). Its delivery id is made of
    the job, the waiting it ends and the minute (GitHub's ids are GUIDs, so none is like it): the workers
    that find the same expiry in the same minute store it once, and one that failed is stored again the
    next. However many are stored, one ends the job: the rest find the waiting over."""
    delivery = Delivery(id=f"expiry:{job.id}:{job.updated_at!r}:{int(now // EXPIRY_RETRY_S)}", event="agentvine_expiry",
                        installation_id=job.installation_id, repo=job.repo, outcome=OUTCOME_EXPIRY)
    return delivery, JobCommand(name=Command.EXPIRE_QUESTION, installation_id=job.installation_id, repo=job.repo,
                                sender="agentvine", issue_number=job.issue_number, job_id=job.id,
                                asked_at=job.updated_at, delivery_id=delivery.id)


def still_asking(job: Job | None, command: JobCommand) -> bool:
    """The job waits in the very waiting the expiry was stored for (not a later question, not resumed)."""
    return job is not None and job.state is JobState.WAITING_FOR_ANSWER and job.updated_at == command.asked_at


async def expire_question(ctx: JobContext, config: BotConfig) -> None:
    """Said, then saved, then shown: not shown-then-saved as a stage's steps are, because an expiry must
    never be said twice. A redraw that keeps failing (a tracking comment someone deleted) would leave the
    job waiting, and the next minute's expiry would comment again."""
    detail = texts.QUESTION_EXPIRED.format(hours=expiry_hours(ctx.job, config), prefix=config.command_prefix)
    await ctx.github.comment(ctx.job.issue_number, detail)
    outcome = Outcome(conclusion="timed_out", title="No answer", detail=detail)
    ctx.update("question_expired", to=JobState.FAILED, reason=detail, conclusion="timed_out", outcome=outcome)
    ctx.discard_files()
    try:
        await ProgressReporter.redraw(ctx)
    except Exception:  # noqa: BLE001 - the expiry stands: said and saved; only its display lags
        log.warning("job %s expired, but its check run and tracking comment could not be redrawn", ctx.job.id,
                    exc_info=True)
