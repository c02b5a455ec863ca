from app.intents import JobCommand
from app.jobs import Delivery, InvalidTransition, Job, JobState, Trigger
from app.store import SQLiteJobStore

import pytest


def _job(delivery="d1") -> Job:
    return Job(delivery_id=delivery, installation_id=1, repo="o/r", issue_number=3, requester="alice",
               trigger=Trigger(kind="label", label="agentvine:bugfix"))


def test_delivery_is_stored_once_with_its_jobs(tmp_path):
    store = SQLiteJobStore(tmp_path / "db.sqlite")
    job = _job()
    assert store.record_delivery(Delivery(id="d1", event="issues"), [job])
    assert not store.record_delivery(Delivery(id="d1", event="issues"), [_job()])
    assert [j.id for j in store.list_jobs()] == [job.id]
    assert store.get_delivery("d1").event == "issues"


def test_jobs_events_and_commands_survive_reopening(tmp_path):
    path = tmp_path / "db.sqlite"
    store = SQLiteJobStore(path)
    job = _job()
    store.record_delivery(Delivery(id="d1", event="issues"), [job], [JobCommand(name="cancel", installation_id=1, repo="o/r", sender="bob")])
    store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "acknowledged")
    store.close()
    again = SQLiteJobStore(path)
    assert again.schema_version == 1
    assert again.get_job(job.id).state is JobState.ACKNOWLEDGED
    assert [e.kind for e in again.events(job.id)] == ["created", "acknowledged"]
    (seq, command), = again.pending_commands()
    assert command.name == "cancel"
    again.finish_command(seq, "done")
    assert again.pending_commands() == []


def test_state_machine_refuses_impossible_moves():
    job = _job()
    with pytest.raises(InvalidTransition):
        job.moved_to(JobState.SUCCEEDED)
    rejected = job.moved_to(JobState.REJECTED, "nope")
    assert rejected.terminal and rejected.reason == "nope"
    with pytest.raises(InvalidTransition):
        rejected.moved_to(JobState.RUNNING)
