"""Progress on GitHub while a job runs: the tracking comment and the check run, edited in place.

Edits are coalesced: at most one per `interval` seconds per job, always showing the latest
state. GitHub's secondary rate limits punish bursts of edits, and people do not need ten a
second. An edit that fails is logged and retried with the next one: progress is best-effort,
the final report is not (the pipeline awaits it)."""

from __future__ import annotations

import asyncio
import logging
import time

from app.pipeline.present import render
from app.domain.job import Job, JobState
from app.domain.lease import LeaseLost
from app.pipeline.context import JobContext
from app.pipeline.present.render import Progress

log = logging.getLogger(__name__)

ACTIVITY_KEPT = 50
WAITING_STATES = (JobState.WAITING_FOR_ANSWER, JobState.WAITING_FOR_APPROVAL, JobState.ACKNOWLEDGED,
                  JobState.WAITING_FOR_JOB)


class ProgressReporter:
    def __init__(self, ctx: JobContext, progress: Progress, *, prefix: str, interval: float) -> None:
        self._ctx = ctx
        self.progress = progress
        self._prefix = prefix
        self._interval = interval
        self._last_sent = 0.0
        self._last_body: tuple[str, str] | None = None
        self._pending: asyncio.Task[None] | None = None
        self.edits = 0

    def activity(self, line: str) -> None:
        self.progress.activity.append(line)
        del self.progress.activity[:-ACTIVITY_KEPT]
        self._schedule()

    def step_done(self, steps: int) -> None:
        self.progress.done = max(self.progress.done, steps)
        self._schedule()

    def _schedule(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._send_when_due())

    async def _send_when_due(self) -> None:
        await asyncio.sleep(max(0.0, self._last_sent + self._interval - time.monotonic()))
        try:
            await self.send()
        except LeaseLost:
            pass  # the job is another worker's now: the dispatcher has said so, and stops the stage
        except Exception:
            log.warning("progress edit for job %s failed; the next one retries", self._ctx.job.id, exc_info=True)

    async def send(self, job: Job | None = None) -> None:
        """Edit the comment and the check run now, if what they would show changed: for `job`, a
        change about to be saved (see JobContext.update_shown), or else the job as it is."""
        job = job or self._ctx.job
        wait = self._ctx.wait_of(job)  # a queued job's place in line, or the job it follows
        comment = render.tracking_comment(job, prefix=self._prefix, public_url=self._ctx.settings.public_url,
                                          progress=self.progress, wait=wait)
        if job.outcome is not None:
            check = render.check_run_final(job, self.progress)
        elif job.state in WAITING_STATES:
            check = render.check_run_waiting(job, self.progress, wait)
        else:
            check = render.check_run_progress(job, self.progress)
        key = (comment, repr(check))
        if key == self._last_body:
            return
        self._last_sent = time.monotonic()
        self._last_body = key
        self.edits += 1
        github = self._ctx.github
        await asyncio.gather(github.edit_comment(job.tracking_comment_id, comment),
                             github.update_check_run(job.check_run_id, check))
        if self._ctx.queue is not None:
            self._ctx.queue.shown(job, wait)

    def close(self) -> None:
        """No edit after this: a stage that failed must not have its failure overwritten by progress."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()

    @classmethod
    async def redraw(cls, ctx: JobContext, job: Job | None = None) -> None:
        """The tracking comment and the check run, redrawn once for the job's state (no run is under way)."""
        await cls(ctx, Progress(), prefix=ctx.service_config.command_prefix, interval=0).final(job)

    async def final(self, job: Job | None = None) -> None:
        """The last edit: waits for nothing, and its failure is the caller's to handle."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._last_body = None
        await self.send(job)
