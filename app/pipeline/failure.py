"""When a stage raises: the job ends `failed` with a reason, and GitHub is told where possible."""

from __future__ import annotations

import logging

import gidgethub

from app.domain.job import Job, JobState
from app.domain.untrusted import defuse
from app.pipeline.context import JobContext

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    if isinstance(exc, gidgethub.HTTPException):
        return f"GitHub answered {int(exc.status_code)}: {exc}"
    # The text may hold what the agent chose (a path); it is published on GitHub.
    return defuse(f"internal error: {type(exc).__name__}: {exc}"[:1000])


async def fail_job(ctx: JobContext, exc: BaseException) -> Job:
    if ctx.reload().terminal:
        return ctx.job
    reason = describe(exc)
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
