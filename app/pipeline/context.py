"""What every pipeline stage works with, and the one way a stage changes its job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from app import metrics
from app.agent.boundary import workspace
from app.domain.config import BotConfig
from app.github.client import InstallationAPI
from app.github.ops import RepoOps
from app.agent.boundary.hostgit import GitUser
from app.domain.job import Job, JobState
from app.domain.queue import Wait
from app.agent.sandbox.disk import JobDisk, choose_mode
from app.settings import Settings
from app.store.base import JobStore


# The permissions each step's installation token carries (for the job's one repository): no step
# holds more than it uses, and none can reach another repository of the installation.
STEP_PERMISSIONS: dict[str, dict[str, str]] = {
    # .github/agentvine.yml and the branch's head; 👀 and the tracking comment; the check run; a PR's head
    "acknowledge": {"metadata": "read", "contents": "read", "issues": "write", "checks": "write",
                    "pull_requests": "read"},
    # clone and push the job's branch; questions and progress; the check run; the pull request or review
    "run": {"metadata": "read", "contents": "write", "issues": "write", "checks": "write", "pull_requests": "write"},
    # replies and reactions (on a review comment: pull_requests), redrawn reports, a PR's head, Run CI's commit
    "command": {"metadata": "read", "contents": "write", "issues": "write", "checks": "write",
                "pull_requests": "write"},
}


def step_permissions(job: Job, step: str) -> dict[str, str]:
    """A step's permissions; a run that may change workflows needs the `workflows` permission too."""
    permissions = dict(STEP_PERMISSIONS[step])
    if step == "run" and job.run is not None and job.run.allow_workflow_changes:
        permissions["workflows"] = "write"
    return permissions


# A job in one of these shows why it waits, when the queue knows (a resumed job's check run is done: not it).
QUEUED_STATES = (JobState.ACKNOWLEDGED, JobState.WAITING_FOR_JOB)


class QueueView(Protocol):
    """The queue as the engine's dispatcher sees it (app/engine/queue.py)."""

    def wait(self, job: Job) -> Wait | None:
        """Why `job`, as it is about to be shown, waits: its place in line and the limit that holds it, or the
        job it follows; None when it would start now."""

    def shown(self, job: Job, wait: Wait | None) -> None:
        """`job` is on GitHub now as waiting for `wait`: the queue edits it again only once that changes."""


@dataclass
class JobContext:
    job: Job
    api: InstallationAPI
    store: JobStore
    settings: Settings
    service_config: BotConfig  # the shipped defaults: prefix and labels used by routing
    queue: QueueView | None = None  # None: queued jobs show no place in line (a context without a dispatcher)

    def wait_of(self, job: Job) -> Wait | None:
        """What `job` (as it is about to be shown) waits for, if it is queued and the queue knows."""
        if self.queue is None or job.state not in QUEUED_STATES or job.answer is not None:
            return None
        return self.queue.wait(job)

    @property
    def github(self) -> RepoOps:
        """The GitHub calls about the job's repository."""
        return RepoOps(self.api, self.job.owner, self.job.name)

    def update(self, event: str, *, to: JobState | None = None, reason: str | None = None,
               conclusion: str | None = None, log: dict | None = None, **fields: object) -> Job:
        """Change the job and save it with an event (`log` goes into the event): the one way a stage
        changes its job, so what the context holds and what the store holds never differ."""
        return self._save(self.pending(to=to, reason=reason, conclusion=conclusion, **fields), event, log)

    async def update_shown(self, show: Callable[[Job], Awaitable[object]], event: str, *, to: JobState | None = None,
                           reason: str | None = None, conclusion: str | None = None, log: dict | None = None,
                           **fields: object) -> Job:
        """`update`, after `show(job)` put the changed job on GitHub: people see a new state at once,
        and a crash before the save repeats the stage, which edits what it showed."""
        job = self.pending(to=to, reason=reason, conclusion=conclusion, **fields)
        await show(job)
        return self._save(job, event, log)

    def reload(self) -> Job:
        """The job as the store has it (a stage that failed may have saved more than it handed back)."""
        self.job = self.store.get_job(self.job.id) or self.job
        return self.job

    def _save(self, job: Job, event: str, log: dict | None) -> Job:
        self.store.save_job(job, event, **(log or {}))
        if job.state is not self.job.state:
            metrics.job_moved(job.worker, job.state.value, job.terminal, job.conclusion, job.updated_at - job.created_at)
        self.job = job
        return job

    def pending(self, *, to: JobState | None = None, reason: str | None = None, conclusion: str | None = None,
                **fields: object) -> Job:
        """The job as `update` would save it."""
        job = self.job.model_copy(update=fields) if fields else self.job
        return job.moved_to(to, reason, conclusion=conclusion) if to is not None else job

    def workspace(self) -> workspace.Workspace:
        """The job's files on the host (app/agent/boundary/workspace.py), whether they exist yet or not."""
        job, run = self.job, self.job.run
        root = self.settings.jobs_dir / job.id
        size, files = (run.max_size_mb, run.max_files) if run else (0, 0)  # only a run's quota is checked
        disk = JobDisk(root, choose_mode(self.settings.workspace_disk), max_size_mb=size, max_files=files)
        return workspace.Workspace(disk, job.branch or "", GitUser.parse(self.settings.git_user))

    def discard_files(self) -> None:
        """Every terminal path ends here: the workspace, the agent's home, the host repository."""
        workspace.discard(self.workspace().disk)
