"""The command handler without GitHub: commands that need no API call, checked in the store."""

from __future__ import annotations

from app.domain.config import load_default
from app.domain.intents import Command, JobCommand
from app.domain.job import Delivery, Job, JobState, Trigger
from app.pipeline.commands import CommandHandler
from app.pipeline.context import JobContext
from app.store import SQLiteJobStore
from tests.support.env import make_settings


def _job(delivery="d1") -> Job:
    return Job(delivery_id=delivery, installation_id=1, repo="o/r", issue_number=3, requester="alice",
               trigger=Trigger(kind="label", label="agentvine:bugfix"))


def test_every_command_has_one_handler():
    handler = CommandHandler(lambda job: None, None, load_default(), cancel_running=lambda job_id: False)  # type: ignore[arg-type]
    assert handler.handled == frozenset(Command)


async def test_losing_access_cancels_waiting_work_and_stops_running_work(tmp_path):
    store = SQLiteJobStore(tmp_path / "db.sqlite")
    queued, running, other = _job("a"), _job("b"), _job("c").model_copy(update={"repo": "o/other"})
    for job in (queued, running, other):
        store.record_delivery(Delivery(id=job.delivery_id, event="issues"), [job])
    store.save_job(running.moved_to(JobState.ACKNOWLEDGED).moved_to(JobState.RUNNING), "started")
    stop_requested: list[str] = []
    discarded: list[str] = []
    settings, config = make_settings(tmp_path, private_key="unused"), load_default()

    class Files(JobContext):  # no GitHub call happens here; the files are recorded, not removed
        def discard_files(self) -> None:
            discarded.append(self.job.id)

    def cancel_running(job_id: str) -> bool:
        stop_requested.append(job_id)
        return True

    handler = CommandHandler(lambda job: Files(job, None, store, settings, config), store, config,  # type: ignore[arg-type]
                             cancel_running=cancel_running)
    outcome = await handler.handle(JobCommand(name="remove_installation", installation_id=1, repo="o/r", sender="x"))
    assert outcome == "cancelled 1 job(s), stopping 1"
    assert store.get_job(queued.id).state is JobState.CANCELLED
    assert stop_requested == [running.id]  # the run stage stops the container and reports
    assert store.get_job(other.id).state is JobState.QUEUED
    assert discarded == [queued.id]  # a cancelled job's files go (the running one's go when its run ends)


async def test_an_expiry_carried_out_after_the_answer_was_taken_changes_nothing(tmp_path):
    """The housekeeping stored the expiry, then an answer came first in the issue's commands: the job resumed,
    and the expiry, its turn come, finds no expired question (no GitHub call, which this context could not make)."""
    from app.pipeline.questions import expiry_request

    store = SQLiteJobStore(tmp_path / "db.sqlite")
    job = _job()
    store.record_delivery(Delivery(id="d1", event="issues"), [job])
    waiting = job.moved_to(JobState.ACKNOWLEDGED).moved_to(JobState.RUNNING).moved_to(JobState.WAITING_FOR_ANSWER)
    store.save_job(waiting.model_copy(update={"updated_at": 1.0}), "question")
    _, expiry = expiry_request(store.get_job(job.id), now=1_000_000.0)
    store.save_job(store.get_job(job.id).moved_to(JobState.ACKNOWLEDGED, "@mona answered; resuming"), "answered")
    settings, config = make_settings(tmp_path, private_key="unused"), load_default()
    handler = CommandHandler(lambda j: JobContext(j, None, store, settings, config), store, config,  # type: ignore[arg-type]
                             cancel_running=lambda job_id: False)
    assert await handler.handle(expiry) == "ignored: no expired question waits"
    assert store.get_job(job.id).state is JobState.ACKNOWLEDGED
    # A later question is another waiting: the expiry of the first is not its expiry.
    store.save_job(waiting.model_copy(update={"updated_at": 2.0}), "question")
    assert await handler.handle(expiry) == "ignored: no expired question waits"
    assert store.get_job(job.id).state is JobState.WAITING_FOR_ANSWER
