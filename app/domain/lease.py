"""A worker's lease on a job: who may change the job and publish for it, and until when.

Pure data, no I/O. The engine claims and renews leases (app/engine/leases.py) and runs each stage
with its lease as `current_lease`, so every write the stage makes is fenced without being told:
the store saves the job only at the lease's epoch, and the GitHub client and host git ask
`check_current()` before anything they publish. docs/scale-out.md has the whole protocol."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

# Of a lease's length, how much a holder uses before it must have renewed (by its own clock): the
# rest covers a publish already under way and clocks that run at slightly different rates.
USABLE = 0.8

# The clock a lease's time is kept on. On Linux it counts the time the machine was suspended
# (CLOCK_BOOTTIME), as the database's clock does: a laptop that slept past its leases must find them
# run out when it wakes, not go on publishing for jobs another worker (or its own next pass) took.
_CLOCK = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    return time.clock_gettime(_CLOCK) if _CLOCK is not None else time.monotonic()


LABEL_HOLDER = "agentvine.holder"
LABEL_EPOCH = "agentvine.epoch"


class LeaseLost(RuntimeError):
    """Another worker holds the job now, or this one could not renew its lease in time: it may not
    change the job nor publish anything for it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the lease on job {job_id} is lost: another worker may have taken it over")
        self.job_id = job_id


@dataclass(eq=False)
class Lease:
    job_id: str
    holder: str  # the worker process (app/engine/leases.py: WorkerIdentity.holder)
    epoch: int  # raised by every claim: an older holder's writes no longer match
    stage: str
    seconds: float
    valid_until: float = 0.0  # lease_clock() by which it must have been renewed
    lost: bool = False
    # Asks the store at once whether the lease is still held (and renews it): for a holder that was
    # paused past `valid_until` and may still own the job.
    revalidate: Callable[[Lease], bool] | None = None
    on_lost: Callable[[Lease], None] | None = None  # stops the job's work (its container) once

    def renewed(self, started: float) -> None:
        """The store renewed it by a request sent at `started` (lease_clock())."""
        if not self.lost:
            self.valid_until = started + self.seconds * USABLE

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            if self.on_lost is not None:
                self.on_lost(self)

    def check(self) -> None:
        """LeaseLost unless this holder may still publish for the job."""
        if self.lost:
            raise LeaseLost(self.job_id)
        if lease_clock() < self.valid_until:
            return
        if self.revalidate is None or not self.revalidate(self):
            self.lose()
            raise LeaseLost(self.job_id)


current_lease: ContextVar[Lease | None] = ContextVar("agentvine_lease", default=None)


def check_current() -> None:
    """Before publishing: LeaseLost if the stage running here has lost its job's lease."""
    lease = current_lease.get()
    if lease is not None:
        lease.check()


def lease_labels() -> dict[str, str]:
    """Container labels naming the lease the container runs under (the janitor's orphan test)."""
    lease = current_lease.get()
    return {} if lease is None else {LABEL_HOLDER: lease.holder, LABEL_EPOCH: str(lease.epoch)}
