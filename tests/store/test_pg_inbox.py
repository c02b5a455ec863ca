"""The inbox table's writer (app/store/pg_inbox.py) on a real PostgreSQL server: batches, a lost
connection made again, an unreachable database answered in bounded time."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from app.store import pg_inbox
from app.store.pg_inbox import InboxUnavailable, PostgresInbox
from app.store.postgres import CHANNEL, PostgresJobStore
from tests.support.postgres import free_port


@pytest.fixture
def pg_store(pg_url):
    store = PostgresJobStore(pg_url)  # migrates: the inbox table
    yield store
    store.close()


@pytest.fixture
async def inbox(pg_store):
    inbox = PostgresInbox(pg_store.url)
    await inbox.open()
    yield inbox
    await inbox.close()


def closed_port(url: str) -> str:
    """The same database on a port of 127.0.0.1 where nothing listens."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{free_port()}"))


def rows(url: str) -> list[tuple]:
    """The inbox table as another process sees it."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT delivery_id, event, received_at, body FROM inbox ORDER BY id").fetchall()


def terminate_writer(url: str) -> int:
    """End the writer's session from another connection, as a database restart or failover would."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                            (pg_inbox.APPLICATION_NAME,)).fetchone()[0]


async def test_a_delivery_is_committed_when_the_call_returns(inbox, pg_url):
    await inbox("d-1", "issues", b'{"a": 1}', 1000.5)
    assert rows(pg_url) == [("d-1", "issues", 1000.5, b'{"a": 1}')]


async def test_bodies_are_compressed_with_lz4(inbox, pg_url):
    """pglz, PostgreSQL's default, cost the server twice as much per delivery (docs/performance.md)."""
    body = b'{"pad": "' + b"abc" * 4000 + b'"}'
    await inbox("d-1", "issues", body, 0.0)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT pg_column_compression(body), body FROM inbox").fetchone() == ("lz4", body)


async def test_calls_of_one_loop_iteration_share_one_transaction_and_batches_stay_bounded(inbox, pg_url):
    await asyncio.gather(*(inbox(f"d-{n}", "issues", b"{}", float(n)) for n in range(10)))
    assert inbox.batches == 1 and len(rows(pg_url)) == 10
    await asyncio.gather(*(inbox(f"e-{n}", "issues", b"{}", float(n)) for n in range(pg_inbox.MAX_BATCH + 44)))
    assert inbox.batches == 3 and len(rows(pg_url)) == 10 + pg_inbox.MAX_BATCH + 44


async def test_workers_are_notified_at_the_commit(inbox, pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        await inbox("d-1", "issues", b"{}", 0.0)
        note = await asyncio.wait_for(anext(listener.notifies()), 5)
    assert (note.channel, note.payload) == (CHANNEL, pg_inbox.NOTIFY_PAYLOAD)


@pytest.mark.parametrize("delivery_id,event", [("bad\udcff", "issues"), ("d", "is\udcffsues"), ("d\0", "issues"),
                                               ("d" * 0x10000, "issues")])
async def test_a_delivery_that_cannot_be_stored_fails_alone(inbox, pg_url, delivery_id, event):
    results = await asyncio.gather(inbox("good-1", "issues", b"{}", 0.0), inbox(delivery_id, event, b"{}", 0.0),
                                   inbox("good-2", "issues", b"{}", 0.0), return_exceptions=True)
    assert results[0] is None and results[2] is None and isinstance(results[1], ValueError)
    assert [r[0] for r in rows(pg_url)] == ["good-1", "good-2"] and inbox.batches == 1


async def test_a_lost_connection_is_made_again_and_nothing_is_lost(inbox, pg_url):
    await inbox("before", "issues", b"{}", 0.0)
    assert terminate_writer(pg_url) == 1
    await asyncio.gather(*(inbox(f"after-{n}", "issues", b"{}", 0.0) for n in range(3)))
    assert [r[0] for r in rows(pg_url)] == ["before", "after-0", "after-1", "after-2"]
    assert inbox.connects == 2


async def test_an_unreachable_database_fails_the_batch_in_bounded_time(pg_url):
    inbox = PostgresInbox(closed_port(pg_url))
    await inbox.open()  # a warning, not a failure: the first batch tries again
    began = time.monotonic()
    results = await asyncio.gather(*(inbox(f"d-{n}", "issues", b"{}", 0.0) for n in range(3)), return_exceptions=True)
    took = time.monotonic() - began
    assert all(isinstance(r, InboxUnavailable) and isinstance(r, OSError) for r in results), results
    assert pg_inbox.RETRY_FOR_S - 1 <= took <= pg_inbox.RETRY_FOR_S + pg_inbox.LAST_TRY_S + 0.5
    assert inbox.batches == 0
    await inbox.close()
    with pytest.raises(InboxUnavailable):
        await inbox("late", "issues", b"{}", 0.0)


async def test_a_database_that_does_not_answer_fails_in_bounded_time(pg_store, pg_url, monkeypatch):
    """A database machine gone from the network: the query never returns. The try is given up on (and left to
    end in the background), not waited for."""
    inbox = PostgresInbox(pg_url, retry_for_s=0.5)
    await inbox.open()

    async def hangs(*_args, **_kwargs):
        await asyncio.sleep(3600)

    monkeypatch.setattr(inbox._conn, "execute", hangs)
    began = time.monotonic()
    with pytest.raises(InboxUnavailable, match="no answer"):
        await inbox("d", "issues", b"{}", 0.0)
    assert time.monotonic() - began <= 0.5 + pg_inbox.LAST_TRY_S + 0.5
    monkeypatch.undo()
    await inbox("d", "issues", b"{}", 0.0)  # a new connection
    assert [r[0] for r in rows(pg_url)] == ["d"]
    await inbox.close()
