"""CI on AgentVine's own pull requests: what routing hands the worker when a repository's checks finish
on one of AgentVine's branches, and what a follow-up job carries of the failure it is to fix (the
failing checks' output and annotations as the Checks API gave them, cut to a prompt's size)."""

from __future__ import annotations

from pydantic import BaseModel, Field

BRANCH_PREFIX = "agentvine/"  # every branch AgentVine opens a pull request from (app/agent/boundary/workspace.py)
# The conclusions that count as CI failing (GitHub's `timed_out`: a check that hung, which a fix may cure too).
FAILING = ("failure", "timed_out")

# What a prompt takes of the Checks API's answers: enough to find the cause, never a log's megabytes.
MAX_CHECKS = 10  # failing checks described
MAX_ANNOTATIONS = 20  # per check
MAX_OUTPUT_CHARS = 6_000  # a check's summary, and its text
MAX_MESSAGE_CHARS = 1_000  # an annotation's message
MAX_NAME_CHARS = 200


class CISignal(BaseModel):
    """A check suite completed, or a check run failed, on a branch of AgentVine's: the worker looks at
    the commit's checks through the Checks API and decides (app/pipeline/ci_follow.py)."""

    event: str  # "check_suite" or "check_run"
    sha: str
    branch: str
    pulls: list[int]  # the open pull requests GitHub says have this head
    app_id: int | None = None  # the App whose suite or run it is (AgentVine's own start nothing)
    conclusion: str | None = None


class Annotation(BaseModel):
    path: str
    start_line: int
    end_line: int
    level: str | None = None
    title: str | None = None
    message: str | None = None


class FailedCheck(BaseModel):
    """One failing check run of the repository's CI, as its App reported it."""

    name: str
    conclusion: str
    app: str | None = None  # the App's slug (`github-actions`)
    url: str | None = None  # GitHub's html_url of the run
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[Annotation] = Field(default_factory=list)
    annotations_left_out: int = 0


class CIFailure(BaseModel):
    """On a follow-up job's trigger: the failure it is to fix, and where it stands in the rounds."""

    sha: str  # the pull request's head when CI failed on it
    pr_number: int
    issue_number: int  # the issue the pull request is for
    follows: str  # the job that opened the pull request
    level: str  # that job's level, which the follow-up keeps
    round: int
    max_rounds: int
    checks: list[FailedCheck]
    checks_left_out: int = 0
