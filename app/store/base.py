"""The narrow interface the rest of the app uses, so a PostgreSQL backend can follow."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobEvent, JobState


# A delivery with the jobs and commands it asks for.
DeliveryRecord = tuple[Delivery, list[Job], list[JobCommand]]


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
        self, states: Iterable[JobState] | None = None, *, repo: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs oldest first."""

    def count_jobs(self, states: Iterable[JobState] | None = None) -> dict[JobState, int]:
        """How many jobs are in each of `states` (all states when None); a state without jobs is left out."""

    def save_job(self, job: Job, event: str, **data: object) -> None:
        """Persist the job as it is now and append `event` to its log, atomically."""

    def add_event(self, job_id: str, kind: str, **data: object) -> None: ...

    def events(self, job_id: str) -> list[JobEvent]: ...

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
