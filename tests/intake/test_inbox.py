"""The inbox (raw deliveries in append-only segments) and its import into the store."""

import errno
import json
import logging
import os

import pytest

from app.intake import inbox as inbox_module
from app.intake.inbox import HEADER, InboxCorrupt, InboxWriter, read_records, segments
from app.intake.ingest import OUTCOME_FAILED, InboxImporter
from app.store import SQLiteJobStore
from tests.support import payloads


def labeled(number: int = 1) -> bytes:
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=1)
    payload["issue"]["number"] = number
    return json.dumps(payload).encode()


@pytest.fixture
def store(tmp_path):
    store = SQLiteJobStore(tmp_path / "db.sqlite")
    yield store
    store.close()


def importer(tmp_path, store) -> InboxImporter:
    return InboxImporter(tmp_path / "inbox", store, command_prefix="/agentvine", label_prefix="agentvine:")


def test_records_read_back_as_written_from_any_record_boundary(tmp_path):
    writer = InboxWriter(tmp_path / "inbox")
    bodies = [labeled(n) for n in range(1, 4)]
    for n, body in enumerate(bodies):
        writer.append_many([(f"d{n}", "issues", body, 1000.0 + n)])
    (segment,) = segments(tmp_path / "inbox")
    records = list(read_records(segment, 0, complete=False))
    assert [(r.delivery_id, r.event, r.body, r.received_at) for r in records] == [
        (f"d{n}", "issues", body, 1000.0 + n) for n, body in enumerate(bodies)]
    assert records[-1].end == segment.stat().st_size
    assert [r.delivery_id for r in read_records(segment, records[0].end, complete=False)] == ["d1", "d2"]


def test_a_full_segment_is_followed_by_a_new_one(tmp_path):
    writer = InboxWriter(tmp_path / "inbox", segment_bytes=20_000)
    for n in range(5):
        writer.append_many([(f"d{n}", "issues", labeled(), 0.0)])
    found = segments(tmp_path / "inbox")
    assert len(found) >= 3
    assert [r.delivery_id for path in found for r in read_records(path, 0, complete=True)] == [f"d{n}" for n in range(5)]


def test_a_record_cut_short_is_awaited_in_the_newest_segment_and_skipped_in_an_older_one(tmp_path, caplog):
    writer = InboxWriter(tmp_path / "inbox")
    writer.append_many([("whole", "issues", labeled(), 0.0)])
    writer.append_many([("cut", "issues", labeled(), 0.0)])
    (segment,) = segments(tmp_path / "inbox")
    os.truncate(segment, segment.stat().st_size - 10)  # as a crash in the middle of the write leaves it
    with caplog.at_level(logging.WARNING):
        assert [r.delivery_id for r in read_records(segment, 0, complete=False)] == ["whole"]
        assert not caplog.records
        assert [r.delivery_id for r in read_records(segment, 0, complete=True)] == ["whole"]
    assert "cut short" in caplog.text


def test_a_failed_write_leaves_no_half_record(tmp_path, monkeypatch):
    writer = InboxWriter(tmp_path / "inbox")
    writer.append_many([("before", "issues", labeled(), 0.0)])
    real_writev = os.writev

    def disk_full(fd, buffers):
        real_writev(fd, buffers[:2])  # header and id reach the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(inbox_module.os, "writev", disk_full)
    with pytest.raises(OSError):
        writer.append_many([("lost", "issues", labeled(), 0.0)])
    monkeypatch.undo()
    writer.append_many([("after", "issues", labeled(), 0.0)])
    (segment,) = segments(tmp_path / "inbox")
    assert [r.delivery_id for r in read_records(segment, 0, complete=True)] == ["before", "after"]


def test_garbage_is_reported_not_read(tmp_path):
    segment = tmp_path / "00000000000000000001-1.log"
    segment.write_bytes(b"x" * HEADER.size * 2)
    with pytest.raises(InboxCorrupt, match="no record at offset 0"):
        list(read_records(segment, 0, complete=True))


async def test_import_is_exactly_once_across_restarts_and_frees_finished_segments(tmp_path, store):
    writer = InboxWriter(tmp_path / "inbox", segment_bytes=30_000)
    for n in range(4):
        writer.append_many([(f"d{n}", "issues", labeled(n + 1), 0.0)])
    assert await importer(tmp_path, store).import_new() == 4
    assert [len(store.delivery_jobs(f"d{n}")) for n in range(4)] == [1, 1, 1, 1]
    assert len(segments(tmp_path / "inbox")) == 1  # only the one being written is kept

    writer.append_many([("d4", "issues", labeled(5), 0.0)])
    assert await importer(tmp_path, store).import_new() == 1  # a new worker process: nothing twice
    assert len(store.list_jobs()) == 5


async def test_a_redelivery_in_another_segment_starts_nothing_twice(tmp_path, store):
    for _ in range(2):  # two web processes one after the other, each with its own segment
        InboxWriter(tmp_path / "inbox").append_many([("same", "issues", labeled(), 0.0)])
    assert await importer(tmp_path, store).import_new() == 1
    assert len(store.list_jobs()) == 1


async def test_a_delivery_that_breaks_the_import_is_kept_and_the_rest_go_on(tmp_path, store, monkeypatch):
    writer = InboxWriter(tmp_path / "inbox")
    writer.append_many([("poison", "issues", labeled(), 0.0)])
    writer.append_many([("fine", "issues", labeled(2), 0.0)])
    from app.intake import ingest

    real_route = ingest.route

    async def route(event, ctx):
        if event.delivery_id == "poison":
            raise RuntimeError("a bug in a router")
        return await real_route(event, ctx)

    monkeypatch.setattr(ingest, "route", route)
    assert await importer(tmp_path, store).import_new() == 2
    assert store.get_delivery("poison").outcome == OUTCOME_FAILED.format(error="RuntimeError")
    assert "a bug in a router" not in store.get_delivery("poison").outcome  # internal text stays in the log
    assert (tmp_path / "inbox" / "rejected" / "poison.issues.json").read_bytes() == labeled()
    assert len(store.delivery_jobs("fine")) == 1


async def test_a_corrupt_segment_is_set_aside_and_the_next_one_imported(tmp_path, store):
    (tmp_path / "inbox").mkdir()
    bad = tmp_path / "inbox" / "00000000000000000001-1.log"
    bad.write_bytes(b"\0" * 100)
    InboxWriter(tmp_path / "inbox").append_many([("good", "issues", labeled(), 0.0)])
    assert await importer(tmp_path, store).import_new() == 1
    assert bad.with_suffix(".corrupt").exists() and not bad.exists()


async def test_a_record_that_cannot_be_encoded_fails_only_its_own_append(tmp_path):
    """Appends grouped into one write: one bad record (a lone surrogate, as aiohttp decodes a
    non-UTF-8 header byte) is refused to its caller; the others are written and answered."""
    import asyncio

    writer = InboxWriter(tmp_path / "inbox")
    append = inbox_module.GroupAppend(writer)
    results = await asyncio.wait_for(asyncio.gather(
        append("good-1", "issues", labeled(1), 0.0),
        append("bad\udcff", "issues", labeled(2), 0.0),
        append("good-2", "is\udcffsues", labeled(3), 0.0),
        append("good-3", "issues", labeled(4), 0.0),
        return_exceptions=True), 5)
    assert results[0] is None and results[3] is None
    assert all(isinstance(r, ValueError) for r in results[1:3])
    (segment,) = segments(tmp_path / "inbox")
    assert [r.delivery_id for r in read_records(segment, 0, complete=False)] == ["good-1", "good-3"]


def test_a_rejected_record_with_a_hostile_event_name_stays_inside_rejected(tmp_path, store):
    """Records written before the web process checked event names: the name never makes a path."""
    writer = InboxWriter(tmp_path / "inbox")
    writer.append_many([("d1", "../../escaped", b'[1]', 0.0)])  # a list: rejected
    writer.close()
    import asyncio
    asyncio.run(importer(tmp_path, store).import_new())
    assert not list(tmp_path.rglob("escaped*"))
    (kept,) = (tmp_path / "inbox" / "rejected").iterdir()
    assert kept.read_bytes() == b'[1]' and "/" not in kept.name and ".." not in kept.name


async def test_the_importer_for_sqlite_reads_the_file_inbox(tmp_path, store):
    from app.intake.ingest import make_importer

    imported = make_importer(store, tmp_path / "inbox", holder="w:1", command_prefix="/agentvine", label_prefix="agentvine:")
    assert isinstance(imported, InboxImporter)
    InboxWriter(tmp_path / "inbox").append_many([("d1", "issues", labeled(), 0.0)])
    assert await imported.import_new() == 1 and len(store.delivery_jobs("d1")) == 1
