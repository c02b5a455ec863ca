"""Bytes both ways between the sandbox and the one upstream a request named, counted, with an idle
timeout: a tunnel that moves nothing either way for `idle_s` is closed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass
class Meter:
    up: int = 0  # sandbox → upstream
    down: int = 0  # upstream → sandbox
    last: float = field(default_factory=time.monotonic)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter, upward: bool) -> None:
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        meter.last = time.monotonic()
        if upward:
            meter.up += len(data)
        else:
            meter.down += len(data)
        writer.write(data)
        await writer.drain()
    # The source is done. drain() returns at the low-water mark, not at empty, and the caller aborts
    # a connection that still holds bytes (a peer that stopped reading): wait for the last of them to
    # reach the socket first, or a reader that was behind loses the tail (pip: a hash mismatch).
    writer.transport.set_write_buffer_limits(high=0)
    await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def _watch(meter: Meter, idle_s: float) -> None:
    while True:
        quiet = time.monotonic() - meter.last
        if quiet >= idle_s:
            return
        await asyncio.sleep(min(idle_s - quiet + 0.01, 1.0))


async def relay(client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter], meter: Meter, idle_s: float) -> str:
    """Relay until upstream has nothing more to say (the sandbox's end of input only half-closes
    upstream), the connection idles, or either side breaks. Returns how it ended."""
    up = asyncio.create_task(_pipe(client[0], upstream[1], meter, True))
    down = asyncio.create_task(_pipe(upstream[0], client[1], meter, False))
    idle = asyncio.create_task(_watch(meter, idle_s))
    ended = "closed"
    try:
        pending = {up, down, idle}
        while down in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if idle in done:
                ended = "idle"
                break
            if any(t.exception() for t in done if not t.cancelled() and t is not idle):
                ended = "broken"
                break
    finally:
        for task in (up, down, idle):
            task.cancel()
        await asyncio.gather(up, down, idle, return_exceptions=True)
    return ended
