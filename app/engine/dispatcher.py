"""Takes stored work and runs it: one asyncio task per job stage, under concurrency limits.

A stage is the work for jobs in one state (queued → acknowledge; acknowledged → run). Each stage
has its own limits, so a quick acknowledgement never waits behind a long agent run in the same
repository. Several dispatchers (worker processes, on several machines) share one store: each job
a stage takes is claimed with a lease that a heartbeat renews (app/engine/leases.py), and the
stage runs with that lease as its `current_lease`, so all it writes and publishes is fenced. A
job whose worker died (its lease ran out) is taken over: an interrupted run starts again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app import metrics
from app.domain.intents import JobCommand
from app.domain.job import Job, JobState
from app.domain.lease import Lease, LeaseLost, current_lease, lease_clock
from app.engine.leases import LeaseKeeper, WorkerIdentity
from app.store.base import Claimed, JobStore, StageClaim

log = logging.getLogger(__name__)

COMMANDS_PER_PASS = 50  # a busy stream of commands must not keep a pass from starting jobs
# A command still not done after this is stopped (its claim is renewed while it runs, and the later
# commands wait behind it): far above any real one, rate-limit waits included.
COMMAND_TIMEOUT_S = 600.0
COMMAND_TIMED_OUT = "error: not done within {seconds:.0f} s, stopped"


PASS_BACKOFF_S = 0.5  # after a failed pass (the database away), doubled each time, up to the maximum
PASS_BACKOFF_MAX_S = 15.0


@dataclass(frozen=True)
class Limits:
    total: int
    per_installation: int | None = None
    per_repo: int | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    state: JobState  # jobs in this state are this stage's input
    run: Callable[[Job, asyncio.Event], Awaitable[None]]  # the job, and the signal that asks it to stop
    limits: Limits


@dataclass(frozen=True)
class Hooks:
    """What the dispatcher calls besides the stages; each may be left out."""

    intake: Callable[[], Awaitable[int]] | None = None  # brings new work in (the inbox); returns how much
    on_command: Callable[[JobCommand], Awaitable[str]] | None = None  # carries out a command; returns its outcome
    on_error: Callable[[Job, BaseException], Awaitable[None]] | None = None  # records a stage's failure on the job
    before_start: Callable[[], None] | None = None  # each pass, after the commands, before jobs start (no await)
    # The job an interrupted stage left (its worker died or restarted), as it goes back to where the
    # stage starts (`back_to`), given whose lease ran out (None: no worker's); by default its reason stays.
    on_interrupted: Callable[[Job, JobState, str | None], Job] | None = None


@dataclass(frozen=True)
class _Active:
    stage: Stage
    job: Job
    task: asyncio.Task[None]
    cancel: asyncio.Event
    lease: Lease


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        stages: list[Stage],
        hooks: Hooks = Hooks(),
        *,
        interrupted_states: dict[JobState, JobState] | None = None,
        poll_interval: float = 2.0,
        identity: WorkerIdentity | None = None,
    ) -> None:
        # In one process the web app wakes the dispatcher at once; in a worker process of its
        # own, the poll interval is how soon new work is seen.
        self._poll_interval = poll_interval
        self._store = store
        self._stages = stages
        self._hooks = hooks
        # What a job left in a state by a crash goes back to (e.g. running → acknowledged).
        self._interrupted = interrupted_states or {}
        self._wake = asyncio.Event()
        self._active: dict[str, _Active] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self.identity = identity or WorkerIdentity.new()
        self._event_loop: asyncio.AbstractEventLoop | None = None  # the loop start() runs on
        self.leases = LeaseKeeper(store, self.identity, on_cancel=self._on_loop(self.cancel),
                                  totals={stage.name: stage.limits.total for stage in stages})
        self._heartbeat_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def is_active(self, job_id: str) -> bool:
        """Whether a stage is working on the job in this process."""
        return job_id in self._active

    def running(self, stage_name: str) -> tuple[Limits, list[Job]]:
        """A stage's limits and the jobs it runs now, oldest first (what a queued job's place is counted against)."""
        stage = next(s for s in self._stages if s.name == stage_name)
        return stage.limits, [active.job for active in self._active.values() if active.stage is stage]

    def cancel(self, job_id: str) -> bool:
        """Ask the stage running `job_id` to stop; False when no stage runs it in this process."""
        active = self._active.get(job_id)
        if active is None:
            return False
        active.cancel.set()
        return True

    def _on_loop(self, callback: Callable[[Any], object]) -> Callable[[Any], None]:
        """`callback`, run on the dispatcher's event loop whichever thread calls it: the heartbeat
        renews in a thread of its own, and an asyncio.Event set there wakes no waiter reliably (in
        asyncio's debug mode it raises, which ended the heartbeat and left the stage waiting)."""
        def call(arg: Any) -> None:
            loop = self._event_loop
            if loop is None or _running_loop() is loop:
                callback(arg)
            else:
                loop.call_soon_threadsafe(callback, arg)
        return call

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self.expire_predecessors()
        self.recover()
        self._loop_task = asyncio.create_task(self._loop(), name="dispatcher")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="heartbeat")

    def expire_predecessors(self) -> None:
        """What an earlier process on this machine held died with it: no need to wait for its leases
        (and the janitor, run after this, removes its containers). Once is enough; again is harmless."""
        expired = self._store.expire_leases_of(self.identity.name, self.identity.holder)
        if expired:
            log.warning("%d job(s) were under way when this worker last stopped; they go on", expired)

    async def stop(self) -> None:
        self._stopping = True  # the loop ends at its next turn even if a cancellation is lost
        loops = [task for task in (self._loop_task, self._heartbeat_task) if task is not None]
        for task in loops:
            task.cancel()
        tasks = [active.task for active in self._active.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *loops, return_exceptions=True)

    def recover(self) -> None:
        """Take over interrupted work for every stage, as far as its limits allow (each pass does it too)."""
        for stage in self._stages:
            self._take_over(stage)

    def _take_over(self, stage: Stage) -> None:
        """Jobs a dead worker left mid-stage (in a state the stage moves them through, their lease run
        out), claimed for `stage` and moved back to where it starts, under the new lease, and started."""
        for state, back_to in self._interrupted.items():
            if back_to is not stage.state:
                continue
            for claimed in self._claim(stage, state, self._free(stage)):
                job, lease = claimed.job, self._lease(stage, claimed)
                moved = (self._hooks.on_interrupted(job, back_to, claimed.previous_holder) if self._hooks.on_interrupted
                         else job.moved_to(back_to, job.reason))
                extra = {"previous_holder": claimed.previous_holder} if claimed.previous_holder else {}
                token = current_lease.set(lease)
                try:
                    self._store.save_job(moved, "recovered", interrupted_in=state.value, **extra)
                except LeaseLost:  # taken by another meanwhile
                    self.leases.forget(lease)
                    continue
                except Exception:  # the store failed: let the job go, for the next pass (or worker)
                    log.exception("could not take over job %s", job.id)
                    self.leases.forget(lease)
                    self._release(job.id, lease)
                    continue
                finally:
                    current_lease.reset(token)
                metrics.job_moved(job.worker, back_to.value, False, None, 0.0)
                if claimed.previous_holder is not None:
                    metrics.job_taken_over(stage.name)
                log.warning("job %s was %s when its worker stopped; it goes on from %s", job.id, state, back_to)
                self._launch(stage, moved, lease, claimed.cancel_requested)

    def _claim(self, stage: Stage, state: JobState, limit: int) -> list[Claimed]:
        claim = StageClaim(stage.name, state, per_repo=stage.limits.per_repo,
                           per_installation=stage.limits.per_installation)
        self._claimed_at = lease_clock()  # before the request: the lease's time is counted from here
        # Not what runs here still: after a suspend its lease may have run out while its task goes on
        # (the task finds its lease lost at its next write); claiming it again would run it twice.
        return self._store.claim_jobs(claim, self.identity.holder, self.identity.name, limit=limit,
                                      lease_s=self.leases.seconds, exclude=list(self._active))

    def _lease(self, stage: Stage, claimed: Claimed) -> Lease:
        return self.leases.lease(claimed.job.id, claimed.epoch, stage.name, self._claimed_at, self._on_loop(self._lost))

    def _lost(self, lease: Lease) -> None:
        """Another worker may have the job now: stop what this one does for it (its container too)."""
        log.warning("job %s: the lease is lost; its work here stops and publishes nothing", lease.job_id)
        metrics.lease_lost(lease.stage)
        active = self._active.get(lease.job_id)
        if active is not None and active.lease is lease:
            active.cancel.set()

    async def _heartbeat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.leases.interval)
            try:
                await asyncio.to_thread(self.leases.beat)  # off the loop: a slow database must not stall the webhook
            except Exception:  # noqa: BLE001 - a heartbeat that stopped would lose every lease
                log.exception("heartbeat failed; the next one tries again")

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """For tests and the demo: until no stage has work it could start."""
        async def idle() -> None:
            while True:
                self._idle.clear()
                self.wake()
                await self._idle.wait()
                if not self._active and not self._runnable():
                    return
        await asyncio.wait_for(idle(), timeout)

    def _runnable(self) -> bool:
        states = [stage.state for stage in self._stages if stage.limits.total > 0]
        return bool(self._store.list_jobs(states, limit=1)) or bool(self._store.pending_commands())

    async def _loop(self) -> None:
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives as the wait
        # ends, and a busy inbox (a wake on every pass) then kept stop() waiting for ever.
        failures = 0
        while not self._stopping:
            try:
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self._hooks.intake is not None and await self._hooks.intake():
                    self.wake()  # there may be more behind what one pass takes in
                await self._drain_commands()
                if self._hooks.before_start is not None:
                    self._hooks.before_start()
                self._start_ready()
                failures = 0
            except Exception:  # the loop must survive anything one pass runs into
                failures += 1
                # The store out of reach fails every pass: back off (and say it once per wait, not per wake).
                delay = min(PASS_BACKOFF_S * 2 ** (failures - 1), PASS_BACKOFF_MAX_S)
                log.exception("dispatcher pass failed (%d in a row); the next in %.1f s", failures, delay)
                await asyncio.sleep(delay)
            if not self._active:
                self._idle.set()

    async def _drain_commands(self) -> None:
        if self._hooks.on_command is None:
            return
        # Claimed one at a time, each just before it is carried out (of a batch claimed at once, the later
        # ones would wait unrenewed). A claim holds a lease's length and the heartbeat renews it while the
        # command is carried out (one waiting out a rate limit takes minutes): a worker that dies in the
        # middle leaves it to another a lease later.
        for _ in range(COMMANDS_PER_PASS):
            claimed = self._store.claim_commands(self.identity.holder, self.leases.seconds, limit=1)
            if not claimed:
                return
            ((seq, command),) = claimed
            self.leases.command = seq
            limit = asyncio.timeout(COMMAND_TIMEOUT_S)
            try:
                async with limit:
                    outcome = await self._hooks.on_command(command)
            except Exception as exc:
                if isinstance(exc, TimeoutError) and limit.expired():  # the limit's, not a timeout inside
                    log.error("command %s (%s) stopped after %.0f s", seq, command.name, COMMAND_TIMEOUT_S)
                    outcome = COMMAND_TIMED_OUT.format(seconds=COMMAND_TIMEOUT_S)
                else:
                    log.exception("command %s failed", command.name)
                    outcome = f"error: {exc}"
            finally:
                self.leases.command = None
            self._store.finish_command(seq, outcome)

    def _free(self, stage: Stage) -> int:
        return stage.limits.total - sum(1 for active in self._active.values() if active.stage is stage)

    def _start_ready(self) -> None:
        """Claim what each stage has room for (this worker's `total`; the per-repository and
        per-installation limits hold over every worker's claims) and start it."""
        waiting = self._store.count_jobs({stage.state for stage in self._stages})
        for stage in self._stages:
            metrics.queue_depth(stage.name, waiting.get(stage.state, 0))
            if self._free(stage) <= 0:
                continue
            self._take_over(stage)
            for claimed in self._claim(stage, stage.state, self._free(stage)):
                self._launch(stage, claimed.job, self._lease(stage, claimed), claimed.cancel_requested)

    def _launch(self, stage: Stage, job: Job, lease: Lease, cancelled: bool = False) -> None:
        cancel = asyncio.Event()
        if cancelled:  # asked for while another stage or worker held the job
            cancel.set()
        task = asyncio.create_task(self._run(stage, job, cancel, lease), name=f"{stage.name}:{job.id}")
        self._active[job.id] = _Active(stage, job, task, cancel, lease)

    async def _run(self, stage: Stage, job: Job, cancel: asyncio.Event, lease: Lease) -> None:
        current_lease.set(lease)  # this task's context only: every write below is fenced by it
        try:
            await stage.run(job, cancel)
            after = self._store.get_job(job.id)
            if after is not None and after.state is stage.state:
                raise RuntimeError(f"stage {stage.name} left the job {stage.state}")  # would loop forever
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            log.warning("job %s: stage %s stopped, its lease lost; whoever holds it now goes on", job.id, stage.name)
        except Exception as exc:
            if lease.lost:  # whatever failed, the job is another worker's now: nothing to record
                log.warning("job %s: stage %s failed after its lease was lost: %s", job.id, stage.name, exc)
            else:
                log.exception("job %s failed in stage %s", job.id, stage.name)
                if self._hooks.on_error is not None:
                    try:
                        await self._hooks.on_error(job, exc)
                    except Exception:
                        log.exception("could not record the failure of job %s", job.id)
        finally:
            if (active := self._active.get(job.id)) is not None and active.lease is lease:
                del self._active[job.id]
            self.leases.forget(lease)
            self._release(job.id, lease)
            self.wake()

    def _release(self, job_id: str, lease: Lease) -> None:
        """The stage is done with the job (or was stopped): another stage, or worker, may take it. A job
        waiting for an answer keeps this machine as its home: its workspace and session are here."""
        if lease.lost:
            return
        try:
            after = self._store.get_job(job_id)
            home = self.identity.name if after is not None and after.state is JobState.WAITING_FOR_ANSWER else None
            self._store.release_lease(job_id, lease.holder, lease.epoch, home=home)
        except Exception:  # noqa: BLE001 - the lease runs out by itself
            log.exception("could not release the lease on job %s", job_id)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a thread without an event loop (the heartbeat's)
        return None
