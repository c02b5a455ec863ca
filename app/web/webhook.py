"""POST /webhooks: verify, validate, append to the inbox, answer 202. Nothing slow happens here:
no GitHub API call, no parsing; the worker interprets the delivery (app/intake/ingest.py). The inbox
is the file inbox beside the worker, or the PostgreSQL inbox table (app/web/inbox_sink.py)."""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import orjson
import simdjson
from aiohttp import web
from gidgethub import ValidationFailure, sansio

from app import metrics

log = logging.getLogger(__name__)

RECENT_DELIVERIES = 100_000  # ids answered "duplicate" without a look at the store
LARGE_BODY = 1024 * 1024  # parsed with a parser of its own, so its buffers don't stay
# GitHub's delivery ids are UUIDs ("72d3162e-cc78-11e3-81ab-4c9367dc0958"; the `guid` of the
# hook-delivery object); event names are lower-case words joined by "_" ("pull_request_review").
# Anything else did not come from GitHub, and either would name files (inbox/rejected/).
DELIVERY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
EVENT_NAME = re.compile(r"[a-z_]{1,64}", re.ASCII)
# What each answer means, for agentvine_webhook_deliveries_total (a 200 is a ping's pong or a duplicate).
OUTCOMES = {202: "accepted", 400: "bad_request", 401: "bad_signature", 413: "too_large", 503: "not_stored"}
NOT_STORED = "the delivery could not be stored; GitHub may redeliver it"

# Stores one delivery (delivery_id, event, body, received_at) durably, returning once it is: ValueError
# for one that can never be stored (400), OSError when it is not stored now (503; a redelivery may be).
Append = Callable[[str, str, bytes, float], Awaitable[None]]


def _json(status: int, data: dict) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


class JsonObjectCheck:
    """Whether a body is one JSON object, without building it: simdjson validates the whole body
    (syntax and UTF-8) at gigabytes per second; the worker parses it for real later.
    docs/performance.md has the figures. Raises ValueError with the reason when it is not JSON."""

    def __init__(self) -> None:
        self._parser = simdjson.Parser()

    def __call__(self, body: bytes) -> bool:
        try:
            # A large body gets a parser of its own, so its buffers don't stay allocated.
            return isinstance((self._parser if len(body) < LARGE_BODY else simdjson.Parser()).parse(body), simdjson.Object)
        except RuntimeError:
            # Integers beyond 64 bits (valid JSON that simdjson won't hold), or a document of an
            # earlier request still referenced: orjson decides instead.
            return isinstance(orjson.loads(body), dict)


def _outcome(status: int, event: str | None) -> str:
    if status == 200:
        return "pong" if event == "ping" else "duplicate"
    return OUTCOMES.get(status, str(status))


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _counted(receive: Handler) -> Handler:
    """The handler, counting each answer in agentvine_webhook_deliveries_total."""

    async def handle(request: web.Request) -> web.Response:
        try:
            response = await receive(request)
        except web.HTTPRequestEntityTooLarge:  # aiohttp's, past client_max_size
            metrics.webhook_delivery(None, "too_large")
            raise
        # The event names a label only once the body is known to be GitHub's: signed, a well-formed name.
        event = request.headers.get("X-GitHub-Event")
        known = response.status != 401 and event is not None and EVENT_NAME.fullmatch(event) is not None
        metrics.webhook_delivery(event if known else None, _outcome(response.status, event))
        return response

    return handle


def make_handler(*, secret: str, append: Append, on_stored: Callable[[], None]) -> Handler:
    if not secret:
        raise ValueError("a webhook secret is mandatory")
    is_json_object = JsonObjectCheck()
    # A fast answer for redeliveries seen lately; the store's primary key is what makes
    # de-duplication durable (a redelivery after a restart is imported as nothing).
    recent: OrderedDict[str, None] = OrderedDict()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp answers 413 past client_max_size
        signature = request.headers.get("X-Hub-Signature-256")
        if not signature:
            return _error(401, "missing X-Hub-Signature-256")
        try:
            sansio.validate_event(body, signature=signature, secret=secret)
        except ValidationFailure:
            return _error(401, "bad signature")
        event = request.headers.get("X-GitHub-Event")
        delivery_id = request.headers.get("X-GitHub-Delivery")
        if not event or not delivery_id:
            return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery")
        if not DELIVERY_ID.fullmatch(delivery_id):
            return _error(400, "X-GitHub-Delivery must be a UUID, as GitHub sends it")
        if not EVENT_NAME.fullmatch(event):
            return _error(400, "X-GitHub-Event must be one of GitHub's event names (lower-case letters and _)")
        if request.content_type != "application/json":
            return _error(400, "expected Content-Type: application/json")
        try:
            if not is_json_object(body):
                return _error(400, "the payload must be a JSON object")
        except ValueError as exc:  # bad JSON, bad UTF-8, nesting too deep
            return _error(400, f"malformed JSON: {exc}")
        if event == "ping":
            return _json(200, {"status": "pong", "zen": orjson.loads(body).get("zen")})
        if delivery_id in recent:
            return _json(200, {"status": "duplicate", "delivery": delivery_id})
        try:
            await append(delivery_id, event, body, time.time())
        except ValueError as exc:  # a record the inbox cannot hold; only this request fails
            return _error(400, f"the delivery cannot be stored: {exc}")
        except OSError as exc:
            log.error("delivery %s (%s) could not be stored: %s", delivery_id, event, exc)
            return _error(503, NOT_STORED)
        recent[delivery_id] = None
        if len(recent) > RECENT_DELIVERIES:
            recent.popitem(last=False)
        on_stored()
        return _json(202, {"status": "accepted", "delivery": delivery_id})

    return _counted(receive)
