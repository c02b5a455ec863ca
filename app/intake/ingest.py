"""From the inbox into the store: each delivery is parsed, routed, and recorded with the jobs
and commands it asks for. Runs in the worker, so the webhook's 202 never waits for it.

Records are imported in batches, one transaction each, which also moves the inbox position:
a crash between two batches imports nothing twice, and the deliveries table's primary key
makes a redelivery by GitHub (same X-GitHub-Delivery) start nothing a second time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import orjson
from gidgethub import sansio

from app import metrics
from app.intake.inbox import InboxCorrupt, InboxRecord, read_records, segments
from app.domain.intents import JobCommand, StartJob
from app.domain.job import Delivery, Job
from app.intake.routing import RouteContext, route
from app.intake.routing.payload import installation_id
from app.store.base import DeliveryRecord, JobStore

log = logging.getLogger(__name__)

BATCH = 256  # deliveries per transaction
OUTCOME_BAD_SHAPE = "rejected: unexpected payload shape: {error}"
# The delivery page is public to whoever knows the id: the error's text stays in the service log.
OUTCOME_FAILED = "failed: {error}; the service log has the details (the body is kept in the inbox's rejected/ folder)"
OUTCOME_IGNORED = "ignored"
OUTCOME_REPLAYED = "ignored: the same signed body as delivery {delivery_id} (a replay under a new id)"


def _safe_name(text: str) -> str:
    """`text` as one harmless file-name part: ASCII letters, digits, - and _ (no dots: no `..`)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in text)[:100] or "_"


class RejectedDelivery(ValueError):
    pass


async def interpret(record: InboxRecord, ctx: RouteContext) -> DeliveryRecord:
    """The delivery, and the jobs and commands it asks for. Raises RejectedDelivery for a payload
    the web process let through (signed, a JSON object) that is not shaped as GitHub documents."""
    delivery = Delivery(id=record.delivery_id, event=record.event, received_at=record.received_at, outcome=OUTCOME_IGNORED)
    try:
        data = orjson.loads(record.body)
        intents = await route(sansio.Event(data, event=record.event, delivery_id=record.delivery_id), ctx)
        repo = data.get("repository") if isinstance(data.get("repository"), dict) else {}
        delivery.action = data.get("action") if isinstance(data.get("action"), str) else None
        delivery.installation_id = installation_id(data)
        delivery.repo = repo.get("full_name") if isinstance(repo.get("full_name"), str) else None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # orjson's JSONDecodeError is a ValueError
        raise RejectedDelivery(OUTCOME_BAD_SHAPE.format(error=repr(exc))) from exc
    jobs = [Job(delivery_id=record.delivery_id, **dict(i)) for i in intents if isinstance(i, StartJob)]
    commands = [i.model_copy(update={"delivery_id": record.delivery_id}) for i in intents if isinstance(i, JobCommand)]
    outcome = "; ".join([*(f"job {j.id}" for j in jobs), *(f"command {c.name}" for c in commands), *ctx.notes])
    delivery.outcome = outcome or OUTCOME_IGNORED
    return delivery, jobs, commands


def outcome_kind(delivery: Delivery, jobs: list[Job], commands: list[JobCommand]) -> str:
    """The delivery's outcome in one word, for agentvine_deliveries_imported_total."""
    if jobs:
        return "job"
    if commands:
        return "command"
    if delivery.outcome.startswith(("rejected", "failed")):
        return delivery.outcome.split(":", 1)[0]
    return "replayed" if delivery.outcome.startswith(OUTCOME_REPLAYED.split("{", 1)[0]) else "ignored"


class InboxImporter:
    def __init__(self, directory: Path, store: JobStore, *, command_prefix: str, label_prefix: str) -> None:
        self._directory = directory
        self._store = store
        self._prefixes = {"command_prefix": command_prefix, "label_prefix": label_prefix}
        self._lock = asyncio.Lock()

    async def import_new(self, limit: int = 4 * BATCH) -> int:
        """Import up to `limit` new deliveries; how many were stored (duplicates not counted)."""
        async with self._lock:  # the dispatcher's pass and a test may both ask
            stored = 0
            found = segments(self._directory) if self._directory.exists() else []
            for index, path in enumerate(found):
                complete = index < len(found) - 1  # the writer only ever appends to the newest
                try:
                    stored += await self._import_segment(path, complete, limit - stored)
                except InboxCorrupt as exc:
                    log.error("inbox segment set aside for inspection: %s", exc)
                    path.rename(path.with_suffix(".corrupt"))
                    self._store.forget_inbox_segment(path.name)
                if stored >= limit:
                    break
            return stored

    async def _import_segment(self, path: Path, complete: bool, limit: int) -> int:
        offset = self._store.inbox_offset(path.name)
        stored = 0
        batch: list[DeliveryRecord] = []
        end = offset
        seen: dict[str, str] = {}  # body digest -> delivery id, within this batch
        for record in read_records(path, offset, complete=complete):
            batch.append(self._unless_replayed(record, await self._interpret(record), seen))
            end = record.end
            if len(batch) >= BATCH:
                stored += self._record(batch, (path.name, end))
                batch = []
                if stored >= limit:
                    return stored
        if batch:
            stored += self._record(batch, (path.name, end))
        if complete:  # everything in it is in the store now
            path.unlink()
            self._store.forget_inbox_segment(path.name)
        return stored

    def _record(self, batch: list[DeliveryRecord], position: tuple[str, int]) -> int:
        """Store the batch with the inbox position after it; how many were new (not redeliveries)."""
        stored = self._store.record_deliveries(batch, inbox_position=position)
        for (delivery, jobs, commands), new in zip(batch, stored):
            metrics.delivery_imported(delivery.event, outcome_kind(delivery, jobs, commands) if new else "duplicate")
        return sum(stored)

    def _unless_replayed(self, record: InboxRecord, interpreted: DeliveryRecord, seen: dict[str, str]) -> DeliveryRecord:
        """A signed body that already started work, sent again under a fresh delivery id, starts nothing:
        the signature proves who made the body, not when (anyone who saw it once could replay it)."""
        delivery, jobs, commands = interpreted
        if not jobs and not commands:
            return interpreted
        digest = hashlib.sha256(record.body).hexdigest()
        earlier = seen.get(digest) or self._store.delivery_with_body(digest)
        if earlier is not None and earlier != delivery.id:
            delivery.outcome = OUTCOME_REPLAYED.format(delivery_id=earlier)
            return delivery, [], []
        seen[digest] = delivery.id
        delivery.body_sha256 = digest
        return delivery, jobs, commands

    async def _interpret(self, record: InboxRecord) -> DeliveryRecord:
        try:
            return await interpret(record, RouteContext(**self._prefixes))
        except Exception as exc:  # one bad delivery must not hold up the ones behind it
            outcome = str(exc) if isinstance(exc, RejectedDelivery) else OUTCOME_FAILED.format(error=type(exc).__name__)
            log.warning("delivery %s (%s) %s", record.delivery_id, record.event, outcome, exc_info=not isinstance(exc, RejectedDelivery))
            self._keep_rejected(record)
            delivery = Delivery(id=record.delivery_id, event=record.event, received_at=record.received_at, outcome=outcome)
            return delivery, [], []

    def _keep_rejected(self, record: InboxRecord) -> None:
        """Nothing is lost: the body stays, to be looked at or replayed once the cause is fixed."""
        folder = self._directory / "rejected"
        folder.mkdir(exist_ok=True)
        # Neither name is used as it came: the file stays in rejected/, whatever a record says.
        (folder / f"{_safe_name(record.delivery_id)}.{_safe_name(record.event)}.json").write_bytes(record.body)
