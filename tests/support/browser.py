"""A real headless Chromium (Debian's `chromium`), driven over the DevTools protocol with aiohttp's
websocket client: nothing to download beyond the Debian package."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.env import unavailable

# Chromium as root in a container: no sandbox of its own, no GPU, and nothing it fetches for itself.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-proxy-server", "--disable-extensions", "--remote-debugging-port=0"]


def chromium_path() -> str:
    found = os.environ.get("AGENTVINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        unavailable("chromium is not installed (apt-get install chromium; .ci/install-docker.sh does)")
    return found


class Page:
    """One tab: commands by name, and the events it reported (console messages, exceptions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id"), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict:
        number = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._ws.send_json({"id": number, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Polls `expression` in the page until it is truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (value := await self.evaluate(expression)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.05)
        return value

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def problems(self) -> list[dict]:
        """What the page reported as errors: script exceptions, CSP violations, failed loads."""
        errors = [e for e in self.events if e["method"] == "Runtime.exceptionThrown"]
        return errors + [e for e in self.events
                         if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()


async def _debugging_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    for _ in range(600):
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        await asyncio.sleep(0.05)
    raise RuntimeError("chromium did not open its debugging port within 30 s")


@contextlib.asynccontextmanager
async def headless_page(profile: Path) -> AsyncIterator[Page]:
    """A fresh Chromium with a profile of its own in `profile`, and its one tab."""
    profile.mkdir(parents=True)
    process = await asyncio.create_subprocess_exec(
        chromium_path(), *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        port = await _debugging_port(profile, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                target = next(t for t in await response.json() if t["type"] == "page")
            ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            try:
                for domain in ("Page", "Runtime", "Log"):
                    await page.send(f"{domain}.enable")
                yield page
            finally:
                await page.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
