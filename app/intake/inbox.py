"""The inbox: verified webhook deliveries, exactly as GitHub sent them, in append-only files.

The web process appends each delivery before its 202 (one `writev` for those that arrive together, no parsing beyond
validation, no database); the worker reads them back and interprets them (app/intake/ingest.py).
Storing the raw delivery first means nothing is lost when interpreting it fails: the record
stays, and the worker says why in the delivery's outcome. docs/design.md explains the choice.

A segment file holds records back to back, each a fixed header, the delivery id, the event
name and the body. One writer (the web process) owns the newest segment; it starts a new one
when it starts and when a segment is full, so every older segment is complete, except for a
record a crash cut short at its end, which the reader skips with a warning. Durability is that
of SQLite's WAL at synchronous=NORMAL: the page cache has the record once `writev` returns, so
it survives a crash of the process, not of the machine."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.store.base import encode_names

log = logging.getLogger(__name__)

MAGIC = b"AVD1"
HEADER = struct.Struct("<4sIHHd")  # magic, body length, id length, event length, received_at
SEGMENT_BYTES = 64 * 1024 * 1024
SUFFIX = ".log"
MAX_BATCH = 256  # records per writev: 4 buffers each, and IOV_MAX is 1024


class InboxCorrupt(ValueError):
    pass


@dataclass(frozen=True)
class InboxRecord:
    delivery_id: str
    event: str
    received_at: float
    body: bytes
    end: int  # offset just past this record in its segment


def segments(directory: Path) -> list[Path]:
    """Oldest first: names are the creation time in nanoseconds, zero-padded."""
    return sorted(directory.glob(f"*{SUFFIX}"))


def encode_record(delivery_id: str, event: str, body: bytes, received_at: float) -> list[bytes]:
    """The buffers of one record. Raises ValueError for one that cannot be stored (encode_names)."""
    ident, name = encode_names(delivery_id, event, body)
    return [HEADER.pack(MAGIC, len(body), len(ident), len(name), received_at), ident, name, body]


class InboxWriter:
    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._fd = -1
        self._size = 0
        self._open_segment()

    def _open_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._size = 0

    def append_many(self, records: list[tuple[str, str, bytes, float]]) -> None:
        """All of them in one `writev` (at most MAX_BATCH). Raises ValueError, with nothing written,
        for a record that cannot be stored (see encode_record), and OSError (disk full, ...) with
        the segment left as it was: none of them is stored."""
        self.write([encode_record(*record) for record in records])

    def write(self, encoded: list[list[bytes]]) -> None:
        """Records made by encode_record, in one `writev`; OSError as for append_many."""
        buffers = [buffer for record in encoded for buffer in record]
        expected = sum(map(len, buffers))
        try:
            written = os.writev(self._fd, buffers)
            if written != expected:
                raise OSError(f"short write to the inbox: {written} of {expected} bytes")
        except OSError:
            os.ftruncate(self._fd, self._size)  # no half record for the reader to stop at
            raise
        self._size += expected
        if self._size >= self._segment_bytes:
            self._open_segment()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class GroupAppend:
    """Deliveries that arrive in the same event-loop iteration go into the inbox with one
    `writev`; each request waits for the write that holds its record. Alone, a delivery is
    written on the next loop iteration: no added latency.

    A record that cannot be stored fails its own call at once (ValueError), before it joins the
    group; a failed write fails every call of its group (OSError), and no call is left waiting."""

    def __init__(self, inbox: InboxWriter) -> None:
        self._inbox = inbox
        self._pending: list[tuple[list[bytes], asyncio.Future[None]]] = []

    async def __call__(self, delivery_id: str, event: str, body: bytes, received_at: float) -> None:
        record = encode_record(delivery_id, event, body, received_at)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= MAX_BATCH:
            self._flush()
        await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self._inbox.write([record for record, _ in batch])
        except Exception as exc:  # OSError, or a bug: either way every waiting request is answered
            for _, future in batch:
                if not future.done():  # done: its client went away, cancelling the request
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)


def read_records(path: Path, offset: int, *, complete: bool) -> Iterator[InboxRecord]:
    """The records of one segment from `offset`. `complete`: no writer will add to it, so a
    record cut short at its end is skipped (with a warning) rather than waited for."""
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read()
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            break
        magic, body_len, id_len, event_len, received_at = HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            raise InboxCorrupt(f"{path.name}: no record at offset {offset + pos}")
        start = pos + HEADER.size
        end = start + id_len + event_len + body_len
        if end > len(data):
            break
        ident = data[start : start + id_len].decode()
        event = data[start + id_len : start + id_len + event_len].decode()
        yield InboxRecord(ident, event, received_at, data[start + id_len + event_len : end], offset + end)
        pos = end
    if pos < len(data) and complete:
        log.warning("%s: skipping %d bytes of a record cut short at its end (a crash while writing)",
                    path.name, len(data) - pos)
