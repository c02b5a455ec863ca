"""The narrow interface the rest of the app uses, so a PostgreSQL backend can follow."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from app.intents import JobCommand
from app.jobs import Delivery, Job, JobEvent, JobState


# A delivery with the jobs and commands it asks for.
DeliveryRecord = tuple[Delivery, list[Job], list[JobCommand]]


class JobStore(Protocol):
    def record_delivery(
        self, delivery: Delivery, jobs: Iterable[Job] = (), commands: Iterable[JobCommand] = ()
    ) -> bool:
        """Store a delivery with the jobs and commands it asks for, in one transaction.

        Returns False (and stores nothing) when the delivery id was seen before."""

    def record_deliveries(self, batch: list[DeliveryRecord]) -> list[bool]:
        """record_delivery for several deliveries in one transaction."""

    def get_job(self, job_id: str) -> Job | None: ...

    def list_jobs(
        self, states: Iterable[JobState] | None = None, *, repo: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs oldest first."""

    def save_job(self, job: Job, event: str, **data: object) -> None:
        """Persist the job as it is now and append `event` to its log, atomically."""

    def add_event(self, job_id: str, kind: str, **data: object) -> None: ...

    def events(self, job_id: str) -> list[JobEvent]: ...

    def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    def pending_commands(self) -> list[tuple[int, JobCommand]]:
        """Commands not yet carried out, oldest first, with their sequence number."""

    def finish_command(self, seq: int, outcome: str) -> None: ...

    def prune(self, older_than: float) -> tuple[int, int]:
        """Drop carried-out commands and job-less deliveries older than `older_than` (epoch s)."""

    def healthy(self) -> bool: ...

    def close(self) -> None: ...
