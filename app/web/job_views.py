"""What the job views show, as the models they answer with: a job's own page (anyone who has its id),
its events, and the operator's list. Issue text never gets here: the title, the instruction, the question
and its answer, the branch (named after the title) and the agent's own words stay in the store."""

from __future__ import annotations

from pydantic import BaseModel

from app.domain.job import TERMINAL_STATES, Job, JobEvent, JobState

# The data of an event that may be shown: states, conclusions, numbers. Anything else an event carries
# (a question, a branch, who asked) is left out rather than trusted to be harmless.
EVENT_DATA_SHOWN = ("state", "conclusion", "exit_code", "resumed", "interrupted_in", "holder", "previous_holder")
Scalar = str | int | float | bool | None


class PublicJob(BaseModel):
    """A job as its page shows it; the check run's Details link leads here, so no issue text."""

    id: str
    state: JobState
    reason: str | None = None
    conclusion: str | None = None
    worker: str | None = None
    level: str | None = None
    model: str | None = None
    created_at: float
    updated_at: float

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class PublicEvent(BaseModel):
    seq: int  # the SSE event id: a stream resumes after it
    at: float
    kind: str
    data: dict[str, Scalar] = {}


class JobSummary(PublicJob):
    """A job in the operator's list: where it came from too, still no issue text."""

    repo: str
    issue_number: int
    is_pull_request: bool = False
    requester: str
    pr_url: str | None = None  # GitHub's html_url of the pull request it opened
    cost_usd: float | None = None
    duration_s: float | None = None


class JobList(BaseModel):
    """GET /jobs as JSON; `next` is the URL of the next (older) page, None on the last."""

    jobs: list[JobSummary]
    next: str | None = None


def public_job(job: Job) -> PublicJob:
    return PublicJob.model_validate(job.model_dump(include=set(PublicJob.model_fields)))


def public_event(event: JobEvent) -> PublicEvent:
    data = {k: event.data[k] for k in EVENT_DATA_SHOWN if k in event.data and isinstance(event.data[k], Scalar)}
    return PublicEvent(seq=event.seq, at=event.at, kind=event.kind, data=data)


def is_terminal(event: PublicEvent) -> bool:
    """Whether the event moved its job to a state it never leaves (save_job records the state)."""
    return event.data.get("state") in {s.value for s in TERMINAL_STATES}


def summary(job: Job) -> JobSummary:
    outcome = job.outcome
    return JobSummary(
        **public_job(job).model_dump(), repo=job.repo, issue_number=job.issue_number,
        is_pull_request=job.is_pull_request, requester=job.requester,
        pr_url=outcome.pr_url if outcome else None,
        cost_usd=outcome.figures.cost_usd if outcome else None,
        duration_s=outcome.figures.duration_s if outcome else None,
    )
