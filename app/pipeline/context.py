"""What every pipeline stage works with."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import BotConfig
from app.github.client import InstallationAPI
from app.jobs import Job
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
