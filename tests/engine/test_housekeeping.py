"""The worker's housekeeping pass: what two workers on one store do with the same expired question, and
that a pass which fails (the database away) does not end the housekeeping."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from app.domain.config import load_default
from app.domain.intents import Command
from app.domain.job import Delivery, Job, JobState, Trigger
from app.engine.worker import Worker
from tests.support.env import make_settings


def _waiting(store, updated_at: float) -> Job:
    job = Job(delivery_id="d1", installation_id=1, repo="o/r", issue_number=7, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"))
    store.record_delivery(Delivery(id="d1", event="issues"), [job])
    job = job.moved_to(JobState.ACKNOWLEDGED).moved_to(JobState.RUNNING).moved_to(JobState.WAITING_FOR_ANSWER)
    store.save_job(job.model_copy(update={"updated_at": updated_at}), "question", question="Tabs or spaces?")
    return job


def _worker(tmp_path, store, name: str, monkeypatch, **settings) -> Worker:
    (tmp_path / name).mkdir()
    worker = Worker(make_settings(tmp_path / name, private_key="unused", worker_name=name, **settings), store,
                    load_default())
    # Only the expiry is looked at here: no job files, no containers to tidy.
    monkeypatch.setattr(worker, "_tidy_job_files", lambda at_start: None)
    monkeypatch.setattr(worker, "_remove_orphan_containers", lambda: None)
    return worker


async def test_two_workers_that_find_the_same_expired_question_leave_one_expiry_to_carry_out(
        open_store, tmp_path, monkeypatch):
    first, second = open_store(), open_store()
    job = _waiting(first, updated_at=1.0)  # asked long ago: past any expiry
    a, b = _worker(tmp_path, first, "a", monkeypatch), _worker(tmp_path, second, "b", monkeypatch)
    await asyncio.gather(a._tidy(), b._tidy())
    await a._tidy()  # and the next pass, before the command was carried out
    monkeypatch.setattr("app.engine.worker.time", SimpleNamespace(time=lambda: time.time() + 600))
    await b._tidy()  # minutes later, still not carried out (behind a long command of the issue's)
    (expiry,) = [command for _, command in first.pending_commands()]
    assert (expiry.name, expiry.job_id, expiry.issue_number) == (Command.EXPIRE_QUESTION, job.id, 7)
    assert first.get_job(job.id).state is JobState.WAITING_FOR_ANSWER  # the command ends it, in turn with an answer


async def test_an_expiry_that_failed_is_stored_again_the_next_minute_and_a_later_question_anew(
        open_store, tmp_path, monkeypatch):
    store = open_store()
    job = _waiting(store, updated_at=1.0)
    worker = _worker(tmp_path, store, "a", monkeypatch)
    clock = [1_000_000_020.0]
    monkeypatch.setattr("app.engine.worker.time", SimpleNamespace(time=lambda: clock[0]))
    await worker._tidy()
    ((seq, first),) = store.pending_commands()
    store.finish_command(seq, "error: GitHub said 502")  # carried out, and failed
    await worker._tidy()
    assert store.pending_commands() == []  # the same minute: the one that failed stands for it
    clock[0] += 60
    await worker._tidy()
    ((seq, again),) = store.pending_commands()
    assert again.asked_at == first.asked_at == 1.0 and again.delivery_id != first.delivery_id
    store.finish_command(seq, "ignored: no expired question waits")
    store.save_job(store.get_job(job.id).model_copy(update={"updated_at": 2.0}), "question", question="And now?")
    await worker._tidy()
    ((_, later),) = store.pending_commands()
    assert later.asked_at == 2.0 and later.delivery_id is not None


async def test_a_housekeeping_pass_that_fails_is_tried_again(tmp_path, monkeypatch):
    from app.store import SQLiteJobStore

    store = SQLiteJobStore(tmp_path / "db.sqlite")
    passes: list[str] = []

    def prune(older_than: float):
        passes.append("failed" if not passes else "ran")
        if len(passes) == 1:
            raise ConnectionError("the database is away")
        return 0, 0

    monkeypatch.setattr(store, "prune", prune)
    worker = _worker(tmp_path, store, "a", monkeypatch, expiry_check_interval=0.05)
    task = asyncio.create_task(worker._housekeeping())
    try:
        for _ in range(100):
            if len(passes) >= 2:
                break
            await asyncio.sleep(0.02)
        assert passes[:2] == ["failed", "ran"]
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
