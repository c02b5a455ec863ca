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


# --- several workers on one store: places count every live worker, and one of them edits -------------


def worker(store, name: str, limits: Limits, drawn: list[tuple[str, str, str | None]], *,
           lease_s: float = 30.0) -> tuple[Dispatcher, QueueWatch]:
    """A worker's dispatcher (not started: nothing of its own runs) and queue watch; its heartbeat is
    `dispatcher.leases.beat()`. What its watch draws goes into `drawn` as (worker, job, line)."""
    from app.engine.leases import WorkerIdentity

    dispatcher = Dispatcher(store, [Stage("run", JobState.ACKNOWLEDGED, HoldingStage(store), limits)], Hooks(),
                            identity=WorkerIdentity.new(name, lease_s))
    watch: QueueWatch | None = None

    async def redraw(j: Job) -> None:
        wait = watch.wait(j)
        drawn.append((name, j.id, wait_line(wait)))
        watch.shown(j, wait)

    watch = QueueWatch(dispatcher, store, redraw, interval=0)
    return dispatcher, watch


def record(store, *jobs: Job) -> None:
    for j in jobs:
        store.record_delivery(Delivery(id=j.delivery_id, event="issues"), [j])


async def test_a_job_waits_behind_its_repositorys_job_that_another_worker_runs(open_store):
    store_a, store_b = open_store(), open_store()
    running, waiting = job(1), job(2)  # one repository, one place in it
    record(store_a, running, waiting)
    b_dispatcher, _ = worker(store_b, "machine-b", Limits(total=2, per_repo=1), [])
    b_dispatcher.leases.beat()
    (claimed,) = store_b.claim_jobs(StageClaim("run", JobState.ACKNOWLEDGED, per_repo=1), b_dispatcher.identity.holder,
                                    "machine-b", limit=1, lease_s=300)
    store_b.save_job(claimed.job.moved_to(JobState.RUNNING), "started")  # b's run is under way
    drawn: list = []
    _, watch = worker(store_a, "machine-a", Limits(total=2, per_repo=1), drawn)
    await watch.flush()
    assert drawn == [("machine-a", waiting.id, wait_line(Place(position=1, scope="repository", limit=1)))]


async def test_the_service_limit_is_every_live_workers_room_and_not_a_dead_ones(open_store):
    store_a, store_b, store_c = open_store(), open_store(), open_store()
    on_b, first, second = job(1, repo="o/b"), job(2, repo="o/x"), job(3, repo="o/y")
    record(store_a, on_b, first, second)
    c_dispatcher, _ = worker(store_c, "machine-c", Limits(total=5), [])
    c_dispatcher.leases.beat()  # then gone: not seen within a lease (0.5 s here)
    await asyncio.sleep(0.8)
    b_dispatcher, _ = worker(store_b, "machine-b", Limits(total=1), [])
    b_dispatcher.leases.beat()
    store_b.claim_jobs(StageClaim("run", JobState.ACKNOWLEDGED), b_dispatcher.identity.holder, "machine-b",
                       limit=1, lease_s=300)  # the oldest: on_b
    drawn: list = []
    _, watch = worker(store_a, "machine-a", Limits(total=1), drawn, lease_s=0.5)
    await watch.flush()
    # Room for two (a's and b's), b's taken: `first` starts next, `second` waits behind it for the service.
    # (`first` is drawn with no place: what another worker's acknowledgement showed of it is not known here.)
    assert sorted(drawn) == sorted([("machine-a", first.id, None),
                                    ("machine-a", second.id, wait_line(Place(position=1, scope="service", limit=2)))])


async def test_one_live_worker_edits_the_queue_and_the_next_once_it_is_gone(open_store):
    store_a, store_b = open_store(), open_store()
    waiting = job(1)
    record(store_a, waiting)
    drawn: list = []
    a_dispatcher, a_watch = worker(store_a, "machine-a", Limits(total=0), drawn, lease_s=0.5)
    b_dispatcher, b_watch = worker(store_b, "machine-b", Limits(total=0), drawn, lease_s=0.5)
    a_dispatcher.leases.beat()
    b_dispatcher.leases.beat()
    await asyncio.gather(a_watch.flush(), b_watch.flush())
    line = wait_line(Place(position=1, scope="service", limit=0))
    assert drawn == [("machine-a", waiting.id, line)]  # first by name: b leaves it alone
    await asyncio.sleep(0.8)  # a stopped beating
    b_dispatcher.leases.beat()
    await b_watch.flush()
    assert drawn[1:] == [("machine-b", waiting.id, line)]  # b draws now (once, as it takes the display over)
