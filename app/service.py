"""Wires the parts together: store, GitHub clients, dispatcher and the HTTP app."""

from __future__ import annotations

import logging

from aiohttp import web

from app.config import BotConfig, load_default
from app.dispatcher import Dispatcher, Limits, Stage
from app.github.client import GitHubClients
from app.intents import JobCommand
from app.jobs import Job, JobState
from app.pipeline.acknowledge import acknowledge
from app.pipeline.context import JobContext
from app.pipeline.failure import fail_job
from app.settings import Settings
from app.store import SQLiteJobStore
from app.store.base import JobStore
from app.webhook import make_handler

log = logging.getLogger(__name__)

ACK_CONCURRENCY = 16  # acknowledgements are a handful of API calls each


class Service:
    def __init__(self, settings: Settings, *, store: JobStore | None = None, config: BotConfig | None = None) -> None:
        missing = settings.missing_for_serve()
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        self.settings = settings
        self.config = config or load_default(settings.bot_config)
        self.store = store or SQLiteJobStore(settings.database_path)
        self.clients: GitHubClients | None = None
        self.dispatcher = Dispatcher(
            self.store,
            [Stage("acknowledge", JobState.QUEUED, self._acknowledge, Limits(total=ACK_CONCURRENCY))],
            on_command=self._command,
            on_error=self._failed,
        )

    def context(self, job: Job) -> JobContext:
        assert self.clients is not None, "the service is not started"
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
            cancelled = []
            for job in self.store.list_jobs([JobState.QUEUED, JobState.WAITING_FOR_APPROVAL], repo=command.repo):
                self.store.save_job(job.moved_to(JobState.CANCELLED, "AgentVine was removed from the repository"), "cancelled")
                cancelled.append(job.id)
            return f"cancelled {len(cancelled)} job(s)"
        return f"{command.name}: not handled by this version"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        assert self.settings.webhook_secret is not None
        app.router.add_post(
            "/webhooks",
            make_handler(
                secret=self.settings.webhook_secret.get_secret_value(),
                store=self.store,
                command_prefix=self.config.command_prefix,
                label_prefix=self.config.label_prefix,
                on_stored=self.dispatcher.wake,
            ),
        )
        app.router.add_get("/health", self._health)
        app.router.add_get("/jobs/{job_id}", self._job_page)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _app: web.Application) -> None:
        pem = self.settings.private_key_pem()
        assert pem is not None and self.settings.app_id is not None
        self.clients = GitHubClients(app_id=self.settings.app_id, private_key_pem=pem, base_url=self.settings.github_api_url)
        await self.dispatcher.start()

    async def _cleanup(self, _app: web.Application) -> None:
        await self.dispatcher.stop()
        if self.clients is not None:
            await self.clients.close()
        self.store.close()

    async def _health(self, _request: web.Request) -> web.Response:
        if self.store.healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "store unavailable"}, status=503)

    async def _job_page(self, request: web.Request) -> web.Response:
        job = self.store.get_job(request.match_info["job_id"])
        if job is None:
            raise web.HTTPNotFound(text="no such job")
        events = [e.model_dump() for e in self.store.events(job.id)]
        return web.json_response({"job": job.model_dump(mode="json"), "events": events})
