"""The container's output, read off the Docker attach stream and handed over line by line.

A blocking stream read must not stall the event loop, and a slow consumer must not stall the
container, so a dedicated thread reads the stream and posts complete stdout lines to an asyncio
queue; :func:`pump` hands them to ``on_line`` in order. stderr is kept apart (its last bytes,
for error messages). Separate from runner.py because it is the one part that runs in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable

__all__ = ["EOF", "MAX_LINE_BYTES", "OnLine", "Reader", "pump"]

#: A line longer than this is handed over in pieces (a bound on host memory per container).
MAX_LINE_BYTES = 32 * 1024 * 1024

OnLine = Callable[[str], "Awaitable[None] | None"]

#: Posted once the stream has ended.
EOF = object()


class Reader(threading.Thread):
    """Reads the attach stream (blocking) and posts stdout lines to an asyncio queue."""

    def __init__(self, stream, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue,
                 stderr_cap: int, job_id: str):
        super().__init__(name=f"sandbox-reader-{job_id}", daemon=True)
        self.stream = stream
        self.loop = loop
        self.queue = queue
        self.stderr_cap = stderr_cap
        self.stderr = bytearray()
        self.error: BaseException | None = None

    def _post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody listens any more
            pass

    def _emit(self, raw: bytes) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self._post(raw.decode("utf-8", errors="replace"))

    def run(self) -> None:
        buf = bytearray()
        scan = 0
        try:
            for out, err in self.stream:
                if out:
                    buf += out
                    while True:
                        i = buf.find(b"\n", scan)
                        if i < 0:
                            scan = len(buf)
                            break
                        self._emit(bytes(buf[:i]))
                        del buf[: i + 1]
                        scan = 0
                    if len(buf) >= MAX_LINE_BYTES:
                        self._emit(bytes(buf))
                        buf.clear()
                        scan = 0
                if err:
                    self.stderr += err
                    if len(self.stderr) > self.stderr_cap:
                        del self.stderr[: len(self.stderr) - self.stderr_cap]
        except BaseException as exc:  # noqa: BLE001 - e.g. the stream was closed by us
            self.error = exc
        finally:
            if buf:
                self._emit(bytes(buf))
            self._post(EOF)

    def stderr_text(self) -> str:
        return bytes(self.stderr).decode("utf-8", errors="replace")


async def pump(queue: asyncio.Queue, on_line: OnLine) -> None:
    """Hand each posted line to ``on_line`` (awaited if it is a coroutine) until :data:`EOF`."""
    while True:
        item = await queue.get()
        if item is EOF:
            return
        res = on_line(item)
        if inspect.isawaitable(res):
            await res
