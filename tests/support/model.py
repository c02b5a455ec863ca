"""Shared pieces for the model tests (their fixtures are registered in tests/conftest.py): finding the real Claude Code CLI, running it as a non-root
user, a TCP→Unix bridge (the CLI speaks TCP, the gateway listens on a Unix socket), the fake
model API and the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.agent.claude.command import CLAUDE_CODE_ENV
from app.agent.claude.events import Event, parse_line
from app.fakes.model_api import FakeModelAPI, serve_fake_model_api
from app.agent.gateway import ModelGateway
from app.agent.policy import ModelPolicy

UPSTREAM_KEY = "sk-ant-fake-upstream-key-7f3c9a"
# The policy of the model tests' jobs: they run `--model claude-sonnet-4-5`, no budget.
POLICY = ModelPolicy.for_job("claude-sonnet-4-5")
NPM_PREFIX_BIN = Path("/tmp/claude-cli/node_modules/.bin/claude")
FIXTURES = Path(__file__).parent / "claude_streams"  # recorded stream-json of the real CLI


def find_claude_bin() -> str | None:
    explicit = os.environ.get("AGENTVINE_CLAUDE_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    on_path = shutil.which("claude")
    if on_path:
        return on_path
    return str(NPM_PREFIX_BIN) if os.access(NPM_PREFIX_BIN, os.X_OK) else None


@pytest.fixture(scope="session")
def claude_bin() -> str:
    found = find_claude_bin()
    if found is None:
        message = (
            "the Claude Code CLI was not found: run the tests with `./dev test` (it installs it), "
            "set AGENTVINE_CLAUDE_BIN, or put `claude` on PATH"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    lines: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class CliRunner:
    """Runs the CLI as a non-root user (Claude Code refuses bypassPermissions as root)."""

    executable: str
    uid: int
    gid: int
    home: Path
    workdir: Path

    async def run(self, argv: list[str], *, env: dict[str, str], timeout: float = 120) -> CliRun:
        full_env = {
            "HOME": str(self.home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            **CLAUDE_CODE_ENV,
            **env,
        }
        kwargs = {}
        if os.geteuid() != self.uid:
            kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.workdir,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **kwargs,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        stdout = out.decode("utf-8", "replace")
        lines = [line for line in stdout.splitlines() if line.strip()]
        events = [e for e in (parse_line(line) for line in lines) if e is not None]
        return CliRun(proc.returncode, stdout, err.decode("utf-8", "replace"), time.monotonic() - started, lines, events)


@pytest.fixture
def cli_runner(claude_bin: str) -> CliRunner:
    if os.geteuid() == 0:
        name = os.environ.get("AGENTVINE_CLAUDE_TEST_USER", "nobody")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            pytest.fail(f"running as root needs a non-root user to run Claude Code as; {name!r} does not exist")
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    # Not under pytest's tmp_path: that is mode 0700 and owned by root.
    base = Path(tempfile.mkdtemp(prefix="agentvine-claude-"))
    base.chmod(0o755)
    home, workdir = base / "home", base / "work"
    home.mkdir()
    workdir.mkdir()
    if os.geteuid() == 0:
        for path in (home, workdir):
            os.chown(path, uid, gid)
    yield CliRunner(claude_bin, uid, gid, home, workdir)
    shutil.rmtree(base, ignore_errors=True)


@contextlib.asynccontextmanager
async def tcp_to_unix(socket_path: Path) -> AsyncIterator[int]:
    """Listen on 127.0.0.1:<port> and pipe each connection to `socket_path` (what socat does in the
    sandbox). Yields the port."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    tasks: set[asyncio.Task] = set()

    async def on_client(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_unix_connection(str(socket_path))
        except OSError:
            c_writer.close()
            return
        for t in (asyncio.create_task(pipe(c_reader, u_writer)), asyncio.create_task(pipe(u_reader, c_writer))):
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def socat_tcp_to_unix(socket_path: Path) -> AsyncIterator[int]:
    """The same bridge made by socat, as the sandbox's forwarder does it. Yields the port."""
    socat = shutil.which("socat")
    if socat is None:
        if os.environ.get("CI") == "true":
            pytest.fail("socat is not installed (CI=true: .ci/install-docker.sh installs it)")
        pytest.skip("socat is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"UNIX-CONNECT:{socket_path}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        else:
            raise RuntimeError("socat did not start listening")
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


BRIDGES = {"asyncio": tcp_to_unix, "socat": socat_tcp_to_unix}


@pytest.fixture
def socket_dir() -> Path:
    # Short path: AF_UNIX paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="agv-gw-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fake_upstream() -> AsyncIterator[tuple[FakeModelAPI, str]]:
    """A fake model API on a TCP port; the script is set by the test (`fake.script = [...]`)."""
    fake = FakeModelAPI([], api_key=UPSTREAM_KEY)
    async with serve_fake_model_api(fake) as running:
        yield fake, running.url


@pytest.fixture
async def gateway(fake_upstream: tuple[FakeModelAPI, str], socket_dir: Path) -> AsyncIterator[ModelGateway]:
    _, url = fake_upstream
    gw = ModelGateway(url, UPSTREAM_KEY, socket_dir=socket_dir)
    yield gw
    await gw.close()


def load_fixture_lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


