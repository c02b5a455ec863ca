"""The egress proxy's server: one Unix socket per job, like the model gateway's channels.

`open_job` starts listening on `<socket_dir>/<job_id>/egress.sock`; the socket is the job's
identity (each job's container gets its own, bind-mounted). Each connection carries one request:
CONNECT (then a tunnel) or an absolute-form HTTP request (forwarded with `Connection: close`).
The channel is a switch: while it is off (`disable`), every request is refused with the reason,
so a phase without egress (the agent's run under `egress.during: setup`) is told why. `close_job`
cuts what is still open, removes the socket and hands back the job's log."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import addresses, wire
from .policy import EgressPolicy, target
from .records import MALFORMED, EgressLog, EgressRecord
from . import relay as relay_module
from .relay import Meter, relay

log = logging.getLogger(__name__)

SOCKET_NAME = "egress.sock"
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SUN_PATH_MAX = 107
EGRESS_OFF = "egress is off now (egress.during: setup in .github/agentvine.yml allows it during the setup steps only)"
TOO_MANY = "this job has {n} connections open through the proxy already"
OVER_LIMIT = "(over the connection limit)"
LOOKUPS_PER_JOB = 2  # name lookups of one job at once (of the proxy's 8 threads for them)


@dataclass(frozen=True)
class EgressLimits:
    max_head_bytes: int = wire.MAX_HEAD_BYTES
    max_connections: int = 32  # per job, at once
    head_timeout_s: float = 10.0  # to send the request's head
    resolve_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0  # a tunnel moving nothing either way is closed


@dataclass
class EgressChannel:
    job_id: str
    socket_path: Path
    policy: EgressPolicy
    enabled: bool = False
    off_reason: str = EGRESS_OFF
    log: EgressLog = field(default_factory=EgressLog)
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)
    _live: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)
    _tasks: set[asyncio.Task] = field(default_factory=set, repr=False)
    lookups: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LOOKUPS_PER_JOB), repr=False)

    @property
    def socket_dir(self) -> Path:
        return self.socket_path.parent

    @property
    def connections(self) -> int:
        return len(self._live)

    def enable(self) -> None:
        """Let requests through (the allow-list still decides each)."""
        self.enabled = True

    def disable(self, reason: str = EGRESS_OFF) -> None:
        """Refuse every request with `reason`, and cut the connections still open."""
        self.enabled, self.off_reason = False, reason
        for writer in list(self._live):
            writer.transport.abort()


Resolver = Callable[[str, int, float], Awaitable[list[addresses.IPAddress]]]


class EgressProxy:
    def __init__(self, socket_dir: Path, limits: EgressLimits | None = None, *,
                 resolver: Resolver = addresses.resolve) -> None:
        self.socket_dir = Path(socket_dir)
        self.limits = limits or EgressLimits()
        self._resolve = resolver  # the host's resolver; a test may stand in a DNS that answers what it says
        self._jobs: dict[str, EgressChannel] = {}
        self._lock = asyncio.Lock()

    def channel(self, job_id: str) -> EgressChannel | None:
        return self._jobs.get(job_id)

    async def open_job(self, job_id: str, policy: EgressPolicy, *, enabled: bool = False) -> EgressChannel:
        if not _JOB_ID_RE.match(job_id):
            raise ValueError(f"job id {job_id!r} is not usable in a socket path")
        async with self._lock:
            if job_id in self._jobs:
                raise ValueError(f"job {job_id} already has an open egress channel")
            socket_path = self.socket_dir / job_id / SOCKET_NAME
            if len(os.fsencode(socket_path)) > _SUN_PATH_MAX:
                raise ValueError(f"socket path too long for AF_UNIX ({socket_path}); use a shorter socket_dir")
            socket_path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(socket_path.parent, 0o711)  # the container mounts the socket file, never the folder
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()
            channel = EgressChannel(job_id, socket_path, policy, enabled=enabled)

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await self._serve(channel, reader, writer)

            channel._server = await asyncio.start_unix_server(serve, str(socket_path),
                                                              limit=self.limits.max_head_bytes)
            os.chmod(socket_path, 0o666)  # uid 1000 in the container connects; the socket is the identity
            self._jobs[job_id] = channel
            log.info("egress proxy: opened job %s at %s (%r)", job_id, socket_path, policy)
            return channel

    async def close_job(self, job_id: str) -> EgressLog:
        """Stop listening, cut every connection, remove the socket; the job's log."""
        async with self._lock:
            channel = self._jobs.pop(job_id, None)
        if channel is None:
            raise KeyError(f"job {job_id} has no open egress channel")
        channel.disable("the job's egress channel is closed")
        if channel._server is not None:
            channel._server.close()
        if channel._tasks:  # cut connections end at once; each logs its record as it ends
            await asyncio.wait(list(channel._tasks), timeout=5)
        with contextlib.suppress(OSError):
            shutil.rmtree(channel.socket_dir)
        log.info("egress proxy: closed job %s (%d requests, %d blocked)", job_id, channel.log.requests,
                 sum(h.requests for h in channel.log.report().blocked))
        return channel.log

    async def close(self) -> None:
        for job_id in list(self._jobs):
            with contextlib.suppress(KeyError):
                await self.close_job(job_id)

    # ------------------------------------------------------------------ one connection
    async def _serve(self, channel: EgressChannel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            channel._tasks.add(task)
        try:
            if channel.connections >= self.limits.max_connections:
                reason = TOO_MANY.format(n=channel.connections)
                channel.log.add(EgressRecord("?", OVER_LIMIT, 0, False, 429, reason))
                await _refuse(reader, writer, 429, reason)
                return
            channel._live.add(writer)
            await self._request(channel, reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            channel._live.discard(writer)
            channel._tasks.discard(task)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # a sandbox that stopped reading: drop what it would not take
            else:
                writer.close()

    async def _request(self, channel: EgressChannel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        try:
            request = wire.parse_request(await self._head(reader))
        except wire.Refused as exc:
            channel.log.add(EgressRecord("?", MALFORMED, 0, False, exc.status, "malformed request"))
            await _refuse(reader, writer, exc.status, exc.reason)
            return
        record = EgressRecord(request.method, request.host, request.port, False, 0)
        try:
            upstream = await self._admit(channel, request, record)
        except wire.Refused as exc:
            # Allowed but unreachable (502, 504) is not blocked: the allow-list said yes.
            record.status, record.reason, record.allowed = exc.status, exc.reason, exc.status in (502, 504)
            await _refuse(reader, writer, exc.status, exc.reason)
            return
        finally:
            if record.status:  # refused: logged now; a relayed request is logged when it ends
                self._done(channel, record, started)
        record.allowed, record.status = True, 200
        meter = Meter()
        try:
            if request.tunnel:
                writer.write(wire.ESTABLISHED)
            else:
                head = wire.forwarded_head(request)
                upstream[1].write(head)
                meter.up += len(head)
            ended = await relay((reader, writer), upstream, meter, self.limits.idle_timeout_s)
            record.reason = "" if ended == "closed" else ended
        finally:
            upstream[1].transport.abort()
            record.bytes_up, record.bytes_down = meter.up, meter.down
            self._done(channel, record, started)

    async def _head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.limits.head_timeout_s)
        except asyncio.LimitOverrunError:
            raise wire.Refused(431, f"the request's head is over {self.limits.max_head_bytes} bytes") from None
        except asyncio.TimeoutError:
            raise wire.Refused(408, f"no complete request head within {self.limits.head_timeout_s:g} s") from None
        except asyncio.IncompleteReadError:
            raise wire.Refused(400, "the connection ended before the request's head did") from None

    async def _admit(self, channel: EgressChannel, request: wire.Request, record: EgressRecord):
        """The upstream connection for an allowed request; Refused saying why not."""
        if not channel.enabled:
            raise wire.Refused(403, channel.off_reason)
        decision = channel.policy.decide(request.kind, request.host, request.port)
        if not decision.allowed:
            raise wire.Refused(403, decision.reason)
        candidates = await self._addresses(channel, request)
        refusals = [addresses.refusal(request.host, a, decision.private_ok) for a in candidates]
        usable = [a for a, why in zip(candidates, refusals) if why is None]
        if not usable:
            raise wire.Refused(403, refusals[0] or "no address")
        return await self._connect(request, usable, record)

    async def _addresses(self, channel: EgressChannel, request: wire.Request) -> list:
        if request.kind == "ip":
            return [ipaddress.ip_address(request.host)]
        # A job's lookups wait for each other, not for other jobs'. The slot is given back when the lookup
        # ends, not when this request stops waiting for it: a thread still busy with a slow DNS (a name below
        # an allowed suffix is its owner's to answer) keeps its slot, so one job cannot take every thread.
        await channel.lookups.acquire()
        lookup = asyncio.ensure_future(self._resolve(request.host, request.port, self.limits.resolve_timeout_s))
        lookup.add_done_callback(lambda _done: channel.lookups.release())
        try:
            found = await asyncio.wait_for(asyncio.shield(lookup), self.limits.resolve_timeout_s)
        except (OSError, asyncio.TimeoutError):
            found = []
        if not found:
            raise wire.Refused(502, f"{request.host} could not be resolved")
        return found

    async def _connect(self, request: wire.Request, usable: list, record: EgressRecord):
        deadline = time.monotonic() + self.limits.connect_timeout_s
        failure = ""
        for address in usable:  # the addresses checked, and no other: no second lookup
            try:
                left = max(deadline - time.monotonic(), 0.01)
                connecting = asyncio.open_connection(str(address), request.port, limit=relay_module.CHUNK)
                streams = await asyncio.wait_for(connecting, left)
            except (OSError, asyncio.TimeoutError) as exc:
                failure = type(exc).__name__ if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
                continue
            record.address = str(address)
            return streams
        raise wire.Refused(502, f"could not connect to {target(request.host, request.port)} ({failure})")

    @staticmethod
    def _done(channel: EgressChannel, record: EgressRecord, started: float) -> None:
        record.seconds = round(time.monotonic() - started, 3)
        channel.log.add(record)
        log.info("egress job %s: %s %s %s %s up=%d down=%d%s", channel.job_id, record.method,
                 target(record.host, record.port), "allowed" if record.allowed else "BLOCKED", record.status,
                 record.bytes_up, record.bytes_down, f" ({record.reason})" if record.reason else "")


DRAIN_BYTES = 64 * 1024
DRAIN_S = 0.5


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    """Answer, then read (and drop) a little of what the sandbox still sends before closing: a socket
    closed with unread input is reset, and the reset can overtake the answer."""
    writer.write(wire.refusal(status, reason))
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
        left = DRAIN_BYTES
        while left > 0 and (data := await asyncio.wait_for(reader.read(left), DRAIN_S)):
            left -= len(data)
