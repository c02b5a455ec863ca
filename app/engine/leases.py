"""Who a worker is, and the heartbeat that keeps its leases (docs/scale-out.md).

A worker has a `name`, its machine's (AGENTVINE_WORKER_NAME, the host name by default): the files of
a job waiting for an answer stay on that machine, and a worker started there again picks up what
the previous one left. Each process is a `holder` of its own: a lease names the process, so a
paused or cut-off process cannot pass for the one that replaced it."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.domain.lease import Lease, lease_clock
from app.store.base import JobStore

log = logging.getLogger(__name__)

LEASE_S = 30.0  # AGENTVINE_LEASE_SECONDS: how long a dead worker's jobs wait before another takes them
HEARTBEATS_PER_LEASE = 3  # renewals per lease: two can fail before the lease is lost


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    holder: str
    lease_s: float = LEASE_S  # how long its claims hold unless renewed

    @classmethod
    def new(cls, name: str | None = None, lease_s: float = LEASE_S) -> WorkerIdentity:
        name = name or socket.gethostname()
        return cls(name=name, holder=f"{name}:{os.getpid()}:{secrets.token_hex(4)}", lease_s=lease_s)


class LeaseKeeper:
    """Renews the leases of the jobs this process works on; a lease it cannot renew is lost (its
    `on_lost` stops the job's work), and a cancel asked for through another worker is handed on."""

    def __init__(self, store: JobStore, identity: WorkerIdentity, on_cancel: Callable[[str], None],
                 totals: Mapping[str, int] | None = None) -> None:
        self._store = store
        self.identity = identity
        self._totals = dict(totals or {})  # each stage's limit here, told with every heartbeat (the queue counts it)
        self.seconds = identity.lease_s
        self._on_cancel = on_cancel
        self.leases: dict[str, Lease] = {}
        self.command: int | None = None  # the command being carried out (its seq): its claim is renewed too

    @property
    def interval(self) -> float:
        return self.seconds / HEARTBEATS_PER_LEASE

    def lease(self, job_id: str, epoch: int, stage: str, claimed_at: float,
              on_lost: Callable[[Lease], None]) -> Lease:
        lease = Lease(job_id=job_id, holder=self.identity.holder, epoch=epoch, stage=stage, seconds=self.seconds,
                      revalidate=self.revalidate, on_lost=on_lost)
        lease.renewed(claimed_at)
        self.leases[job_id] = lease
        return lease

    def forget(self, lease: Lease) -> None:
        if self.leases.get(lease.job_id) is lease:
            del self.leases[lease.job_id]

    def beat(self) -> None:
        """One heartbeat: this worker is alive, and every lease still held runs a lease's length on.
        Runs in a thread while the loop releases and claims: only a lease that is still the one sent
        (same job, same epoch) is renewed or lost by the answer."""
        try:
            self._renew_leases()
        finally:
            self._renew_command()  # after the leases: they matter more, should the database be slow

    def _renew_leases(self) -> None:
        started = lease_clock()
        sent = {job_id: lease for job_id, lease in dict(self.leases).items() if not lease.lost}  # dict(): one step
        try:
            kept = self._store.renew_leases(self.identity.holder, self.identity.name,
                                            {job_id: lease.epoch for job_id, lease in sent.items()}, self.seconds,
                                            totals=self._totals)
        except Exception as exc:  # noqa: BLE001 - the database is away: leases run out by the clock
            log.warning("could not renew leases: %s", exc)
            for lease in sent.values():
                if lease_clock() >= lease.valid_until:
                    lease.lose()
            return
        for job_id, lease in sent.items():
            if self.leases.get(job_id) is not lease:
                continue  # released meanwhile (and maybe claimed again, under a new epoch)
            if job_id not in kept:
                lease.lose()
                continue
            lease.renewed(started)
            if kept[job_id]:
                self._on_cancel(job_id)

    def _renew_command(self) -> None:
        seq = self.command
        if seq is None:
            return
        try:
            if not self._store.renew_command_claim(seq, self.identity.holder, self.seconds) and self.command == seq:
                # Its claim ran out (this process was paused) and another worker took it: both may carry it out.
                log.warning("command %s: its claim was taken by another worker meanwhile", seq)
        except Exception as exc:  # noqa: BLE001 - the database is away: the claim runs out by itself
            log.warning("could not renew the claim of command %s: %s", seq, exc)

    def revalidate(self, lease: Lease) -> bool:
        """For a holder past its lease's time (it was paused): does the store still have it as the holder?"""
        started = lease_clock()
        try:
            kept = self._store.renew_leases(self.identity.holder, self.identity.name, {lease.job_id: lease.epoch},
                                            self.seconds)
        except Exception:  # noqa: BLE001 - cannot tell: not safe to publish
            return False
        if lease.job_id in kept:
            lease.renewed(started)
            return True
        return False
