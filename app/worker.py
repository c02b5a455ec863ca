"""The worker: GitHub clients, the dispatcher and the job stages. Runs next to the web app in
one process (tests, demo) or in a process of its own (`agentvine serve`)."""

from __future__ import annotations

import logging

from app.config import BotConfig
from app.dispatcher import Dispatcher, Limits, Stage
from app.github.client import GitHubClients
from app.intents import JobCommand
from app.jobs import Job, JobState
from app.pipeline.acknowledge import acknowledge
from app.pipeline.context import JobContext
from app.pipeline.failure import fail_job
from app.settings import Settings
from app.store.base import JobStore

log = logging.getLogger(__name__)

ACK_CONCURRENCY = 16  # acknowledgements are a handful of API calls each


class Worker:
    def __init__(self, settings: Settings, store: JobStore, config: BotConfig, *, poll_interval: float = 2.0) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.clients: GitHubClients | None = None
        self.dispatcher = Dispatcher(
            store,
            [Stage("acknowledge", JobState.QUEUED, self._acknowledge, Limits(total=ACK_CONCURRENCY))],
            on_command=self._command,
            on_error=self._failed,
            poll_interval=poll_interval,
        )

    async def start(self) -> None:
        pem = self.settings.private_key_pem()
        if pem is None or self.settings.app_id is None:
            raise ValueError("the worker needs AGENTVINE_APP_ID and a private key")
        self.clients = GitHubClients(app_id=self.settings.app_id, private_key_pem=pem, base_url=self.settings.github_api_url)
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        if self.clients is not None:
            await self.clients.close()

    def context(self, job: Job) -> JobContext:
        assert self.clients is not None, "the worker is not started"
        return JobContext(
            job=job,
            api=self.clients.for_installation(job.installation_id),
            store=self.store,
            settings=self.settings,
            service_config=self.config,
        )

    async def _acknowledge(self, job: Job) -> None:
        await acknowledge(self.context(job))

    async def _failed(self, job: Job, exc: BaseException) -> None:
        await fail_job(self.context(job), exc)

    async def _command(self, command: JobCommand) -> str:
        if command.name == "remove_installation":
            cancelled = 0
            for job in self.store.list_jobs([JobState.QUEUED, JobState.WAITING_FOR_APPROVAL], repo=command.repo):
                reason = "AgentVine was removed from the repository"
                self.store.save_job(job.moved_to(JobState.CANCELLED, reason), "cancelled")
                cancelled += 1
            return f"cancelled {cancelled} job(s)"
        return f"{command.name}: not handled by this version"
