"""AgentVine's runtime in an image that is not AgentVine's: the real runtime volume, a real team image
(Debian without Claude Code, socat or a name for uid 1000) and the real Claude Code CLI, with every
isolation setting of AgentVine's own images."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid

import pytest

from app.agent.sandbox import SandboxSpec, run_sandbox
from app.agent.sandbox.container import ImageUnusable
from app.agent.sandbox.forwarder import FORWARDER_NAME
from app.agent.sandbox.layout import PINNED, RUNTIME_DIR
from app.agent.sandbox.plan import plan_image
from app.agent.sandbox.runtime import (
    EXIT_NO_BASH,
    EXIT_NO_GLIBC,
    NEEDS_BASH,
    RUNTIME_BIN,
    machine_arch,
    runtime_volume_name,
)
from app.agent.sandbox.runtime_build import build_runtime
from tests.support import team_images

from .conftest import our_containers
from .test_claude import claude_cmd
from .test_claude import model_api  # noqa: F401 (a fixture: the Messages API stand-in on a Unix socket)
from .test_container import Collector, spec_for

pytestmark = pytest.mark.docker

INSPECT = ("echo SHELL=$SHELL; id; command -v claude; command -v socat || echo no-socat; echo TEAM=$TEAM_TOOLCHAIN; "
           "touch /x 2>&1; grep -E 'CapEff|NoNewPrivs' /proc/self/status; echo '== net'; ls /sys/class/net; "
           "echo '== mounts'; cat /proc/self/mounts")


def mount_options(output: str) -> dict[str, tuple[str, str]]:
    """/proc/self/mounts as printed: mount point -> (type, options)."""
    lines = output.split("== mounts\n", 1)[1].splitlines()
    return {fields[1]: (fields[2], fields[3]) for fields in (line.split() for line in lines) if len(fields) >= 4}


def runtime_spec(image, job_id, dirs, command, volume, **kw) -> SandboxSpec:
    return spec_for(image, job_id, dirs, command, runtime_volume=volume, **kw)


@pytest.mark.claude
async def test_the_real_cli_works_in_a_team_image_through_the_runtime(team_image, runtime_volume, job_id, job_dirs,
                                                                     model_api, docker_client):  # noqa: F811
    plan = await asyncio.to_thread(plan_image, docker_client, team_image)
    assert (plan.runtime_volume, plan.image_volumes) == (runtime_volume, ("/cache",))
    model_api.turns = [("tool", "Bash", {"command": INSPECT}), ("text", "inspected")]
    spec = SandboxSpec(job_id=job_id, image=team_image, command=claude_cmd("look", max_turns=3), workspace=job_dirs[0],
                       home=job_dirs[1], gateway_socket=model_api.socket, env={"ANTHROPIC_API_KEY": "t", NEEDS_BASH: "1"},
                       runtime_volume=plan.runtime_volume, image_volumes=plan.image_volumes, timeout_s=120)
    seen: dict = {}

    async def watch() -> None:  # the container as the engine has it, while it runs
        while not seen:
            for c in our_containers(docker_client):
                if c.labels.get("agentvine.job") == job_id:
                    seen.update(docker_client.api.inspect_container(c.id))
            await asyncio.sleep(0.05)
    watcher = asyncio.create_task(watch())
    events: list[dict] = []
    result = await run_sandbox(spec, lambda line: events.append(json.loads(line)))
    watcher.cancel()
    assert result.exit_code == 0, result.stderr_tail
    (output,) = [block["content"] for e in events if e["type"] == "user" for block in e["message"]["content"]]
    assert "SHELL=/bin/bash" in output and "uid=1000 gid=1000" in output  # no name for uid 1000 in this image
    assert f"{RUNTIME_BIN}/claude" in output and "no-socat" in output and "TEAM=1" in output
    mounts_inside = mount_options(output)
    assert mounts_inside["/"][1].startswith("ro,") and mounts_inside[RUNTIME_DIR][1].startswith("ro,")
    assert mounts_inside["/cache"][0] == "tmpfs" and "Read-only file system" in output
    assert output.split("== net\n")[1].split("== mounts")[0].split() == ["lo"]
    assert "CapEff:\t0000000000000000" in output and "NoNewPrivs:\t1" in output
    assert events[-1]["type"] == "result" and events[-1]["result"] == "inspected"
    mounts = {m["Destination"]: m for m in seen["Mounts"]}
    assert mounts[RUNTIME_DIR]["Type"] == "volume" and mounts[RUNTIME_DIR]["RW"] is False
    assert all(m["Type"] != "volume" or m["Destination"] == RUNTIME_DIR for m in seen["Mounts"])  # /cache: no volume
    assert seen["Config"]["Entrypoint"] == [f"{RUNTIME_DIR}/entrypoint"] and seen["Config"]["User"] == "1000:1000"
    assert seen["Config"]["Healthcheck"]["Test"] == ["NONE"] and seen["HostConfig"]["ReadonlyRootfs"] is True


async def test_the_forwarder_relays_both_ways_with_half_close(full_image, runtime_volume, job_id, job_dirs, short_tmp):
    """Many concurrent connections of 2 MiB each way through the runtime's forwarder (run here in the
    full image, for its Python): each gets back the hash of what it sent after it shut its side."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's half-close arrives through the forwarder
        writer.write(hashlib.sha256(data).hexdigest().encode() + b"\n" + data[::-1])
        await writer.drain()
        writer.close()
    server = await asyncio.start_unix_server(answer, path=str(short_tmp / "echo.sock"))
    (short_tmp / "echo.sock").chmod(0o666)
    client = """
import hashlib, os, socket, threading
ok = []
def one(i):
    data = os.urandom(2 << 20)
    s = socket.create_connection(("127.0.0.1", 8787))
    s.sendall(data); s.shutdown(socket.SHUT_WR)
    back = b"".join(iter(lambda: s.recv(1 << 16), b""))
    ok.append(back == hashlib.sha256(data).hexdigest().encode() + b"\\n" + data[::-1])
threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print("relayed", sum(ok), "of", len(ok))
"""
    out = Collector()
    try:
        result = await run_sandbox(runtime_spec(full_image, job_id, job_dirs, ["python3", "-c", client], runtime_volume,
                                                gateway_socket=short_tmp / "echo.sock"), out)
    finally:
        server.close()
    assert result.exit_code == 0, result.stderr_tail
    assert out.lines == ["relayed 8 of 8"]


async def test_an_image_without_a_shell_is_refused_before_it_starts(docker_client, runtime_volume, job_id, job_dirs):
    image = team_images.shell_less_image(docker_client)
    with pytest.raises(ImageUnusable) as caught:
        await run_sandbox(runtime_spec(image, job_id, job_dirs, ["claude"], runtime_volume), print)
    assert caught.value.problem == "no_shell"
    assert our_containers(docker_client) == []


async def test_an_image_whose_shell_is_a_folder_is_refused_unread(docker_client, runtime_volume, job_id, job_dirs,
                                                                 tmp_path):
    # A hostile image could put gigabytes under /bin/sh; only the stat is asked for (a HEAD).
    big = team_images._tar_of({"bin/sh/payload": b"x" * (8 << 20)})
    image = team_images._import(docker_client, big, f"{team_images.TEAM_REPOSITORY}:shell-folder-1", [])
    with pytest.raises(ImageUnusable) as caught:
        await run_sandbox(runtime_spec(image, job_id, job_dirs, ["claude"], runtime_volume), print)
    assert caught.value.problem == "no_shell"


async def test_an_image_without_glibc_stops_at_the_runtime_check(docker_client, runtime_volume, job_id, job_dirs):
    image = team_images.busybox_image(docker_client, machine_arch())
    out = Collector()
    result = await run_sandbox(runtime_spec(image, job_id, job_dirs, ["claude", "--version"], runtime_volume), out)
    assert result.exit_code == EXIT_NO_GLIBC and out.lines == []
    assert "no glibc" in result.stderr_tail


async def test_bash_is_needed_only_when_the_agent_may_use_it(docker_client, sandbox_image, runtime_volume, job_id,
                                                             job_dirs):
    image = team_images.team_image(docker_client, sandbox_image, without_bash=True)
    out = Collector()
    command = ["claude", "--version"]
    result = await run_sandbox(runtime_spec(image, job_id, job_dirs, command, runtime_volume, env={NEEDS_BASH: "1"}), out)
    assert result.exit_code == EXIT_NO_BASH and "no bash" in result.stderr_tail
    result = await run_sandbox(runtime_spec(image, job_id + "b", job_dirs, command, runtime_volume), out)
    assert result.exit_code == 0 and out.lines == [f"{PINNED} (Claude Code)"]


def test_images_are_looked_at_before_anything_runs(docker_client, sandbox_image, full_image, team_image, runtime_volume):
    assert plan_image(docker_client, full_image).runtime_volume is None  # AgentVine's own: as built
    assert plan_image(docker_client, sandbox_image).runtime_volume is None
    other = "arm64" if machine_arch() == "amd64" else "amd64"
    problems = {}
    for image in ("agentvine-test-never-built:1", team_images.foreign_arch_image(docker_client, other)):
        with pytest.raises(ImageUnusable) as caught:
            plan_image(docker_client, image)
        problems[caught.value.problem] = caught.value.fields
    assert problems["missing"] == {"image": "agentvine-test-never-built:1", "profile": ""}
    assert problems["platform"]["platform"] == f"linux/{other}"
    with pytest.raises(ImageUnusable) as caught:
        plan_image(docker_client, team_image, claude_version="0.0.0-never-built")  # no runtime volume for it
    assert caught.value.problem == "no_runtime" and caught.value.fields["volume"] == runtime_volume_name("0.0.0-never-built")


def test_an_image_declaring_many_volumes_is_refused(docker_client):
    changes = ["VOLUME [" + ", ".join(f'"/v{i}"' for i in range(40)) + "]"]
    image = team_images._import(docker_client, team_images._tar_of({"bin/sh": b""}), f"{team_images.TEAM_REPOSITORY}:volumes-1",
                                changes)
    with pytest.raises(ImageUnusable) as caught:
        plan_image(docker_client, image)
    assert caught.value.problem == "volumes"


@pytest.mark.parametrize("inside", ["/workspace/build", "/home/agent/.cache", "/cache/pip/x", "/opt/agentvine/bin",
                                    "/run/agentvine/x"])
def test_an_image_declaring_a_volume_inside_a_folder_agentvine_mounts_is_refused(docker_client, inside):
    # runc would make that mount point inside a folder the agent writes to (a planted symlink there).
    tag = f"{team_images.TEAM_REPOSITORY}:volume-inside-{inside.strip('/').replace('/', '-').replace('.', '')}"
    image = team_images._import(docker_client, team_images._tar_of({"bin/sh": b""}), tag,
                                [f'VOLUME ["/data", "{inside}"]'])
    with pytest.raises(ImageUnusable) as caught:
        plan_image(docker_client, image)
    assert caught.value.problem == "volumes"


def test_a_whole_runtime_volume_is_not_built_again(docker_client, runtime_volume):
    lines: list[str] = []
    assert build_runtime(PINNED, log=lines.append, client=docker_client) == runtime_volume
    assert lines == [f"runtime volume {runtime_volume} already exists; not rebuilding"]
    labels = docker_client.volumes.get(runtime_volume).attrs["Labels"]
    assert labels["agentvine.runtime"] == "1" and labels["agentvine.arch"] == machine_arch()


def test_the_volume_name_follows_what_goes_in(monkeypatch):
    from app.agent.sandbox import runtime

    before = runtime_volume_name()
    assert before.startswith(f"agentvine-runtime-{PINNED}-")
    monkeypatch.setattr(runtime, "FORWARDER_C", runtime.FORWARDER_C + "\n/* changed */\n")
    assert runtime_volume_name() != before
    assert runtime_volume_name("2.0.0") != before and FORWARDER_NAME in runtime.runtime_entrypoint()


async def test_what_a_hostile_image_declares_changes_nothing_of_the_sandbox(docker_client, sandbox_image, runtime_volume,
                                                                            job_id, job_dirs, short_tmp):
    """An allowed image is the repository's choice: its entrypoint, user, health check, volumes, labels and
    environment must not widen the sandbox, name another job, or make a volume outside the job's quota."""
    base = team_images.team_image(docker_client, sandbox_image)
    hostile = docker_client.containers.create(base, ["true"])
    try:
        hostile.commit(f"{team_images.TEAM_REPOSITORY}", "hostile-1", changes=[
            'ENTRYPOINT ["/bin/sh", "-c", "echo entrypoint-of-the-image"]', "USER 0:0", 'VOLUME ["/data", "/workspace"]',
            'HEALTHCHECK --interval=1s CMD ["/bin/sh", "-c", "touch /workspace/healthcheck-ran"]',
            "LABEL agentvine.job=someone-else agentvine=0", "ENV ANTHROPIC_BASE_URL=http://evil.example AGENTVINE_FORWARDS=1=/x"])
    finally:
        hostile.remove(v=True)  # the base declares /cache: creating it made an anonymous volume
    image = f"{team_images.TEAM_REPOSITORY}:hostile-1"
    plan = plan_image(docker_client, image)
    assert plan.image_volumes == ("/cache", "/data", "/workspace") and plan.runtime_volume == runtime_volume
    volumes_before = {v.name for v in docker_client.volumes.list()}
    out = Collector()
    script = "id -u; echo url=$ANTHROPIC_BASE_URL; grep -E ' /data ' /proc/self/mounts | cut -d' ' -f3; sleep 3"
    gateway = socket.socket(socket.AF_UNIX)
    gateway.bind(str(short_tmp / "gw.sock"))
    gateway.listen()
    spec = runtime_spec(image, job_id, job_dirs, ["sh", "-c", script], runtime_volume, image_volumes=plan.image_volumes,
                        gateway_socket=short_tmp / "gw.sock")
    task = asyncio.create_task(run_sandbox(spec, out))
    await out.wait_for("tmpfs")
    (container,) = [c for c in our_containers(docker_client) if c.name == f"agentvine-{job_id}"]
    result = await task
    assert result.exit_code == 0, result.stderr_tail
    gateway.close()
    assert out.lines[:3] == ["1000", "url=http://127.0.0.1:8787", "tmpfs"] and "entrypoint-of-the-image" not in out.lines
    assert container.labels["agentvine.job"] == job_id and container.labels["agentvine"] == "1"
    assert not (job_dirs[0] / "healthcheck-ran").exists()
    assert {v.name for v in docker_client.volumes.list()} == volumes_before  # no anonymous volume, for /data or any


def test_a_failed_runtime_build_leaves_no_volume(docker_client, full_image, monkeypatch):
    import docker

    from app.agent.sandbox import runtime_build
    from app.agent.sandbox.rootfs import BuildError

    name = f"agentvine-runtime-test-broken-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(runtime_build, "runtime_volume_name", lambda _version: name)
    monkeypatch.setattr(runtime_build, "_BUILD_SCRIPT", "echo the compiler broke >&2; exit 3")
    with pytest.raises(BuildError, match="exit code 3:\nthe compiler broke"):
        build_runtime(PINNED, log=lambda _line: None, client=docker_client)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(name)
