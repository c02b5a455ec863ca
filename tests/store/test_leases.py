"""Leases, on both backends: several workers (holders) claim from one store and none takes what another
holds; a holder whose lease another has taken writes nothing; limits hold over every holder; the
inbox table and the commands are claimed the same way. Concurrent claims run in threads, each with
its own store (its own connections), as separate worker processes would."""

from __future__ import annotations

import threading
import time

import pytest

from app.domain.intents import JobCommand
from app.domain.job import Delivery, Job, JobState, Trigger
from app.domain.lease import Lease, LeaseLost, current_lease, lease_clock
from app.store.base import StageClaim

ACK = StageClaim("acknowledge", JobState.QUEUED)


def _job(n: int, *, repo: str = "o/r", installation: int = 1) -> Job:
    return Job(delivery_id=f"d{n}", installation_id=installation, repo=repo, issue_number=n, requester="alice",
               trigger=Trigger(kind="label"), created_at=1000.0 + n)


def _add(store, *jobs: Job) -> None:
    store.record_deliveries([(Delivery(id=job.delivery_id, event="issues"), [job], []) for job in jobs])


def _as_holder(claimed, holder: str) -> Lease:
    return Lease(job_id=claimed.job.id, holder=holder, epoch=claimed.epoch, stage="acknowledge", seconds=30,
                 valid_until=lease_clock() + 30)


def test_a_claimed_job_is_no_one_elses_until_its_lease_runs_out(store):
    job = _job(1)
    _add(store, job)
    (first,) = store.claim_jobs(ACK, "w1", "m1", limit=5, lease_s=0.5)
    assert first.job.id == job.id and first.epoch == 1 and first.previous_holder is None
    assert store.claim_jobs(ACK, "w2", "m2", limit=5, lease_s=30) == []
    assert store.lease_of(job.id) == ("w1", 1)
    time.sleep(0.7)
    (second,) = store.claim_jobs(ACK, "w2", "m2", limit=5, lease_s=30)
    assert second.epoch == 2 and second.previous_holder == "w1"
    assert store.renew_leases("w1", "m1", {job.id: 1}, 30) == {}  # the first holder's renewal finds it gone


def test_the_holder_a_lease_was_taken_from_can_write_nothing(store):
    job = _job(1)
    _add(store, job)
    (old,) = store.claim_jobs(ACK, "w1", "m1", limit=1, lease_s=0.2)
    time.sleep(0.4)
    (new,) = store.claim_jobs(ACK, "w2", "m2", limit=1, lease_s=30)
    stale = _as_holder(old, "w1")
    token = current_lease.set(stale)
    try:
        with pytest.raises(LeaseLost):
            store.save_job(job.moved_to(JobState.ACKNOWLEDGED, "late"), "acknowledged")
        with pytest.raises(LeaseLost):
            store.add_event(job.id, "progress")
    finally:
        current_lease.reset(token)
    assert stale.lost
    assert store.get_job(job.id).state is JobState.QUEUED
    assert [e.kind for e in store.events(job.id)] == ["created"]
    token = current_lease.set(_as_holder(new, "w2"))
    try:
        store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "acknowledged")
    finally:
        current_lease.reset(token)
    assert store.get_job(job.id).state is JobState.ACKNOWLEDGED


def test_renewal_keeps_a_lease_and_hands_on_a_cancel_asked_for_elsewhere(store):
    job = _job(1)
    _add(store, job)
    assert not store.request_cancel(job.id)  # no one holds it: nothing to hand on
    (claimed,) = store.claim_jobs(ACK, "w1", "m1", limit=1, lease_s=0.5)
    assert store.renew_leases("w1", "m1", {job.id: claimed.epoch}, 0.5) == {job.id: False}
    assert store.request_cancel(job.id)
    time.sleep(0.3)
    assert store.renew_leases("w1", "m1", {job.id: claimed.epoch}, 0.5) == {job.id: True}
    time.sleep(0.3)  # past the first lease's end, not the renewed one's
    assert store.claim_jobs(ACK, "w2", "m2", limit=1, lease_s=30) == []


def test_a_released_job_can_be_claimed_at_once_and_keeps_its_epoch_rising(store):
    job = _job(1)
    _add(store, job)
    (first,) = store.claim_jobs(ACK, "w1", "m1", limit=1, lease_s=30)
    assert store.release_lease(job.id, "w1", first.epoch)
    assert not store.release_lease(job.id, "w1", first.epoch)  # once only
    (again,) = store.claim_jobs(ACK, "w2", "m2", limit=1, lease_s=30)
    assert again.epoch == first.epoch + 1 and again.previous_holder is None


def test_per_repository_and_installation_limits_count_every_holders_leases(store):
    _add(store, _job(1, repo="o/a"), _job(2, repo="o/a"), _job(3, repo="o/b", installation=2),
         _job(4, repo="o/c", installation=2))
    limited = StageClaim("run", JobState.QUEUED, per_repo=1, per_installation=1)
    (one,) = store.claim_jobs(limited, "w1", "m1", limit=1, lease_s=30)
    assert one.job.repo == "o/a"
    taken = store.claim_jobs(limited, "w2", "m2", limit=10, lease_s=30)
    assert [c.job.repo for c in taken] == ["o/b"]  # o/a has its one; installation 2 then has its one


def test_a_job_waiting_for_its_answer_stays_with_its_machine_while_that_machine_lives(store):
    job = _job(1)
    _add(store, job)
    (claimed,) = store.claim_jobs(ACK, "w1", "home-machine", limit=1, lease_s=30)
    store.renew_leases("w1", "home-machine", {}, 30)  # the heartbeat: the machine is alive
    store.release_lease(job.id, "w1", claimed.epoch, home="home-machine")
    assert store.claim_jobs(ACK, "w2", "other-machine", limit=1, lease_s=0.3) == []
    (back,) = store.claim_jobs(ACK, "w1b", "home-machine", limit=1, lease_s=30)  # its machine, a new process
    store.release_lease(job.id, "w1b", back.epoch, home="home-machine")
    store.renew_leases("w1b", "home-machine", {}, 0.3)
    time.sleep(0.5)  # the home machine's heartbeat is older than a lease now: gone
    assert [c.job.id for c in store.claim_jobs(ACK, "w2", "other-machine", limit=1, lease_s=0.3)] == [job.id]


def test_a_restarted_worker_ends_the_leases_of_its_machines_earlier_process(store):
    jobs = [_job(1), _job(2)]
    _add(store, *jobs)
    store.claim_jobs(ACK, "m1:100:aa", "m1", limit=1, lease_s=300)
    store.claim_jobs(ACK, "m10:7:bb", "m10", limit=1, lease_s=300)  # another machine whose name starts alike
    assert store.expire_leases_of("m1", "m1:200:cc") == 1
    assert [c.job.id for c in store.claim_jobs(ACK, "m1:200:cc", "m1", limit=5, lease_s=30)] == [jobs[0].id]


def test_concurrent_claimers_take_every_job_exactly_once(open_store):
    jobs = [_job(n) for n in range(60)]
    _add(open_store(), *jobs)
    stores = [open_store() for _ in range(4)]
    taken: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def claim(index: int) -> None:
        start.wait()
        while batch := stores[index].claim_jobs(ACK, f"w{index}", f"m{index}", limit=3, lease_s=60):
            taken[index] += [c.job.id for c in batch]
            time.sleep(0.02)  # as a worker does between passes: the others get their turn (SQLite: its busy wait)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everything = [job_id for part in taken for job_id in part]
    assert sorted(everything) == sorted(j.id for j in jobs)  # all of them, none twice
    assert sum(1 for part in taken if part) >= 2  # the claims really interleaved


def test_commands_are_claimed_once_and_one_issues_run_in_order(store):
    def command(issue: int, name: str = "cancel") -> JobCommand:
        return JobCommand(name=name, installation_id=1, repo="o/r", sender="bob", issue_number=issue)

    store.record_deliveries([(Delivery(id="c1", event="issue_comment"), [], [command(1, "answer"), command(1), command(2)])])
    first = store.claim_commands("w1", 30)
    assert [(c.issue_number, c.name.value) for _, c in first] == [(1, "answer"), (2, "cancel")]
    assert store.claim_commands("w2", 30) == []  # issue 1's second waits for its first
    store.finish_command(first[0][0], "done")
    (second,) = store.claim_commands("w2", 30)
    assert (second[1].issue_number, second[1].name.value) == (1, "cancel")


def test_a_check_run_buttons_command_waits_its_turn_with_the_commands_of_its_jobs_issue(store):
    job = _job(4)
    _add(store, job)
    answer = JobCommand(name="answer", installation_id=1, repo="o/r", sender="bob", issue_number=4, text="Tabs.")
    button = JobCommand(name="cancel", installation_id=1, repo="o/r", sender="bob", job_id=job.id)  # no issue
    elsewhere = JobCommand(name="cancel", installation_id=1, repo="o/other", sender="bob", job_id=job.id)
    store.record_deliveries([(Delivery(id="c1", event="issue_comment"), [], [answer]),
                             (Delivery(id="c2", event="check_run"), [], [button, elsewhere])])
    first = store.claim_commands("w1", 30)
    # The button waits for the answer; a job id of another repository names no issue of this one's.
    assert [(c.name.value, c.repo) for _, c in first] == [("answer", "o/r"), ("cancel", "o/other")]
    assert store.claim_commands("w2", 30) == []
    store.finish_command(first[0][0], "done")
    ((_, second),) = store.claim_commands("w2", 30)
    assert (second.name.value, second.job_id, second.issue_number) == ("cancel", job.id, None)  # the doc as sent


def test_a_commands_claim_runs_out_for_a_worker_that_died_with_it(store):
    store.record_deliveries([(Delivery(id="c1", event="issue_comment"), [],
                              [JobCommand(name="cancel", installation_id=1, repo="o/r", sender="b", issue_number=1)])])
    (claimed,) = store.claim_commands("w1", 0.2)
    time.sleep(0.4)
    assert [seq for seq, _ in store.claim_commands("w2", 30)] == [claimed[0]]


def test_a_commands_claim_renewed_by_its_holder_stays_its_own(store):
    store.record_deliveries([(Delivery(id="c1", event="issue_comment"), [],
                              [JobCommand(name="cancel", installation_id=1, repo="o/r", sender="b", issue_number=1)])])
    ((seq, _),) = store.claim_commands("w1", 0.3)
    assert not store.renew_command_claim(seq, "w2", 30)  # not w2's to renew
    time.sleep(0.2)
    assert store.renew_command_claim(seq, "w1", 0.6)
    time.sleep(0.2)  # past the first claim's end, within the renewed one
    assert store.claim_commands("w2", 30) == []
    store.finish_command(seq, "done")
    assert not store.renew_command_claim(seq, "w1", 30)  # carried out: nothing left to hold


def _put_in_inbox(store, *delivery_ids: str) -> None:
    """What a web instance on PostgreSQL writes (app/store/pg_inbox.py), through the same table."""
    with store._write() as db:  # noqa: SLF001 - the table's writer is async; this is its row
        for ident in delivery_ids:
            store._run(db, "INSERT INTO inbox (delivery_id, event, received_at, body) VALUES (?,?,?,?)",
                       (ident, "issues", 1.0, b'{"action":"opened"}'))


def test_inbox_rows_are_claimed_by_one_worker_and_leave_with_their_import(store):
    _put_in_inbox(store, "a", "b", "c")
    mine = store.claim_inbox("w1", 30, limit=2)
    assert [r.delivery_id for r in mine] == ["a", "b"] and mine[0].body == b'{"action":"opened"}'
    assert [r.delivery_id for r in store.claim_inbox("w2", 30, limit=5)] == ["c"]
    store.record_deliveries([(Delivery(id=r.delivery_id, event=r.event), [], []) for r in mine],
                            inbox_rows=[r.id for r in mine])
    assert store.inbox_size() == 1 and store.get_delivery("a") is not None


def test_a_cancel_asked_for_stays_with_the_job_through_a_takeover_and_a_release(store):
    """Asked for while w1 ran the job and then died: the worker taking it over hears it, and so does
    the stage after one that cannot stop (an acknowledgement) and released the job."""
    job = _job(1)
    _add(store, job)
    (first,) = store.claim_jobs(ACK, "w1", "m1", limit=1, lease_s=0.2)
    assert not first.cancel_requested
    assert store.request_cancel(job.id)
    time.sleep(0.4)  # w1 is gone: its lease runs out
    (taken,) = store.claim_jobs(ACK, "w2", "m2", limit=1, lease_s=30)
    assert taken.previous_holder == "w1" and taken.cancel_requested
    assert store.release_lease(job.id, "w2", taken.epoch)
    (after,) = store.claim_jobs(ACK, "w3", "m3", limit=1, lease_s=30)
    assert after.cancel_requested


def test_a_claim_leaves_out_the_jobs_the_claimer_still_runs(store):
    """After a suspend a worker's lease may have run out while its own task for the job goes on."""
    mine, other = _job(1), _job(2)
    _add(store, mine, other)
    (claimed,) = store.claim_jobs(ACK, "w1", "m1", limit=2, lease_s=30, exclude=[mine.id])
    assert claimed.job.id == other.id
    assert store.lease_of(mine.id) is None


def test_a_stage_load_is_what_its_live_leases_hold_and_the_limits_of_the_live_workers(store):
    older, newer, other_stage = _job(1), _job(2), _job(3)
    _add(store, older, newer, other_stage)
    store.renew_leases("w1", "m1", {}, 30, totals={"acknowledge": 16, "run": 4})
    store.renew_leases("w2", "m2", {}, 30, totals={"acknowledge": 8})  # no run stage here
    store.renew_leases("w3", "m3", {}, 30)  # a worker that says nothing of its limits
    claimed = store.claim_jobs(ACK, "w2", "m2", limit=2, lease_s=30)
    assert [c.job.id for c in claimed] == [older.id, newer.id]
    load = store.stage_load("acknowledge", within_s=30)
    assert [j.id for j in load.running] == [older.id, newer.id]
    assert load.totals == {"m1": 16, "m2": 8}
    assert store.stage_load("run", within_s=30).totals == {"m1": 4}
    store.renew_leases("w1", "m1", {}, 30)  # a renewal without totals (a paused holder's check) keeps them
    assert store.stage_load("run", within_s=30).totals == {"m1": 4}
    store.release_lease(older.id, "w2", claimed[0].epoch)
    time.sleep(0.3)
    store.renew_leases("w1", "m1", {}, 30)
    load = store.stage_load("acknowledge", within_s=0.2)  # m2 and m3 not seen since
    assert [j.id for j in load.running] == [newer.id] and load.totals == {"m1": 16}
