"""The narrow interface the rest of the app uses; SQLite (app/store/sqlite.py) and PostgreSQL
(app/store/postgres.py) implement it, with their queries shared in app/store/sql.py."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState


# A delivery with the jobs and commands it asks for.
DeliveryRecord = tuple[Delivery, list[Job], list[JobCommand]]

# A job saved, or released, in one of these may give a worker (another process's) something to do.
WAKING_STATES = frozenset({JobState.QUEUED, JobState.ACKNOWLEDGED})

MAX_PAGE = 100  # jobs in one page of find_jobs, at most
MAX_CURSOR_CHARS = 200


class JobCursor(BaseModel):
    """Where a page of jobs (newest first) ended: its last job's creation time and id. Keyset, not an
    offset: a job created while someone pages neither repeats nor hides one."""

    model_config = ConfigDict(frozen=True)
    created_at: float
    id: str = Field(max_length=64)

    def encode(self) -> str:
        """Opaque to clients (they hand it back as it is), safe in a URL."""
        raw = json.dumps([self.created_at, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> JobCursor:
        """ValueError for anything encode did not make."""
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError("cursor too long")
        try:
            created_at, job_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(created_at=created_at, id=job_id)
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, ValidationError) as exc:
            raise ValueError("not a cursor this service made") from exc


class JobQuery(BaseModel):
    """A page of the job list: every filter given must match; `after` is the previous page's `next`."""

    model_config = ConfigDict(frozen=True)
    repo: str | None = None
    states: tuple[JobState, ...] = ()  # any of these (none: every state)
    worker: str | None = None
    after: JobCursor | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


class JobPage(BaseModel):
    jobs: list[Job]
    next: JobCursor | None = None  # None: no older job matches


@dataclass(frozen=True)
class StageClaim:
    """What a stage claims: jobs in `state` that no live lease holds; at most `per_repo` and
    `per_installation` of the stage's live leases, over every worker."""

    name: str
    state: JobState
    per_repo: int | None = None
    per_installation: int | None = None


@dataclass(frozen=True)
class Claimed:
    job: Job
    epoch: int  # the lease's, raised by this claim
    previous_holder: str | None  # whose lease ran out, if anyone's (None: no worker had it)
    # A cancel was asked for while another stage or worker held the job (it stays asked until the
    # run stage ends the job cancelled: a takeover or the next stage must not lose it).
    cancel_requested: bool = False


@dataclass(frozen=True)
class StageLoad:
    """A stage over every live worker: what a queued job's place in line is counted against."""

    running: list[Job]  # the jobs a live lease of the stage holds, on any worker, oldest first
    totals: dict[str, int]  # each live worker's (by name) limit on the stage's jobs at once


@dataclass(frozen=True)
class InboxRow:
    """A delivery a web instance stored in the inbox table (PostgreSQL), as GitHub sent it."""

    id: int
    delivery_id: str
    event: str
    received_at: float
    body: bytes


# What either inbox (the web's files, the PostgreSQL table) holds of one delivery, at most.
MAX_NAME_BYTES = 0xFFFF  # a delivery id or an event name: the file record's header field
MAX_BODY_BYTES = 0xFFFFFFFF


def encode_names(delivery_id: str, event: str, body: bytes) -> tuple[bytes, bytes]:
    """The delivery id and event name as UTF-8. ValueError for a delivery that no inbox can store: a name
    that is not valid Unicode text (aiohttp hands a non-UTF-8 header byte over as a lone surrogate, which
    does not encode), or one too long. The web process refuses such headers first (app/web/webhook.py);
    this is what keeps a record that got past it out of the inbox."""
    ident, name = delivery_id.encode(), event.encode()  # UnicodeEncodeError is a ValueError
    if len(ident) > MAX_NAME_BYTES or len(name) > MAX_NAME_BYTES or len(body) > MAX_BODY_BYTES:
        raise ValueError("delivery id, event name or body too long for an inbox record")
    return ident, name


class JobStore(Protocol):
    backend: str  # "sqlite" or "postgresql"

    def record_delivery(
        self, delivery: Delivery, jobs: Iterable[Job] = (), commands: Iterable[JobCommand] = ()
    ) -> bool:
        """Store a delivery with the jobs and commands it asks for, in one transaction.

        Returns False (and stores nothing) when the delivery id was seen before."""

    def record_deliveries(self, batch: list[DeliveryRecord], inbox_position: tuple[str, int] | None = None,
                          inbox_rows: Sequence[int] = ()) -> list[bool]:
        """record_delivery for several deliveries in one transaction, which also moves the
        inbox position (segment, offset) past them, or removes their `inbox_rows`, when given."""

    def claim_inbox(self, holder: str, lease_s: float, limit: int) -> list[InboxRow]:
        """The oldest deliveries of the inbox table no live claim holds, claimed for `lease_s`."""

    def inbox_offset(self, segment: str) -> int:
        """How far the inbox segment has been read into the store (0 if not at all)."""

    def forget_inbox_segment(self, segment: str) -> None: ...

    def delivery_jobs(self, delivery_id: str) -> list[str]:
        """Ids of the jobs a delivery started, oldest first."""

    def get_job(self, job_id: str) -> Job | None: ...

    def list_jobs(
        self, states: Iterable[JobState] | None = None, *, repo: str | None = None, limit: int | None = None,
        issue_number: int | None = None,
    ) -> list[Job]:
        """Jobs oldest first; `issue_number` (with `repo`) narrows them to one issue or pull request."""

    def find_jobs(self, query: JobQuery) -> JobPage:
        """One page of the jobs that match, newest first (the operator's list)."""

    def count_jobs(self, states: Iterable[JobState] | None = None) -> dict[JobState, int]:
        """How many jobs are in each of `states` (all states when None); a state without jobs is left out."""

    def save_job(self, job: Job, event: str, **data: object) -> None:
        """Persist the job as it is now and append `event` to its log, atomically."""

    def add_event(self, job_id: str, kind: str, **data: object) -> None: ...

    def events(self, job_id: str, after: int = -1) -> list[JobEvent]:
        """The job's log in order, those with a `seq` above `after`: first its creation (seq 0, from the
        job's row), then every event stored for it (seq from the store's one log, rising)."""

    def events_since(self, seq: int, limit: int = 500) -> list[JobEvent]:
        """Every job's events with a `seq` above `seq`, in order, at most `limit` (what a web process
        polls for to stream a job's activity; the worker that writes them is another process). SQLite has
        one writer, so a seq becomes visible only after every lower one; a PostgreSQL store must keep that
        promise too (its sequences can commit out of order), e.g. by re-reading a short window."""

    def last_event_seq(self) -> int:
        """The highest `seq` stored (0 when none)."""

    def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    def delivery_with_body(self, body_sha256: str) -> str | None:
        """The delivery stored with this body (the SHA-256 of its bytes), if one started work."""
        ...

    def pending_commands(self) -> list[tuple[int, JobCommand]]:
        """Commands not yet carried out, oldest first, with their sequence number."""

    def claim_commands(self, holder: str, lease_s: float, limit: int = 50) -> list[tuple[int, JobCommand]]:
        """Pending commands no live claim holds, claimed for `lease_s`; one per issue at a time."""

    # --- leases (docs/scale-out.md) -----------------------------------------------------------

    def claim_jobs(self, stage: StageClaim, holder: str, home: str, *, limit: int,
                   lease_s: float, exclude: Collection[str] = ()) -> list[Claimed]:
        """Up to `limit` jobs for the stage (none of `exclude`), each leased to `holder` with a new epoch."""

    def renew_leases(self, holder: str, name: str, held: dict[str, int], lease_s: float,
                     totals: Mapping[str, int] | None = None) -> dict[str, bool]:
        """The heartbeat: the leases still held (with whether a cancel was asked for); the rest are lost.
        `totals` (each stage's limit on this worker) is recorded with the machine's heartbeat."""

    def stage_load(self, stage: str, within_s: float) -> StageLoad:
        """The jobs the stage's live leases hold, and the limits of the workers seen within `within_s`."""

    def release_lease(self, job_id: str, holder: str, epoch: int, *, home: str | None = None) -> bool: ...

    def expire_leases_of(self, name: str, holder: str) -> int:
        """The leases of earlier processes on machine `name` (all but `holder`'s) end now."""

    def lease_of(self, job_id: str) -> tuple[str, int] | None:
        """The live lease on the job (holder, epoch), if any."""

    def request_cancel(self, job_id: str) -> bool:
        """Ask the worker holding the job's live lease to stop it; False when none holds it."""

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever another process may have made work (PostgreSQL's LISTEN); runs until
        cancelled. A backend whose processes share no such signal returns at once."""

    def renew_command_claim(self, seq: int, holder: str, lease_s: float) -> bool:
        """The heartbeat, for a command being carried out: its claim runs `lease_s` on; False when it is
        no longer `holder`'s (it ran out meanwhile and another worker took it)."""

    def finish_command(self, seq: int, outcome: str) -> None: ...

    def prune(self, older_than: float) -> tuple[int, int]:
        """Drop carried-out commands and job-less deliveries older than `older_than` (epoch s)."""

    def healthy(self) -> bool: ...

    def close(self) -> None: ...
