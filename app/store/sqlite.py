"""SQLite job store, the embedded default: WAL, one file, the queries of app/store/sql.py.

Calls are synchronous and short (one small transaction each); they run on the event loop
because a thread hop would cost more than the write itself (see docs/performance.md). The web
process and its worker process share the file; BEGIN IMMEDIATE gives every write transaction the
database's one write lock, which is also what serialises claims."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.store import schema
from app.store.sql import SQLJobStore

# For tests of upgrades: the schema's migrations as this backend runs them.
MIGRATIONS: list[str] = [";\n".join(schema.statements(m, "sqlite")) for m in schema.MIGRATIONS]


class SQLiteJobStore(SQLJobStore):
    backend = "sqlite"
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()  # the dispatcher's worker threads may share the connection
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process (not of the OS) and
        # costs no fsync per delivery; see docs/performance.md for the measured difference.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the thread lock. BEGIN IMMEDIATE takes SQLite's write
        lock at the start, so another process cannot write between what this one reads and
        writes; anything raised (a cancellation too), or a failed COMMIT, rolls it all back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _migrate(self) -> None:
        # The version is read under the write lock: the web and worker processes may start together.
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, migration in enumerate(schema.MIGRATIONS[version:], start=version + 1):
                for statement in schema.statements(migration, self.backend):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    async def watch(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to: the web process wakes a worker beside it, a worker process polls."""

    def healthy(self) -> bool:
        try:
            with self._read() as db:
                return db.execute("SELECT 1").fetchone() == (1,)
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._db.close()
