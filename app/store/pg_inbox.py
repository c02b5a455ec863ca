"""The inbox table's writer, for web instances on PostgreSQL: each verified delivery is committed to the
database before its 202, so a delivery GitHub was told we have outlives the web instance's machine (the
file inbox, app/intake/inbox.py, lives and dies with it). Workers on any machine import the rows
(app/intake/ingest.py).

As with GroupAppend, deliveries that arrive in the same event-loop iteration, or while a write is under
way, are written together: one statement (one transaction, one round trip) per batch, on a connection of
its own, asynchronous (the event loop never waits for the database). The statement also NOTIFYs the
workers, who hear it at its commit.

A lost connection is made again and the batch written again, with backoff, until RETRY_FOR_S after its
oldest delivery arrived; then every call of the batch fails with InboxUnavailable (an OSError, as a full
disk is for the file inbox): the webhook answers 503, GitHub shows the delivery as failed and it can be
redelivered. Never a 202 without the row committed. A connection lost while its commit was on the way
leaves it unknown whether the batch was stored: written again, a delivery may be in the table twice,
which the import takes as a redelivery (the deliveries table's primary key)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg

from app.store.base import encode_names
from app.store.postgres import CHANNEL, CONNECT_TIMEOUT_S

log = logging.getLogger(__name__)

MAX_BATCH = 256  # deliveries per transaction
MAX_BATCH_BYTES = 16 * 1024 * 1024  # a batch closes past this many bytes of bodies (one body is up to 25 MiB)
RETRY_FOR_S = 3.0  # a batch is tried again until this long after its oldest delivery came (GitHub waits 10 s)
LAST_TRY_S = 0.5  # the least time a try is given, even past RETRY_FOR_S: every batch gets one real try
BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8)
NOTIFY_PAYLOAD = "inbox"
APPLICATION_NAME = "agentvine-inbox"
# A body (12 KB is typical) is compressed when stored; PostgreSQL's default, pglz, made the server's share of
# a delivery cost twice what lz4's does (docs/performance.md). The rows are transient: the cheapest wins.
# Per session, not in the schema: a server without lz4 (or before PostgreSQL 14) keeps its default.
TOAST_COMPRESSION = "SET default_toast_compression = lz4"
# One statement in autocommit: the rows and the notification commit together, in one round trip. Arrays
# (not one VALUES row per delivery): the same text for any batch, which the server prepares once.
INSERT = (
    "WITH stored AS (INSERT INTO inbox (delivery_id, event, received_at, body) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %b::bytea[]) RETURNING 1) "
    "SELECT pg_notify(%s, %s)"
)
# The connection or the server is gone (or did not answer in time): connect again and retry. Any other
# error is the batch's own, and fails it at once.
RETRYABLE = (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError)
NOT_STORED = "the delivery could not be stored in the database: {error}"
CLOSED = "the inbox is closed"


class InboxUnavailable(OSError):
    """Not stored: the database could not be written in time (or the inbox was closed)."""


def check_delivery(delivery_id: str, event: str, body: bytes) -> None:
    """ValueError for a delivery the table cannot hold: the file inbox's rules (encode_names), and no NUL,
    which PostgreSQL's text cannot hold."""
    encode_names(delivery_id, event, body)
    if "\0" in delivery_id or "\0" in event:
        raise ValueError("a delivery id or event name with a NUL character")


@dataclass
class _Waiting:
    row: tuple[str, str, float, bytes]  # delivery_id, event, received_at, body
    arrived: float  # time.monotonic()
    done: asyncio.Future[None] = field(repr=False)


class PostgresInbox:
    """`await inbox(delivery_id, event, body, received_at)` returns once the delivery is committed."""

    def __init__(self, url: str, *, retry_for_s: float = RETRY_FOR_S) -> None:
        self.url = url
        self._retry_for_s = retry_for_s
        self._conn: psycopg.AsyncConnection | None = None
        self._pending: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()  # tries given up on, ending in the background
        self._closed = False
        # One try at a time on the connection (a batch's, or /health's ping): a try given up on closes it.
        self._using = asyncio.Lock()
        self._last_ok = True  # how the last try went, a batch's or a ping's (what /health says while a batch has it)
        self.batches = 0  # transactions committed, one per batch
        self.connects = 0

    async def open(self) -> None:
        """Connect now, so that the first delivery does not wait for it; a database not reachable yet is
        tried again by the first batch."""
        try:
            await asyncio.wait_for(self._connection(), CONNECT_TIMEOUT_S)
        except RETRYABLE as exc:
            log.warning("the inbox table is not reachable yet (%s); trying again with the first delivery", exc)

    async def __call__(self, delivery_id: str, event: str, body: bytes, received_at: float) -> None:
        """ValueError at once for a delivery that cannot be stored, before it joins a batch; InboxUnavailable
        when its batch could not be written."""
        check_delivery(delivery_id, event, body)
        if self._closed:
            raise InboxUnavailable(CLOSED)
        loop = asyncio.get_running_loop()
        waiting = _Waiting((delivery_id, event, received_at, body), time.monotonic(), loop.create_future())
        self._pending.append(waiting)
        if self._writer is None:  # it starts on the next loop iteration: what arrives until then joins
            self._writer = loop.create_task(self._drain())
        await waiting.done

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                try:
                    await self._write(batch)
                except BaseException as exc:  # CancelledError too (close): no caller is left waiting
                    _settle(batch, exc if isinstance(exc, Exception) else InboxUnavailable(CLOSED))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    _settle(batch, None)
        finally:
            self._writer = None

    def _take(self) -> list[_Waiting]:
        """The oldest waiting deliveries, at most MAX_BATCH and (past the first) MAX_BATCH_BYTES."""
        size, count = 0, 0
        for count, waiting in enumerate(self._pending[:MAX_BATCH], start=1):
            size += len(waiting.row[3])
            if size > MAX_BATCH_BYTES and count > 1:
                count -= 1
                break
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    async def _write(self, batch: list[_Waiting]) -> None:
        deadline = min(w.arrived for w in batch) + self._retry_for_s
        ids, events, times, bodies = (list(column) for column in zip(*(w.row for w in batch)))
        params = (ids, events, times, bodies, CHANNEL, NOTIFY_PAYLOAD)
        tries = 0
        while True:
            try:
                async with self._using:  # the try's time is counted from here: /health's ping may have been first
                    await self._try_or_drop(lambda: self._insert(params), max(deadline - time.monotonic(), LAST_TRY_S))
                self.batches += 1
                self._last_ok = True
                return
            except RETRYABLE as exc:
                delay = BACKOFF_S[min(tries, len(BACKOFF_S) - 1)]
                tries += 1
                if time.monotonic() + delay >= deadline:
                    self._last_ok = False
                    log.error("%d deliveries not stored after %d tries: %s", len(batch), tries, exc)
                    raise InboxUnavailable(NOT_STORED.format(error=str(exc) or type(exc).__name__)) from exc
                log.warning("the inbox table could not be written (%s); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
            except psycopg.Error as exc:  # not the connection's fault: trying again would fail again
                log.error("%d deliveries not stored: %s", len(batch), exc)
                raise InboxUnavailable(NOT_STORED.format(error=exc)) from exc

    async def reachable(self, timeout: float) -> bool:
        """For /health: can this instance's own writer reach the table now? A round trip on its connection
        (made again if it was lost), so that a load balancer stops sending deliveries to an instance that
        would answer them 503, even while the store's pool gets through. While a batch has the connection
        for all that time, the last batch's outcome answers instead: a ping must never cut a batch off."""
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._using.acquire()
        except TimeoutError:
            return self._last_ok and not self._closed
        try:
            # Twice: a connection the server ended since the last delivery fails once, then is made again. No
            # time left after the wait for a batch: that batch's outcome stands.
            for _ in range(2):
                if self._closed or deadline - time.monotonic() < LAST_TRY_S:
                    break
                try:
                    await self._try_or_drop(self._ping, deadline - time.monotonic())
                    self._last_ok = True
                    break
                except RETRYABLE:
                    self._last_ok = False
                except InboxUnavailable:  # closed meanwhile
                    break
        finally:
            self._using.release()
        return self._last_ok and not self._closed

    async def _try_or_drop(self, call: Callable[[], Awaitable[None]], timeout: float) -> None:
        """One try, under `_using`: the connection a failed try drops is the one no other try is using."""
        try:
            await self._try(call, timeout)
        except RETRYABLE:
            await self._drop()
            raise

    async def _ping(self) -> None:
        conn = await self._connection()
        await conn.execute("SELECT 1")

    async def _try(self, call: Callable[[], Awaitable[None]], timeout: float) -> None:
        """One try, given `timeout`: past it the try goes on ending in the background (psycopg cancels a query
        it is interrupted in, which can take seconds on a dead network) and its connection is closed then."""
        attempt = asyncio.ensure_future(call())
        try:
            done, _ = await asyncio.wait({attempt}, timeout=timeout)
        except asyncio.CancelledError:  # the caller went (close(), a /health request given up): so does the try
            self._give_up(attempt)
            raise
        if done:
            return attempt.result()
        self._give_up(attempt)
        raise TimeoutError(f"no answer from the database within {timeout:.1f} s")

    def _give_up(self, attempt: asyncio.Future[None]) -> None:
        attempt.cancel()  # now, so that a connect it is in never becomes self._conn
        conn, self._conn = self._conn, None
        reaper = asyncio.ensure_future(_reap(attempt, conn))
        self._reaping.add(reaper)
        reaper.add_done_callback(self._reaping.discard)

    async def _insert(self, params: tuple) -> None:
        conn = await self._connection()
        await conn.execute(INSERT, params)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=APPLICATION_NAME)
            try:
                await conn.execute(TOAST_COMPRESSION)
            except (psycopg.ProgrammingError, psycopg.DataError, psycopg.NotSupportedError) as exc:
                log.info("bodies are compressed with the server's default (%s)", exc)
            except BaseException:
                await conn.close()
                raise
            if self._closed:  # closed while this connected: nothing may use it now
                await conn.close()
                raise InboxUnavailable(CLOSED)
            self._conn = conn
            self.connects += 1
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Deliveries being written are given their time (bounded, see RETRY_FOR_S); later ones fail."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(writer), self._retry_for_s + LAST_TRY_S)
            writer.cancel()
        _settle(self._pending, InboxUnavailable(CLOSED))
        self._pending = []
        for reaper in list(self._reaping):
            reaper.cancel()
        await self._drop()


def _settle(batch: list[_Waiting], error: BaseException | None) -> None:
    for waiting in batch:
        if not waiting.done.done():  # done: its request was cancelled (the client went away)
            if error is None:
                waiting.done.set_result(None)
            else:
                waiting.done.set_exception(error)


async def _reap(attempt: asyncio.Future[None], conn: psycopg.AsyncConnection | None) -> None:
    with contextlib.suppress(BaseException):
        await attempt
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()
