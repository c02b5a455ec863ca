"""Several workers on one store: two Dispatchers (two worker processes, on two machines) with their own
store connections to one database, on both backends (SQLite and a real PostgreSQL server).

Each job runs once; the per-repository limit holds over both; a worker that stops answering loses its
jobs to the other after one lease, and then can write and publish nothing for them (the fence); a
cancel asked through one worker reaches the stage on the other; a worker started again on the same
machine goes on at once with what its predecessor left; commands are carried out once each, each
issue's in order. Leases are short (LEASE_S), so a take-over costs about a second."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobState
from app.domain.lease import USABLE, Lease, LeaseLost, check_current, current_lease, lease_clock
from app.engine.dispatcher import Dispatcher, Hooks, Limits, Stage
from app.engine.leases import WorkerIdentity
from app.engine.worker import Worker
from app.fakes.github.testing import serving
from app.github.client import GitHubClients, InstallationAPI
from app.pipeline.present import texts
from app.store.base import JobStore
from tests.engine.test_dispatcher import INTERRUPTED, Failures, FakeStage, make_job, run_stage, settle, until

LEASE_S = 1.0  # heartbeats every LEASE_S / 3
POLL = 0.1  # how soon a worker sees work another one left (no wake reaches it from the other)
SLACK = 0.5  # for a loaded machine, on top of what the protocol allows


# --- two workers ---------------------------------------------------------------------------------


class Takeovers:
    """on_interrupted as the worker has it (Worker._interrupted, with its texts); records each call."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None  # what Worker._interrupted asks for its machine's name
        self.seen: list[tuple[str, str | None, float]] = []  # job id, previous holder, when (lease_clock)
        self.moved: list[Job] = []  # the job as it went back

    def __call__(self, job: Job, back_to: JobState, previous_holder: str | None) -> Job:
        self.seen.append((job.id, previous_holder, lease_clock()))
        self.moved.append(Worker._interrupted(self, job, back_to, previous_holder))  # type: ignore[arg-type]
        return self.moved[-1]


@dataclass
class Node:
    """One worker process: its own connection to the shared store, its dispatcher, what its hooks saw."""

    store: JobStore
    dispatcher: Dispatcher
    failures: Failures
    takeovers: Takeovers

    @property
    def holder(self) -> str:
        return self.dispatcher.identity.holder

    def lease(self, job_id: str) -> Lease:
        return self.dispatcher.leases.leases[job_id]


def node(store: JobStore, name: str, stages: list[Stage], *, lease_s: float = LEASE_S, **hooks: Callable) -> Node:
    """A worker's dispatcher as app/engine/worker.py wires it (on_error fails the job, a run left
    mid-way goes back to acknowledged with the worker's note), on machine `name`."""
    failures, takeovers = Failures(store), Takeovers()
    dispatcher = Dispatcher(store, stages, Hooks(on_error=failures, on_interrupted=takeovers, **hooks),
                            interrupted_states=INTERRUPTED, poll_interval=POLL,
                            identity=WorkerIdentity.new(name, lease_s))
    takeovers.dispatcher = dispatcher
    return Node(store, dispatcher, failures, takeovers)


@contextlib.asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[None]:
    try:
        for each in nodes:
            await start(each)
        yield
    finally:
        for each in nodes:
            stopping = asyncio.ensure_future(each.dispatcher.stop())
            await asyncio.wait([stopping], timeout=10)  # not wait_for: a task that cannot wake hangs that too
            assert stopping.done(), "stop() hangs: a stage waits for what never comes"


async def start(worker: Node) -> None:
    await worker.dispatcher.start()
    worker.dispatcher.wake()


async def freeze(worker: Node) -> None:
    """The worker stops answering: its machine died, or the process was paused or cut off. No heartbeat
    and no pass from here on, and nothing is released (stop() would release its leases: a clean
    shutdown). Its stages stay where they stand, as a paused process's would; a test can make one
    act later, as the process would when it wakes."""
    tasks = [worker.dispatcher._heartbeat_task, worker.dispatcher._loop_task]
    for task in tasks:
        assert task is not None
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def twin(stage: FakeStage, store: JobStore) -> FakeStage:
    """`stage` in another worker's process, with that worker's store, counting into the same records:
    who is inside (so the peaks are over both workers), who entered (a job entered twice, on either,
    is caught), the gates that release them."""
    other = FakeStage(store, stage.done, via=stage.via, hold=stage.hold)
    other.inside, other.entered, other.seen_in = stage.inside, stage.entered, stage.seen_in
    other._release, other.cancels = stage._release, stage.cancels
    return other


class Tally:
    """Wraps one worker's stage: which jobs this worker ran, and at most how many at once."""

    def __init__(self, stage: Callable) -> None:
        self.stage, self.took, self.now, self.peak = stage, [], 0, 0

    async def __call__(self, job: Job, cancel: asyncio.Event) -> None:
        self.took.append(job.id)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.stage(job, cancel)
        finally:
            self.now -= 1


class Held:
    """A run that takes its job into RUNNING and then stands still, as in a process that was paused:
    it does what the test hands it (`act`) in the stage's own task, so under the lease the dispatcher
    gave it, as that process would when it wakes."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.entered = asyncio.Event()
        self.cancel = asyncio.Event()
        self.lease: Lease | None = None
        self.job: Job | None = None
        self._acts: asyncio.Queue[tuple[Callable[[], Any], asyncio.Future]] = asyncio.Queue()

    async def __call__(self, job: Job, cancel: asyncio.Event) -> None:
        self.cancel, self.lease = cancel, current_lease.get()
        self.job = job.moved_to(JobState.RUNNING, job.reason)
        self.store.save_job(self.job, "running")
        self.entered.set()
        while True:
            act, done = await self._acts.get()
            try:
                result = act()
                if asyncio.iscoroutine(result):
                    result = await result
                done.set_result(result)
            except Exception as exc:  # noqa: BLE001 - handed to the test
                done.set_exception(exc)

    async def act(self, what: Callable[[], Any]) -> Any:
        done = asyncio.get_running_loop().create_future()
        await self._acts.put((what, done))
        return await done


def kinds(store: JobStore, job: Job) -> list[str]:
    return [event.kind for event in store.events(job.id)]


def state(store: JobStore, job: Job) -> JobState:
    return store.get_job(job.id).state


@pytest.fixture(autouse=True)
def events_set_on_the_loop(monkeypatch):
    """Fails a test in which an asyncio.Event was set from another thread than the event loop's (the
    heartbeat renews in one): its waiters would wake only by luck, and asyncio's debug mode raises
    there, ending the heartbeat and leaving the stage waiting for ever."""
    loop_thread, elsewhere = threading.get_ident(), []
    real = asyncio.Event.set

    def checked(event: asyncio.Event) -> None:
        if threading.get_ident() != loop_thread:
            elsewhere.append(threading.current_thread().name)
        real(event)

    monkeypatch.setattr(asyncio.Event, "set", checked)
    yield
    assert elsewhere == [], f"asyncio.Event set off the event loop, in {elsewhere}"


# --- a GitHub that counts requests -------------------------------------------------------------


@dataclass
class CountingGitHub:
    api: InstallationAPI
    requests: list[str]


@contextlib.asynccontextmanager
async def counting_github(private_key: str, *, busy: int = 0) -> AsyncIterator[CountingGitHub]:
    """An InstallationAPI for o/r whose GitHub answers every request and writes each one down; the
    first `busy` requests after the token's are refused with a secondary rate limit (Retry-After)."""
    requests: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path}")
        if request.path.endswith("/access_tokens"):
            return web.json_response({"token": "ghs_test", "expires_at": "2099-01-01T00:00:00Z"}, status=201)
        if len(requests) - 1 <= busy:
            return web.json_response({"message": "You have exceeded a secondary rate limit"}, status=429,
                                     headers={"Retry-After": "1"})
        return web.json_response({"id": 1}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serving(app) as url:
        clients = GitHubClients(app_id=1, private_key_pem=private_key, base_url=url)
        try:
            yield CountingGitHub(clients.for_repository(1, "r", {"issues": "write"}), requests)
        finally:
            await clients.close()


async def comment(api: InstallationAPI) -> Any:
    return await api.post("/repos/o/r/issues/1/comments", data={"body": "done"})


# --- each job once, and the limits over both workers ----------------------------------------------


async def test_two_workers_share_the_jobs_and_each_job_runs_exactly_once(open_store):
    store_a, store_b = open_store(), open_store()
    jobs = [make_job(store_a, n, repo=f"o/r{n}", state=JobState.ACKNOWLEDGED) for n in range(20)]
    stage_a = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)
    stage_b = twin(stage_a, store_b)
    on_a, on_b = Tally(stage_a), Tally(stage_b)
    a = node(store_a, "machine-a", [run_stage(on_a, Limits(total=3))])
    b = node(store_b, "machine-b", [run_stage(on_b, Limits(total=3))])
    async with running(a, b):
        await until(lambda: len(stage_a.inside) == 6)  # both full, each with its own three
        await settle()
        assert len(stage_a.inside) == 6 and len(on_a.took) == len(on_b.took) == 3
        stage_a.release_all()
        stage_b.release_all()
        await until(lambda: all(state(store_a, job) is JobState.SUCCEEDED for job in jobs), timeout=15)
    assert Counter(stage_a.entered) == Counter({job.id: 1 for job in jobs})  # each once, over both workers
    assert sorted(on_a.took + on_b.took) == sorted(job.id for job in jobs)
    assert len(on_a.took) >= 3 and len(on_b.took) >= 3
    assert on_a.peak == on_b.peak == 3  # each worker's total is its own
    for job in jobs:
        assert kinds(store_b, job) == ["created", "acknowledged", "running", "succeeded"]
    assert a.failures.seen == b.failures.seen == [] and a.takeovers.seen == b.takeovers.seen == []


async def test_the_per_repository_limit_holds_over_both_workers(open_store):
    store_a, store_b = open_store(), open_store()
    one = [make_job(store_a, n, repo="o/one", state=JobState.ACKNOWLEDGED) for n in range(4)]
    two = [make_job(store_a, n, repo="o/two", state=JobState.ACKNOWLEDGED) for n in range(4, 6)]
    stage_a = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)
    stage_b = twin(stage_a, store_b)
    a = node(store_a, "machine-a", [run_stage(stage_a, Limits(total=1, per_repo=1))])
    b = node(store_b, "machine-b", [run_stage(stage_b, Limits(total=3, per_repo=1))])
    async with running(a):
        await until(lambda: one[0].id in stage_a.inside)
        async with running(b):
            await until(lambda: two[0].id in stage_a.inside)
            await settle()  # several passes of b's: it has room for two more, and o/one has three waiting
            assert set(stage_a.inside) == {one[0].id, two[0].id}
            stage_a.release_all()
            stage_b.release_all()
            await until(lambda: all(state(store_a, job) is JobState.SUCCEEDED for job in one + two), timeout=15)
    peaks = Counter(stage_a.peak_per_repo) | Counter(stage_b.peak_per_repo)  # each the higher of the two
    assert peaks == Counter({"o/one": 1, "o/two": 1})
    assert Counter(stage_a.entered) == Counter({job.id: 1 for job in one + two})


# --- a worker that stops answering ---------------------------------------------------------------


@dataclass
class TakenOver:
    a: Node
    b: Node
    held: Held  # a's run, still there, under a's old lease
    b_stage: FakeStage  # b's run of the job, held until released
    job: Job
    took: float  # how long after a's last renewal b took the job over


def held_by_a(open_store, *, hold: bool = True) -> tuple[Job, Held, FakeStage, Node, Node]:
    """Worker a's run holds an acknowledged job (Held, as a paused process would); worker b's run
    stage (held until released, unless `hold` is False) takes it over once a's lease runs out."""
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1, state=JobState.ACKNOWLEDGED)
    held = Held(store_a)
    b_stage = FakeStage(store_b, JobState.SUCCEEDED, via=JobState.RUNNING, hold=hold)
    a = node(store_a, "machine-a", [run_stage(held, Limits(total=1))])
    b = node(store_b, "machine-b", [run_stage(b_stage, Limits(total=1))])
    return job, held, b_stage, a, b


@contextlib.asynccontextmanager
async def taken_over(open_store, *, reason: str = "the agent is at work") -> AsyncIterator[TakenOver]:
    """Worker a runs a job and stops answering; b takes the job over once a's lease runs out."""
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1, state=JobState.ACKNOWLEDGED, reason=reason)
    held = Held(store_a)
    b_stage = FakeStage(store_b, JobState.SUCCEEDED, via=JobState.RUNNING)
    a = node(store_a, "machine-a", [run_stage(held, Limits(total=1))])
    b = node(store_b, "machine-b", [run_stage(b_stage, Limits(total=1))])
    async with running(a, b):
        await held.entered.wait()
        await settle()  # b looks, and looks again: the job is a's
        assert b_stage.entered == [] and state(store_b, job) is JobState.RUNNING
        await freeze(a)
        await until(lambda: b.takeovers.seen, timeout=LEASE_S + POLL + SLACK)
        await until(lambda: job.id in b_stage.inside)
        assert held.lease is not None
        renewed_at = held.lease.valid_until - USABLE * held.lease.seconds  # a's last renewal, by its clock
        took = b.takeovers.seen[0][2] - renewed_at
        yield TakenOver(a, b, held, b_stage, job, took)


async def test_a_worker_that_stops_answering_loses_its_run_to_another_after_one_lease(open_store):
    async with taken_over(open_store) as t:
        # Not before a's lease ran out (measured from a's last renewal), and soon after: one poll of b's.
        assert LEASE_S - 0.05 <= t.took <= LEASE_S + POLL + SLACK, t.took
        ((job_id, previous, _at),) = t.b.takeovers.seen
        assert (job_id, previous) == (t.job.id, t.a.holder)
        recovered = t.b.store.events(t.job.id)[-2]
        assert recovered.kind == "recovered"
        assert recovered.data == {"state": "acknowledged", "interrupted_in": "running", "previous_holder": t.a.holder}
        assert t.b_stage.seen_in[t.job.id] is JobState.ACKNOWLEDGED  # the run starts again from the beginning
        (moved,) = t.b.takeovers.moved
        assert (moved.state, moved.reason) == (JobState.ACKNOWLEDGED, "the agent is at work")
        assert moved.interruption == texts.INTERRUPTED_TAKEN_OVER  # another machine's worker: "taken over"
        assert t.b.store.get_job(t.job.id).interruption == texts.INTERRUPTED_TAKEN_OVER  # saved, and kept
        assert t.b.store.lease_of(t.job.id) == (t.b.holder, 2)
        t.b_stage.release_all()
        await until(lambda: state(t.b.store, t.job) is JobState.SUCCEEDED)
    assert kinds(t.b.store, t.job) == ["created", "acknowledged", "running", "recovered", "running", "succeeded"]
    assert t.a.failures.seen == t.b.failures.seen == []


async def test_the_worker_that_lost_a_job_can_neither_write_it_nor_publish_for_it(open_store, app_private_key):
    async with counting_github(app_private_key) as github, taken_over(open_store) as t:
        store_a, before = t.a.store, kinds(t.b.store, t.job)
        assert not t.held.lease.lost  # a has not heard: its heartbeat is gone, and it did nothing since
        # a wakes and goes on where it stood, under its old lease (the stage's own task: current_lease is a's)
        with pytest.raises(LeaseLost):
            await t.held.act(lambda: store_a.save_job(t.held.job.moved_to(JobState.SUCCEEDED), "succeeded"))
        assert t.held.lease.lost and t.held.cancel.is_set()  # its work stops: what stops its container
        with pytest.raises(LeaseLost):
            await t.held.act(lambda: store_a.add_event(t.job.id, "progress", step=3))
        with pytest.raises(LeaseLost):
            await t.held.act(check_current)
        with pytest.raises(LeaseLost):
            await t.held.act(lambda: comment(github.api))
        assert github.requests == []  # not even the token: nothing reached GitHub
        assert kinds(t.b.store, t.job) == before and state(t.b.store, t.job) is JobState.RUNNING  # b's
        token = current_lease.set(t.held.lease)  # the same lease, made current here: as refused
        try:
            with pytest.raises(LeaseLost):
                check_current()
        finally:
            current_lease.reset(token)

        token = current_lease.set(t.b.lease(t.job.id))  # the new holder publishes as ever
        try:
            check_current()
            assert await comment(github.api) == {"id": 1}
        finally:
            current_lease.reset(token)
        assert github.requests == ["POST /app/installations/1/access_tokens", "POST /repos/o/r/issues/1/comments"]
        t.b_stage.release_all()
        await until(lambda: state(t.b.store, t.job) is JobState.SUCCEEDED)
    assert t.a.failures.seen == []


async def test_a_lease_its_heartbeat_finds_gone_stops_the_stage_and_records_no_failure(open_store):
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1, state=JobState.ACKNOWLEDGED)
    stage_a = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)  # saves "cancelled" when stopped
    stage_b = FakeStage(store_b, JobState.SUCCEEDED, via=JobState.RUNNING)
    a = node(store_a, "machine-a", [run_stage(stage_a, Limits(total=1))])
    b = node(store_b, "machine-b", [run_stage(stage_b, Limits(total=1))])
    async with running(a, b):
        await until(lambda: job.id in stage_a.inside)
        await freeze(a)
        await until(lambda: job.id in stage_b.inside, timeout=LEASE_S + POLL + SLACK + 1)
        assert not stage_a.cancels[job.id].is_set()
        await asyncio.to_thread(a.dispatcher.leases.beat)  # a's heartbeat comes back, from its thread
        await until(lambda: not a.dispatcher.is_active(job.id), timeout=1)
        assert stage_a.cancels[job.id].is_set()
        assert a.failures.seen == []  # the job is b's: a records nothing on it
        assert "cancelled" not in kinds(store_b, job) and state(store_b, job) is JobState.RUNNING
        stage_b.release_all()
        await until(lambda: state(store_b, job) is JobState.SUCCEEDED)
    assert a.failures.seen == b.failures.seen == []
    assert kinds(store_b, job) == ["created", "acknowledged", "running", "recovered", "running", "succeeded"]


async def test_a_lease_that_could_not_be_renewed_in_time_writes_nothing_and_the_job_goes_on_elsewhere(
        open_store, monkeypatch):
    """The database stops answering a (a's lease is lost by its own clock), then answers the save of
    a's stopped run: that save must not land, though no one has taken the job yet; the job waits for
    its lease to run out, and the next worker runs it."""
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1, state=JobState.ACKNOWLEDGED)
    stage_a = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)  # saves "cancelled" when stopped
    stage_b = FakeStage(store_b, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    a = node(store_a, "machine-a", [run_stage(stage_a, Limits(total=1))])
    b = node(store_b, "machine-b", [run_stage(stage_b, Limits(total=1))])

    def database_away(*_args: object) -> dict[str, bool]:
        raise ConnectionError("the database does not answer")

    async with running(a):
        await until(lambda: job.id in stage_a.inside)
        cancel = stage_a.cancels[job.id]
        monkeypatch.setattr(store_a, "renew_leases", database_away)  # a's heartbeats fail
        monkeypatch.setattr(store_a, "claim_jobs", database_away)  # and its passes claim nothing
        await until(cancel.is_set, timeout=LEASE_S + SLACK)
        await until(lambda: not a.dispatcher.is_active(job.id), timeout=1)
        assert a.failures.seen == []
        assert state(store_a, job) is JobState.RUNNING and "cancelled" not in kinds(store_a, job)
        async with running(b):
            await until(lambda: state(store_b, job) is JobState.SUCCEEDED, timeout=LEASE_S + POLL + SLACK)
    assert kinds(store_b, job) == ["created", "acknowledged", "running", "recovered", "running", "succeeded"]
    assert stage_b.seen_in == {job.id: JobState.ACKNOWLEDGED}


async def test_a_paused_holder_goes_on_while_the_store_still_has_it_and_not_once_another_took_it(
        open_store, app_private_key):
    job, held, b_stage, a, b = held_by_a(open_store, hold=False)
    store_a, store_b = a.store, b.store
    async with counting_github(app_private_key) as github, running(a):
        await held.entered.wait()
        await freeze(a)  # paused: no heartbeat
        lease = held.lease
        await until(lambda: lease_clock() > lease.valid_until + 0.05, timeout=LEASE_S)
        # It wakes past its lease's time; nobody took the job: the store says it is still a's.
        assert await held.act(lambda: comment(github.api)) == {"id": 1}
        assert len(github.requests) == 2  # the token, and the comment
        assert not lease.lost and lease.valid_until > lease_clock()  # renewed by asking the store
        assert store_a.lease_of(job.id) == (a.holder, lease.epoch)
        await held.act(lambda: store_a.add_event(job.id, "progress", step=1))
        assert kinds(store_a, job)[-1] == "progress"

        async with running(b):  # a pauses again; this time b takes the job over
            await until(lambda: b.takeovers.seen, timeout=LEASE_S + POLL + SLACK)
            assert lease_clock() > lease.valid_until and not lease.lost
            with pytest.raises(LeaseLost):
                await held.act(check_current)  # asks the store again: another holds it now
            assert lease.lost and held.cancel.is_set()
            with pytest.raises(LeaseLost):
                await held.act(lambda: comment(github.api))
            assert len(github.requests) == 2
            await until(lambda: state(store_b, job) is JobState.SUCCEEDED)
    assert a.failures.seen == []


async def test_a_cancel_asked_through_another_worker_reaches_the_stage_at_its_workers_next_heartbeat(open_store):
    store_a, store_b = open_store(), open_store()
    job, other = make_job(store_a, 1, state=JobState.ACKNOWLEDGED), make_job(store_a, 2, state=JobState.ACKNOWLEDGED)
    stage_a = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)
    a = node(store_a, "machine-a", [run_stage(stage_a, Limits(total=2))])
    b = node(store_b, "machine-b", [run_stage(FakeStage(store_b, JobState.SUCCEEDED), Limits(total=0))])
    b_worker = SimpleNamespace(dispatcher=b.dispatcher, store=store_b)  # what Worker._cancel_running uses
    async with running(a, b):
        await until(lambda: {job.id, other.id} <= set(stage_a.inside))
        asked = lease_clock()
        assert Worker._cancel_running(b_worker, job.id)  # not b's: asked through the store
        await until(lambda: state(store_a, job) is JobState.CANCELLED, timeout=a.dispatcher.leases.interval + SLACK)
        assert lease_clock() - asked <= a.dispatcher.leases.interval + SLACK
        assert not stage_a.cancels[other.id].is_set()
        await until(lambda: not a.dispatcher.is_active(job.id))
        assert store_a.lease_of(job.id) is None  # released as usual
        assert not Worker._cancel_running(b_worker, job.id)  # nobody runs it now
        stage_a.release_all()
        await until(lambda: state(store_a, other) is JobState.SUCCEEDED)
    assert a.failures.seen == []


async def test_a_worker_started_again_on_the_same_machine_goes_on_with_its_jobs_at_once(open_store):
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1, state=JobState.ACKNOWLEDGED)
    held = Held(store_a)
    b_stage = FakeStage(store_b, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    a = node(store_a, "machine-a", [run_stage(held, Limits(total=1))], lease_s=30)
    b = node(store_b, "machine-b", [run_stage(b_stage, Limits(total=1))])
    async with running(a, b):
        await held.entered.wait()
        await freeze(a)  # the process died; a lease of 30 s holds the job for the machine
        await asyncio.sleep(LEASE_S)  # many passes of b's
        assert b_stage.entered == []

        store_again = open_store()
        again_stage = FakeStage(store_again, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
        again = node(store_again, "machine-a", [run_stage(again_stage, Limits(total=1))], lease_s=30)
        assert again.holder != a.holder
        started = lease_clock()
        async with running(again):
            await until(lambda: state(store_again, job) is JobState.SUCCEEDED, timeout=2)
    ((job_id, previous, at),) = again.takeovers.seen
    assert (job_id, previous) == (job.id, a.holder)
    assert at - started < SLACK  # as it starts, not after a's 30 s
    assert store_b.get_job(job.id).interruption == texts.INTERRUPTED_RESTART  # the same machine: "restarted"
    assert again_stage.entered == [job.id] and b_stage.entered == []
    assert kinds(store_b, job) == ["created", "acknowledged", "running", "recovered", "running", "succeeded"]


# --- commands -------------------------------------------------------------------------------------


def command(n: int, issue: int) -> JobCommand:
    return JobCommand(name="status", installation_id=1, repo="o/r", sender="bob", issue_number=issue, text=f"c{n}")


class Commands:
    """on_command for each worker: what was carried out, by whom, in the order they ended (over both
    workers), and at most how many of one issue ran at once."""

    def __init__(self, took: float) -> None:
        self.took = took  # how long each takes: a real command awaits GitHub
        self.done: list[tuple[str, int | None, str]] = []  # worker, issue, the command's text
        self.inside: Counter[int | None] = Counter()
        self.peak: Counter[int | None] = Counter()

    def hook(self, worker: str) -> Callable[[JobCommand], Any]:
        async def on_command(cmd: JobCommand) -> str:
            self.inside[cmd.issue_number] += 1
            self.peak[cmd.issue_number] = max(self.peak[cmd.issue_number], self.inside[cmd.issue_number])
            try:
                await asyncio.sleep(self.took)
                self.done.append((worker, cmd.issue_number, cmd.text or ""))
            finally:
                self.inside[cmd.issue_number] -= 1
            return "done"
        return on_command

    def by(self, worker: str) -> list[str]:
        return [text for who, _, text in self.done if who == worker]


def send(store: JobStore, commands: list[JobCommand]) -> None:
    for n, cmd in enumerate(commands):
        store.record_delivery(Delivery(id=f"c{n}", event="issue_comment"), commands=[cmd])


async def test_two_workers_carry_out_each_command_once_and_each_issues_in_order(open_store):
    store_a, store_b = open_store(), open_store()
    sent = [command(n, issue=n % 3 + 1) for n in range(10)]
    send(store_a, sent)
    commands = Commands(took=0.02)
    a = node(store_a, "machine-a", [], on_command=commands.hook("a"))
    b = node(store_b, "machine-b", [], on_command=commands.hook("b"))
    async with running(a, b):
        await until(lambda: store_a.pending_commands() == [], timeout=10)
    assert Counter(text for _, _, text in commands.done) == Counter(cmd.text for cmd in sent)  # each once
    assert max(commands.peak.values()) == 1  # never two of one issue at once
    for issue in (1, 2, 3):
        assert [text for _, i, text in commands.done if i == issue] == [c.text for c in sent if c.issue_number == issue]


async def test_commands_claimed_together_are_not_carried_out_twice_when_they_take_long(open_store):
    """Each command takes most of a lease: a worker that claimed several at once would still be at
    work on the later ones when their claims ran out, and the other worker would carry them out again."""
    store_a, store_b = open_store(), open_store()
    sent = [command(n, issue=n + 1) for n in range(3)]  # three issues: all three can be claimed at once
    send(store_a, sent)
    commands = Commands(took=0.6 * LEASE_S)
    a = node(store_a, "machine-a", [], on_command=commands.hook("a"))
    b = node(store_b, "machine-b", [], on_command=commands.hook("b"))
    async with running(a, b):
        await until(lambda: store_a.pending_commands() == [], timeout=10)
        await asyncio.sleep(POLL * 2)  # anything still claimable would be taken now
    assert Counter(text for _, _, text in commands.done) == Counter(cmd.text for cmd in sent)
    assert commands.by("a") and commands.by("b")  # the other worker took its share


async def test_a_command_carried_out_for_longer_than_a_lease_stays_its_workers(open_store):
    """One waiting out a rate limit takes minutes: the heartbeat renews its claim as it does a job's lease."""
    store_a, store_b = open_store(), open_store()
    send(store_a, [command(0, issue=1)])
    commands = Commands(took=3 * LEASE_S)
    a = node(store_a, "machine-a", [], on_command=commands.hook("a"))
    b = node(store_b, "machine-b", [], on_command=commands.hook("b"))
    async with running(a):
        await until(lambda: commands.inside[1] == 1, timeout=5)
        async with running(b):
            await until(lambda: store_a.pending_commands() == [], timeout=10)
            await asyncio.sleep(POLL * 2)
    assert commands.done == [("a", 1, "c0")]  # once, by the worker that claimed it
    assert commands.peak[1] == 1  # and never started by the other meanwhile


async def test_a_command_whose_worker_died_in_the_middle_goes_to_another_after_one_lease(open_store):
    store_a, store_b = open_store(), open_store()
    send(store_a, [command(0, issue=1), command(1, issue=1)])  # the second waits behind the first
    forever, done = asyncio.Event(), []

    async def stuck(cmd: JobCommand) -> str:
        await forever.wait()
        return "never"

    async def carry_out(cmd: JobCommand) -> str:
        done.append(cmd.text)
        return "done"

    a = node(store_a, "machine-a", [], on_command=stuck)
    b = node(store_b, "machine-b", [], on_command=carry_out)
    async with running(a):
        await until(lambda: a.dispatcher.leases.command is not None, timeout=5)
        await freeze(a)
        died = lease_clock()
        async with running(b):
            await until(lambda: len(done) == 2, timeout=LEASE_S + 5)
    assert done == ["c0", "c1"] and lease_clock() - died < LEASE_S + POLL + SLACK + 1


async def test_a_command_that_hangs_is_stopped_and_the_issues_next_one_goes_on(open_store, monkeypatch):
    from app.engine import dispatcher as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "COMMAND_TIMEOUT_S", 0.5)
    store = open_store()
    send(store, [command(0, issue=1), command(1, issue=1)])
    done: list[str] = []

    async def hangs_on_the_first(cmd: JobCommand) -> str:
        if cmd.text == "c0":
            await asyncio.Event().wait()
        done.append(cmd.text)
        return "done"

    async with running(node(store, "machine-a", [], on_command=hangs_on_the_first)):
        await until(lambda: done == ["c1"], timeout=5)
    outcomes = {cmd.text: outcome for cmd, outcome in finished(store)}
    assert outcomes == {"c0": dispatcher_module.COMMAND_TIMED_OUT.format(seconds=0.5), "c1": "done"}


def finished(store: JobStore) -> list[tuple[JobCommand, str]]:
    with store._read() as db:
        rows = store._run(db, "SELECT doc, outcome FROM commands WHERE done_at IS NOT NULL ORDER BY seq").fetchall()
    return [(JobCommand.model_validate_json(doc), outcome) for doc, outcome in rows]


# --- what a suspend, a cancel on a dead worker and a failed save leave ------------------------------


async def test_a_write_waiting_out_a_rate_limit_is_not_sent_again_once_the_lease_was_lost(app_private_key):
    """The retry of a refused write comes after a wait (up to two minutes): the lease may be gone by then."""
    async with counting_github(app_private_key, busy=1) as github:
        lease = Lease(job_id="j", holder="w", epoch=1, stage="run", seconds=30, valid_until=lease_clock() + 30)
        waits: list[float] = []

        async def wait_out(seconds: float) -> None:  # meanwhile the heartbeat finds the lease gone
            waits.append(seconds)
            lease.lose()

        github.api._api.sleep = wait_out  # type: ignore[method-assign]
        token = current_lease.set(lease)
        try:
            with pytest.raises(LeaseLost):
                await comment(github.api)
        finally:
            current_lease.reset(token)
        assert waits == [1]
        assert github.requests == ["POST /app/installations/1/access_tokens", "POST /repos/o/r/issues/1/comments"]


async def test_a_cancel_asked_while_the_runs_worker_was_dead_ends_the_job_where_it_is_taken_over(open_store):
    job, held, b_stage, a, b = held_by_a(open_store)  # b's stage saves "cancelled" when stopped
    store_b = b.store
    b_worker = SimpleNamespace(dispatcher=b.dispatcher, store=store_b)  # what Worker._cancel_running uses
    async with running(a, b):
        await held.entered.wait()
        await freeze(a)  # a died; its lease is still live
        assert Worker._cancel_running(b_worker, job.id)  # "cancelling": asked of a, through the store
        await until(lambda: b.takeovers.seen, timeout=LEASE_S + POLL + SLACK)
        await until(lambda: state(store_b, job) is JobState.CANCELLED)
        assert b_stage.cancels[job.id].is_set() and b_stage.entered == [job.id]
    assert kinds(store_b, job)[-3:] == ["recovered", "running", "cancelled"]  # stopped as it began: as asked


async def test_a_job_still_running_here_is_not_claimed_again_when_its_lease_ran_out(open_store):
    """A laptop suspended past its leases: the database's clock ran on. Its next pass must not take
    over its own job (two tasks for one job); the task finds its lease's fate at its next write."""
    store = open_store()
    job = make_job(store, 1, state=JobState.ACKNOWLEDGED)
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)  # entered twice: it says so
    a = node(store, "machine-a", [run_stage(stage, Limits(total=2))])
    async with running(a):
        await until(lambda: job.id in stage.inside)
        heartbeat = a.dispatcher._heartbeat_task
        assert heartbeat is not None
        heartbeat.cancel()  # the renewals of the suspended machine did not happen
        await asyncio.gather(heartbeat, return_exceptions=True)
        assert store.expire_leases_of("machine-a", "another process") == 1  # run out, by the store's clock
        for _ in range(3):
            a.dispatcher.wake()
            await settle()
        assert stage.entered == [job.id] and a.takeovers.seen == []
        stage.release_all()
        await until(lambda: state(store, job) is JobState.SUCCEEDED)
    assert a.failures.seen == []


async def test_a_takeover_whose_save_fails_lets_the_job_go_for_the_next_pass(open_store, monkeypatch):
    job, held, b_stage, a, b = held_by_a(open_store, hold=False)
    store_b = b.store
    real_save, failed = store_b.save_job, []

    def save_once_failing(saved: Job, kind: str, **data: Any) -> Any:
        if kind == "recovered" and not failed:
            failed.append(saved.id)
            raise ConnectionError("the connection dropped mid-save")
        return real_save(saved, kind, **data)

    monkeypatch.setattr(store_b, "save_job", save_once_failing)
    async with running(a, b):
        await held.entered.wait()
        await freeze(a)
        await until(lambda: state(store_b, job) is JobState.SUCCEEDED, timeout=LEASE_S + 4 * POLL + SLACK)
    assert failed == [job.id] and len(b.takeovers.seen) == 2  # the second pass took it over
    assert b_stage.entered == [job.id] and b.dispatcher.leases.leases == {}


class RacingStore:
    """A store whose renewal answers after the job was released and claimed again (a new epoch): as
    the heartbeat's thread sees it when the loop moved on while the request was out."""

    def __init__(self) -> None:
        self.during: Callable[[], None] = lambda: None

    def renew_leases(self, holder: str, name: str, held: dict[str, int], lease_s: float, totals=None) -> dict[str, bool]:
        self.during()
        return {}  # none of the leases sent is held any more


def test_a_heartbeat_answered_after_the_job_was_claimed_again_keeps_the_new_lease():
    from app.engine.leases import LeaseKeeper

    store, lost = RacingStore(), []
    keeper = LeaseKeeper(store, WorkerIdentity.new("m", 30), on_cancel=lambda _job_id: None)  # type: ignore[arg-type]
    old = keeper.lease("j", 1, "acknowledge", lease_clock(), on_lost=lost.append)

    def claimed_again() -> None:
        keeper.forget(old)  # the acknowledgement ended and released the job; the run stage claimed it
        keeper.lease("j", 2, "run", lease_clock(), on_lost=lost.append)

    store.during = claimed_again
    keeper.beat()
    assert lost == [] and not keeper.leases["j"].lost and keeper.leases["j"].epoch == 2
    store.during = lambda: None
    keeper.beat()  # the next beat sent epoch 2: not held, so lost
    assert [lease.epoch for lease in lost] == [2]


async def test_a_cancel_asked_while_another_worker_acknowledges_the_job_ends_it_in_the_run_after(open_store):
    """An acknowledgement does not stop half-way: the cancel waits with the job, and the run stage that
    takes it next (on whichever worker) ends it, instead of the command's save being overwritten by the
    acknowledgement's."""
    store_a, store_b = open_store(), open_store()
    job = make_job(store_a, 1)  # queued
    gate, acknowledging = asyncio.Event(), asyncio.Event()

    async def acknowledge(queued: Job, _cancel: asyncio.Event) -> None:
        acknowledging.set()
        await gate.wait()  # takes no notice of the cancel, as app/pipeline/acknowledge.py
        store_a.save_job(queued.moved_to(JobState.ACKNOWLEDGED, "acknowledged"), "acknowledged")

    run = FakeStage(store_a, JobState.SUCCEEDED, via=JobState.RUNNING)  # saves "cancelled" when stopped
    a = node(store_a, "machine-a", [Stage("acknowledge", JobState.QUEUED, acknowledge, Limits(total=1)),
                                    run_stage(run, Limits(total=1))])
    b = node(store_b, "machine-b", [])
    b_worker = SimpleNamespace(dispatcher=b.dispatcher, store=store_b)
    async with running(a, b):
        await acknowledging.wait()
        assert Worker._cancel_running(b_worker, job.id)  # held by a's acknowledgement: asked through the store
        gate.set()
        await until(lambda: state(store_a, job) is JobState.CANCELLED)
        assert run.cancels[job.id].is_set()
    assert kinds(store_a, job) == ["created", "acknowledged", "running", "cancelled"]
