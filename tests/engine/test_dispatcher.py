"""The dispatcher on its own: a real SQLite store, fake stages that count who is inside them.

No GitHub, no Docker. The fake stages move jobs the way the real ones do (acknowledge:
queued → acknowledged; run: acknowledged → running → succeeded), and each holds its job until
the test lets it go, so the tests see exactly how many run at once."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobState, Trigger
from app.engine.dispatcher import Dispatcher, Hooks, Limits, Stage
from app.store import SQLiteJobStore

# What the worker gives its dispatcher: a run a restart interrupted starts again.
INTERRUPTED = {JobState.RUNNING: JobState.ACKNOWLEDGED}
SLOW_POLL = 60.0  # longer than any test: only wake() (or a finished stage) can start work


class FakeStage:
    """A stage that records who is inside it, at most how many, and what state each job came in."""

    def __init__(self, store: SQLiteJobStore, done: JobState, *, via: JobState | None = None, hold: bool = True):
        self.store, self.done, self.via = store, done, via
        self.inside: dict[str, Job] = {}
        self.peak = 0
        self.peak_per_repo: Counter[str] = Counter()
        self.peak_per_installation: Counter[int] = Counter()
        self.entered: list[str] = []
        self.seen_in: dict[str, JobState] = {}
        self.hold = hold
        self._release: dict[str, asyncio.Event] = {}
        self.cancels: dict[str, asyncio.Event] = {}  # the stop signal each job was handed

    def release(self, job_id: str) -> None:
        self._gate(job_id).set()

    def release_all(self) -> None:
        self.hold = False
        for gate in self._release.values():
            gate.set()

    def _gate(self, job_id: str) -> asyncio.Event:
        return self._release.setdefault(job_id, asyncio.Event())

    async def __call__(self, job: Job, cancel: asyncio.Event) -> None:
        self.cancels[job.id] = cancel
        if job.id in self.entered:  # never expected here; cancel it, or a broken dispatcher retries it at once, forever
            self.entered.append(job.id)
            self.store.save_job(job.moved_to(JobState.CANCELLED), "cancelled", by="FakeStage: entered twice")
            return
        self.inside[job.id] = job
        self.entered.append(job.id)
        self.seen_in[job.id] = job.state
        self.peak = max(self.peak, len(self.inside))
        for repo, n in Counter(j.repo for j in self.inside.values()).items():
            self.peak_per_repo[repo] = max(self.peak_per_repo[repo], n)
        for installation, n in Counter(j.installation_id for j in self.inside.values()).items():
            self.peak_per_installation[installation] = max(self.peak_per_installation[installation], n)
        try:
            if self.via is not None:
                job = job.moved_to(self.via)
                self.store.save_job(job, self.via.value)
            if self.hold:  # until released, or asked to stop
                gate, stop = asyncio.ensure_future(self._gate(job.id).wait()), asyncio.ensure_future(cancel.wait())
                await asyncio.wait([gate, stop], return_when=asyncio.FIRST_COMPLETED)
                for waiter in (gate, stop):
                    waiter.cancel()
                if cancel.is_set():
                    self.store.save_job(job.moved_to(JobState.CANCELLED), "cancelled")
                    return
            else:
                await asyncio.sleep(0.01)  # a real stage awaits something; others get their turn
            self.store.save_job(job.moved_to(self.done), self.done.value)
        finally:
            del self.inside[job.id]


def make_job(store: SQLiteJobStore, n: int, *, repo: str = "o/r", installation: int = 1,
             state: JobState = JobState.QUEUED, reason: str | None = None) -> Job:
    """A job stored as a delivery would store it, `n` seconds into the day (oldest first)."""
    job = Job(delivery_id=f"d{n}", installation_id=installation, repo=repo, issue_number=n, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"), created_at=1_000.0 + n)
    store.record_delivery(Delivery(id=job.delivery_id, event="issues"), [job])
    path = {
        JobState.QUEUED: [],
        JobState.ACKNOWLEDGED: [JobState.ACKNOWLEDGED],
        JobState.RUNNING: [JobState.ACKNOWLEDGED, JobState.RUNNING],
        JobState.WAITING_FOR_ANSWER: [JobState.ACKNOWLEDGED, JobState.RUNNING, JobState.WAITING_FOR_ANSWER],
        JobState.SUCCEEDED: [JobState.ACKNOWLEDGED, JobState.RUNNING, JobState.SUCCEEDED],
    }[state]
    for step in path:
        job = job.moved_to(step, reason)
        store.save_job(job, step.value)
    return job


class Failures:
    """on_error as the worker's fail_job does it: the job ends failed, the error its reason."""

    def __init__(self, store: SQLiteJobStore) -> None:
        self.store = store
        self.seen: list[tuple[str, BaseException]] = []

    async def __call__(self, job: Job, exc: BaseException) -> None:
        self.seen.append((job.id, exc))
        current = self.store.get_job(job.id)
        self.store.save_job(current.moved_to(JobState.FAILED, str(exc), conclusion="failure"), "failed")


def make_dispatcher(store: SQLiteJobStore, stages: list[Stage], *, failures: Failures | None = None,
                    poll_interval: float = SLOW_POLL, **hooks: Callable) -> Dispatcher:
    """Wired as the worker wires it: with an on_error that ends the job (without one, a stage that
    raises leaves its job where it was, to be taken again at once), and the worker's recovery."""
    return Dispatcher(store, stages, Hooks(on_error=failures or Failures(store), **hooks),
                      interrupted_states=INTERRUPTED, poll_interval=poll_interval)


def run_stage(stage: Callable, limits: Limits) -> Stage:
    return Stage("run", JobState.ACKNOWLEDGED, stage, limits)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def settle() -> None:
    """Time for several dispatcher passes: anything that could start has started."""
    await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    await start(dispatcher)
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()


async def start(dispatcher: Dispatcher) -> None:
    """Start it as the service does: start() recovers, then the first pass comes at the first
    wake() (the web app's, when something is stored) or poll."""
    await dispatcher.start()
    dispatcher.wake()


@pytest.fixture
def store(tmp_path):
    store = SQLiteJobStore(tmp_path / "jobs.sqlite")
    yield store
    store.close()


def state(store: SQLiteJobStore, job: Job) -> JobState:
    return store.get_job(job.id).state


# --- cancelling ---------------------------------------------------------------------------------


async def test_cancel_reaches_the_stage_running_the_job_and_only_while_it_runs(store):
    target, other = make_job(store, 1, state=JobState.ACKNOWLEDGED), make_job(store, 2, state=JobState.ACKNOWLEDGED)
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=2))])
    assert not dispatcher.cancel(target.id)  # not running yet
    async with running(dispatcher):
        await until(lambda: len(stage.inside) == 2)
        assert dispatcher.cancel(target.id)
        await until(lambda: target.id not in stage.inside)
        assert state(store, target) is JobState.CANCELLED
        assert not stage.cancels[other.id].is_set()  # each run has its own signal
        assert not dispatcher.cancel("no-such-job")
        stage.release_all()
        await dispatcher.wait_idle(5)
    assert not dispatcher.cancel(target.id)  # its stage has ended: nothing to signal
    assert state(store, other) is JobState.SUCCEEDED


# --- limits ------------------------------------------------------------------------------------


async def test_no_more_jobs_run_at_once_than_the_total_limit_and_the_next_starts_when_one_ends(store):
    jobs = [make_job(store, n, repo=f"o/r{n}", installation=n, state=JobState.ACKNOWLEDGED) for n in range(5)]
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=2))])
    async with running(dispatcher):
        await until(lambda: len(stage.inside) == 2)
        await settle()
        assert stage.entered == [jobs[0].id, jobs[1].id]  # the oldest, and no third
        assert [state(store, j) for j in jobs[2:]] == [JobState.ACKNOWLEDGED] * 3

        stage.release(jobs[0].id)  # one slot frees: the oldest waiting job takes it, with no wake() or poll
        await until(lambda: jobs[2].id in stage.inside)
        await settle()
        assert set(stage.inside) == {jobs[1].id, jobs[2].id}

        stage.release_all()
        await dispatcher.wait_idle(5)
    assert stage.peak == 2
    assert stage.entered == [j.id for j in jobs]
    assert all(state(store, j) is JobState.SUCCEEDED for j in jobs)


async def test_one_repository_runs_no_more_than_its_limit_while_others_go_ahead(store):
    a = [make_job(store, n, repo="o/a", state=JobState.ACKNOWLEDGED) for n in range(3)]
    b = [make_job(store, n, repo="o/b", state=JobState.ACKNOWLEDGED) for n in range(3, 5)]
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=10, per_repo=1))])
    async with running(dispatcher):
        await until(lambda: len(stage.inside) == 2)
        await settle()
        assert set(stage.inside) == {a[0].id, b[0].id}  # one per repository, though the total allows ten

        stage.release(a[0].id)  # a's slot frees: a's next job starts; b's second still waits
        await until(lambda: a[1].id in stage.inside)
        await settle()
        assert set(stage.inside) == {a[1].id, b[0].id}

        stage.release_all()
        await dispatcher.wait_idle(5)
    assert stage.peak_per_repo == Counter({"o/a": 1, "o/b": 1})
    assert stage.peak == 2
    assert all(state(store, j) is JobState.SUCCEEDED for j in a + b)


async def test_before_start_comes_after_the_commands_and_what_it_saves_starts_in_the_same_pass(store):
    """The worker releases follow-ups there: a job it moves into a stage's state starts at once."""
    waiting = make_job(store, 1, state=JobState.QUEUED)
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    seen: list[str] = []

    async def on_command(command: JobCommand) -> str:
        seen.append("command")
        return "done"

    def before_start() -> None:
        seen.append("before_start")
        job = store.get_job(waiting.id)
        if job.state is JobState.QUEUED:
            store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "released")

    store.record_delivery(Delivery(id="c1", event="issue_comment"),
                          commands=[JobCommand(name="status", installation_id=1, repo="o/r", sender="alice")])
    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=1))], on_command=on_command,
                                 before_start=before_start)
    async with running(dispatcher):
        await until(lambda: waiting.id in stage.inside)
        assert seen[:2] == ["command", "before_start"]
        limits, inside = dispatcher.running("run")
        assert limits == Limits(total=1) and [j.id for j in inside] == [waiting.id]
        stage.release_all()
        await dispatcher.wait_idle(5)
    assert dispatcher.running("run")[1] == []


async def test_one_installation_runs_no_more_than_its_limit_across_its_repositories(store):
    one = [make_job(store, n, repo=f"one/r{n}", installation=1, state=JobState.ACKNOWLEDGED) for n in range(4)]
    two = make_job(store, 9, repo="two/r", installation=2, state=JobState.ACKNOWLEDGED)
    stage = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=10, per_installation=2))])
    async with running(dispatcher):
        await until(lambda: len(stage.inside) == 3)
        await settle()
        assert set(stage.inside) == {one[0].id, one[1].id, two.id}  # two.id is younger, yet not held back

        stage.release(one[1].id)
        await until(lambda: one[2].id in stage.inside)
        await settle()
        assert set(stage.inside) == {one[0].id, one[2].id, two.id}

        stage.release_all()
        await dispatcher.wait_idle(5)
    assert stage.peak_per_installation == Counter({1: 2, 2: 1})
    assert all(state(store, j) is JobState.SUCCEEDED for j in [*one, two])


async def test_each_stage_has_its_own_limit_so_acknowledging_does_not_wait_behind_runs(store):
    running_jobs = [make_job(store, n, state=JobState.ACKNOWLEDGED) for n in range(2)]
    queued = [make_job(store, n, repo="o/r", state=JobState.QUEUED) for n in range(2, 5)]
    ack = FakeStage(store, JobState.ACKNOWLEDGED, hold=False)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(
        store,
        [Stage("acknowledge", JobState.QUEUED, ack, Limits(total=16)), run_stage(run, Limits(total=1, per_repo=1))],
    )
    async with running(dispatcher):
        # The run stage is full (one job in o/r, held); all three queued jobs of o/r are acknowledged anyway.
        await until(lambda: all(state(store, j) is JobState.ACKNOWLEDGED for j in queued))
        assert set(run.inside) == {running_jobs[0].id}
        run.release_all()
        await dispatcher.wait_idle(5)
    assert run.peak == 1
    assert run.entered == [j.id for j in running_jobs + queued]  # oldest first, in the run stage too


# --- the path through the stages ----------------------------------------------------------------


async def test_a_job_goes_through_the_stages_in_order_of_its_states(store):
    job = make_job(store, 1)
    parked = make_job(store, 2, state=JobState.WAITING_FOR_ANSWER)  # no stage takes this state
    ack = FakeStage(store, JobState.ACKNOWLEDGED, hold=False)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    dispatcher = make_dispatcher(
        store, [Stage("acknowledge", JobState.QUEUED, ack, Limits(total=4)), run_stage(run, Limits(total=4))]
    )
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
    assert ack.seen_in == {job.id: JobState.QUEUED}
    assert run.seen_in == {job.id: JobState.ACKNOWLEDGED}
    assert [e.kind for e in store.events(job.id)] == ["created", "acknowledged", "running", "succeeded"]
    assert state(store, parked) is JobState.WAITING_FOR_ANSWER
    assert parked.id not in ack.entered + run.entered


# --- recovery -----------------------------------------------------------------------------------


async def test_a_new_dispatcher_puts_back_what_a_crash_left_mid_stage_and_finishes_it(tmp_path):
    path = tmp_path / "jobs.sqlite"
    before = SQLiteJobStore(path)
    mid_run = make_job(before, 1, state=JobState.RUNNING, reason="the agent is at work")
    mid_ack = make_job(before, 2)  # acknowledging has no state of its own: the job is still queued
    waiting = make_job(before, 3, state=JobState.WAITING_FOR_ANSWER)
    done = make_job(before, 4, state=JobState.SUCCEEDED)
    before.close()  # the process died here

    store = SQLiteJobStore(path)  # the next process
    ack = FakeStage(store, JobState.ACKNOWLEDGED, hold=False)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    dispatcher = make_dispatcher(  # with the worker's interrupted_states
        store, [Stage("acknowledge", JobState.QUEUED, ack, Limits(total=4)), run_stage(run, Limits(total=4))]
    )
    await start(dispatcher)
    try:
        # On start, before any stage has run: the interrupted run is back where a run starts from.
        assert run.entered == [] and ack.entered == []
        recovered = store.get_job(mid_run.id)
        assert recovered.state is JobState.ACKNOWLEDGED and recovered.reason == "the agent is at work"
        assert store.events(mid_run.id)[-1].kind == "recovered"
        assert store.events(mid_run.id)[-1].data == {"state": "acknowledged", "interrupted_in": "running"}
        await dispatcher.wait_idle(5)
    finally:
        await dispatcher.stop()

    assert run.seen_in[mid_run.id] is JobState.ACKNOWLEDGED  # the run started again from the beginning
    assert ack.seen_in == {mid_ack.id: JobState.QUEUED}  # the acknowledgement is simply done again
    assert state(store, mid_run) is state(store, mid_ack) is JobState.SUCCEEDED
    assert state(store, waiting) is JobState.WAITING_FOR_ANSWER  # not interrupted work: left alone
    assert state(store, done) is JobState.SUCCEEDED
    for untouched in (mid_ack, waiting, done):
        assert "recovered" not in [e.kind for e in store.events(untouched.id)]
    store.close()


async def test_a_run_stopped_mid_stage_is_taken_up_again_by_the_next_dispatcher(tmp_path):
    path = tmp_path / "jobs.sqlite"
    first_store = SQLiteJobStore(path)
    job = make_job(first_store, 1, state=JobState.ACKNOWLEDGED)
    stuck = FakeStage(first_store, JobState.SUCCEEDED, via=JobState.RUNNING)  # never released
    first = make_dispatcher(first_store, [run_stage(stuck, Limits(total=1))])
    await start(first)
    try:
        await until(lambda: state(first_store, job) is JobState.RUNNING)
    finally:
        await first.stop()  # what a shutdown does to a stage: cancelled where it stands
    assert state(first_store, job) is JobState.RUNNING
    first_store.close()

    store = SQLiteJobStore(path)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    async with running(make_dispatcher(store, [run_stage(run, Limits(total=1))])) as second:
        await second.wait_idle(5)
    assert run.entered == [job.id]
    assert [e.kind for e in store.events(job.id)] == ["created", "acknowledged", "running", "recovered", "running",
                                                      "succeeded"]
    store.close()


# --- failures -----------------------------------------------------------------------------------


async def test_a_stage_that_raises_fails_its_job_through_on_error_and_the_dispatcher_goes_on(store):
    bad, good = make_job(store, 1, state=JobState.ACKNOWLEDGED), make_job(store, 2, state=JobState.ACKNOWLEDGED)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    failures = Failures(store)

    async def stage(job: Job, cancel: asyncio.Event) -> None:
        if job.id == bad.id:
            store.save_job(job.moved_to(JobState.RUNNING), "running")
            raise ValueError("the sandbox fell over")
        await run(job, cancel)

    dispatcher = make_dispatcher(store, [run_stage(stage, Limits(total=1))], failures=failures)
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
        later = make_job(store, 3, state=JobState.ACKNOWLEDGED)  # the dispatcher still takes new work
        dispatcher.wake()
        await dispatcher.wait_idle(5)
    assert [(job_id, type(exc), str(exc)) for job_id, exc in failures.seen] == [(bad.id, ValueError, "the sandbox fell over")]
    failed = store.get_job(bad.id)
    assert (failed.state, failed.reason, failed.conclusion) == (JobState.FAILED, "the sandbox fell over", "failure")
    assert state(store, good) is state(store, later) is JobState.SUCCEEDED


async def test_a_stage_that_leaves_its_job_where_it_was_counts_as_a_failure(store):
    job = make_job(store, 1, state=JobState.ACKNOWLEDGED)
    entered: list[str] = []
    failures = Failures(store)

    async def does_nothing(job: Job, _cancel: asyncio.Event) -> None:
        entered.append(job.id)
        if entered.count(job.id) > 1:  # a second time: end it, or the test would loop instead of failing
            store.save_job(job.moved_to(JobState.CANCELLED), "cancelled")

    dispatcher = make_dispatcher(store, [run_stage(does_nothing, Limits(total=1))], failures=failures)
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
    assert entered == [job.id]  # once, not again and again
    ((failed_id, error),) = failures.seen
    assert failed_id == job.id
    assert isinstance(error, RuntimeError) and "left the job acknowledged" in str(error)
    assert state(store, job) is JobState.FAILED


async def test_a_command_that_raises_is_finished_with_its_error_and_the_next_one_still_runs(store, tmp_path):
    store.record_delivery(Delivery(id="c", event="issue_comment"), [], [
        JobCommand(name="cancel", installation_id=1, repo="o/r", sender="bob"),
        JobCommand(name="answer", installation_id=1, repo="o/r", sender="bob"),
    ])
    carried_out: list[str] = []

    async def on_command(command: JobCommand) -> str:
        carried_out.append(command.name)
        if command.name == "cancel":
            raise KeyError("no such job")
        return "answered"

    dispatcher = make_dispatcher(store, [], on_command=on_command)
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
    assert carried_out == ["cancel", "answer"]
    assert store.pending_commands() == []
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        outcomes = [row[0] for row in db.execute("SELECT outcome FROM commands ORDER BY seq")]
    assert outcomes == ["error: 'no such job'", "answered"]


# --- wait_idle and wake -------------------------------------------------------------------------


async def test_wait_idle_returns_only_once_every_job_and_command_is_done(store):
    jobs = [make_job(store, n, repo=f"o/r{n % 2}") for n in range(6)]
    store.record_delivery(Delivery(id="c", event="issue_comment"), [],
                          [JobCommand(name="cancel", installation_id=1, repo="o/r0", sender="bob")])
    ack = FakeStage(store, JobState.ACKNOWLEDGED, hold=False)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    commands: list[str] = []

    async def on_command(command: JobCommand) -> str:
        commands.append(command.name)
        return "done"

    dispatcher = make_dispatcher(
        store,
        [Stage("acknowledge", JobState.QUEUED, ack, Limits(total=2)), run_stage(run, Limits(total=2, per_repo=1))],
        on_command=on_command,
    )
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
        assert [state(store, j) for j in jobs] == [JobState.SUCCEEDED] * len(jobs)
        assert ack.inside == {} and run.inside == {}
        assert commands == ["cancel"] and store.pending_commands() == []


async def test_wait_idle_also_waits_for_work_stored_while_a_pass_was_under_way(store):
    def command(name: str) -> JobCommand:
        return JobCommand(name=name, installation_id=1, repo="o/r", sender="bob")

    store.record_delivery(Delivery(id="c1", event="issue_comment"), [], [command("cancel")])
    in_first, let_first_go = asyncio.Event(), asyncio.Event()
    carried_out: list[str] = []

    async def on_command(cmd: JobCommand) -> str:
        await asyncio.sleep(0.01)  # a real command awaits GitHub: wait_idle gets its turn meanwhile
        carried_out.append(cmd.name)
        if cmd.name == "cancel":
            in_first.set()
            await let_first_go.wait()
        return "done"

    dispatcher = make_dispatcher(store, [], on_command=on_command)
    async with running(dispatcher):
        await in_first.wait()  # a pass is carrying out the first command; it read the pending ones already
        store.record_delivery(Delivery(id="c2", event="issue_comment"), [], [command("answer")])
        idle = asyncio.create_task(dispatcher.wait_idle(5))
        await asyncio.sleep(0.05)
        let_first_go.set()  # that pass ends with nothing active: idle, though "answer" waits
        await idle
        assert carried_out == ["cancel", "answer"]
        assert store.pending_commands() == []


async def test_wait_idle_does_not_return_while_a_stage_is_still_at_work(store):
    job = make_job(store, 1, state=JobState.ACKNOWLEDGED)
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING)
    dispatcher = make_dispatcher(store, [run_stage(run, Limits(total=1))])
    async with running(dispatcher):
        with pytest.raises(asyncio.TimeoutError):
            await dispatcher.wait_idle(0.3)
        assert list(run.inside) == [job.id]
        run.release_all()
        await dispatcher.wait_idle(5)
    assert state(store, job) is JobState.SUCCEEDED


async def test_wake_starts_stored_work_at_once_where_polling_would_wait(store):
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    dispatcher = make_dispatcher(store, [run_stage(run, Limits(total=1))])
    async with running(dispatcher):
        await dispatcher.wait_idle(5)  # the first pass is over; the loop sleeps until woken or polled
        unwoken = make_job(store, 1, state=JobState.ACKNOWLEDGED)
        await settle()
        assert run.entered == []  # stored, but nobody said so
        woken_at = time.monotonic()
        dispatcher.wake()
        await until(lambda: state(store, unwoken) is JobState.SUCCEEDED, timeout=2)
        assert time.monotonic() - woken_at < 2


async def test_polling_finds_stored_work_without_a_wake(store):
    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    dispatcher = make_dispatcher(store, [run_stage(run, Limits(total=1))], poll_interval=0.05)
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
        job = make_job(store, 1, state=JobState.ACKNOWLEDGED)
        await until(lambda: state(store, job) is JobState.SUCCEEDED, timeout=2)


async def test_intake_is_asked_each_pass_and_what_it_brings_in_is_run(store):
    brought: list[Job] = []

    async def intake() -> int:
        await asyncio.sleep(0)
        if len(brought) < 3:  # the inbox holds three deliveries, one per pass
            brought.append(make_job(store, len(brought), state=JobState.ACKNOWLEDGED))
            return 1
        return 0

    run = FakeStage(store, JobState.SUCCEEDED, via=JobState.RUNNING, hold=False)
    dispatcher = make_dispatcher(store, [run_stage(run, Limits(total=1))], intake=intake)
    async with running(dispatcher):
        await dispatcher.wait_idle(5)
    assert len(brought) == 3
    assert run.entered == [j.id for j in brought]


async def test_a_pass_that_took_work_in_makes_another_at_once_for_what_may_be_behind_it(store):
    calls: list[int] = []

    async def intake() -> int:  # the inbox has three deliveries, more than one pass takes in
        await asyncio.sleep(0)  # the real one awaits its lock: the loop can't starve the event loop
        calls.append(len(calls))
        return 1 if len(calls) <= 3 else 0

    dispatcher = make_dispatcher(store, [], intake=intake)
    async with running(dispatcher):  # one wake() at start, then nothing but the 60 s poll
        await until(lambda: len(calls) == 4, timeout=2)
        await settle()
    assert len(calls) == 4  # and not more: a pass that took nothing in waits to be woken


STOP_WHILE_BUSY = """
import asyncio, sys, tempfile
from pathlib import Path
from app.engine.dispatcher import Dispatcher, Hooks
from app.store import SQLiteJobStore

async def main():
    store = SQLiteJobStore(Path(tempfile.mkdtemp()) / "jobs.sqlite")
    async def busy_inbox():  # something came in on every pass: the loop wakes itself again at once
        await asyncio.sleep(0)
        return 1
    for round in range(50):
        dispatcher = Dispatcher(store, [], Hooks(intake=busy_inbox), poll_interval=0.0001)
        await dispatcher.start()
        await asyncio.sleep(0.001 * (round % 5))
        await dispatcher.stop()
    print("stopped")

asyncio.run(main())
"""


def test_stop_ends_the_loop_while_a_busy_inbox_keeps_waking_it():
    """SIGTERM must stop a worker whose inbox is busy. In a process of its own, so that a loop that
    never ends fails this test instead of hanging the suite."""
    import subprocess
    import sys

    from tests.support.env import ROOT

    done = subprocess.run([sys.executable, "-c", STOP_WHILE_BUSY], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr[-2000:]
