"""The queue as people see it. A job that waits for a free place shows its place in line and the limit that
holds it (the repository's, the installation's or the service's, by the setting's name); a follow-up shows
the job it waits for. Both are shown from the acknowledgement on and edited as the queue moves: at most one
round per progress interval, and a job is edited only when what it shows changes (two GitHub API calls
each time; places past PLACES_SHOWN read "more than 10 ahead" and are not edited until they come closer).

The dispatcher knows what runs here and the store what runs on every worker (each worker's limits come with
its heartbeat); this module counts the rest (`places`, pure) and keeps the display in step (`QueueWatch`, the
pipeline's QueueView). With several workers one of them, the live one first by name, edits the queue."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace

from app.domain.job import Job, JobState
from app.domain.queue import After, Place, Wait
from app.engine.dispatcher import Dispatcher, Limits
from app.pipeline.present.waiting import wait_line
from app.store.base import JobStore

log = logging.getLogger(__name__)

LOOKED_AT = 100  # waiting jobs one round reads, oldest first: a backlog does not make every round cost more
# A round's count of the stage over every worker, seen by the redraws it starts (their tasks copy the context)
# and by no other task: an acknowledgement meanwhile counts afresh.
_ROUND_LOAD: ContextVar[tuple[Limits, list[Job], bool] | None] = ContextVar("agentvine_round_load", default=None)


def places(limits: Limits, running: list[Job], waiting: list[Job]) -> dict[str, Place]:
    """Each waiting job's place (`waiting` oldest first, as the dispatcher takes them), unless it would start
    now. A job that fits counts as started, as the dispatcher would start it; one that does not is held by the
    narrowest full limit, and its place counts the jobs ahead of it that the same limit covers."""
    repos = Counter(j.repo for j in running)
    installations = Counter(j.installation_id for j in running)
    started = len(running)
    ahead_repo: Counter[str] = Counter()
    ahead_installation: Counter[int] = Counter()
    ahead = 0
    found: dict[str, Place] = {}
    for job in waiting:
        if limits.per_repo is not None and repos[job.repo] >= limits.per_repo:
            found[job.id] = Place(position=ahead_repo[job.repo] + 1, scope="repository", limit=limits.per_repo)
        elif limits.per_installation is not None and installations[job.installation_id] >= limits.per_installation:
            found[job.id] = Place(position=ahead_installation[job.installation_id] + 1, scope="installation",
                                  limit=limits.per_installation)
        elif started >= limits.total:
            found[job.id] = Place(position=ahead + 1, scope="service", limit=limits.total)
        else:
            repos[job.repo] += 1
            installations[job.installation_id] += 1
            started += 1
            continue
        ahead_repo[job.repo] += 1
        ahead_installation[job.installation_id] += 1
        ahead += 1
    return found


class QueueWatch:
    """Keeps queued jobs' tracking comments and check runs in step with the queue of the dispatcher's
    `stage`. `redraw(job)` shows a job as it is (the pipeline's ProgressReporter.redraw, which asks `wait`)."""

    def __init__(self, dispatcher: Dispatcher, store: JobStore, redraw: Callable[[Job], Awaitable[None]], *,
                 interval: float, stage: str = "run") -> None:
        self._dispatcher = dispatcher
        self._store = store
        self._redraw = redraw
        self._interval = interval
        self._stage = stage
        # What each queued job shows now: its state and its wait as people read it (a place that moves under
        # the same words, as when nothing starts at all, costs no edit).
        self._shown: dict[str, tuple[JobState, str | None]] = {}
        self._released: set[str] = set()  # follow-ups whose job ahead ended, since the last round
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._seen: tuple[frozenset[str], int] | None = None  # what ran, and the store's last event, at the last round
        self._due = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- the pipeline's QueueView ------------------------------------------------------------

    def wait(self, job: Job) -> Wait | None:
        if job.state is JobState.WAITING_FOR_JOB:
            ahead = self._store.get_job(job.follows) if job.follows else None
            if ahead is None or ahead.terminal:
                return None  # released at the dispatcher's next pass
            return After(job_id=ahead.id, worker=ahead.worker, state=ahead.state)
        limits, running, _ = _ROUND_LOAD.get() or self._load()
        waiting = self._waiting(running)
        if all(j.id != job.id for j in waiting):  # being acknowledged: it joins the line where its age puts it
            waiting = sorted([*waiting, job], key=lambda j: (j.created_at, j.id))
        return places(limits, running, waiting).get(job.id)

    def shown(self, job: Job, wait: Wait | None) -> None:
        if job.state in (JobState.ACKNOWLEDGED, JobState.WAITING_FOR_JOB) and job.answer is None:
            self._shown[job.id] = (job.state, wait_line(wait))
        else:
            self._shown.pop(job.id, None)

    # --- the dispatcher's side ------------------------------------------------------------------

    def poke(self, released: list[str] | None = None) -> None:
        """After a dispatcher pass: the queue may have moved (`released`: follow-ups that go on now)."""
        self._released.update(released or ())
        self._due.set()

    async def settled(self, job_id: str) -> None:
        """Before a stage shows the job as started: no queue edit of it is still on its way (it would land after)."""
        inflight = self._inflight.get(job_id)
        if inflight is not None:
            await asyncio.wait([inflight])

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="queue-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def flush(self) -> None:
        """One round now (tests, and whoever must see the queue shown as it stands)."""
        async with self._lock:
            await self._round()

    # --- rounds ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            try:
                await self.flush()
            except Exception:  # the display is best-effort; the next round tries again
                log.exception("queue round failed")
            await asyncio.sleep(self._interval)  # at most one round, so one edit of a job, per interval

    def _waiting(self, running: list[Job]) -> list[Job]:
        busy = {j.id for j in running}  # started this instant: still acknowledged in the store
        return [j for j in self._store.list_jobs([JobState.ACKNOWLEDGED], limit=LOOKED_AT) if j.id not in busy]

    def _load(self) -> tuple[Limits, list[Job], bool]:
        """The stage over every live worker: its limits as one (the per-repository and per-installation ones
        already hold over all of them; the total is every live worker's room), the jobs it runs anywhere,
        and whether this worker is the one that draws the queue (the live one first by name: one editor, so
        no job's place is edited twice, or back and forth)."""
        limits, here = self._dispatcher.running(self._stage)
        me = self._dispatcher.identity
        load = self._store.stage_load(self._stage, me.lease_s)
        totals = {**load.totals, me.name: limits.total}  # this worker's own, though its first heartbeat is to come
        running = {j.id: j for j in here} | {j.id: j for j in load.running}  # claimed this instant: not yet stored
        return (replace(limits, total=sum(totals.values())), sorted(running.values(), key=lambda j: (j.created_at, j.id)),
                me.name == min(totals))

    async def _round(self) -> None:
        load = self._load()
        token = _ROUND_LOAD.set(load)  # the round's redraws (tasks it starts) ask `wait` for each job
        try:
            await self._draw(*load)
        finally:
            _ROUND_LOAD.reset(token)

    async def _draw(self, limits: Limits, running: list[Job], drawer: bool) -> None:
        # Released into waiting for approval (by this worker's pass): shown once as that (its Approve button),
        # then not the queue's.
        released, self._released = self._released, set()
        due = [j for j in map(self._store.get_job, released) if j is not None and j.state is JobState.WAITING_FOR_APPROVAL]
        if not drawer:  # another worker draws the queue; the jobs this one shows itself still ask `wait`
            self._shown, self._seen = {}, None
            await asyncio.gather(*(self._show(job.id) for job in due))
            return
        # Every change to a job is an event: with the same jobs running and no event since, nothing moved.
        seen = (frozenset(j.id for j in running), self._store.last_event_seq())
        if seen == self._seen and not released:
            return
        self._seen = seen
        waiting = self._waiting(running)
        lined = places(limits, running, waiting)
        due += [j for j in waiting if j.answer is None and self._shown.get(j.id) != (j.state, wait_line(lined.get(j.id)))]
        following = self._store.list_jobs([JobState.WAITING_FOR_JOB], limit=LOOKED_AT)
        due += [j for j in following if self._shown.get(j.id) != (j.state, wait_line(self.wait(j)))]
        current = {j.id for j in waiting} | {j.id for j in following}
        self._shown = {job_id: shown for job_id, shown in self._shown.items() if job_id in current}
        await asyncio.gather(*(self._show(job.id) for job in due))

    async def _show(self, job_id: str) -> None:
        job = self._store.get_job(job_id)  # as it is now, not as the round read it
        if job is None or job.terminal or self._dispatcher.is_active(job_id) or job.state is JobState.RUNNING:
            return
        if self._store.lease_of(job_id) is not None:  # a stage on another worker has it: it shows the job
            return
        if job.tracking_comment_id is None or job.check_run_id is None:
            return  # not shown yet: its acknowledgement shows it
        edit = asyncio.ensure_future(self._redraw(job))
        self._inflight[job_id] = edit
        try:
            await edit
        except Exception:
            self._seen = None  # the next round looks again, though nothing else moved
            log.warning("could not show job %s's place in the queue; the next round tries again", job_id, exc_info=True)
        finally:
            if self._inflight.get(job_id) is edit:
                del self._inflight[job_id]
