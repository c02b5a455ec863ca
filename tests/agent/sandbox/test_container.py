"""The sandbox runner against a real Docker engine and the real sandbox image."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp import web

from app.agent.sandbox import (
    SandboxError,
    SandboxResult,
    SandboxSpec,
    container_name,
    remove_orphans,
    run_sandbox,
)
from app.agent.sandbox.image import build_image
from app.agent.sandbox.layout import DEFAULT_GATEWAY_PORT, LABEL, LABEL_JOB

from .conftest import our_containers

pytestmark = pytest.mark.docker


def spec_for(image: str, job_id: str, dirs, command: list[str], **kw) -> SandboxSpec:
    ws, home = dirs
    kw.setdefault("timeout_s", 60)
    return SandboxSpec(job_id=job_id, image=image, command=command, workspace=ws, home=home,
                       **kw)


class Collector:
    def __init__(self):
        self.lines: list[str] = []
        self.times: list[float] = []
        self.t0 = time.monotonic()
        self.event = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.times.append(time.monotonic() - self.t0)
        self.event.set()

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        async def _wait():
            while not any(text in line for line in self.lines):
                self.event.clear()
                await self.event.wait()
        await asyncio.wait_for(_wait(), timeout)


async def test_exit_code_stdout_lines_and_stderr_tail(sandbox_image, job_id, job_dirs):
    out = Collector()
    script = "echo one; echo two; printf 'no newline'; echo oops >&2; exit 3"
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", script]), out)
    assert isinstance(res, SandboxResult)
    assert res.exit_code == 3
    assert not res.timed_out and not res.cancelled and not res.oom_killed
    assert out.lines == ["one", "two", "no newline"]
    assert res.stderr_tail == "oops\n"
    assert 0 <= res.duration_s < 30


async def test_async_on_line_and_utf8(sandbox_image, job_id, job_dirs):
    got = []

    async def on_line(line: str) -> None:
        await asyncio.sleep(0)
        got.append(line)

    script = "printf 'h\\303\\251llo \\342\\234\\223\\r\\nend\\n'"
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", script]),
                            on_line)
    assert res.exit_code == 0
    assert got == ["héllo ✓", "end"]


async def test_security_settings_are_applied(sandbox_image, job_id, job_dirs, docker_client):
    out = Collector()
    script = (
        "echo uid=$(id -u) gid=$(id -g); "
        "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
        "touch /rootfs-write 2>/dev/null && echo rootfs=writable || echo rootfs=readonly; "
        "touch /tmp/x && echo tmp=writable; "
        "touch /workspace/x && echo workspace=writable; "
        "touch /home/agent/x && echo home=writable; "
        "echo ready; sleep 60"
    )
    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", script], memory="512m",
                    cpus=0.5, pids=100)
    cancel = asyncio.Event()
    task = asyncio.create_task(run_sandbox(spec, out, cancel=cancel))
    try:
        await out.wait_for("ready")
        c = docker_client.containers.get(container_name(job_id))
        hc, cfg = c.attrs["HostConfig"], c.attrs["Config"]
        assert c.status == "running"
        assert hc["NetworkMode"] == "none"
        assert hc["ReadonlyRootfs"] is True
        assert hc["CapDrop"] == ["ALL"]
        assert not hc.get("CapAdd")
        assert hc["Privileged"] is False
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert not any("unconfined" in o for o in hc["SecurityOpt"])
        assert cfg["User"] == "1000:1000"
        assert hc["Memory"] == 512 * 1024 * 1024
        assert hc["MemorySwap"] == 512 * 1024 * 1024  # no swap on top
        assert hc["NanoCpus"] == 500_000_000
        assert hc["PidsLimit"] == 100
        assert hc["Init"] is True
        assert "/tmp" in hc["Tmpfs"]
        assert cfg["Labels"]["agentvine"] == "1"
        assert cfg["Labels"]["agentvine.job"] == job_id
        assert c.name == f"agentvine-{job_id}"
        mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
        assert set(mounts) == {"/workspace", "/home/agent"}
        assert all(m["RW"] for m in mounts.values())
        # The container's own view agrees.
        assert "uid=1000 gid=1000" in out.lines
        assert "CapEff:\t0000000000000000" in out.lines
        assert "CapBnd:\t0000000000000000" in out.lines
        assert "NoNewPrivs:\t1" in out.lines
        assert "Seccomp:\t2" in out.lines  # Docker's default seccomp filter is on
        assert "rootfs=readonly" in out.lines
        assert {"tmp=writable", "workspace=writable", "home=writable"} <= set(out.lines)
    finally:
        cancel.set()
        res = await task
    assert res.cancelled
    ws, home = job_dirs
    assert (ws / "x").stat().st_uid == 1000
    assert (home / "x").stat().st_uid == 1000
    assert home.stat().st_mode & 0o777 == 0o700


async def test_pids_limit_holds(sandbox_image, job_id, job_dirs):
    out = Collector()
    # 80 background processes under a limit of 40: a fork fails (dash then gives up).
    script = "for i in $(seq 80); do sleep 30 & done; echo survived"
    res = await run_sandbox(
        spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", script], pids=40), out)
    assert "survived" not in out.lines
    assert res.exit_code not in (0, None)
    assert "Cannot fork" in res.stderr_tail


async def test_no_network(sandbox_image, job_id, job_dirs):
    # A service on the host's loopback is reachable from the host but not from the sandbox.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        out = Collector()
        script = (
            "echo ifaces=$(ls /sys/class/net | tr '\\n' ' '); "
            "echo routes=$(tail -n +2 /proc/net/route | wc -l); "
            f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null "
            "&& echo loopback=connected || echo loopback=refused"
        )
        res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs,
                                         ["bash", "-c", script]), out)
    finally:
        srv.close()
    assert res.exit_code == 0
    assert out.lines == ["ifaces=lo", "routes=0", "loopback=refused"]


async def test_timeout_kills_and_removes(sandbox_image, job_id, job_dirs, docker_client):
    out = Collector()
    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo started; sleep 300"],
                    timeout_s=3)
    t0 = time.monotonic()
    res = await run_sandbox(spec, out)
    elapsed = time.monotonic() - t0
    assert res.timed_out and not res.cancelled
    assert res.exit_code is None
    assert 2.5 <= elapsed < 15
    assert out.lines == ["started"]
    assert our_containers(docker_client) == []


async def test_cancel_kills_and_removes(sandbox_image, job_id, job_dirs, docker_client):
    out = Collector()
    cancel = asyncio.Event()
    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo started; sleep 300"])
    task = asyncio.create_task(run_sandbox(spec, out, cancel=cancel))
    await out.wait_for("started")
    t0 = time.monotonic()
    cancel.set()
    res = await task
    assert res.cancelled and not res.timed_out
    assert res.exit_code is None
    assert time.monotonic() - t0 < 10
    assert our_containers(docker_client) == []


async def test_cancel_before_start_runs_nothing(sandbox_image, job_id, job_dirs):
    cancel = asyncio.Event()
    cancel.set()
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["true"]), print,
                            cancel=cancel)
    assert res.cancelled and res.exit_code is None


async def test_lines_stream_before_exit(sandbox_image, job_id, job_dirs, docker_client):
    states = []

    def on_line(line: str) -> None:
        if line == "first":
            # While the first line is handled the container is still running.
            c = docker_client.containers.get(container_name(job_id))
            states.append(c.status)

    script = "echo first; sleep 2; echo second"
    times = {}
    t0 = time.monotonic()

    def record(line: str) -> None:
        times[line] = time.monotonic() - t0
        on_line(line)

    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", script]),
                            record)
    assert res.exit_code == 0
    assert states == ["running"]
    assert times["second"] - times["first"] >= 1.5


async def test_silence_longer_than_client_timeout(sandbox_image, job_id, job_dirs):
    """The output stream must not time out while the command is quiet."""
    import docker

    client = docker.from_env(timeout=3)
    try:
        out = Collector()
        res = await run_sandbox(
            spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "sleep 6; echo late"]),
            out, client=client)
    finally:
        client.close()
    assert res.exit_code == 0
    assert out.lines == ["late"]


async def test_on_line_error_still_removes(sandbox_image, job_id, job_dirs, docker_client):
    def on_line(line: str) -> None:
        raise ValueError("consumer failed")

    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo x; sleep 300"])
    with pytest.raises(ValueError, match="consumer failed"):
        await run_sandbox(spec, on_line)
    assert our_containers(docker_client) == []


async def test_task_cancellation_still_removes(sandbox_image, job_id, job_dirs, docker_client):
    out = Collector()
    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo up; sleep 300"])
    task = asyncio.create_task(run_sandbox(spec, out))
    await out.wait_for("up")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert our_containers(docker_client) == []


async def test_home_persists_between_runs(sandbox_image, job_id, job_dirs):
    ws, home = job_dirs
    (ws / "from-host.txt").write_text("hello\n")  # owned by root on the host
    cmd1 = ["sh", "-c", "mkdir -p ~/.claude && echo kept > ~/.claude/state && "
            "echo more >> /workspace/from-host.txt"]
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, cmd1), print)
    assert res.exit_code == 0, res.stderr_tail
    out = Collector()
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs,
                                     ["sh", "-c", "cat ~/.claude/state; echo $HOME"]), out)
    assert out.lines == ["kept", "/home/agent"]
    assert (ws / "from-host.txt").read_text() == "hello\nmore\n"


async def test_memory_limit_oom(sandbox_image, job_id, job_dirs):
    # `tail -c N` keeps N bytes in memory: 200 MB under a 64 MiB limit.
    spec = spec_for(sandbox_image, job_id, job_dirs,
                    ["sh", "-c", "head -c 200000000 /dev/zero | tail -c 200000000 > /dev/null"],
                    memory="64m")
    res = await run_sandbox(spec, print)
    assert res.exit_code != 0
    assert res.oom_killed or res.exit_code == 137


async def test_gateway_socket_reaches_host_server(sandbox_image, job_id, job_dirs, short_tmp):
    """bash's /dev/tcp in a --network none container -> socat -> host Unix socket -> aiohttp."""
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("x-api-key")))
        return web.Response(text=f"pong {request.path}\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = short_tmp / "gateway.sock"  # short_tmp is mode 0700: only the socket file is mounted
    site = web.UnixSite(runner, str(sock))
    await site.start()
    try:
        out = Collector()
        script = (
            'echo "base=$ANTHROPIC_BASE_URL"; '
            'exec 3<>"/dev/tcp/127.0.0.1/$AGENTVINE_GATEWAY_PORT"; '
            'printf "GET /ping HTTP/1.1\\r\\nHost: gw\\r\\nx-api-key: job-token\\r\\n'
            'Connection: close\\r\\n\\r\\n" >&3; '
            "cat <&3"
        )
        spec = spec_for(sandbox_image, job_id, job_dirs, ["bash", "-c", script],
                        gateway_socket=sock)
        res = await run_sandbox(spec, out)
    finally:
        await runner.cleanup()
    assert res.exit_code == 0, res.stderr_tail
    assert out.lines[0] == f"base=http://127.0.0.1:{DEFAULT_GATEWAY_PORT}"
    assert out.lines[1].startswith("HTTP/1.1 200")
    assert out.lines[-1] == "pong /ping"
    assert seen == [("GET", "/ping", "job-token")]


async def test_missing_gateway_socket_is_a_clear_error(sandbox_image, job_id, job_dirs,
                                                       short_tmp):
    spec = spec_for(sandbox_image, job_id, job_dirs, ["true"],
                    gateway_socket=short_tmp / "nope.sock")
    with pytest.raises(SandboxError, match="does not exist"):
        await run_sandbox(spec, print)


async def test_missing_image_is_a_clear_error(docker_client, job_id, job_dirs):
    spec = spec_for("agentvine-sandbox:does-not-exist", job_id, job_dirs, ["true"])
    with pytest.raises(SandboxError, match="agentvine sandbox build"):
        await run_sandbox(spec, print, client=docker_client)


def test_bad_job_id_rejected(job_dirs):
    spec = spec_for("img", "../etc", job_dirs, ["true"])
    with pytest.raises(SandboxError):
        asyncio.run(run_sandbox(spec, print))


async def test_leftover_container_with_same_name_is_replaced(sandbox_image, job_id, job_dirs,
                                                             docker_client):
    docker_client.containers.create(sandbox_image, ["sleep", "300"], name=container_name(job_id),
                                    labels={LABEL: "1", LABEL_JOB: job_id})
    out = Collector()
    res = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["echo", "fresh"]), out)
    assert res.exit_code == 0 and out.lines == ["fresh"]


def test_remove_orphans(sandbox_image, docker_client, job_id):
    a, b = f"{job_id}-a", f"{job_id}-b"
    # Only this test's containers are swept: other runs on this Docker host start and stop their own
    # meanwhile, and a snapshot of theirs taken here would be stale by the sweep.
    ours = f"agentvine.test={job_id}"
    for j in (a, b):
        docker_client.containers.run(sandbox_image, ["sleep", "300"], detach=True,
                                     name=container_name(j), network_mode="none",
                                     labels={LABEL: "1", LABEL_JOB: j, "agentvine.test": job_id})
    # `only`: the worker names the jobs of its own store; a container of any other job stays.
    assert remove_orphans(docker_client, only={a, "not-running"}, also_labelled=ours) == [a]
    assert [c.name for c in our_containers(docker_client)] == [container_name(b)]
    assert remove_orphans(docker_client, keep={b}, also_labelled=ours) == []
    assert remove_orphans(docker_client, also_labelled=ours) == [b]
    assert our_containers(docker_client) == []


async def test_trivial_command_overhead(sandbox_image, job_id, job_dirs):
    """Not a benchmark: a generous bound that catches a pathological regression."""
    durations = []
    for i in range(3):
        t0 = time.monotonic()
        res = await run_sandbox(spec_for(sandbox_image, f"{job_id}-{i}", job_dirs, ["true"]),
                                print)
        durations.append(time.monotonic() - t0)
        assert res.exit_code == 0
    print(f"\nstart-to-removed for `true`: {', '.join(f'{d:.2f}s' for d in durations)}")
    assert min(durations) < 5


def test_build_image_skips_existing(sandbox_image, docker_client):
    msgs: list[str] = []
    t0 = time.monotonic()
    build_image(sandbox_image, log=msgs.append, client=docker_client)
    assert time.monotonic() - t0 < 5
    assert any("already exists" in m for m in msgs)


def test_image_metadata(sandbox_image, docker_client):
    img = docker_client.images.get(sandbox_image)
    cfg = img.attrs["Config"]
    assert cfg["User"] == "1000:1000"
    assert cfg["WorkingDir"] == "/workspace"
    assert cfg["Entrypoint"] == ["/usr/local/bin/agentvine-entrypoint"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["HOME"] == "/home/agent"
    assert env["DISABLE_AUTOUPDATER"] == "1"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert cfg["Labels"]["agentvine.sandbox"] == "1"
    out = docker_client.containers.run(
        sandbox_image, ["sh", "-c", "find / -xdev -perm /6000 -type f | wc -l; "
                        "command -v node nodejs curl wget || true; getent passwd agent"],
        remove=True, network_mode="none").decode()
    lines = out.split()
    assert lines[0] == "0"  # no setuid/setgid programs
    assert "agent:x:1000:1000::/home/agent:/bin/bash" in out
    assert "node" not in out and "curl" not in out and "wget" not in out


async def test_concurrent_sandboxes_are_independent(sandbox_image, job_id, tmp_path):
    async def one(i: int):
        dirs = (tmp_path / f"ws{i}", tmp_path / f"home{i}")
        out = Collector()
        script = f"for n in 1 2 3; do echo job{i}-$n; sleep 0.2; done; exit {i}"
        res = await run_sandbox(spec_for(sandbox_image, f"{job_id}-{i}", dirs,
                                         ["sh", "-c", script]), out)
        return res, out.lines

    results = await asyncio.gather(*(one(i) for i in range(3)))
    for i, (res, lines) in enumerate(results):
        assert res.exit_code == i
        assert lines == [f"job{i}-1", f"job{i}-2", f"job{i}-3"]
