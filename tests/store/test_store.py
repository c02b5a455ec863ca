from app.domain.intents import JobCommand
from app.domain.job import Delivery, InvalidTransition, Job, JobState, Trigger
from app.store.schema import MIGRATIONS

import pytest


def _job(delivery="d1") -> Job:
    return Job(delivery_id=delivery, installation_id=1, repo="o/r", issue_number=3, requester="alice",
               trigger=Trigger(kind="label", label="agentvine:bugfix"))


def test_delivery_is_stored_once_with_its_jobs(store):
    job = _job()
    assert store.record_delivery(Delivery(id="d1", event="issues"), [job])
    assert not store.record_delivery(Delivery(id="d1", event="issues"), [_job()])
    assert [j.id for j in store.list_jobs()] == [job.id]
    assert store.get_delivery("d1").event == "issues"


def test_jobs_events_and_commands_survive_reopening(open_store):
    store = open_store()
    job = _job()
    store.record_delivery(Delivery(id="d1", event="issues"), [job], [JobCommand(name="cancel", installation_id=1, repo="o/r", sender="bob")])
    store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "acknowledged")
    store.close()
    again = open_store()
    assert again.schema_version == len(MIGRATIONS)
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


def test_prune_forgets_old_idle_deliveries_and_done_commands_but_keeps_jobs(store):
    old, new = 1_000.0, 10_000.0
    job = _job("with-job")
    store.record_delivery(Delivery(id="with-job", event="issues", received_at=old), [job])
    store.record_delivery(Delivery(id="idle-old", event="issues", received_at=old))
    store.record_delivery(Delivery(id="idle-new", event="issues", received_at=new))
    store.record_delivery(Delivery(id="cmd", event="issue_comment", received_at=old), [],
                          [JobCommand(name="answer", installation_id=1, repo="o/r", sender="bob")])
    assert store.prune(5_000.0) == (0, 1)  # the pending command keeps its delivery
    (seq, _), = store.pending_commands()
    store.finish_command(seq, "ignored")
    assert store.prune(time_after_now()) == (1, 2)
    assert store.get_job(job.id) is not None and store.get_delivery("with-job") is not None


def time_after_now() -> float:
    import time

    return time.time() + 1


def test_a_batch_that_fails_part_way_stores_nothing_and_the_store_goes_on(open_store):
    store = open_store()
    orphan = _job("no-such-delivery")  # its delivery_id names no delivery: the foreign key refuses it
    batch = [(Delivery(id="d1", event="issues"), [_job("d1")], []), (Delivery(id="d2", event="issues"), [orphan], [])]
    with pytest.raises(store.IntegrityError):
        store.record_deliveries(batch, inbox_position=("seg", 42))
    assert store.get_delivery("d1") is None and store.list_jobs() == []
    assert store.inbox_offset("seg") == 0
    # The failed transaction was rolled back, not left open: the next write commits on its own.
    assert store.record_delivery(Delivery(id="d1", event="issues"), [_job("d1")])
    store.close()
    assert [j.delivery_id for j in open_store().list_jobs()] == ["d1"]


def test_a_delivery_reads_back_field_for_field(store):
    delivery = Delivery(id="d9", event="issue_comment", action="created", installation_id=7, repo="o/r",
                        received_at=123.5, outcome="1 job")
    store.record_delivery(delivery)
    assert store.get_delivery("d9") == delivery
    assert store.get_delivery("nope") is None
