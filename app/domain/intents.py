"""What a webhook asks of AgentVine, decided in the request without any I/O.

Routers turn events into intents; the webhook endpoint persists them (a StartJob becomes a
queued job, a JobCommand a queued command) and the dispatcher acts on them later."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.domain.job import Trigger

CommandName = Literal[
    "approve", "cancel", "retry", "status", "help", "review", "answer", "review_comment", "remove_installation"
]


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

    name: CommandName
    installation_id: int
    repo: str
    sender: str
    issue_number: int | None = None
    job_id: str | None = None  # known when the command comes from a check run (external_id)
    comment_id: int | None = None
    text: str | None = None
    delivery_id: str | None = None  # set when stored


Intent = StartJob | JobCommand
