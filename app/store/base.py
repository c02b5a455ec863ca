"""The narrow interface the rest of the app uses, so a PostgreSQL backend can follow."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState


# A delivery with the jobs and commands it asks for.
DeliveryRecord = tuple[Delivery, list[Job], list[JobCommand]]

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


class JobStore(Protocol):
    def record_delivery(
        self, delivery: Delivery, jobs: Iterable[Job] = (), commands: Iterable[JobCommand] = ()
    ) -> bool:
        """Store a delivery with the jobs and commands it asks for, in one transaction.

        Returns False (and stores nothing) when the delivery id was seen before."""

    def record_deliveries(self, batch: list[DeliveryRecord], inbox_position: tuple[str, int] | None = None) -> list[bool]:
        """record_delivery for several deliveries in one transaction, which also moves the
        inbox position (segment, offset) past them when given."""

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

    def finish_command(self, seq: int, outcome: str) -> None: ...

    def prune(self, older_than: float) -> tuple[int, int]:
        """Drop carried-out commands and job-less deliveries older than `older_than` (epoch s)."""

    def healthy(self) -> bool: ...

    def close(self) -> None: ...
