"""POST /webhooks: verify, de-duplicate, route, persist, answer 202. Nothing slow happens here:
no GitHub API call, only one small database transaction (GitHub gives up after 10 s)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from aiohttp import web
from gidgethub import ValidationFailure, sansio

from app.ingest import DeliveryWriter
from app.intents import JobCommand, StartJob
from app.jobs import Delivery, Job
from app.routing import RouteContext, route
from app.routing.payload import installation_id
from app.store.base import JobStore

log = logging.getLogger(__name__)


def _json(status: int, data: dict) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


def make_handler(
    *, secret: str, store: JobStore, command_prefix: str, label_prefix: str, on_stored: Callable[[], None]
) -> Callable[[web.Request], object]:
    if not secret:
        raise ValueError("a webhook secret is mandatory")
    writer = DeliveryWriter(store)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp answers 413 past client_max_size
        signature = request.headers.get("X-Hub-Signature-256")
        if not signature:
            return _error(401, "missing X-Hub-Signature-256")
        try:
            sansio.validate_event(body, signature=signature, secret=secret)
        except ValidationFailure:
            return _error(401, "bad signature")
        event_name = request.headers.get("X-GitHub-Event")
        delivery_id = request.headers.get("X-GitHub-Delivery")
        if not event_name or not delivery_id:
            return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery")
        if len(delivery_id) > 100:
            return _error(400, "X-GitHub-Delivery is too long")
        if request.content_type != "application/json":
            return _error(400, "expected Content-Type: application/json")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"malformed JSON: {exc}")
        if not isinstance(data, dict):
            return _error(400, "the payload must be a JSON object")
        if event_name == "ping":
            return _json(200, {"status": "pong", "zen": data.get("zen")})

        event = sansio.Event(data, event=event_name, delivery_id=delivery_id)
        ctx = RouteContext(command_prefix=command_prefix, label_prefix=label_prefix)
        try:
            intents = await route(event, ctx)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # Signed, so from GitHub (or someone with the secret), yet not shaped as documented.
            log.warning("delivery %s (%s): unexpected payload shape: %r", delivery_id, event_name, exc)
            return _error(400, f"unexpected payload shape: {exc!r}")

        jobs = [Job(delivery_id=delivery_id, **dict(intent)) for intent in intents if isinstance(intent, StartJob)]
        commands = [intent.model_copy(update={"delivery_id": delivery_id}) for intent in intents if isinstance(intent, JobCommand)]
        repo = data.get("repository") if isinstance(data.get("repository"), dict) else {}
        outcome = "; ".join([*(f"job {j.id}" for j in jobs), *(f"command {c.name}" for c in commands), *ctx.notes])
        delivery = Delivery(
            id=delivery_id,
            event=event_name,
            action=data.get("action") if isinstance(data.get("action"), str) else None,
            installation_id=installation_id(data),
            repo=repo.get("full_name"),
            outcome=outcome or "ignored",
        )
        if not await writer.write((delivery, jobs, commands)):
            return _json(200, {"status": "duplicate", "delivery": delivery_id})
        if jobs or commands:
            on_stored()
        return _json(
            202, {"status": "accepted", "delivery": delivery_id, "jobs": [j.id for j in jobs], "outcome": delivery.outcome}
        )

    return handle
