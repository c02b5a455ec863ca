"""A job's activity, live: GET /jobs/{id}/events as Server-Sent Events.

The worker that writes events is another process, so the web process learns of them from the store.
One poller per web process asks it for every event after the last one it saw (one indexed query per
tick, however many streams are open, and none while no stream is) and hands each to the streams of its
job. A stream sends what its client has not seen yet (after `Last-Event-ID`, which the browser sends
when it reconnects), then what the poller hands it, and ends once its job has ended. Each event's
`id:` is its sequence number in the store's log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from app.store.base import JobStore
from app.web.job_views import PublicEvent, is_terminal, public_event, public_job

log = logging.getLogger(__name__)

BATCH = 500  # events read per query; a longer backlog takes several in one tick
RETRY_MS = 2000  # how soon a browser reconnects after the connection drops
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class LiveOptions:
    poll_s: float = 0.5  # how soon a new event reaches the streams
    heartbeat_s: float = 15.0  # a comment line keeps proxies from closing an idle stream
    check_s: float = 1.0  # how soon a stream notices that its client has gone
    max_streams: int = 100  # per web process; one more gets 503


class TooManyStreams(Exception):
    pass


class EventHub:
    """The shared poller and the streams' queues (None in a queue: the service is stopping)."""

    def __init__(self, store: JobStore, options: LiveOptions) -> None:
        self._store = store
        self.options = options
        self._queues: dict[str, set[asyncio.Queue]] = {}
        self._task: asyncio.Task | None = None
        self._cursor = 0
        self._closed = False

    @property
    def streams(self) -> int:
        return sum(len(queues) for queues in self._queues.values())

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue]:
        """A queue that receives the job's events stored from now on. Read the backlog after
        subscribing: the poller's starting point is taken first, so no event falls in between."""
        if self._closed or self.streams >= self.options.max_streams:
            raise TooManyStreams
        if self._task is None:
            self._cursor = self._store.last_event_seq()
            self._task = asyncio.create_task(self._poll(), name="job-events-poller")
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(job_id, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(job_id, None)

    async def _poll(self) -> None:
        try:
            while self._queues:
                await asyncio.sleep(self.options.poll_s)
                try:
                    self._deliver()
                except Exception:  # noqa: BLE001 - a store hiccup must not end every stream
                    log.warning("reading new job events failed; trying again", exc_info=True)
        finally:
            self._task = None  # no stream left (or stopping): the next subscriber starts a new poller

    def _deliver(self) -> None:
        while True:
            events = self._store.events_since(self._cursor, BATCH)
            for event in events:
                self._cursor = event.seq
                for queue in self._queues.get(event.job_id, ()):
                    queue.put_nowait(event)
            if len(events) < BATCH:
                return

    async def close(self, _app: web.Application | None = None) -> None:
        """On shutdown: every stream ends, so the server need not wait for them."""
        self._closed = True
        for queues in self._queues.values():
            for queue in queues:
                queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()


def _frame(data: dict, *, event: str | None = None, event_id: int | None = None) -> bytes:
    head = (f"event: {event}\n" if event else "") + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Stream:
    """One client's stream: what it has been sent, and whether it is still there."""

    def __init__(self, request: web.Request, response: web.StreamResponse, store: JobStore, job_id: str) -> None:
        self._request, self._response, self._store, self._job_id = request, response, store, job_id
        self.last = -1

    @property
    def gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def send(self, events: list[PublicEvent]) -> bool:
        """Sends the events not sent yet, then the job as it is now if one changed its state.
        True when the job has ended (its `end` is sent then)."""
        fresh = [e for e in events if e.seq > self.last]
        for event in fresh:
            await self._response.write(_frame(event.model_dump(mode="json"), event_id=event.seq))
            self.last = event.seq
        ended = any(is_terminal(e) for e in fresh)
        if ended or any("state" in e.data for e in fresh):
            await self.send_job(ended=ended)
        return ended

    async def send_job(self, *, ended: bool) -> None:
        job = self._store.get_job(self._job_id)
        if job is not None:
            await self._response.write(_frame(public_job(job).model_dump(mode="json"), event="end" if ended else "job"))

    async def heartbeat(self) -> None:
        await self._response.write(b": keepalive\n\n")


async def stream_events(request: web.Request, hub: EventHub, store: JobStore, job_id: str, after: int) -> web.StreamResponse:
    """The stream of a job that exists; raises TooManyStreams at the bound."""
    with hub.subscribe(job_id) as queue:
        job = store.get_job(job_id)  # read before the backlog: if it has ended, the backlog has its end
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        stream = _Stream(request, response, store, job_id)
        stream.last = after
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            ended = await stream.send([public_event(e) for e in store.events(job_id, after)])
            if job is not None and job.terminal and not ended:
                await stream.send_job(ended=True)
                ended = True
            if not ended:
                await _follow(stream, queue, hub.options)
        except ConnectionError:  # the client left while we wrote
            pass
    return response


async def _follow(stream: _Stream, queue: asyncio.Queue, options: LiveOptions) -> None:
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while not stream.gone:
        try:
            event = await asyncio.wait_for(queue.get(), options.check_s)
        except asyncio.TimeoutError:
            if loop.time() - quiet_since >= options.heartbeat_s:
                await stream.heartbeat()
                quiet_since = loop.time()
            continue
        if event is None:  # the service is stopping
            return
        if await stream.send([public_event(event)]):
            return
        quiet_since = loop.time()
