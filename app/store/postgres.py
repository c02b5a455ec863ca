"""PostgreSQL job store, for several web and worker instances on several machines
(AGENTVINE_DATABASE_URL=postgresql://…): the queries of app/store/sql.py over psycopg 3.

psycopg 3, not asyncpg: the store's interface is synchronous (its calls are one short transaction
each, made from the event loop as with SQLite, docs/performance.md), and psycopg is the one of the
two with both a synchronous pool and an asynchronous connection, which LISTEN and the web's inbox
writer use (app/store/pg_inbox.py). Claims of one kind are serialised with transaction-level
advisory locks; rows are taken with FOR UPDATE SKIP LOCKED; liveness is in the rows (lease_until,
workers.seen_at, on the database's clock), never in a session, which a dead machine can leave
open for hours."""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from app.store import schema
from app.store.sql import SQLJobStore

log = logging.getLogger(__name__)

CHANNEL = "agentvine_work"  # NOTIFY'd when a transaction made work another process may take
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10  # a call waits this long for a connection, then fails (the caller retries later)
HEALTH_TIMEOUT_S = 2  # /health says "unreachable" sooner than a store call would give up
LISTEN_BACKOFF_S = (0.5, 1, 2, 5, 10)
_MIGRATION_LOCK = 0x61677631  # "agv1": one migrating process at a time


def _check_idle(conn: psycopg.Connection) -> None:
    """The pool's check of a connection it hands out. An idle connection has nothing to read unless the
    server ended it (a restart, pg_terminate_backend: its notice, then EOF): only then a round trip,
    which raises for a dead one, so the pool replaces it before a store call meets it. A round trip on
    every call would double a local query's cost (~75 -> ~170 µs measured)."""
    poller = select.poll()  # not select.select: it fails for a descriptor of 1024 or more
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        conn.execute("")


class PostgresJobStore(SQLJobStore):
    backend = "postgresql"
    IntegrityError = psycopg.IntegrityError
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self.url = url
        self._max_connections = max_connections
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_connections, timeout=POOL_TIMEOUT_S, open=False, name="agentvine",
            check=_check_idle,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S, "application_name": "agentvine"},
        )
        self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        self._migrate()

    @contextmanager
    def _write(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """One transaction (`timeout`: for a connection, else the pool's). A connection the server ended after
        the pool's check passed it (its notice not yet arrived: pg_terminate_backend returns before the
        backend is gone) fails at BEGIN, before anything of the caller ran: it is dropped (the pool discards
        a broken one) and the next taken."""
        for spare in range(self._max_connections, -1, -1):
            with ExitStack() as held:
                conn = held.enter_context(self._pool.connection(timeout=timeout))
                try:
                    held.enter_context(conn.transaction())
                except psycopg.OperationalError:
                    if spare and conn.broken:
                        continue
                    raise
                yield conn
                return

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection]:
        with self._pool.connection() as conn:
            yield conn

    def _serialise(self, db: psycopg.Connection, what: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("agentvine:" + what,))

    def _notify(self, db: psycopg.Connection) -> None:
        db.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    def _migrate(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))  # web and worker instances start together
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                version = row[0] if row else 0
                for number, migration in enumerate(schema.MIGRATIONS[version:], start=version + 1):
                    with conn.transaction():
                        for statement in schema.statements(migration, self.backend):
                            conn.execute(statement)
                        conn.execute("DELETE FROM schema_version")
                        conn.execute("INSERT INTO schema_version VALUES (%s)", (number,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    @property
    def schema_version(self) -> int:
        with self._read() as db:
            return db.execute("SELECT version FROM schema_version").fetchone()[0]

    async def watch(self, wake: Callable[[], None]) -> None:
        """LISTEN on its own connection; a lost connection is made again with backoff (and `wake` is
        called then: a notification sent meanwhile was missed)."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    wake()
                    async for _ in conn.notifies():
                        wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away: listen again when it is back
                delay = LISTEN_BACKOFF_S[min(failures, len(LISTEN_BACKOFF_S) - 1)]
                failures += 1
                log.warning("LISTEN %s lost (%s); again in %.1f s", CHANNEL, exc, delay)
                await asyncio.sleep(delay)

    def healthy(self) -> bool:
        """In a transaction: a connection the server was ending as the pool handed it out says nothing of
        the server, and _write takes the next one."""
        try:
            with self._write(timeout=HEALTH_TIMEOUT_S) as db:
                return db.execute("SELECT 1").fetchone() == (1,)
        except Exception:  # noqa: BLE001 - the pool's timeout too: unreachable is unhealthy
            return False

    def close(self) -> None:
        self._pool.close()
