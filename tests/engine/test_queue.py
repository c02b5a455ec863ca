"""The queue's places (app/engine/queue.py): which limit holds a waiting job and its place in line, and the
watch that keeps what waiting jobs show in step as the dispatcher starts them (a real dispatcher and SQLite
store, a stage that holds its jobs until released; the display is recorded instead of sent to GitHub)."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.job import Delivery, Job, JobState, Trigger
from app.domain.queue import Place
from app.engine.dispatcher import Dispatcher, Hooks, Limits, Stage
from app.engine.queue import QueueWatch, places
from app.store.base import StageClaim
from app.pipeline.present.waiting import wait_line
from app.store import SQLiteJobStore


def job(n: int, *, repo: str = "o/r", installation: int = 1, state: JobState = JobState.ACKNOWLEDGED) -> Job:
    return Job(delivery_id=f"d{n}", installation_id=installation, repo=repo, issue_number=n, requester="alice",
               trigger=Trigger(kind="label", label="agentvine:bugfix"), created_at=1_000.0 + n, state=state,
               tracking_comment_id=n, check_run_id=n)


def test_three_jobs_of_one_repository_with_one_place_each_wait_in_order():
    a, b, c = job(1), job(2), job(3)
    found = places(Limits(total=4, per_installation=3, per_repo=1), [a], [b, c])
    assert found == {b.id: Place(position=1, scope="repository", limit=1),
                     c.id: Place(position=2, scope="repository", limit=1)}


def test_a_waiting_job_that_fits_counts_as_started_for_those_behind_it():
    b, c = job(2), job(3)
    assert places(Limits(total=4, per_repo=1), [], [b, c]) == {c.id: Place(position=1, scope="repository", limit=1)}


def test_the_installations_limit_across_its_repositories_and_not_beyond_it():
    running = [job(1, repo="o/a"), job(2, repo="o/b")]
    mine, theirs = job(3, repo="o/c"), job(4, repo="x/y", installation=2)
    found = places(Limits(total=10, per_installation=2, per_repo=1), running, [mine, theirs])
    assert found == {mine.id: Place(position=1, scope="installation", limit=2)}


def test_the_service_limit_counts_every_job_ahead_and_the_narrowest_full_limit_is_named():
    running = [job(1, repo="o/a"), job(2, repo="o/b", installation=2)]
    same_repo, other = job(3, repo="o/a"), job(4, repo="o/c", installation=3)
    found = places(Limits(total=2, per_installation=3, per_repo=1), running, [same_repo, other])
    assert found[same_repo.id] == Place(position=1, scope="repository", limit=1)  # its repository's limit holds it too
    assert found[other.id] == Place(position=2, scope="service", limit=2)


def test_nothing_starts_at_all_when_the_service_limit_is_0():
    found = places(Limits(total=0, per_repo=1), [], [job(1), job(2)])
    assert {p.scope for p in found.values()} == {"service"}
    assert {wait_line(p) for p in found.values()} == {wait_line(Place(position=1, scope="service", limit=0))}


class HoldingStage:
    """Acknowledged → running → succeeded, each job held inside until released."""

    def __init__(self, store: SQLiteJobStore) -> None:
        self.store, self.gates, self.order = store, {}, []

    async def __call__(self, job: Job, cancel: asyncio.Event) -> None:
        self.order.append(job.id)
        running = job.moved_to(JobState.RUNNING)
        self.store.save_job(running, "started")
        await self.gates.setdefault(job.id, asyncio.Event()).wait()
        self.store.save_job(running.moved_to(JobState.SUCCEEDED, conclusion="success"), "finished")

    def release(self, job_id: str) -> None:
        self.gates.setdefault(job_id, asyncio.Event()).set()


@pytest.fixture
def store(tmp_path):
    store = SQLiteJobStore(tmp_path / "jobs.sqlite")
    yield store
    store.close()


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_watch_shows_each_move_once_and_never_a_job_that_started(store):
    jobs = [job(n) for n in (1, 2, 3)]
    for j in jobs:
        store.record_delivery(Delivery(id=j.delivery_id, event="issues"), [j])
    stage = HoldingStage(store)
    shown: list[tuple[str, str | None]] = []
    watch: QueueWatch | None = None

    async def redraw(j: Job) -> None:  # what ProgressReporter.redraw does with the queue: ask, show, tell
        wait = watch.wait(j)
        shown.append((j.id, wait_line(wait)))
        watch.shown(j, wait)

    dispatcher = Dispatcher(store, [Stage("run", JobState.ACKNOWLEDGED, stage, Limits(total=4, per_repo=1))],
                            Hooks(before_start=lambda: watch.poke()), poll_interval=60)
    watch = QueueWatch(dispatcher, store, redraw, interval=0.05)
    a, b, c = jobs
    await dispatcher.start()
    watch.start()
    try:
        dispatcher.wake()
        await until(lambda: stage.order == [a.id] and len(shown) == 2)
        assert sorted(shown) == sorted([(b.id, wait_line(Place(position=1, scope="repository", limit=1))),
                                        (c.id, wait_line(Place(position=2, scope="repository", limit=1)))])
        await asyncio.sleep(0.2)
        assert len(shown) == 2  # nothing moved: nothing edited

        stage.release(a.id)
        await until(lambda: stage.order == [a.id, b.id] and len(shown) == 3)
        assert shown[-1] == (c.id, wait_line(Place(position=1, scope="repository", limit=1)))
        stage.release(b.id)
        await until(lambda: stage.order == [a.id, b.id, c.id])
        stage.release(c.id)
        await dispatcher.wait_idle(5)
        await watch.flush()
        assert len(shown) == 3 and all(job_id != a.id for job_id, _ in shown)  # a started at once: never queued
    finally:
        await watch.stop()
        await dispatcher.stop()


async def test_an_edit_that_failed_is_tried_again_though_nothing_moved(store):
    a, b = job(1), job(2)
    for j in (a, b):
        store.record_delivery(Delivery(id=j.delivery_id, event="issues"), [j])
    dispatcher = Dispatcher(store, [Stage("run", JobState.ACKNOWLEDGED, HoldingStage(store), Limits(total=0))], Hooks())
    tries: list[str] = []
    watch: QueueWatch | None = None

    async def redraw(j: Job) -> None:
        tries.append(j.id)
        if len(tries) == 1:
            raise RuntimeError("GitHub said 502")
        watch.shown(j, watch.wait(j))

    watch = QueueWatch(dispatcher, store, redraw, interval=0)
    await watch.flush()
    assert sorted(tries) == sorted([a.id, b.id])
    await watch.flush()
    assert len(tries) == 3  # the one that failed, again
    await watch.flush()
    assert len(tries) == 3  # and then nothing: nothing moved


async def test_a_job_another_worker_holds_is_not_drawn_over(store):
    """Its check run and tracking comment are that worker's stage's to show ("Working"), not this
    worker's queue display (which counts only its own jobs)."""
    a, b = job(1), job(2)
    for j in (a, b):
        store.record_delivery(Delivery(id=j.delivery_id, event="issues"), [j])
    (held,) = store.claim_jobs(StageClaim("run", JobState.ACKNOWLEDGED), "machine-b:1:ab", "machine-b", limit=1,
                               lease_s=300)
    dispatcher = Dispatcher(store, [Stage("run", JobState.ACKNOWLEDGED, HoldingStage(store), Limits(total=0))], Hooks())
    drawn: list[str] = []
    watch: QueueWatch | None = None

    async def redraw(j: Job) -> None:
        drawn.append(j.id)
        watch.shown(j, watch.wait(j))

    watch = QueueWatch(dispatcher, store, redraw, interval=0)
    await watch.flush()
    assert held.job.id == a.id and drawn == [b.id]
