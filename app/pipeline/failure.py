"""When a stage raises: the job ends `failed` with a reason, and GitHub is told where possible."""

from __future__ import annotations

import logging

import gidgethub

from app.domain.job import Job, JobState
from app.domain.untrusted import defuse
from app.pipeline.present import texts
from app.pipeline.context import JobContext

log = logging.getLogger(__name__)


def describe(exc: BaseException, job_id: str) -> str:
    """What people are told. GitHub's own answer is theirs to see; an internal error's text is not (it
    names host paths and settings, or what the agent chose): it stays in the service log."""
    if isinstance(exc, gidgethub.HTTPException):
        return defuse(f"GitHub answered {int(exc.status_code)}: {exc}"[:1000])
    return texts.INTERNAL_ERROR.format(kind=type(exc).__name__, job_id=job_id)


async def fail_job(ctx: JobContext, exc: BaseException) -> Job:
    if ctx.reload().terminal:
        return ctx.job
    reason = describe(exc, ctx.job.id)  # the dispatcher logged the exception itself
    failed = ctx.update("failed", to=JobState.FAILED, reason=reason, conclusion="failure", log={"error": reason})
    ctx.discard_files()
    if failed.check_run_id is not None:
        try:
            await ctx.github.update_check_run(failed.check_run_id, {
                "status": "completed", "conclusion": "failure", "output": {"title": "AgentVine failed", "summary": reason},
            })
        except Exception:  # GitHub may be what failed; the job's state is already saved
            log.warning("could not conclude the check run of job %s", failed.id, exc_info=True)
    return failed
