"""A worker on PostgreSQL whose connections are cut (the server restarted them, pg_terminate_backend)
goes on: the pool sees the ended connection before handing it out and makes a new one, so neither the
dispatcher nor another store's caller meets the broken one. Nothing that was stored is lost."""

from __future__ import annotations

import asyncio
import time

import psycopg

from app.domain.job import Delivery, Job, JobState, Trigger
from app.engine.dispatcher import Dispatcher, Limits, Stage
from app.store.postgres import PostgresJobStore


def _job(n: int) -> Job:
    return Job(delivery_id=f"d{n}", installation_id=1, repo="o/r", issue_number=n, requester="alice",
               trigger=Trigger(kind="label"))


def _cut_every_connection(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


async def test_a_dispatcher_on_postgres_goes_on_after_its_connections_are_cut(pg_url):
    store, other = PostgresJobStore(pg_url), PostgresJobStore(pg_url)  # the worker's, and a web instance's
    done: list[str] = []

    async def acknowledge(job: Job, _cancel: asyncio.Event) -> None:
        store.save_job(job.moved_to(JobState.ACKNOWLEDGED), "acknowledged")
        done.append(job.id)

    dispatcher = Dispatcher(store, [Stage("acknowledge", JobState.QUEUED, acknowledge, Limits(total=2))],
                            poll_interval=0.2)
    await dispatcher.start()
    try:
        first, second = _job(1), _job(2)
        other.record_delivery(Delivery(id="d1", event="issues"), [first])
        await _until(lambda: first.id in done)
        assert _cut_every_connection(pg_url) >= 2  # the worker's pool and the other store's
        other.record_delivery(Delivery(id="d2", event="issues"), [second])  # its pool reconnects too
        await _until(lambda: second.id in done, timeout=15)
        assert other.get_job(second.id).state is JobState.ACKNOWLEDGED
    finally:
        await dispatcher.stop()
        store.close()
        other.close()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


def test_a_write_on_a_connection_ended_after_the_pools_check_takes_another(pg_url, monkeypatch):
    """The race the pool's check cannot close: the server ends a connection after the check passed it.
    Without the check the pool hands out the dead one every time; the write must still go through."""
    monkeypatch.setattr("app.store.postgres._check_idle", lambda _conn: None)
    store = PostgresJobStore(pg_url)
    try:
        store.record_delivery(Delivery(id="d1", event="issues"), [_job(1)])
        assert _cut_every_connection(pg_url) >= 1
        _until_gone(pg_url)
        job = _job(2)
        store.record_delivery(Delivery(id="d2", event="issues"), [job])
        assert store.get_job(job.id).state is JobState.QUEUED
    finally:
        store.close()


def _until_gone(url: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as admin:
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'agentvine'"
                            ).fetchone()[0]:
            assert time.monotonic() < deadline, "the ended connections are still there"
            time.sleep(0.05)


def test_health_is_not_fooled_by_one_connection_the_server_ended(pg_url, monkeypatch):
    monkeypatch.setattr("app.store.postgres._check_idle", lambda _conn: None)
    store = PostgresJobStore(pg_url)
    try:
        assert _cut_every_connection(pg_url) >= 1
        _until_gone(pg_url)
        assert store.healthy()
    finally:
        store.close()
