"""GET /metrics in Prometheus' text format (docs/metrics.md): what this process and the worker's counted
(app/metrics.py), and the jobs per state, read from the store when scraped (right whichever process
moved them, and after a restart). Behind AGENTVINE_METRICS_TOKEN when it is set."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from app import metrics
from app.domain.job import JobState
from app.settings import Settings
from app.store.base import JobStore

UNAUTHORIZED = "GET /metrics needs the metrics token: send Authorization: Bearer <AGENTVINE_METRICS_TOKEN>"


class JobsPerState:
    """agentvine_jobs{state}: a collector prometheus-client asks at each scrape."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("agentvine_jobs", "Jobs in the store, by state", labels=["state"])
        counts = self._store.count_jobs()
        for state in JobState:
            family.add_metric([state.value], counts.get(state, 0))
        yield family


def authorized(token: str | None, header: str) -> bool:
    """Whether an Authorization header carries the token (always, when no token is set). Constant-time."""
    if not token:
        return True
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(errors="replace"),
                                                              token.encode())


def add_metrics_route(app: web.Application, settings: Settings, store: JobStore) -> None:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    collectors = [JobsPerState(store)]

    async def metrics_page(request: web.Request) -> web.Response:
        if not authorized(token, request.headers.get("Authorization", "")):
            return web.json_response({"error": UNAUTHORIZED}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="agentvine metrics"'})
        body, content_type = metrics.exposition(collectors)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", metrics_page)
