"""What the operator's views ask of the store: a filtered job list in pages, newest first, and a job's
events after a sequence number (what a live stream resumes from)."""

from __future__ import annotations

import sqlite3

import pytest

from app.domain.job import Delivery, Job, JobState, Trigger
from app.store import SQLiteJobStore
from app.store.base import MAX_PAGE, JobCursor, JobQuery
from app.store.sqlite import MIGRATIONS


def _job(n: int, *, repo: str = "o/r", worker: str | None = "bugfix", state: JobState = JobState.QUEUED,
         at: float | None = None) -> Job:
    return Job(delivery_id=f"d{n}", installation_id=1, repo=repo, issue_number=n, requester="alice",
               trigger=Trigger(kind="label"), worker=worker, state=state, created_at=1000.0 + n if at is None else at)


def _add(store, *jobs: Job) -> None:
    for job in jobs:
        store.record_delivery(Delivery(id=job.delivery_id, event="issues"), [job])


def test_pages_run_newest_first_and_each_job_appears_once(store):
    jobs = [_job(n) for n in range(7)] + [_job(n, at=2000.0) for n in range(7, 10)]  # three created at once
    _add(store, *jobs)
    seen, query = [], JobQuery(limit=3)
    while True:
        page = store.find_jobs(query)
        assert len(page.jobs) <= 3
        seen += [j.id for j in page.jobs]
        if page.next is None:
            break
        query = query.model_copy(update={"after": page.next})
    expected = sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)
    assert seen == [j.id for j in expected]


def test_a_job_created_while_paging_neither_repeats_nor_hides_one(store):
    _add(store, *[_job(n) for n in range(4)])
    first = store.find_jobs(JobQuery(limit=2))
    _add(store, _job(9, at=5000.0))  # newer than everything: it belongs on page one, not in page two
    second = store.find_jobs(JobQuery(limit=2, after=first.next))
    assert [j.issue_number for j in first.jobs + second.jobs] == [3, 2, 1, 0]


def test_filters_combine(store):
    _add(store, _job(1), _job(2, repo="o/other"), _job(3, worker="review"), _job(4, state=JobState.FAILED),
         _job(5, worker=None))
    numbers = lambda **q: [j.issue_number for j in store.find_jobs(JobQuery(**q)).jobs]  # noqa: E731
    assert numbers(repo="o/other") == [2]
    assert numbers(worker="review") == [3]
    assert numbers(states=(JobState.FAILED, JobState.SUCCEEDED)) == [4]
    assert numbers(repo="o/r", worker="bugfix", states=(JobState.QUEUED,)) == [1]
    assert numbers(repo="nobody/here") == []


def test_the_worker_filter_follows_the_job_as_it_is_saved(store):
    job = _job(1, worker=None)
    _add(store, job)
    assert store.find_jobs(JobQuery(worker="docs")).jobs == []
    store.save_job(job.model_copy(update={"worker": "docs"}).moved_to(JobState.ACKNOWLEDGED), "acknowledged")
    assert [j.id for j in store.find_jobs(JobQuery(worker="docs")).jobs] == [job.id]


def test_the_page_size_is_bounded():
    with pytest.raises(ValueError):
        JobQuery(limit=MAX_PAGE + 1)
    with pytest.raises(ValueError):
        JobQuery(limit=0)


@pytest.mark.parametrize("text", ["", "x", "not base64!", JobCursor(created_at=1, id="a").encode()[:-2], "A" * 500,
                                  "WzEsMiwzXQ", "eyJhIjoxfQ"])  # [1,2,3] and {"a":1}: JSON, not a cursor
def test_a_cursor_not_made_here_is_refused(text):
    with pytest.raises(ValueError):
        JobCursor.decode(text)


def test_a_cursor_survives_its_round_trip_exactly():
    cursor = JobCursor(created_at=1764000000.123456789, id="0123abcd")
    assert JobCursor.decode(cursor.encode()) == cursor


def test_events_after_a_sequence_number(store):
    job, other = _job(1), _job(2)
    _add(store, job, other)
    store.add_event(job.id, "one")
    store.add_event(other.id, "elsewhere")
    store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "acknowledged")
    every = store.events(job.id)
    assert [(e.kind, e.seq > 0) for e in every] == [("created", False), ("one", True), ("acknowledged", True)]
    assert [e.seq for e in every] == sorted(e.seq for e in every)
    assert [e.kind for e in store.events(job.id, after=0)] == ["one", "acknowledged"]
    assert [e.kind for e in store.events(job.id, after=every[1].seq)] == ["acknowledged"]
    assert store.events(job.id, after=every[-1].seq) == []
    assert store.events("no-such-job") == []


def test_events_since_spans_jobs_in_order(store):
    job, other = _job(1), _job(2)
    _add(store, job, other)
    start = store.last_event_seq()
    store.add_event(job.id, "a")
    store.add_event(other.id, "b")
    store.add_event(job.id, "c")
    since = store.events_since(start)
    assert [(e.job_id, e.kind) for e in since] == [(job.id, "a"), (other.id, "b"), (job.id, "c")]
    assert store.events_since(start, limit=1)[0].kind == "a"
    assert store.events_since(since[-1].seq) == [] and store.last_event_seq() == since[-1].seq


def test_the_migration_gives_existing_jobs_their_worker(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        db.executescript(script)
    job = _job(1, worker="docs")
    db.execute("INSERT INTO deliveries (id, event, received_at, outcome) VALUES ('d1', 'issues', 1, '')")
    db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?)", (job.id, "d1", 1, "o/r", 1, "queued", 1.0, 1.0,
                                                               job.model_dump_json()))
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = SQLiteJobStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert [j.id for j in store.find_jobs(JobQuery(worker="docs")).jobs] == [job.id]
    store.close()

