"""The HTTP side: POST /webhooks, GET /health, GET /deliveries/{id}, GET /metrics, and the job views
(app/web/jobs.py). It appends to the inbox (app/web/inbox_sink.py) and reads the store; the worker (in this
process or another) does everything that talks to GitHub."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

from aiohttp import web

from app.settings import Settings
from app.store.base import JobStore
from app.web.inbox_sink import INBOX_SINK, add_inbox_sink
from app.web.jobs import add_job_routes
from app.web.live import LiveOptions
from app.web.metrics import add_metrics_route
from app.web.webhook import make_handler


HEALTH_STORE_DOWN = "store unavailable"
HEALTH_WORKER_DOWN = "worker not running"
HEALTH_INBOX_DOWN = "inbox table unavailable"  # the store answers, but this instance cannot write deliveries
INBOX_PROBE_S = 2.0  # /health says "unavailable" sooner than a delivery would be answered 503


def _disk(settings: Settings) -> dict[str, int]:
    """The data directory's file system (what jobs, each up to workspace.max_size_mb, still have), and
    how many job folders it holds (a number that only grows means files are leaking)."""
    usage = shutil.disk_usage(settings.data_dir)
    jobs = settings.jobs_dir
    return {"total_bytes": usage.total, "free_bytes": usage.free,
            "job_folders": sum(1 for _ in jobs.iterdir()) if jobs.is_dir() else 0}


def make_web_app(
    settings: Settings,
    store: JobStore,
    *,
    on_stored: Callable[[], None] = lambda: None,
    worker_alive: Callable[[], bool] = lambda: True,
    worker_pid: Callable[[], int | None] = lambda: None,
    live: LiveOptions | None = None,
) -> web.Application:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ValueError("missing settings: AGENTVINE_WEBHOOK_SECRET")
    app = web.Application(client_max_size=settings.max_body_bytes)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # /health reports its file system, inbox or not
    append = add_inbox_sink(app, settings, store)
    app.router.add_post(
        "/webhooks", make_handler(secret=settings.webhook_secret.get_secret_value(), append=append, on_stored=on_stored)
    )

    async def health(_request: web.Request) -> web.Response:
        # In a thread: a database that does not answer must not hold up the webhooks meanwhile.
        reachable = await asyncio.to_thread(store.healthy)
        about_store = {"backend": store.backend, "reachable": reachable}
        if not reachable:
            return web.json_response({"status": HEALTH_STORE_DOWN, "store": about_store}, status=503)
        if (probe := getattr(app[INBOX_SINK], "reachable", None)) is not None:  # the inbox table's own writer
            about_store["inbox_reachable"] = await probe(INBOX_PROBE_S)
            if not about_store["inbox_reachable"]:
                return web.json_response({"status": HEALTH_INBOX_DOWN, "store": about_store}, status=503)
        if not worker_alive():
            return web.json_response({"status": HEALTH_WORKER_DOWN, "store": about_store}, status=503)
        return web.json_response({"status": "ok", "worker_pid": worker_pid(), "data_dir": _disk(settings),
                                  "store": about_store})

    async def delivery_page(request: web.Request) -> web.Response:
        """What became of a delivery: 404 until the worker has taken it from the inbox."""
        delivery = store.get_delivery(request.match_info["delivery_id"])
        if delivery is None:
            raise web.HTTPNotFound(text="no such delivery in the store (yet)")
        return web.json_response({"delivery": delivery.model_dump(mode="json"), "jobs": store.delivery_jobs(delivery.id)})

    app.router.add_get("/health", health)
    app.router.add_get("/deliveries/{delivery_id}", delivery_page)
    add_job_routes(app, settings, store, live)
    add_metrics_route(app, settings, store)
    return app
