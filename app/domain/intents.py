"""What a delivery asks of AgentVine, decided without any I/O, and the one list of commands.

Routers (app/intake/routing/) turn events into intents; the worker's inbox import stores them (a
StartJob becomes a queued job, a JobCommand a pending command) and the dispatcher acts on them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from app.domain.ci import CISignal
from app.domain.job import Trigger


class Command(StrEnum):
    """Everything a JobCommand can ask; app/pipeline/commands.py has one handler for each."""

    APPROVE = "approve"
    CANCEL = "cancel"
    RETRY = "retry"
    STATUS = "status"
    HELP = "help"
    REVIEW = "review"
    ANSWER = "answer"  # any other comment, where the agent waits for an answer
    EDIT = "edit"  # a comment edited to hold a new instruction: it adds to work under way, never starts any
    REVIEW_COMMENT = "review_comment"  # a review comment on AgentVine's pull request
    REMOVE_INSTALLATION = "remove_installation"  # AgentVine lost access to a repository
    RUN_CI = "run_ci"  # a maintainer read the diff: let the repository's CI run on it
    CI_COMPLETED = "ci_completed"  # the repository's CI finished (or failed) on a branch of AgentVine's
    # A worker's housekeeping found a question unanswered too long. A command, not a direct write: it is
    # carried out once across workers and in turn with an answer on the same issue (app/pipeline/questions.py).
    EXPIRE_QUESTION = "expire_question"


#: What people may type after the prefix (`/agentvine approve`); anything else is an instruction.
SLASH_COMMANDS = (Command.APPROVE, Command.CANCEL, Command.RETRY, Command.STATUS, Command.HELP, Command.REVIEW)
#: The buttons AgentVine puts on its check runs; GitHub sends back the identifier (≤ 20 characters).
BUTTONS = (Command.APPROVE, Command.CANCEL, Command.RETRY, Command.RUN_CI)


class StartJob(BaseModel):
    installation_id: int
    repo: str
    default_branch: str
    issue_number: int
    is_pull_request: bool
    issue_title: str
    requester: str
    requester_id: int | None = None
    trigger: Trigger
    labels: list[str] = []
    head_sha: str | None = None  # the PR's head for jobs on a pull request


class JobCommand(BaseModel):
    """A request about existing work: from a comment, a check-run button or an installation change."""

    name: Command
    installation_id: int
    repo: str
    sender: str
    issue_number: int | None = None
    job_id: str | None = None  # known when the command comes from a check run (external_id)
    comment_id: int | None = None
    text: str | None = None
    ci: CISignal | None = None  # for ci_completed: what finished, where
    asked_at: float | None = None  # for expire_question: the waiting it ends (the job's updated_at then)
    delivery_id: str | None = None  # set when stored


Intent = StartJob | JobCommand
