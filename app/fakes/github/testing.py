"""Run the fake on a real local port for a test (or the demo)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp import ClientSession, web

from .state import FakeGitHub
from .webhooks import signed_delivery


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running_fake(tmp_path: Path, *, host: str = "127.0.0.1", port: int | None = None,
                       also_on: tuple[str, ...] = (), **kwargs: Any) -> AsyncIterator[FakeGitHub]:
    """Start a FakeGitHub (kwargs go to its constructor) and yield it with `.url` set.

    `data_dir` defaults to `tmp_path / "github"`. `also_on`: more loopback addresses it answers on, at
    the same port (a client given one of them is told apart by its Host header, in `fake.writes`).
    The server stops when the block exits.
    """
    kwargs.setdefault("data_dir", Path(tmp_path) / "github")
    fake = FakeGitHub(**kwargs)
    runner = web.AppRunner(fake.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    # Bind to port 0 when none is asked for, so parallel test runs never race for a port.
    site = web.TCPSite(runner, host, port or 0)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    for other in also_on:
        await web.TCPSite(runner, other, bound).start()
    fake.url = f"http://{host}:{bound}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an aiohttp application (AgentVine's, for the demo and benchmarks) on a free port; yield its URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def deliver(url: str, event: str, payload: dict[str, Any], secret: str) -> tuple[int, dict[str, Any]]:
    """POST a delivery to `url` signed as GitHub signs it; the status and the JSON answer."""
    body, headers = signed_delivery(payload, event, secret)
    async with ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()
