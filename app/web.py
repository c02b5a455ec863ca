"""The HTTP side: POST /webhooks, GET /health, GET /jobs/{id}. It only reads and writes the
store; the worker (in this process or another) does everything that talks to GitHub."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from app.config import BotConfig
from app.settings import Settings
from app.store.base import JobStore
from app.webhook import make_handler


def make_web_app(
    settings: Settings,
    store: JobStore,
    config: BotConfig,
    *,
    on_stored: Callable[[], None] = lambda: None,
    worker_alive: Callable[[], bool] = lambda: True,
    worker_pid: Callable[[], int | None] = lambda: None,
) -> web.Application:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ValueError("missing settings: AGENTVINE_WEBHOOK_SECRET")
    app = web.Application(client_max_size=settings.max_body_bytes)
    app.router.add_post(
        "/webhooks",
        make_handler(
            secret=settings.webhook_secret.get_secret_value(),
            store=store,
            command_prefix=config.command_prefix,
            label_prefix=config.label_prefix,
            on_stored=on_stored,
        ),
    )

    async def health(_request: web.Request) -> web.Response:
        if not store.healthy():
            return web.json_response({"status": "store unavailable"}, status=503)
        if not worker_alive():
            return web.json_response({"status": "worker not running"}, status=503)
        return web.json_response({"status": "ok", "worker_pid": worker_pid()})

    async def job_page(request: web.Request) -> web.Response:
        # Linked from check runs, so anyone who can see the check run may follow it: it shows
        # the job's progress, not the text.
        job = store.get_job(request.match_info["job_id"])
        if job is None:
            raise web.HTTPNotFound(text="no such job")
        public = job.model_dump(
            mode="json",
            include={"id", "state", "reason", "conclusion", "worker", "level", "model", "created_at", "updated_at"},
        )
        events = [{"at": e.at, "kind": e.kind} for e in store.events(job.id)]
        return web.json_response({"job": public, "events": events})

    app.router.add_get("/health", health)
    app.router.add_get("/jobs/{job_id}", job_page)
    return app
