"""Every byte upstream sent reaches the sandbox, however slowly it reads: the proxy ends a
connection only once its own write buffer has gone to the socket.

The bug this pins down: when upstream closed, the relay ended with bytes still in the asyncio
transport's buffer towards a client that was behind (under the 64 KiB high-water mark, so the last
`drain()` did not wait), and the connection was then aborted, dropping them. pip (urllib3 1.26 does
not check Content-Length) saved the short wheel and failed its hash check; a TLS client would see a
truncated record.

To make that state certain rather than likely: upstream sends in 4 KiB pieces (so the proxy writes
4 KiB at a time and the kernel's buffer fills to a size measured here for that write size), the
body is that size plus 24 KiB, and the client reads nothing until upstream is long done."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import time

from aiohttp import web

from tests.agent.egress.conftest import open_job

PIECE = 4096
TAIL = 24 * 1024  # what the proxy holds when the kernel's buffer is full: under the high-water mark


def _kernel_takes() -> int:
    """What a Unix socket's kernel buffer takes in PIECE-sized writes before the writer must wait."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.setblocking(False)
        taken = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                taken += a.send(bytes(PIECE))
        return taken


BODY = random.Random(9).randbytes(_kernel_takes() + TAIL)  # like a wheel: bytes that do not compress


async def _in_pieces(write) -> None:
    for start in range(0, len(BODY), PIECE):
        await write(BODY[start:start + PIECE])
        await asyncio.sleep(0.001)  # the proxy reads (and writes) each piece on its own


def _read_late(path: str, request: bytes, head_end: bytes) -> tuple[bytes, bytes]:
    """(head, body) as a client gets them that reads only after upstream has sent everything."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(request)
        time.sleep(1.0)  # upstream sends for ~0.3 s, then closes; the proxy sees its end meanwhile
        got = bytearray()
        while data := s.recv(65536):
            got += data
        head, _, body = bytes(got).partition(head_end)
        return head, body


async def test_a_late_reader_gets_the_whole_forwarded_body(proxy):
    async def whole(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        answer.content_length = len(BODY)
        await answer.prepare(request)

        async def write(piece: bytes) -> None:
            await answer.write(piece)

        await _in_pieces(write)
        await answer.write_eof()
        return answer

    app = web.Application()
    app.router.add_get("/file", whole)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        channel = await open_job(proxy, [f"127.0.0.1:{port}"])
        request = f"GET http://127.0.0.1:{port}/file HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        head, body = await asyncio.to_thread(_read_late, str(channel.socket_path), request, b"\r\n\r\n")
        assert f"Content-Length: {len(BODY)}".encode() in head
        assert len(body) == len(BODY) and hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()
        (record,) = (await proxy.close_job("job1")).items
        assert record.bytes_down == len(head) + 4 + len(BODY)
    finally:
        await runner.cleanup()


async def test_a_late_reader_gets_every_byte_of_a_tunnel(proxy):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)

        async def write(piece: bytes) -> None:
            writer.write(piece)
            await writer.drain()

        await _in_pieces(write)
        writer.close()  # upstream ends first, as a server does after its answer

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel = await open_job(proxy, [f"127.0.0.1:{port}"])
        request = f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nhello".encode()
        established = b"HTTP/1.1 200 Connection established\r\n\r\n"
        head, body = await asyncio.to_thread(_read_late, str(channel.socket_path), request, established)
        assert head == b"" and len(body) == len(BODY) and body == BODY
    finally:
        server.close()
