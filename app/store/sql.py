"""The job store's queries, written once for both backends (app/store/sqlite.py, app/store/postgres.py).

A backend gives the connections (`_write`: one transaction; `_read`: outside one) and its few
differences: how `?` is written, what serialises claims, whether it wakes other processes. The
queries here use only SQL both understand (ON CONFLICT, RETURNING, IS NOT DISTINCT FROM).

Leases (docs/scale-out.md): a claim makes the claimer the job's holder until `lease_until` (the
database's clock) and raises the job's epoch; only the holder of the current epoch may save the job
(`save_job` under app/domain/lease.py's current lease), renew or release it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState
from app.domain.lease import Lease, LeaseLost, current_lease
from app.store import schema
from app.store.base import Claimed, DeliveryRecord, InboxRow, JobCursor, JobPage, JobQuery, StageClaim

# The deliveries table's columns in table order: one list for the row written and the row read.
_DELIVERY_COLUMNS = ("id", "event", "action", "installation_id", "repo", "received_at", "outcome", "body_sha256")
_JOB_COLUMNS = ("id", "delivery_id", "installation_id", "repo", "issue_number", "state", "created_at", "updated_at",
                "doc", "worker")
_EVENT_COLUMNS = "seq, job_id, at, kind, data"
# Saving a job in one of these may give a worker something to do (another worker may be the one).
_WAKING_STATES = frozenset({JobState.QUEUED, JobState.ACKNOWLEDGED})

CLAIM_WINDOW = 8  # candidates looked at per job wanted: a backlog must not make every claim cost more


def _event(row: Sequence[Any]) -> JobEvent:
    seq, job_id, at, kind, data = row
    return JobEvent(job_id=job_id, seq=seq, at=at, kind=kind, data=json.loads(data))


class SQLJobStore:
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
            self._run(db, "INSERT INTO commands (delivery_id, doc, repo, issue_number) VALUES (?,?,?,?)",
                      (delivery.id, command.model_dump_json(), command.repo, command.issue_number))
        return True

    def inbox_offset(self, segment: str) -> int:
        with self._read() as db:
            row = self._run(db, "SELECT read_to FROM inbox_progress WHERE segment=?", (segment,)).fetchone()
        return row[0] if row else 0

    def forget_inbox_segment(self, segment: str) -> None:
        with self._write() as db:
            self._run(db, "DELETE FROM inbox_progress WHERE segment=?", (segment,))

    def claim_inbox(self, holder: str, lease_s: float, limit: int) -> list[InboxRow]:
        """Deliveries web instances put in the inbox table, oldest first, that no live claim holds: held
        by `holder` for `lease_s` (a worker that dies with them leaves them to the next)."""
        with self._write() as db:
            self._serialise(db, "inbox")
            ids = [row[0] for row in self._run(
                db, f"SELECT id FROM inbox WHERE claimed_until IS NULL OR claimed_until < {{now}} "
                    f"ORDER BY id LIMIT ?{self._skip_locked}", (int(limit),))]
            rows = self._run(  # one statement for the batch; RETURNING's order is not the ids', hence sorted
                db, f"UPDATE inbox SET claimed_by=?, claimed_until={{now}} + ? WHERE id IN ({','.join('?' * len(ids))}) "
                    "RETURNING id, delivery_id, event, received_at, body", (holder, lease_s, *ids)).fetchall() if ids else []
        return [InboxRow(id=r[0], delivery_id=r[1], event=r[2], received_at=r[3], body=bytes(r[4]))
                for r in sorted(rows, key=lambda r: r[0])]

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
        LeaseLost, and nothing written, once another worker took the job over."""
        with self._write() as db:
            self._write_job(db, job)
            self._write_event(db, job.id, event, {"state": job.state.value, **data})
            if job.state in _WAKING_STATES or job.terminal:
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

    # --- leases -------------------------------------------------------------------------------

    def claim_jobs(self, stage: StageClaim, holder: str, home: str, *, limit: int,
                   lease_s: float) -> list[Claimed]:
        """Up to `limit` of the oldest jobs in the stage's states that no live lease holds, each leased to
        `holder` for `lease_s` with its epoch raised; with the epoch. A job waiting for its answer on
        another worker's machine (`home`) is left to that worker while it is alive. The stage's
        per-repository and per-installation limits count every worker's live leases: claims of one
        stage are serialised, so two workers cannot both take the last place."""
        if limit <= 0:
            return []
        states = [stage.state.value]
        with self._write() as db:
            self._serialise(db, "claim:" + stage.name)
            live = self._run(db, "SELECT repo, installation_id FROM jobs WHERE lease_stage=? AND lease_until >= {now}",
                             (stage.name,)).fetchall()
            per_repo = Counter(repo for repo, _ in live)
            per_installation = Counter(installation for _, installation in live)
            candidates = self._run(
                db,
                f"SELECT id, repo, installation_id, lease_owner FROM jobs WHERE state IN ({','.join('?' * len(states))}) "
                "AND (lease_until IS NULL OR lease_until < {now}) "
                "AND (home IS NULL OR home=? OR NOT EXISTS "
                "     (SELECT 1 FROM workers WHERE workers.name=jobs.home AND workers.seen_at >= {now} - ?)) "
                f"ORDER BY created_at, id LIMIT ?{self._skip_locked}",
                (*states, home, lease_s, (limit + len(live)) * CLAIM_WINDOW),
            ).fetchall()
            claimed = []
            for job_id, repo, installation, before in candidates:
                if len(claimed) >= limit:
                    break
                if stage.per_repo is not None and per_repo[repo] >= stage.per_repo:
                    continue
                if stage.per_installation is not None and per_installation[installation] >= stage.per_installation:
                    continue
                doc, epoch = self._run(
                    db, "UPDATE jobs SET lease_owner=?, lease_epoch=lease_epoch+1, lease_until={now} + ?, "
                        "lease_stage=?, cancel_requested=0 WHERE id=? RETURNING doc, lease_epoch",
                    (holder, lease_s, stage.name, job_id)).fetchone()
                per_repo[repo] += 1
                per_installation[installation] += 1
                claimed.append(Claimed(Job.model_validate_json(doc), epoch, before))
        return claimed

    def renew_leases(self, holder: str, name: str, held: dict[str, int], lease_s: float) -> dict[str, bool]:
        """The worker's heartbeat: `name` (its machine) is alive, and each lease in `held` (job id: epoch)
        that is still `holder`'s runs `lease_s` from now. Returns the leases kept, each with whether a
        cancel was asked for it through another worker; a lease not returned is lost."""
        kept: dict[str, bool] = {}
        with self._write() as db:
            self._run(db, "INSERT INTO workers VALUES (?,?,{now}) ON CONFLICT(name) DO UPDATE "
                          "SET holder=excluded.holder, seen_at=excluded.seen_at", (name, holder))
            for job_id, epoch in held.items():
                row = self._run(db, "UPDATE jobs SET lease_until={now} + ? WHERE id=? AND lease_owner=? "
                                    "AND lease_epoch=? RETURNING cancel_requested",
                                (lease_s, job_id, holder, epoch)).fetchone()
                if row is not None:
                    kept[job_id] = bool(row[0])
        return kept

    def release_lease(self, job_id: str, holder: str, epoch: int, *, home: str | None = None) -> bool:
        """The stage is done with the job: any worker may claim it next (its `home` keeps the files of a
        job waiting for an answer). False when the lease was no longer this holder's."""
        with self._write() as db:
            cur = self._run(db, "UPDATE jobs SET lease_owner=NULL, lease_until=NULL, lease_stage=NULL, "
                                "cancel_requested=0, home=? WHERE id=? AND lease_owner=? AND lease_epoch=?",
                            (home, job_id, holder, epoch))
            self._notify(db)
        return cur.rowcount > 0

    def expire_leases_of(self, name: str, holder: str) -> int:
        """At a worker's start: the leases an earlier process on this machine (`name`) held died with it,
        so its jobs need not wait a lease's length. How many there were."""
        pattern = name.replace("!", "!!").replace("%", "!%").replace("_", "!_") + ":%"
        with self._write() as db:
            return self._run(db, "UPDATE jobs SET lease_until={now} - 1 WHERE lease_owner LIKE ? ESCAPE '!' "
                                 "AND lease_owner <> ? AND lease_until >= {now}", (pattern, holder)).rowcount

    def lease_of(self, job_id: str) -> tuple[str, int] | None:
        """The live lease on a job (holder, epoch), if any."""
        with self._read() as db:
            row = self._run(db, "SELECT lease_owner, lease_epoch FROM jobs WHERE id=? AND lease_owner IS NOT NULL "
                                "AND lease_until >= {now}", (job_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def request_cancel(self, job_id: str) -> bool:
        """Ask whoever holds the job's live lease to stop it (its next heartbeat hears it). False when no
        live lease holds the job."""
        with self._write() as db:
            cur = self._run(db, "UPDATE jobs SET cancel_requested=1 WHERE id=? AND lease_owner IS NOT NULL "
                                "AND lease_until >= {now}", (job_id,))
            self._notify(db)
        return cur.rowcount > 0

    # --- commands -----------------------------------------------------------------------------

    def pending_commands(self) -> list[tuple[int, JobCommand]]:
        with self._read() as db:
            rows = self._run(db, "SELECT seq, doc FROM commands WHERE done_at IS NULL ORDER BY seq").fetchall()
        return [(seq, JobCommand.model_validate_json(doc)) for seq, doc in rows]

    def claim_commands(self, holder: str, lease_s: float, limit: int = 50) -> list[tuple[int, JobCommand]]:
        """Commands not carried out and not claimed by a live claim, oldest first, held by `holder` for
        `lease_s`. At most one per issue at a time, the oldest: an issue's commands run in order."""
        with self._write() as db:
            self._serialise(db, "commands")
            rows = self._run(
                db, "SELECT seq FROM commands c WHERE done_at IS NULL "
                    "AND (claimed_until IS NULL OR claimed_until < {now}) AND NOT EXISTS (SELECT 1 FROM commands e "
                    "  WHERE e.done_at IS NULL AND e.seq < c.seq AND e.repo IS NOT DISTINCT FROM c.repo "
                    "  AND e.issue_number IS NOT DISTINCT FROM c.issue_number) "
                    f"ORDER BY seq LIMIT ?{self._skip_locked}", (int(limit),)).fetchall()
            claimed = []
            for (seq,) in rows:
                doc = self._run(db, "UPDATE commands SET claimed_by=?, claimed_until={now} + ? WHERE seq=? "
                                    "RETURNING doc", (holder, lease_s, seq)).fetchone()[0]
                claimed.append((seq, JobCommand.model_validate_json(doc)))
        return claimed

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


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
