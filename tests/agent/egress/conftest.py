"""The egress proxy on real sockets: a proxy in a short temporary folder, an HTTP server and a TCP
echo server on the host's loopback for it to reach, and a client speaking raw HTTP/1.1 to the
job's Unix socket, as the sandbox's forwarder passes it on."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from app.agent.egress import EgressChannel, EgressLimits, EgressPolicy, EgressProxy


@pytest.fixture
def socket_root():
    folder = Path(tempfile.mkdtemp(prefix="av-eg-"))  # a Unix socket's path has at most 107 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def proxy(socket_root):
    running = EgressProxy(socket_root, EgressLimits(head_timeout_s=1.0, idle_timeout_s=1.0))
    yield running
    await running.close()


@pytest.fixture
async def upstream():
    """An HTTP server on 127.0.0.1 that answers what it received, as JSON."""
    seen: list[dict] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        answer = {"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                  "body": body.decode()}
        seen.append(answer)
        return web.json_response(answer)

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    app = web.Application()
    app.router.add_get("/big/{n}", big)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield Upstream(port, seen)
    await runner.cleanup()


@dataclass
class Upstream:
    port: int
    seen: list[dict]


@pytest.fixture
async def echo_server():
    """A TCP server on 127.0.0.1 that sends back every byte it gets, upper-cased."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def open_job(proxy: EgressProxy, allow: list[str], operator: list[str] | None = None, *,
                   job_id: str = "job1", enabled: bool = True) -> EgressChannel:
    return await proxy.open_job(job_id, EgressPolicy(allow, allow if operator is None else operator), enabled=enabled)


async def exchange(channel: EgressChannel, raw: bytes, *, timeout: float = 5.0) -> bytes:
    """Send `raw` to the job's socket and read until the proxy closes the connection."""
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def get(url: str, *headers: str) -> bytes:
    host = url.split("/")[2]
    lines = [f"GET {url} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def json_body(answer: bytes) -> dict:
    return json.loads(body_of(answer))
