"""From the inbox into the store: each delivery is parsed, routed, and recorded with the jobs
and commands it asks for. Runs in the worker, so the webhook's 202 never waits for it.

Two sources, one way of importing (Importer): the file inbox of the web process beside the worker
(InboxImporter), and the PostgreSQL inbox table that web instances on any machine write (TableImporter,
which workers on any machine claim rows of). make_importer picks the one for the store.

Deliveries are imported in batches, one transaction each, which also moves the file inbox's position
or deletes the table's rows: a crash between two batches imports nothing twice, and the deliveries
table's primary key makes a redelivery by GitHub (same X-GitHub-Delivery) start nothing a second time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from gidgethub import sansio

from app import metrics
from app.intake.inbox import InboxCorrupt, read_records, segments
from app.domain.intents import JobCommand, StartJob
from app.domain.job import Delivery, Job
from app.intake.routing import RouteContext, route
from app.intake.routing.payload import installation_id
from app.store.base import DeliveryRecord, JobStore

log = logging.getLogger(__name__)

BATCH = 256  # deliveries per transaction
INBOX_LEASE_S = 60.0  # a claim on rows of the inbox table: a worker that dies with them leaves them to others then
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


class RawDelivery(Protocol):
    """A delivery as GitHub sent it: a file inbox's InboxRecord, or a row of the inbox table (InboxRow)."""

    @property
    def delivery_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def received_at(self) -> float: ...
    @property
    def body(self) -> bytes: ...


async def interpret(record: RawDelivery, ctx: RouteContext) -> DeliveryRecord:
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


class Importer:
    """What both sources share: a batch of deliveries interpreted, replays refused, recorded in one
    transaction with how far the source got, and counted. A source says how it reads (`_import`)."""

    def __init__(self, directory: Path, store: JobStore, *, command_prefix: str, label_prefix: str) -> None:
        self._directory = directory  # rejected bodies are kept in its rejected/ folder
        self._store = store
        self._prefixes = {"command_prefix": command_prefix, "label_prefix": label_prefix}
        self._lock = asyncio.Lock()

    async def import_new(self, limit: int = 4 * BATCH) -> int:
        """Import up to about `limit` new deliveries; how many were stored (duplicates not counted)."""
        async with self._lock:  # the dispatcher's pass and a test may both ask
            return await self._import(limit)

    async def _import(self, limit: int) -> int:
        raise NotImplementedError

    async def _import_batch(self, records: Sequence[RawDelivery], **where: Any) -> int:
        """Store the deliveries with `where` (record_deliveries' inbox_position or inbox_rows); how many
        were new (not redeliveries)."""
        seen: dict[str, str] = {}  # body digest -> delivery id, within this batch
        batch = [self._unless_replayed(record, await self._interpret(record), seen) for record in records]
        stored = self._store.record_deliveries(batch, **where)
        for (delivery, jobs, commands), new in zip(batch, stored):
            metrics.delivery_imported(delivery.event, outcome_kind(delivery, jobs, commands) if new else "duplicate")
        return sum(stored)

    def _unless_replayed(self, record: RawDelivery, interpreted: DeliveryRecord, seen: dict[str, str]) -> DeliveryRecord:
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

    async def _interpret(self, record: RawDelivery) -> DeliveryRecord:
        try:
            return await interpret(record, RouteContext(**self._prefixes))
        except Exception as exc:  # one bad delivery must not hold up the ones behind it
            outcome = str(exc) if isinstance(exc, RejectedDelivery) else OUTCOME_FAILED.format(error=type(exc).__name__)
            log.warning("delivery %s (%s) %s; the body is kept in %s", record.delivery_id, record.event, outcome,
                        self._keep_rejected(record), exc_info=not isinstance(exc, RejectedDelivery))
            delivery = Delivery(id=record.delivery_id, event=record.event, received_at=record.received_at, outcome=outcome)
            return delivery, [], []

    def _keep_rejected(self, record: RawDelivery) -> Path:
        """Nothing is lost: the body stays, to be looked at or replayed once the cause is fixed."""
        folder = self._directory / "rejected"
        folder.mkdir(parents=True, exist_ok=True)  # a worker of the inbox table may have no file inbox
        # Neither name is used as it came: the file stays in rejected/, whatever a record says.
        path = folder / f"{_safe_name(record.delivery_id)}.{_safe_name(record.event)}.json"
        path.write_bytes(record.body)
        return path


class InboxImporter(Importer):
    """The file inbox (app/intake/inbox.py): segments oldest first, each from the position stored for it."""

    async def _import(self, limit: int) -> int:
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
        stored = 0
        for batch in _chunks(read_records(path, self._store.inbox_offset(path.name), complete=complete), BATCH):
            stored += await self._import_batch(batch, inbox_position=(path.name, batch[-1].end))
            if stored >= limit:
                return stored
        if complete:  # everything in it is in the store now
            path.unlink()
            self._store.forget_inbox_segment(path.name)
        return stored


class TableImporter(Importer):
    """The PostgreSQL inbox table (app/store/pg_inbox.py): rows claimed for `holder`, so that several
    workers import disjoint rows; a batch's rows leave the table in the transaction that records them."""

    def __init__(self, directory: Path, store: JobStore, *, holder: str, lease_s: float = INBOX_LEASE_S,
                 **prefixes: str) -> None:
        super().__init__(directory, store, **prefixes)
        self._holder = holder
        self._lease_s = lease_s

    async def _import(self, limit: int) -> int:
        stored = taken = 0
        while taken < limit:
            rows = self._store.claim_inbox(self._holder, self._lease_s, min(BATCH, limit - taken))
            if not rows:
                break
            taken += len(rows)
            stored += await self._import_batch(rows, inbox_rows=[row.id for row in rows])
        return stored


def make_importer(store: JobStore, directory: Path, *, holder: str | None = None, **prefixes: str) -> Importer:
    """The importer for the store: of the inbox table on PostgreSQL (where the web instances write), else
    of the file inbox in `directory`. `holder` names this worker's claims (default: host and pid);
    `prefixes` are command_prefix and label_prefix. Rejected bodies are kept under `directory` either way."""
    if store.backend == "postgresql":
        return TableImporter(directory, store, holder=holder or f"{socket.gethostname()}:{os.getpid()}", **prefixes)
    return InboxImporter(directory, store, **prefixes)


T = TypeVar("T")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    rest = iter(items)
    while chunk := list(islice(rest, size)):
        yield chunk
