"""The job store's queries, written once for both backends (app/store/sqlite.py, app/store/postgres.py).

A backend gives the connections (`_write`: one transaction; `_read`: outside one) and its few
differences: how `?` is written, what serialises claims, whether it wakes other processes. The
queries here use only SQL both understand (ON CONFLICT, RETURNING, IS NOT DISTINCT FROM).

Claims and leases are in app/store/claims.py; the fence is here: under app/domain/lease.py's current
lease, `save_job` and `add_event` write only while that lease is the job's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState
from app.domain.lease import Lease, LeaseLost, current_lease
from app.store import schema
from app.store.base import WAKING_STATES, DeliveryRecord, JobCursor, JobPage, JobQuery
from app.store.claims import ClaimQueries

# The deliveries table's columns in table order: one list for the row written and the row read.
_DELIVERY_COLUMNS = ("id", "event", "action", "installation_id", "repo", "received_at", "outcome", "body_sha256")
_JOB_COLUMNS = ("id", "delivery_id", "installation_id", "repo", "issue_number", "state", "created_at", "updated_at",
                "doc", "worker")
_EVENT_COLUMNS = "seq, job_id, at, kind, data"



def _event(row: Sequence[Any]) -> JobEvent:
    seq, job_id, at, kind, data = row
    return JobEvent(job_id=job_id, seq=seq, at=at, kind=kind, data=json.loads(data))


class SQLJobStore(ClaimQueries):
    backend: str  # "sqlite" or "postgresql": schema.WORDS' key

    # --- what a backend provides ------------------------------------------------------------

    def _write(self) -> AbstractContextManager[Any]:
        """A connection in one write transaction: committed at the end, rolled back on any exception."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        """A connection for reads that need no transaction of their own."""
        raise NotImplementedError

    def _serialise(self, db: Any, what: str) -> None:
        """Within a write transaction: no other claim of `what` runs until it ends (SQLite: it already
        holds the database's one write lock)."""

    def _notify(self, db: Any) -> None:
        """Within a write transaction: wake the other processes' workers at its commit (PostgreSQL)."""

    _skip_locked = ""  # PostgreSQL: rows another claim holds are passed over, not waited for

    IntegrityError: type[Exception] = Exception  # the backend's: a constraint refused a write

    # --- helpers ------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return _render(text, self.backend)

    def _run(self, db: Any, text: str, args: Sequence[Any] = ()) -> Any:
        return db.execute(self._sql(text), tuple(args))

    # --- deliveries ---------------------------------------------------------------------------

    def record_delivery(
        self, delivery: Delivery, jobs: Iterable[Job] = (), commands: Iterable[JobCommand] = ()
    ) -> bool:
        return self.record_deliveries([(delivery, list(jobs), list(commands))])[0]

    def record_deliveries(self, batch: list[DeliveryRecord], inbox_position: tuple[str, int] | None = None,
                          inbox_rows: Sequence[int] = ()) -> list[bool]:
        """Several deliveries in one transaction (group commit); False for each one seen before.
        `inbox_position` (segment, offset) moves forward, and `inbox_rows` leave the inbox table, in
        the same transaction."""
        with self._write() as db:
            results = [self._insert_delivery(db, delivery, jobs, commands) for delivery, jobs, commands in batch]
            if inbox_position is not None:
                self._run(db, "INSERT INTO inbox_progress VALUES (?,?) ON CONFLICT(segment) DO UPDATE "
                              "SET read_to=excluded.read_to", inbox_position)
            if inbox_rows:  # one statement: a batch's rows leave in one round trip
                self._run(db, f"DELETE FROM inbox WHERE id IN ({','.join('?' * len(inbox_rows))})", inbox_rows)
            if any(jobs or commands for (_, jobs, commands), new in zip(batch, results) if new):
                self._notify(db)
        return results

    def _insert_delivery(self, db: Any, delivery: Delivery, jobs: list[Job], commands: list[JobCommand]) -> bool:
        cur = self._run(
            db, f"INSERT INTO deliveries VALUES ({','.join('?' * len(_DELIVERY_COLUMNS))}) ON CONFLICT DO NOTHING",
            [getattr(delivery, column) for column in _DELIVERY_COLUMNS],
        )
        if cur.rowcount == 0:
            return False
        for job in jobs:
            self._write_job(db, job)  # the row, with created_at and delivery_id, records the creation
        for command in commands:
            # A check-run button names its job, not its issue: it is the job's issue's command all the same,
            # claimed in turn with that issue's others (a cancel must not race an answer or an expiry).
            self._run(db, "INSERT INTO commands (delivery_id, doc, repo, issue_number) VALUES "
                          "(?,?,?,COALESCE(?, (SELECT issue_number FROM jobs WHERE id=? AND repo=?)))",
                      (delivery.id, command.model_dump_json(), command.repo, command.issue_number, command.job_id,
                       command.repo))
        return True

    def inbox_offset(self, segment: str) -> int:
        with self._read() as db:
            row = self._run(db, "SELECT read_to FROM inbox_progress WHERE segment=?", (segment,)).fetchone()
        return row[0] if row else 0

    def forget_inbox_segment(self, segment: str) -> None:
        with self._write() as db:
            self._run(db, "DELETE FROM inbox_progress WHERE segment=?", (segment,))

    def inbox_size(self) -> int:
        with self._read() as db:
            return self._run(db, "SELECT count(*) FROM inbox").fetchone()[0]

    def delivery_jobs(self, delivery_id: str) -> list[str]:
        with self._read() as db:
            rows = self._run(db, "SELECT id FROM jobs WHERE delivery_id=? ORDER BY created_at", (delivery_id,)).fetchall()
        return [row[0] for row in rows]

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._read() as db:
            row = self._run(db, f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE id=?",
                            (delivery_id,)).fetchone()
        return Delivery(**dict(zip(_DELIVERY_COLUMNS, row))) if row else None

    def delivery_with_body(self, body_sha256: str) -> str | None:
        with self._read() as db:
            row = self._run(db, "SELECT id FROM deliveries WHERE body_sha256=? LIMIT 1", (body_sha256,)).fetchone()
        return row[0] if row else None

    # --- jobs ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        with self._read() as db:
            row = self._run(db, "SELECT doc FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def list_jobs(
        self, states: Iterable[JobState] | None = None, *, repo: str | None = None, limit: int | None = None,
        issue_number: int | None = None,
    ) -> list[Job]:
        sql, args = "SELECT doc FROM jobs WHERE 1=1", []
        if states is not None:
            states = list(states)
            if not states:
                return []
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
        with self._read() as db:
            return [Job.model_validate_json(doc) for (doc,) in self._run(db, sql, args).fetchall()]

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
        with self._read() as db:
            jobs = [Job.model_validate_json(doc) for (doc,) in self._run(db, sql, args).fetchall()]
        more, jobs = len(jobs) > query.limit, jobs[: query.limit]
        return JobPage(jobs=jobs, next=JobCursor(created_at=jobs[-1].created_at, id=jobs[-1].id) if more else None)

    def count_jobs(self, states: Iterable[JobState] | None = None) -> dict[JobState, int]:
        sql, args = "SELECT state, count(*) FROM jobs", []
        if states is not None:
            states = list(states)
            if not states:
                return {}
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = [s.value for s in states]
        with self._read() as db:
            rows = self._run(db, sql + " GROUP BY state", args).fetchall()
        return {JobState(state): count for state, count in rows}

    def save_job(self, job: Job, event: str, **data: object) -> None:
        """Under a lease on this job (app/domain/lease.py), only while the lease is still this holder's:
        LeaseLost, and nothing written, once another worker took the job over or the holder lost the
        lease itself (`Lease.lost`: not renewed in time, so another may take the job any moment)."""
        with self._write() as db:
            self._write_job(db, job)
            self._write_event(db, job.id, event, {"state": job.state.value, **data})
            # A job a stage holds wakes the others when its lease is released (claims.py), not at each save.
            lease = current_lease.get()
            if (job.state in WAKING_STATES or job.terminal) and (lease is None or lease.job_id != job.id):
                self._notify(db)

    def add_event(self, job_id: str, kind: str, **data: object) -> None:
        with self._write() as db:
            lease = current_lease.get()
            if lease is not None and lease.job_id == job_id:
                self._fence(db, lease)
            self._write_event(db, job_id, kind, data)

    def events(self, job_id: str, after: int = -1) -> list[JobEvent]:
        job = self.get_job(job_id)
        if job is None:
            return []
        created = JobEvent(job_id=job_id, at=job.created_at, kind="created", data={"delivery": job.delivery_id})
        with self._read() as db:
            rows = self._run(db, f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE job_id=? AND seq>? ORDER BY seq",
                             (job_id, after)).fetchall()
        return ([created] if after < 0 else []) + [_event(row) for row in rows]

    def events_since(self, seq: int, limit: int = 500) -> list[JobEvent]:
        with self._read() as db:
            rows = self._run(db, f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE seq>? ORDER BY seq LIMIT ?",
                             (seq, int(limit))).fetchall()
        return [_event(row) for row in rows]

    def last_event_seq(self) -> int:
        with self._read() as db:
            return self._run(db, "SELECT COALESCE(MAX(seq), 0) FROM job_events").fetchone()[0]

    # --- commands -----------------------------------------------------------------------------

    def pending_commands(self) -> list[tuple[int, JobCommand]]:
        with self._read() as db:
            rows = self._run(db, "SELECT seq, doc FROM commands WHERE done_at IS NULL ORDER BY seq").fetchall()
        return [(seq, JobCommand.model_validate_json(doc)) for seq, doc in rows]

    def finish_command(self, seq: int, outcome: str) -> None:
        with self._write() as db:
            self._run(db, "UPDATE commands SET done_at=?, outcome=? WHERE seq=?", (time.time(), outcome, seq))

    def prune(self, older_than: float) -> tuple[int, int]:
        """Forget carried-out commands and job-less deliveries received before `older_than`.

        Jobs and their events are kept: they are the record of what AgentVine did."""
        with self._write() as db:
            commands = self._run(db, "DELETE FROM commands WHERE done_at IS NOT NULL AND done_at < ?",
                                 (older_than,)).rowcount
            deliveries = self._run(
                db, "DELETE FROM deliveries WHERE received_at < ? AND id NOT IN (SELECT delivery_id FROM jobs)"
                    " AND id NOT IN (SELECT delivery_id FROM commands)", (older_than,)).rowcount
        return commands, deliveries

    # --- writing ------------------------------------------------------------------------------

    def _write_job(self, db: Any, job: Job) -> None:
        values = (job.id, job.delivery_id, job.installation_id, job.repo, job.issue_number, job.state.value,
                  job.created_at, job.updated_at, job.model_dump_json(), job.worker)
        lease = current_lease.get()
        if lease is not None and lease.job_id == job.id:
            if lease.lost:  # given up by its holder (not renewed in time): it changes nothing, whatever the row says
                self._lost(lease)
            # A stage's write: only the lease's holder, at the lease's epoch (the fence).
            cur = self._run(db, "UPDATE jobs SET state=?, updated_at=?, doc=?, worker=? WHERE id=? AND lease_owner=? "
                                "AND lease_epoch=?", (*values[5:6], *values[7:], job.id, lease.holder, lease.epoch))
            if cur.rowcount == 0:
                self._lost(lease)
            return
        self._run(
            db, f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({','.join('?' * len(_JOB_COLUMNS))}) "
                "ON CONFLICT(id) DO UPDATE SET "
                "state=excluded.state, updated_at=excluded.updated_at, doc=excluded.doc, worker=excluded.worker",
            values,
        )

    def _fence(self, db: Any, lease: Lease) -> None:
        """Within a write transaction: LeaseLost unless `lease` is still the job's (and the row stays
        locked until the commit, so no claim slips in between)."""
        if lease.lost:
            self._lost(lease)
        row = self._run(db, f"SELECT 1 FROM jobs WHERE id=? AND lease_owner=? AND lease_epoch=?"
                            f"{' FOR UPDATE' if self.backend == 'postgresql' else ''}",
                        (lease.job_id, lease.holder, lease.epoch)).fetchone()
        if row is None:
            self._lost(lease)

    @staticmethod
    def _lost(lease: Lease) -> None:
        lease.lose()
        raise LeaseLost(lease.job_id)

    def _write_event(self, db: Any, job_id: str, kind: str, data: dict) -> None:
        self._serialise(db, "events")  # a seq becomes visible only after every lower one (events_since)
        self._run(db, "INSERT INTO job_events (job_id, at, kind, data) VALUES (?,?,?,?)",
                  (job_id, time.time(), kind, json.dumps(data, default=str)))


@lru_cache(maxsize=512)
def _render(text: str, backend: str) -> str:
    """The backend's words in place of {now} etc., and its placeholder in place of `?` (psycopg: %s)."""
    text = text.replace("{now}", schema.WORDS[backend]["now"])
    return text.replace("?", "%s") if backend == "postgresql" else text
