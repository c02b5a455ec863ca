"""POST /webhooks on PostgreSQL: the web app commits each delivery to the inbox table before its 202, and
workers on any machine import the rows (app/store/pg_inbox.py, app/intake/ingest.py's TableImporter)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from app.fakes.github.webhooks import delivery_headers
from app.intake import ingest
from app.intake.ingest import OUTCOME_BAD_SHAPE, OUTCOME_REPLAYED, TableImporter, make_importer
from app.store import pg_inbox
from app.store.postgres import PostgresJobStore
from app.web.inbox_sink import INBOX_SINK
from app.web.server import make_web_app
from app.web.webhook import NOT_STORED
from tests.support import payloads
from tests.support.env import SECRET, as_bytes, make_settings, unavailable
from tests.support.postgres import PostgresServer, PostgresUnavailable
from tests.web.test_webhook import uid

PREFIXES = {"command_prefix": "/agentvine", "label_prefix": "agentvine:"}


@dataclass
class Web:
    client: TestClient
    store: PostgresJobStore

    @property
    def inbox(self) -> pg_inbox.PostgresInbox:
        return self.client.app[INBOX_SINK]

    async def post(self, body: bytes, delivery_id: str, event: str = "issues"):
        return await self.client.post("/webhooks", data=body, headers=delivery_headers(event, body, SECRET, delivery_id))


@pytest.fixture
def open_web(tmp_path, app_private_key, aiohttp_client):
    """Starts a web instance (its own store, its own data folder: another machine) on a database."""
    stores: list[PostgresJobStore] = []

    async def start(url: str) -> Web:
        stores.append(PostgresJobStore(url))
        (folder := tmp_path / f"web-{len(stores)}").mkdir()
        settings = make_settings(folder, private_key=app_private_key)
        return Web(await aiohttp_client(make_web_app(settings, stores[-1])), stores[-1])

    yield start
    for store in stores:
        store.close()


@pytest.fixture
async def web(open_web, pg_url) -> Web:
    return await open_web(pg_url)


def worker_importer(store, tmp_path: Path, name: str) -> TableImporter:
    importer = make_importer(store, tmp_path / name / "inbox", holder=f"{name}:1", **PREFIXES)
    assert isinstance(importer, TableImporter)
    return importer


def inbox_rows(url: str) -> list[tuple]:
    """The inbox table, read by another connection than the web app's."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT delivery_id, event, body FROM inbox ORDER BY id").fetchall()


def _end_the_inbox_session(url: str) -> int:
    """The server ends the web instance's inbox writer's session; how many it ended."""
    with psycopg.connect(url, autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s "
                             "AND datname = current_database()", (pg_inbox.APPLICATION_NAME,)).fetchone()[0]


def labeled(number: int = 1) -> bytes:
    return as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1, issue={"number": number}))


async def test_a_delivery_is_in_the_table_when_the_202_returns_and_a_worker_imports_it(web, pg_url, tmp_path):
    body = labeled()
    response = await web.post(body, uid("pg-1"))
    assert response.status == 202 and (await response.json())["delivery"] == uid("pg-1")
    assert inbox_rows(pg_url) == [(uid("pg-1"), "issues", body)]
    assert not (tmp_path / "web-1" / "agentvine" / "inbox").exists()  # no file inbox on a web instance

    worker_store = PostgresJobStore(pg_url)  # a worker on another machine
    try:
        assert await worker_importer(worker_store, tmp_path, "worker-a").import_new() == 1
    finally:
        worker_store.close()
    (job_id,) = web.store.delivery_jobs(uid("pg-1"))
    assert web.store.get_delivery(uid("pg-1")).outcome == f"job {job_id}" and inbox_rows(pg_url) == []
    page = await (await web.client.get(f"/deliveries/{uid('pg-1')}")).json()
    assert page["jobs"] == [job_id]


def import_in_a_thread(importer: TableImporter, claimed: list[int], store) -> threading.Thread:
    """A worker process of its own: its own store and event loop, the rows it claims noted."""
    claim = store.claim_inbox

    def noting(*args, **kwargs):
        rows = claim(*args, **kwargs)
        claimed.extend(row.id for row in rows)
        time.sleep(0.005)  # while it interprets, the other worker claims
        return rows

    store.claim_inbox = noting
    thread = threading.Thread(target=lambda: asyncio.run(importer.import_new(limit=1000)))
    thread.start()
    return thread


async def test_two_workers_import_disjoint_rows_and_every_delivery_once(web, pg_url, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH", 4)
    for n in range(40):
        assert (await web.post(labeled(100 + n), uid(f"two-{n}"))).status == 202
    with psycopg.connect(pg_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM inbox").fetchall()]
    stores = [PostgresJobStore(pg_url), PostgresJobStore(pg_url)]
    claimed: tuple[list[int], list[int]] = ([], [])
    try:
        threads = [import_in_a_thread(worker_importer(store, tmp_path, f"worker-{n}"), claimed[n], store)
                   for n, store in enumerate(stores)]
        for thread in threads:
            await asyncio.to_thread(thread.join, 30)
    finally:
        for store in stores:
            store.close()
    assert claimed[0] and claimed[1] and not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)
    assert all(len(web.store.delivery_jobs(uid(f"two-{n}"))) == 1 for n in range(40))
    assert len(web.store.list_jobs()) == 40 and inbox_rows(pg_url) == []


async def test_rows_a_live_claim_holds_are_left_to_it_until_it_runs_out(web, pg_url, tmp_path):
    for n in range(3):
        await web.post(labeled(n), uid(f"held-{n}"))
    (held,) = web.store.claim_inbox("dead-worker:1", 0.3, 1)  # then its worker dies
    assert await worker_importer(web.store, tmp_path, "worker-b").import_new() == 2
    assert web.store.get_delivery(held.delivery_id) is None
    await asyncio.sleep(0.4)
    assert await worker_importer(web.store, tmp_path, "worker-b").import_new() == 1
    assert web.store.delivery_jobs(held.delivery_id) and web.store.inbox_size() == 0


async def test_a_redelivery_to_another_web_instance_starts_nothing_new(open_web, pg_url, tmp_path):
    first, second = await open_web(pg_url), await open_web(pg_url)
    body = labeled()
    assert (await first.post(body, uid("again"))).status == 202
    assert (await second.post(body, uid("again"))).status == 202  # its memory of recent ids is its own
    assert (await second.post(body, uid("replayed"))).status == 202  # the same signed body, a new id
    assert [row[0] for row in inbox_rows(pg_url)] == [uid("again"), uid("again"), uid("replayed")]
    assert await worker_importer(first.store, tmp_path, "worker-a").import_new() == 2
    (job,) = first.store.list_jobs()
    assert first.store.delivery_jobs(uid("again")) == [job.id]
    assert first.store.get_delivery(uid("replayed")).outcome == OUTCOME_REPLAYED.format(delivery_id=uid("again"))
    assert first.store.inbox_size() == 0


async def test_deliveries_arriving_together_share_one_transaction(web, pg_url):
    before = web.inbox.batches
    answers = await asyncio.gather(*(web.post(labeled(200 + n), uid(f"together-{n}")) for n in range(8)))
    assert [a.status for a in answers] == [202] * 8
    assert 1 <= web.inbox.batches - before < 8 and len(inbox_rows(pg_url)) == 8


async def test_a_rejected_body_is_kept_by_the_worker_and_its_outcome_recorded(web, pg_url, tmp_path):
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=1)
    del payload["issue"]
    body = as_bytes(payload)
    assert (await web.post(body, uid("shapeless"))).status == 202
    assert await worker_importer(web.store, tmp_path, "worker-a").import_new() == 1
    assert web.store.get_delivery(uid("shapeless")).outcome == OUTCOME_BAD_SHAPE.format(error="KeyError('issue')")
    assert (tmp_path / "worker-a" / "inbox" / "rejected" / f"{uid('shapeless')}.issues.json").read_bytes() == body
    assert web.store.delivery_jobs(uid("shapeless")) == [] and inbox_rows(pg_url) == []


async def test_a_terminated_session_is_made_again_and_the_delivery_answered_202(web, pg_url):
    assert (await web.post(labeled(1), uid("t-1"))).status == 202
    assert _end_the_inbox_session(pg_url) == 1
    assert (await web.post(labeled(2), uid("t-2"))).status == 202
    assert [row[0] for row in inbox_rows(pg_url)] == [uid("t-1"), uid("t-2")] and web.inbox.connects == 2


async def test_health_shows_the_postgresql_store(web):
    response = await web.client.get("/health")
    assert response.status == 200
    assert (await response.json())["store"] == {"backend": "postgresql", "reachable": True, "inbox_reachable": True}




async def test_health_looks_through_the_inbox_writers_own_connection_and_makes_a_lost_one_again(web, pg_url):
    _end_the_inbox_session(pg_url)
    await asyncio.sleep(0.2)  # the session's end reaches the writer's socket
    response = await web.client.get("/health")
    assert response.status == 200 and (await response.json())["store"]["inbox_reachable"] is True
    assert web.inbox.connects == 2
    assert (await web.post(labeled(1), uid("after"))).status == 202 and web.inbox.connects == 2


async def test_health_is_503_when_the_store_answers_but_this_instances_inbox_writer_cannot(web, pg_url):
    """What a load balancer must hear: deliveries sent here would be answered 503 (the writer cannot
    connect, say its database's connection limit is reached), though the store's pool gets through."""
    from app.web.server import HEALTH_INBOX_DOWN

    web.inbox.url = "postgresql://postgres@127.0.0.1:9/none"  # nothing listens there
    _end_the_inbox_session(pg_url)
    response = await web.client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": HEALTH_INBOX_DOWN, "store": {
        "backend": "postgresql", "reachable": True, "inbox_reachable": False}}
    web.inbox.url = pg_url
    assert (await web.client.get("/health")).status == 200


@pytest.fixture
def own_server():
    """A private PostgreSQL server of this test's own, to be stopped under a running web app."""
    try:
        server = PostgresServer.start_private()
    except PostgresUnavailable as exc:
        unavailable(str(exc), "the PostgreSQL tests must run; see .ci/install-postgres.sh")
    yield server
    server.stop()


async def test_a_database_gone_is_503_in_bounded_time_and_health_says_so(open_web, own_server):
    own_server.create_database("gone")
    web = await open_web(own_server.url("gone"))
    assert (await web.post(labeled(1), uid("kept"))).status == 202
    own_server.stop()  # the server shuts down: every session ends and no connection is taken
    began = time.monotonic()
    response = await web.post(labeled(2), uid("lost"))
    took = time.monotonic() - began
    assert response.status == 503 and (await response.json())["error"] == NOT_STORED
    assert took <= pg_inbox.RETRY_FOR_S + pg_inbox.LAST_TRY_S + 0.5
    health = await web.client.get("/health")
    assert health.status == 503
    assert (await health.json())["store"] == {"backend": "postgresql", "reachable": False}
    # Not remembered as accepted: GitHub's redelivery is tried again, not answered "duplicate".
    assert (await web.post(labeled(2), uid("lost"))).status == 503


async def test_health_asked_while_a_slow_batch_is_written_neither_cuts_it_off_nor_says_503(web, pg_url):
    """The batch's INSERT waits for a lock on the table: /health, asked meanwhile, must not use (and on its
    timeout close) the connection the batch is on. The last try's outcome answers for the writer."""
    from app.web.server import INBOX_PROBE_S

    assert (await web.post(labeled(1), uid("first"))).status == 202
    web.inbox._retry_for_s = INBOX_PROBE_S + 4  # room for the batch to outlast /health on a loaded machine
    with psycopg.connect(pg_url) as blocker, psycopg.connect(pg_url, autocommit=True) as watcher:
        blocker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")  # held until this transaction ends
        delivery = asyncio.ensure_future(web.post(labeled(2), uid("slow")))
        for _ in range(200):  # until the writer's INSERT waits for the lock
            if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
                               "wait_event_type = 'Lock' AND datname = current_database()",
                               (pg_inbox.APPLICATION_NAME,)).fetchone()[0]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the batch's INSERT never waited for the lock")
        began = time.monotonic()
        health = await web.client.get("/health")
        waited = time.monotonic() - began
        blocker.rollback()
        response = await delivery
    assert waited >= INBOX_PROBE_S * 0.9  # it waited for the batch, and did not ping past it
    assert health.status == 200 and (await health.json())["store"]["inbox_reachable"] is True
    assert response.status == 202 and web.inbox.connects == 1  # written on the first connection, never cut off


async def test_a_health_ping_given_up_takes_its_database_call_with_it(pg_url):
    """A /health request gone (the client hung up, the app closing) while its ping was connecting: the
    connect is given up too, not left to become the writer's connection after the inbox was closed."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)  # accepts, never answers
    inbox = pg_inbox.PostgresInbox(f"postgresql://postgres@127.0.0.1:{silent.sockets[0].getsockname()[1]}/none")
    try:
        probe = asyncio.ensure_future(inbox.reachable(10))
        await asyncio.sleep(0.3)  # connecting, and getting no answer
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert len(inbox._reaping) == 1 and not inbox._using.locked()  # the connect is being ended
    finally:
        await inbox.close()
        silent.close()
    await asyncio.sleep(0.1)
    assert inbox._conn is None and not inbox._reaping
