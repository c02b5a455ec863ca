"""Claims, for several workers sharing one store (docs/scale-out.md): jobs under leases, commands and
inbox rows. A claim makes the claimer the holder until a time on the database's clock; a job's claim
also raises its epoch, which fences the holder's writes (app/store/sql.py). Part of SQLJobStore,
whose connections and dialect these queries use."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from app.domain.intents import JobCommand
from app.domain.job import Job, JobState
from app.store.base import WAKING_STATES, Claimed, InboxRow, StageClaim, StageLoad

CLAIM_WINDOW = 8  # candidates looked at per job wanted: a backlog must not make every claim cost more


class ClaimQueries:
    """Uses SQLJobStore's `_write`, `_read`, `_run`, `_serialise`, `_notify` and `_skip_locked`."""

    _skip_locked: str
    _write: Any
    _read: Any
    _run: Any
    _serialise: Any
    _notify: Any

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

    def claim_jobs(self, stage: StageClaim, holder: str, home: str, *, limit: int,
                   lease_s: float, exclude: Collection[str] = ()) -> list[Claimed]:
        """Up to `limit` of the oldest jobs in the stage's states that no live lease holds, each leased to
        `holder` for `lease_s` with its epoch raised; with the epoch. A job waiting for its answer on
        another worker's machine (`home`) is left to that worker while it is alive. The stage's
        per-repository and per-installation limits count every worker's live leases: claims of one
        stage are serialised, so two workers cannot both take the last place. `exclude`: the jobs the
        claimer still works on itself (after a suspend its lease ran out but its task runs on)."""
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
                (*states, home, lease_s, (limit + len(live) + len(exclude)) * CLAIM_WINDOW),
            ).fetchall()
            claimed = []
            for job_id, repo, installation, before in candidates:
                if len(claimed) >= limit:
                    break
                if job_id in exclude:
                    continue
                if stage.per_repo is not None and per_repo[repo] >= stage.per_repo:
                    continue
                if stage.per_installation is not None and per_installation[installation] >= stage.per_installation:
                    continue
                doc, epoch, cancel = self._run(
                    db, "UPDATE jobs SET lease_owner=?, lease_epoch=lease_epoch+1, lease_until={now} + ?, "
                        "lease_stage=? WHERE id=? RETURNING doc, lease_epoch, cancel_requested",
                    (holder, lease_s, stage.name, job_id)).fetchone()
                per_repo[repo] += 1
                per_installation[installation] += 1
                claimed.append(Claimed(Job.model_validate_json(doc), epoch, before, bool(cancel)))
        return claimed

    def renew_leases(self, holder: str, name: str, held: dict[str, int], lease_s: float,
                     totals: Mapping[str, int] | None = None) -> dict[str, bool]:
        """The worker's heartbeat: `name` (its machine) is alive, and each lease in `held` (job id: epoch)
        that is still `holder`'s runs `lease_s` from now; `totals` (its stages' limits), when given, is
        recorded. Returns the leases kept, each with whether a cancel was asked for it through another
        worker; a lease not returned is lost."""
        kept: dict[str, bool] = {}
        recorded = json.dumps(dict(totals), sort_keys=True) if totals is not None else None
        with self._write() as db:
            self._run(db, "INSERT INTO workers (name, holder, seen_at, stage_totals) VALUES (?,?,{now},?) "
                          "ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, seen_at=excluded.seen_at, "
                          "stage_totals=COALESCE(excluded.stage_totals, workers.stage_totals)", (name, holder, recorded))
            for job_id, epoch in held.items():
                row = self._run(db, "UPDATE jobs SET lease_until={now} + ? WHERE id=? AND lease_owner=? "
                                    "AND lease_epoch=? RETURNING cancel_requested",
                                (lease_s, job_id, holder, epoch)).fetchone()
                if row is not None:
                    kept[job_id] = bool(row[0])
        return kept

    def stage_load(self, stage: str, within_s: float) -> StageLoad:
        with self._read() as db:
            running = self._run(db, "SELECT doc FROM jobs WHERE lease_stage=? AND lease_until >= {now} "
                                    "ORDER BY created_at, id", (stage,)).fetchall()
            workers = self._run(db, "SELECT name, stage_totals FROM workers WHERE seen_at >= {now} - ?",
                                (within_s,)).fetchall()
        totals = {name: total for name, recorded in workers if (total := _totals(recorded).get(stage)) is not None}
        return StageLoad([Job.model_validate_json(doc) for (doc,) in running], totals)

    def release_lease(self, job_id: str, holder: str, epoch: int, *, home: str | None = None) -> bool:
        """The stage is done with the job: any worker may claim it next (its `home` keeps the files of a
        job waiting for an answer). False when the lease was no longer this holder's."""
        with self._write() as db:
            row = self._run(db, "UPDATE jobs SET lease_owner=NULL, lease_until=NULL, lease_stage=NULL, "
                                "home=? WHERE id=? AND lease_owner=? AND lease_epoch=? "
                                "RETURNING state", (home, job_id, holder, epoch)).fetchone()
            if row is not None and JobState(row[0]) in WAKING_STATES:  # another stage, or worker, may take it now
                self._notify(db)
        return row is not None

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

    def claim_commands(self, holder: str, lease_s: float, limit: int = 50) -> list[tuple[int, JobCommand]]:
        """Commands not carried out and not claimed by a live claim, oldest first, held by `holder` for
        `lease_s`. At most one per issue at a time, the oldest: an issue's commands run in order."""
        with self._write() as db:
            self._serialise(db, "commands")
            rows = self._run(
                db, "SELECT seq FROM commands c WHERE done_at IS NULL "
                    "AND (claimed_until IS NULL OR claimed_until < {now}) AND NOT EXISTS (SELECT 1 FROM commands e "
                    "  WHERE e.done_at IS NULL AND e.seq < c.seq "  # not IS NOT DISTINCT FROM: SQLite before 3.39 lacks it
                    "  AND (e.repo = c.repo OR (e.repo IS NULL AND c.repo IS NULL)) "
                    "  AND (e.issue_number = c.issue_number OR (e.issue_number IS NULL AND c.issue_number IS NULL))) "
                    f"ORDER BY seq LIMIT ?{self._skip_locked}", (int(limit),)).fetchall()
            claimed = []
            for (seq,) in rows:
                doc = self._run(db, "UPDATE commands SET claimed_by=?, claimed_until={now} + ? WHERE seq=? "
                                    "RETURNING doc", (holder, lease_s, seq)).fetchone()[0]
                claimed.append((seq, JobCommand.model_validate_json(doc)))
        return claimed

    def renew_command_claim(self, seq: int, holder: str, lease_s: float) -> bool:
        with self._write() as db:
            row = self._run(db, "UPDATE commands SET claimed_until={now} + ? WHERE seq=? AND claimed_by=? "
                                "AND done_at IS NULL RETURNING seq",
                            (lease_s, seq, holder)).fetchone()
        return row is not None


def _totals(recorded: str | None) -> dict[str, int]:
    """A worker's recorded limits; a worker of a version that sent none (or anything else) has none."""
    try:
        totals = json.loads(recorded) if recorded else {}
    except ValueError:
        return {}
    if not isinstance(totals, dict):
        return {}
    return {stage: total for stage, total in totals.items() if type(total) is int and total >= 0}
