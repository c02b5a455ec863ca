"""What a queued job shows of why it waits (app/domain/queue.py): one line for the tracking comment and the
check run's summary, and the check run's title. Pure."""

from __future__ import annotations

from app.domain.job import Job
from app.domain.queue import PLACES_SHOWN, After, Place, Wait
from app.pipeline.present import texts


def _limit(place: Place) -> str:
    jobs = "job" if place.limit == 1 else "jobs"
    return texts.WAIT_LIMIT[place.scope].format(limit=place.limit, jobs=jobs)


def wait_line(wait: Wait | None) -> str | None:
    """One line of Markdown; None when the job does not wait (it starts now, or waits for a person)."""
    if isinstance(wait, After):
        return texts.WAIT_AFTER.format(worker=wait.worker or "a", job_id=wait.job_id,
                                       state=texts.STATE_HEADLINE[wait.state.value])
    if wait is None:
        return None
    if wait.limit == 0 and wait.scope == "service":
        return texts.WAIT_PAUSED
    if wait.beyond:
        return texts.WAIT_BEYOND.format(shown=PLACES_SHOWN, limit=_limit(wait))
    return texts.WAIT_PLACE.format(place=f"#{wait.position}", limit=_limit(wait))


def wait_title(job: Job, wait: Wait | None) -> str:
    """The queued check run's title."""
    fields = {"worker": job.worker, "issue_number": job.issue_number}
    if isinstance(wait, After):
        return texts.CHECK_RUN_TITLE["waiting_for_job"].format(**fields)
    if isinstance(wait, Place) and wait.limit > 0:
        place = f"#{wait.position}" if not wait.beyond else f"#{PLACES_SHOWN}+"
        return texts.CHECK_RUN_TITLE["in_line"].format(place=place, **fields)
    return texts.CHECK_RUN_TITLE["queued"].format(**fields)
