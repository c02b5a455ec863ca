"""SQLite job store: WAL, versioned migrations, one row per job plus an append-only event log.

Calls are synchronous and short (one small transaction each); they run on the event loop
because a thread hop would cost more than the write itself (see docs/performance.md)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState
from app.store.base import DeliveryRecord, JobCursor, JobPage, JobQuery

# Each entry is one schema version; never edit a released one, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT,
        installation_id INTEGER,
        repo TEXT,
        received_at REAL NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        delivery_id TEXT NOT NULL REFERENCES deliveries(id),
        installation_id INTEGER NOT NULL,
        repo TEXT NOT NULL,
        issue_number INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX jobs_state ON jobs(state, created_at);
    CREATE INDEX jobs_repo ON jobs(repo, issue_number);
    CREATE TABLE job_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX job_events_job ON job_events(job_id, seq);
    CREATE TABLE commands (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL REFERENCES deliveries(id),
        doc TEXT NOT NULL,
        done_at REAL,
        outcome TEXT
    );
    CREATE INDEX commands_pending ON commands(done_at, seq);
    """,
    """
    CREATE TABLE inbox_progress (
        segment TEXT PRIMARY KEY,
        read_to INTEGER NOT NULL
    );
    CREATE INDEX jobs_delivery ON jobs(delivery_id);
    """,
    """
    ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT;
    CREATE INDEX deliveries_body ON deliveries(body_sha256) WHERE body_sha256 IS NOT NULL;
    """,
    # The operator's job list filters by worker and pages newest first.
    """
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    UPDATE jobs SET worker = json_extract(doc, '$.worker');
    CREATE INDEX jobs_created ON jobs(created_at, id);
    """,
]


# The deliveries table's columns in table order: one list for the row written and the row read.
_DELIVERY_COLUMNS = ("id", "event", "action", "installation_id", "repo", "received_at", "outcome", "body_sha256")
_JOB_COLUMNS = ("id", "delivery_id", "installation_id", "repo", "issue_number", "state", "created_at", "updated_at",
                "doc", "worker")
_EVENT_COLUMNS = "seq, job_id, at, kind, data"


def _event(row: tuple) -> JobEvent:
    seq, job_id, at, kind, data = row
    return JobEvent(job_id=job_id, seq=seq, at=at, kind=kind, data=json.loads(data))


class SQLiteJobStore:
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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
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

    def _migrate(self) -> None:
        # The version is read under the write lock: the web and worker processes may start together.
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def record_delivery(
        self, delivery: Delivery, jobs: Iterable[Job] = (), commands: Iterable[JobCommand] = ()
    ) -> bool:
        return self.record_deliveries([(delivery, list(jobs), list(commands))])[0]

    def record_deliveries(self, batch: list[DeliveryRecord], inbox_position: tuple[str, int] | None = None) -> list[bool]:
        """Several deliveries in one transaction (group commit); False for each one seen before.
        `inbox_position` (segment, offset) moves forward in the same transaction."""
        with self._transaction() as db:
            results = [self._insert_delivery(delivery, jobs, commands) for delivery, jobs, commands in batch]
            if inbox_position is not None:
                db.execute("INSERT INTO inbox_progress VALUES (?,?) ON CONFLICT(segment) DO UPDATE "
                           "SET read_to=excluded.read_to", inbox_position)
        return results

    def _insert_delivery(self, delivery: Delivery, jobs: list[Job], commands: list[JobCommand]) -> bool:
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO deliveries VALUES ({','.join('?' * len(_DELIVERY_COLUMNS))})",
            tuple(getattr(delivery, column) for column in _DELIVERY_COLUMNS),
        )
        if cur.rowcount == 0:
            return False
        for job in jobs:
            self._write_job(job)  # the row, with created_at and delivery_id, records the creation
        for command in commands:
            self._db.execute("INSERT INTO commands (delivery_id, doc) VALUES (?,?)", (delivery.id, command.model_dump_json()))
        return True

    def inbox_offset(self, segment: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT read_to FROM inbox_progress WHERE segment=?", (segment,)).fetchone()
        return row[0] if row else 0

    def forget_inbox_segment(self, segment: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM inbox_progress WHERE segment=?", (segment,))

    def delivery_jobs(self, delivery_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE delivery_id=? ORDER BY created_at", (delivery_id,)).fetchall()
        return [row[0] for row in rows]

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = self._db.execute(
            f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE id=?", (delivery_id,)
        ).fetchone()
        return Delivery(**dict(zip(_DELIVERY_COLUMNS, row))) if row else None

    def delivery_with_body(self, body_sha256: str) -> str | None:
        row = self._db.execute("SELECT id FROM deliveries WHERE body_sha256=? LIMIT 1", (body_sha256,)).fetchone()
        return row[0] if row else None

    def get_job(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT doc FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def list_jobs(
        self, states: Iterable[JobState] | None = None, *, repo: str | None = None, limit: int | None = None,
        issue_number: int | None = None,
    ) -> list[Job]:
        sql, args = "SELECT doc FROM jobs WHERE 1=1", []
        if states is not None:
            states = list(states)
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += [s.value for s in states]
        if repo is not None:
            sql += " AND repo=?"
            args.append(repo)
        if issue_number is not None:  # the jobs_repo index (repo, issue_number)
            sql += " AND issue_number=?"
            args.append(issue_number)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Job.model_validate_json(doc) for (doc,) in self._db.execute(sql, args)]

    def find_jobs(self, query: JobQuery) -> JobPage:
        sql, args = "SELECT doc FROM jobs WHERE 1=1", []
        if query.states:
            sql += f" AND state IN ({','.join('?' * len(query.states))})"
            args += [s.value for s in query.states]
        for column in ("repo", "worker"):
            if getattr(query, column) is not None:
                sql += f" AND {column}=?"
                args.append(getattr(query, column))
        if query.after is not None:
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            args += [query.after.created_at, query.after.created_at, query.after.id]
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(query.limit + 1)  # one more than asked: whether an older page exists
        with self._lock:
            jobs = [Job.model_validate_json(doc) for (doc,) in self._db.execute(sql, args)]
        more, jobs = len(jobs) > query.limit, jobs[: query.limit]
        return JobPage(jobs=jobs, next=JobCursor(created_at=jobs[-1].created_at, id=jobs[-1].id) if more else None)

    def count_jobs(self, states: Iterable[JobState] | None = None) -> dict[JobState, int]:
        sql, args = "SELECT state, count(*) FROM jobs", []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = [s.value for s in states]
        with self._lock:
            return {JobState(state): count for state, count in self._db.execute(sql + " GROUP BY state", args)}

    def save_job(self, job: Job, event: str, **data: object) -> None:
        with self._transaction():
            self._write_job(job)
            self._write_event(job.id, event, {"state": job.state.value, **data})

    def add_event(self, job_id: str, kind: str, **data: object) -> None:
        with self._lock:
            self._write_event(job_id, kind, data)

    def events(self, job_id: str, after: int = -1) -> list[JobEvent]:
        job = self.get_job(job_id)
        if job is None:
            return []
        created = JobEvent(job_id=job_id, at=job.created_at, kind="created", data={"delivery": job.delivery_id})
        rows = self._db.execute(f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE job_id=? AND seq>? ORDER BY seq",
                                (job_id, after)).fetchall()
        return ([created] if after < 0 else []) + [_event(row) for row in rows]

    def events_since(self, seq: int, limit: int = 500) -> list[JobEvent]:
        rows = self._db.execute(f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE seq>? ORDER BY seq LIMIT ?",
                                (seq, int(limit))).fetchall()
        return [_event(row) for row in rows]

    def last_event_seq(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM job_events").fetchone()[0]

    def pending_commands(self) -> list[tuple[int, JobCommand]]:
        rows = self._db.execute("SELECT seq, doc FROM commands WHERE done_at IS NULL ORDER BY seq")
        return [(seq, JobCommand.model_validate_json(doc)) for seq, doc in rows]

    def finish_command(self, seq: int, outcome: str) -> None:
        with self._lock:
            self._db.execute("UPDATE commands SET done_at=?, outcome=? WHERE seq=?", (time.time(), outcome, seq))

    def prune(self, older_than: float) -> tuple[int, int]:
        """Forget carried-out commands and job-less deliveries received before `older_than`.

        Jobs and their events are kept: they are the record of what AgentVine did."""
        with self._transaction() as db:
            commands = db.execute(
                "DELETE FROM commands WHERE done_at IS NOT NULL AND done_at < ?", (older_than,)
            ).rowcount
            deliveries = db.execute(
                "DELETE FROM deliveries WHERE received_at < ? AND id NOT IN (SELECT delivery_id FROM jobs)"
                " AND id NOT IN (SELECT delivery_id FROM commands)",
                (older_than,),
            ).rowcount
        return commands, deliveries

    def healthy(self) -> bool:
        try:
            return self._db.execute("SELECT 1").fetchone() == (1,)
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._db.close()

    def _write_job(self, job: Job) -> None:
        self._db.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({','.join('?' * len(_JOB_COLUMNS))}) "
            "ON CONFLICT(id) DO UPDATE SET "
            "state=excluded.state, updated_at=excluded.updated_at, doc=excluded.doc, worker=excluded.worker",
            (
                job.id,
                job.delivery_id,
                job.installation_id,
                job.repo,
                job.issue_number,
                job.state.value,
                job.created_at,
                job.updated_at,
                job.model_dump_json(),
                job.worker,
            ),
        )

    def _write_event(self, job_id: str, kind: str, data: dict) -> None:
        self._db.execute(
            "INSERT INTO job_events (job_id, at, kind, data) VALUES (?,?,?,?)",
            (job_id, time.time(), kind, json.dumps(data, default=str)),
        )
