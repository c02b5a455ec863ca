"""Pure rendering of what a job shows on GitHub: the tracking comment and the check run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app import texts
from app.jobs import Job, JobState

# GitHub's limit on a check run's output.summary and a comment's body is 65535 characters.
MAX_TEXT = 65_000


@dataclass
class Progress:
    """What the pipeline has done so far; the steps tick as it goes."""

    steps: tuple[str, ...] = texts.DEFAULT_STEPS
    done: int = 0
    activity: list[str] = field(default_factory=list)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 20] + "\n\n…(truncated)"


def _promise(job: Job, prefix: str) -> str:
    return texts.LEVEL_PROMISE.get(job.level or "", "").format(prefix=prefix)


def details_url(public_url: str, job: Job) -> str:
    return f"{public_url.rstrip('/')}/jobs/{job.id}"


def tracking_comment(job: Job, *, prefix: str, public_url: str, progress: Progress | None = None) -> str:
    progress = progress or Progress()
    steps = "\n".join(f"- [{'x' if i < progress.done else ' '}] {step}" for i, step in enumerate(progress.steps))
    return _clip(
        texts.TRACKING_COMMENT.format(
            marker=texts.TRACKING_MARKER.format(job_id=job.id),
            worker=job.worker,
            headline=texts.STATE_HEADLINE[job.state.value],
            requester=job.requester,
            level=job.level,
            model=job.model,
            reason=f"\n{job.reason}\n" if job.reason else "",
            steps=steps,
            promise=_promise(job, prefix),
            job_id=job.id,
            details_url=details_url(public_url, job),
            prefix=prefix,
        )
    )


def check_run_name(job: Job) -> str:
    return texts.CHECK_RUN_NAME.format(worker=job.worker or "job")


def check_run_create(job: Job, *, prefix: str, public_url: str) -> dict[str, Any]:
    """The body of POST /repos/{owner}/{repo}/check-runs for a freshly acknowledged job."""
    fields = {"worker": job.worker, "issue_number": job.issue_number}
    state = "waiting_for_approval" if job.state is JobState.WAITING_FOR_APPROVAL else "queued"
    return {
        "name": check_run_name(job),
        "head_sha": job.head_sha,
        "external_id": texts.CHECK_RUN_EXTERNAL_ID.format(job_id=job.id),
        "details_url": details_url(public_url, job),
        "status": "queued",
        "output": {
            "title": texts.CHECK_RUN_TITLE[state].format(**fields),
            "summary": _clip(
                texts.CHECK_RUN_SUMMARY.format(
                    requester=job.requester,
                    worker=job.worker,
                    issue_number=job.issue_number,
                    level=job.level,
                    model=job.model,
                    promise=_promise(job, prefix),
                )
            ),
        },
    }


def config_problems(problems: list[str]) -> str:
    return "\n".join(f"- `{p.split(': ', 1)[0]}`: {p.split(': ', 1)[1]}" if ": " in p else f"- {p}" for p in problems)
