"""What every pipeline stage works with."""

from __future__ import annotations

from dataclasses import dataclass

from app.agent import workspace
from app.domain.config import BotConfig
from app.github.client import InstallationAPI
from app.agent.hostgit import GitUser
from app.domain.job import Job
from app.agent.sandbox.disk import JobDisk, choose_mode
from app.settings import Settings
from app.store.base import JobStore


@dataclass
class JobContext:
    job: Job
    api: InstallationAPI
    store: JobStore
    settings: Settings
    service_config: BotConfig  # the shipped defaults: prefix and labels used by routing

    def save(self, job: Job, event: str, **data: object) -> Job:
        self.store.save_job(job, event, **data)
        self.job = job
        return job

    def workspace(self) -> workspace.Workspace:
        """The job's files on the host (app/workspace.py), whether they exist yet or not."""
        job, run = self.job, self.job.run
        root = workspace.job_root(self.settings.data_dir, job.id)
        size, files = (run.max_size_mb, run.max_files) if run else (0, 0)  # only a run's quota is checked
        disk = JobDisk(root, choose_mode(self.settings.workspace_disk), max_size_mb=size, max_files=files)
        return workspace.Workspace(disk, job.branch or "", GitUser.parse(self.settings.git_user))

    def discard_files(self) -> None:
        """Every terminal path ends here: the workspace, the agent's home, the host repository."""
        workspace.discard(self.workspace().disk)
