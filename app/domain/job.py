"""The job: what was asked, by whom, and where it stands. Pure data and rules, no I/O."""

from __future__ import annotations

import secrets
import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from app.domain.egress import EgressReport
from app.domain.ci import CIFailure
from app.domain.findings import RequestChangesOn, ReviewLedger
from app.domain.steps import Step, StepResult


# A check run's external_id names the job it belongs to: how a button press finds its job again.
EXTERNAL_ID_PREFIX = "agentvine:"


def external_id(job_id: str) -> str:
    return EXTERNAL_ID_PREFIX + job_id


def job_id_from_external(value: str) -> str | None:
    """The job a check run belongs to, or None for another app's check run."""
    return value.removeprefix(EXTERNAL_ID_PREFIX) if value.startswith(EXTERNAL_ID_PREFIX) else None


class JobState(StrEnum):
    QUEUED = "queued"  # stored, not yet looked at by the dispatcher
    ACKNOWLEDGED = "acknowledged"  # authorized, 👀 + tracking comment + check run are out
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    WAITING_FOR_JOB = "waiting_for_job"  # a follow-up: runs once the job before it on the issue has ended
    RUNNING = "running"
    WAITING_FOR_ANSWER = "waiting_for_answer"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # never started: not authorized, not mapped, bad config


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})

# Which state may follow which. Anything not listed is a bug in the caller.
_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.ACKNOWLEDGED, JobState.WAITING_FOR_APPROVAL, JobState.WAITING_FOR_JOB, JobState.REJECTED,
         JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.WAITING_FOR_JOB: frozenset(
        {JobState.ACKNOWLEDGED, JobState.WAITING_FOR_APPROVAL, JobState.CANCELLED, JobState.FAILED}
    ),
    JobState.WAITING_FOR_APPROVAL: frozenset({JobState.ACKNOWLEDGED, JobState.CANCELLED, JobState.FAILED}),
    JobState.ACKNOWLEDGED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.WAITING_FOR_ANSWER, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.ACKNOWLEDGED}
    ),
    JobState.WAITING_FOR_ANSWER: frozenset({JobState.ACKNOWLEDGED, JobState.CANCELLED, JobState.FAILED}),
}


class InvalidTransition(RuntimeError):
    pass


class Trigger(BaseModel):
    """What started the job: a label on an issue/PR, a slash command in a comment, CI failing on
    AgentVine's own pull request (`ci`: the failure, app/pipeline/ci_follow.py), or a push to a PR
    (`pull_request.synchronize`: a review of what is new, if the repository wants one)."""

    kind: Literal["label", "command", "ci", "push"]
    worker: str | None = None  # a command that names its worker (`review`), else from config
    label: str | None = None
    instruction: str | None = None
    # Who wrote the instruction; a retry keeps it while the job's requester is whoever asked again.
    instruction_by: str | None = None
    comment_id: int | None = None
    ci: CIFailure | None = None
    full: bool = False  # `/agentvine review full`: the whole pull request again, not only what is new
    # An edited comment (a new instruction in it): it never starts work of its own, only adds to work under way.
    edited: bool = False


Conclusion = Literal["success", "failure", "neutral", "timed_out", "cancelled"]


class RunSettings(BaseModel):
    """The worker settings in force when the job was admitted (the run uses exactly these)."""

    prompt_template: str
    max_turns: int
    timeout_minutes: float
    max_cost_usd: float
    allowed_tools: list[str]
    allowed_paths: list[str]
    allow_workflow_changes: bool
    trigger_permission: str
    approve_permission: str = "maintain"
    question_expiry_hours: float = 72.0
    memory: str
    cpus: float
    pids: int
    # `sandbox.image` as the config named it (a profile, an allowed image, or `default`); the
    # settings resolve it (Settings.image_for). Jobs stored before it existed run the operator's.
    image: str = "default"
    # The workspace's limits (jobs stored before they existed get the shipped defaults).
    max_size_mb: int = 4096
    max_files: int = 100_000
    max_file_mb: int = 50
    max_changed_files: int = 1000
    # What the sandbox may reach through the egress proxy, and when (docs/sandbox.md, "Egress").
    egress_allow: list[str] = Field(default_factory=list)
    egress_during: Literal["setup", "run"] = "setup"
    request_changes_on: RequestChangesOn = "never"  # a review: REQUEST_CHANGES from this severity on
    # The repository's setup and verify commands (app/domain/steps.py; none for jobs stored before them).
    setup: list[Step] = Field(default_factory=list)
    verify: list[Step] = Field(default_factory=list)
    verify_max_attempts: int = 2
    verify_on_failure: Literal["draft", "fail"] = "draft"
    step_timeout_minutes: float = 10.0
    step_output_kb: int = 64


class Figures(BaseModel):
    turns: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    model_s: float | None = None  # time the CLI spent waiting on the model API


class Outcome(BaseModel):
    conclusion: Conclusion
    title: str  # one line: what happened
    detail: str = ""  # what happened, and what to do next
    summary: str = ""  # the agent's own final text
    files: list[str] = Field(default_factory=list)
    figures: Figures = Field(default_factory=Figures)
    pr_number: int | None = None
    pr_url: str | None = None
    annotations: list[dict] = Field(default_factory=list)  # check-run annotations (review findings)
    steps: list[StepResult] = Field(default_factory=list)  # setup and verify commands, every attempt


def new_job_id() -> str:
    """128 random bits: the id is the key to the job's page (a check run's Details link opens it for
    anyone), so it must not be guessable. uuid4().hex[:16] gave 60."""
    return secrets.token_hex(16)


class Job(BaseModel):
    id: str = Field(default_factory=new_job_id)
    delivery_id: str
    installation_id: int
    repo: str  # "owner/name"
    default_branch: str = "main"
    issue_number: int
    is_pull_request: bool = False
    issue_title: str = ""
    requester: str
    requester_id: int | None = None
    trigger: Trigger
    labels: list[str] = Field(default_factory=list)  # the issue's labels when the job was asked for

    state: JobState = JobState.QUEUED
    reason: str | None = None  # why it is in this state, in words a person can act on
    # What interrupted an earlier run of this job (its worker stopped, another took it over): shown for
    # the rest of the job's life on the tracking comment and the check run.
    interruption: str | None = None
    conclusion: str | None = None  # the check run's conclusion once terminal

    # Decided by the pipeline from the repository's config.
    worker: str | None = None
    level: str | None = None
    model: str | None = None

    # What the job has put on GitHub, so a restart edits instead of duplicating.
    head_sha: str | None = None
    tracking_comment_id: int | None = None
    check_run_id: int | None = None
    check_run_url: str | None = None  # GitHub's html_url of the check run (right on any GitHub host)
    pull_url: str | None = None  # for work on a pull request: its html_url
    reacted: bool = False
    # A follow-up: the job on the same issue it runs after, on that job's branch (docs/usage.md).
    follows: str | None = None

    run: RunSettings | None = None
    branch: str | None = None
    base_branch: str | None = None  # what the work starts from: the default branch, or the PR's own branch
    remote_sha: str | None = None  # the job branch's remote tip when the work started (push lease)
    session_id: str | None = None  # Claude Code's session, to resume it
    question: str | None = None  # what the agent asked, while waiting for an answer
    answer: str | None = None  # the answer to pass on when the session resumes
    answered_by: str | None = None
    outcome: Outcome | None = None
    egress: EgressReport | None = None  # what the sandbox reached or was refused, over all its runs
    review: ReviewLedger | None = None  # a published review, and the PR's findings as it left them

    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repo.split("/", 1)[1]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def agent_started(self) -> bool:
        """Whether its agent has run (or runs): a comment written now is no longer read into its prompt."""
        return self.state in (JobState.RUNNING, JobState.WAITING_FOR_ANSWER) or self.answer is not None

    @property
    def commits_skip_ci(self) -> bool:
        """Its commits carry `skip-checks: true`: CI runs changed code with the repository's secrets,
        so only after a person has read it, unless the operator trusts the level (`autonomous`)."""
        return self.level != "autonomous"

    @property
    def ci_held_back(self) -> bool:
        """It pushed commits that skipped CI, and a maintainer may now let CI run (Run CI)."""
        pushed = self.outcome is not None and self.outcome.pr_number is not None and self.worker != "review"
        return pushed and self.commits_skip_ci and self.state is JobState.SUCCEEDED

    @property
    def resumes_session(self) -> bool:
        """An answer came and the agent's session, kept on this machine, goes on with it."""
        return self.answer is not None and self.session_id is not None

    def moved_to(self, state: JobState, reason: str | None = None, *, conclusion: str | None = None) -> Job:
        """A copy of the job in `state`; raises InvalidTransition for a move the rules forbid."""
        if state != self.state and state not in _ALLOWED.get(self.state, frozenset()):
            raise InvalidTransition(f"job {self.id}: {self.state} -> {state}")
        return self.model_copy(
            update={"state": state, "reason": reason, "conclusion": conclusion or self.conclusion, "updated_at": time.time()}
        )


class JobEvent(BaseModel):
    job_id: str
    seq: int = 0  # its place in the store's log (0: the job's creation, which the job row records)
    at: float
    kind: str
    data: dict = Field(default_factory=dict)


class Delivery(BaseModel):
    """One webhook delivery as received; `outcome` says what became of it."""

    id: str
    event: str
    action: str | None = None
    installation_id: int | None = None
    repo: str | None = None
    received_at: float = Field(default_factory=time.time)
    outcome: str = ""
    body_sha256: str | None = None  # kept for a delivery that started work: a replay of it starts nothing
