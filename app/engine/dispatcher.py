"""Takes stored work and runs it: one asyncio task per job stage, under concurrency limits.

A stage is the work for jobs in one state (queued → acknowledge; acknowledged → run, in the
next issue). Each stage has its own limits, so a quick acknowledgement never waits behind a
long agent run in the same repository. On start it puts back what a crash interrupted."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app import metrics
from app.domain.intents import JobCommand
from app.domain.job import Job, JobState
from app.store.base import JobStore

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Active:
    stage: Stage
    job: Job
    task: asyncio.Task[None]
    cancel: asyncio.Event


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        stages: list[Stage],
        hooks: Hooks = Hooks(),
        *,
        interrupted_states: dict[JobState, JobState] | None = None,
        poll_interval: float = 2.0,
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

    async def start(self) -> None:
        self.recover()
        self._loop_task = asyncio.create_task(self._loop(), name="dispatcher")

    async def stop(self) -> None:
        self._stopping = True  # the loop ends at its next turn even if a cancellation is lost
        if self._loop_task:
            self._loop_task.cancel()
        tasks = [active.task for active in self._active.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *( [self._loop_task] if self._loop_task else []), return_exceptions=True)

    def recover(self) -> None:
        for state, back_to in self._interrupted.items():
            for job in self._store.list_jobs([state]):
                self._store.save_job(job.moved_to(back_to, job.reason), "recovered", interrupted_in=state.value)
                metrics.job_moved(job.worker, back_to.value, False, None, 0.0)
                log.warning("job %s was %s when the service stopped; it goes on from %s", job.id, state, back_to)

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
            except Exception:  # the loop must survive anything one pass runs into
                log.exception("dispatcher pass failed")
            if not self._active:
                self._idle.set()

    async def _drain_commands(self) -> None:
        if self._hooks.on_command is None:
            return
        for seq, command in self._store.pending_commands():
            try:
                outcome = await self._hooks.on_command(command)
            except Exception as exc:
                log.exception("command %s failed", command.name)
                outcome = f"error: {exc}"
            self._store.finish_command(seq, outcome)

    def _start_ready(self) -> None:
        waiting = self._store.count_jobs({stage.state for stage in self._stages})
        for stage in self._stages:
            metrics.queue_depth(stage.name, waiting.get(stage.state, 0))
            running = [active.job for active in self._active.values() if active.stage is stage]
            if len(running) >= stage.limits.total:
                continue
            # Look at a bounded window of the oldest jobs: a backlog must not make every pass
            # (which shares the event loop with the webhook) cost more.
            window = len(self._active) + stage.limits.total * 8
            for job in self._store.list_jobs([stage.state], limit=window):
                if job.id in self._active:
                    continue
                if not self._fits(stage.limits, running, job):
                    continue
                cancel = asyncio.Event()
                task = asyncio.create_task(self._run(stage, job, cancel), name=f"{stage.name}:{job.id}")
                self._active[job.id] = _Active(stage, job, task, cancel)
                running.append(job)

    @staticmethod
    def _fits(limits: Limits, running: list[Job], job: Job) -> bool:
        if len(running) >= limits.total:
            return False
        if limits.per_installation is not None:
            if Counter(j.installation_id for j in running)[job.installation_id] >= limits.per_installation:
                return False
        if limits.per_repo is not None:
            if Counter(j.repo for j in running)[job.repo] >= limits.per_repo:
                return False
        return True

    async def _run(self, stage: Stage, job: Job, cancel: asyncio.Event) -> None:
        try:
            await stage.run(job, cancel)
            after = self._store.get_job(job.id)
            if after is not None and after.state is stage.state:
                raise RuntimeError(f"stage {stage.name} left the job {stage.state}")  # would loop forever
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s failed in stage %s", job.id, stage.name)
            if self._hooks.on_error is not None:
                try:
                    await self._hooks.on_error(job, exc)
                except Exception:
                    log.exception("could not record the failure of job %s", job.id)
        finally:
            self._active.pop(job.id, None)
            self.wake()
