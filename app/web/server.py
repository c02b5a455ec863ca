"""The HTTP side: POST /webhooks, GET /health, GET /deliveries/{id}, GET /jobs/{id}, GET /metrics. It appends
to the inbox and reads the store; the worker (in this process or another) does everything that talks to GitHub."""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable
from datetime import datetime, timezone

from aiohttp import web

from app.intake.inbox import InboxWriter
from app.settings import Settings
from app.store.base import JobStore
from app.web.metrics import add_metrics_route
from app.web.webhook import make_handler


def job_page_html(job: dict, events: list[dict]) -> str:
    """The page a check run's *Details* link opens in a browser. Everything is escaped."""
    def esc(value: object) -> str:
        return html.escape("" if value is None else str(value))

    def when(at: float) -> str:
        return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    rows = "".join(f"<tr><td>{when(e['at'])}</td><td>{esc(e['kind'])}</td></tr>" for e in events)
    fields = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(job.get(k))}</td></tr>"
        for k in ("state", "conclusion", "reason", "worker", "level", "model")
        if job.get(k) is not None
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>AgentVine job "
        f"{esc(job['id'])}</title><style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto}}"
        "th,td{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}</style></head><body>"
        f"<h1>🌱 AgentVine job <code>{esc(job['id'])}</code></h1><table>{fields}</table>"
        f"<h2>What happened</h2><table>{rows}</table></body></html>"
    )


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
) -> web.Application:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ValueError("missing settings: AGENTVINE_WEBHOOK_SECRET")
    app = web.Application(client_max_size=settings.max_body_bytes)
    inbox = InboxWriter(settings.inbox_path)

    async def close_inbox(_app: web.Application) -> None:
        inbox.close()

    app.on_cleanup.append(close_inbox)
    app.router.add_post(
        "/webhooks", make_handler(secret=settings.webhook_secret.get_secret_value(), inbox=inbox, on_stored=on_stored)
    )

    async def health(_request: web.Request) -> web.Response:
        if not store.healthy():
            return web.json_response({"status": "store unavailable"}, status=503)
        if not worker_alive():
            return web.json_response({"status": "worker not running"}, status=503)
        return web.json_response({"status": "ok", "worker_pid": worker_pid(), "data_dir": _disk(settings)})

    async def delivery_page(request: web.Request) -> web.Response:
        """What became of a delivery: 404 until the worker has taken it from the inbox."""
        delivery = store.get_delivery(request.match_info["delivery_id"])
        if delivery is None:
            raise web.HTTPNotFound(text="no such delivery in the store (yet)")
        return web.json_response({"delivery": delivery.model_dump(mode="json"), "jobs": store.delivery_jobs(delivery.id)})

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
        if "text/html" in request.headers.get("Accept", ""):
            return web.Response(text=job_page_html(public, events), content_type="text/html")
        return web.json_response({"job": public, "events": events})

    app.router.add_get("/health", health)
    app.router.add_get("/deliveries/{delivery_id}", delivery_page)
    app.router.add_get("/jobs/{job_id}", job_page)
    add_metrics_route(app, settings, store)
    return app
