"""Allow-listed egress end to end: real Docker, the real CLI, the real proxy. The scripted agent's
Bash commands speak HTTP with bash's /dev/tcp (the base image has no curl) to the proxy's
forwarder, as any tool that reads HTTP_PROXY would: to a server the test runs on the host's
127.0.0.1 (allowed), to a host not on the list (403, the job goes on, the host is named in the
check run and the pull request), and straight to the server, past the proxy (no route)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

BLOCKED = "blocked.example.org"


@pytest.fixture
async def host_server():
    """What the sandbox fetches: a file served on the host's loopback."""
    seen: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="pkg-1.0 from the local index\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], seen
    await runner.cleanup()


def fetches(port: int) -> str:
    """Three attempts, one line each: through the proxy to the allowed server, to a blocked host, direct."""
    return (
        'p=${HTTP_PROXY##*:}; '
        'exec 3<>/dev/tcp/127.0.0.1/$p; '
        f'printf "GET http://127.0.0.1:{port}/simple/pkg/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" >&3; '
        'r=$(cat <&3); echo "allowed: $(echo "$r" | head -n1 | tr -d "\\r") $(echo "$r" | tail -n1)"; exec 3<&-; '
        'exec 3<>/dev/tcp/127.0.0.1/$p; '
        f'printf "CONNECT {BLOCKED}:443 HTTP/1.1\\r\\n\\r\\n" >&3; echo "blocked: $(tail -n1 <&3)"; exec 3<&-; '
        f'if (exec 4<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo "direct: open"; else echo "direct: refused"; fi'
    )


def script(port: int) -> list[ScriptedTurn]:
    return [
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": fetches(port), "description": "fetch"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/fix.py", "content": "X = 1\n"})]),
        ScriptedTurn(text="Fixed it."),
    ]


async def run_job(tmp_path, image: str, port: int, during: str):
    config = f"egress:\n  allow: ['127.0.0.1:{port}']\n  during: {during}\n"
    files = {"README.md": "# hello\n", ".github/agentvine.yml": config}
    async with end_to_end(tmp_path, image, script(port), files=files, egress_allow=f"127.0.0.1:{port},*.example.org") \
            as (bot, model):
        issue = bot.github.add_issue(REPO, title="Fetch a package", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])
        (run,) = bot.github.check_runs_for(REPO)
        pulls = bot.github.pulls
        events = [e for e in bot.service.store.events(job.id) if e.kind == "egress"]
        sockets_left = list(bot.service.worker.run_deps.egress.socket_dir.iterdir())
        return job, run, pulls, events, model, sockets_left


async def test_through_the_proxy_to_an_allowed_host_a_403_for_others_and_no_route_around(
        tmp_path, sandbox_image, docker_client, host_server):
    port, seen = host_server
    job, run, pulls, events, model, sockets_left = await run_job(tmp_path, sandbox_image, port, "run")

    output = json.dumps(model.tool_results()[0])
    assert "allowed: HTTP/1.1 200 OK pkg-1.0 from the local index" in output
    assert f"blocked: AgentVine egress proxy: {BLOCKED}:443 is not on this job's egress allow-list" in output
    assert "direct: refused" in output  # the sandbox still has no route to the host's loopback
    assert seen == ["/simple/pkg/"]

    # The job went on after the refusal, and says what was blocked.
    assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
    summary = run["output"]["summary"]
    assert "**Egress: blocked 1 host**" in summary
    assert f"- blocked: `{BLOCKED}:443` (1 request): {BLOCKED}:443 is not on this job's egress allow-list" in summary
    assert f"**Egress: reached** `127.0.0.1:{port}` (1 request" in summary
    (pull,) = pulls
    assert "> [!WARNING]" in pull["body"] and f"`{BLOCKED}:443`" in pull["body"]
    assert f"127.0.0.1:{port}" not in pull["body"]  # only what was blocked

    # Every request is in the job's log: host, port, allowed or not, bytes.
    (event,) = events
    requests = [(r["method"], r["host"], r["port"], r["allowed"]) for r in event.data["requests"]]
    assert requests == [("GET", "127.0.0.1", port, True), ("CONNECT", BLOCKED, 443, False)]
    assert event.data["requests"][0]["bytes_down"] > 0 and event.data["blocked"] == 1
    assert job.egress is not None and [h.target for h in job.egress.blocked] == [f"{BLOCKED}:443"]
    assert job_containers(docker_client, job) == []
    assert sockets_left == []  # the job's socket is gone with it


async def test_by_default_egress_is_off_while_the_agent_runs(tmp_path, sandbox_image, docker_client, host_server):
    port, seen = host_server
    job, run, pulls, events, model, _ = await run_job(tmp_path, sandbox_image, port, "setup")

    output = json.dumps(model.tool_results()[0])
    assert "allowed: HTTP/1.1 403 Forbidden AgentVine egress proxy: egress is off while the agent runs" in output
    assert seen == []
    assert job.state is JobState.SUCCEEDED, job.reason
    summary = run["output"]["summary"]
    assert "**Egress: blocked 2 hosts**" in summary
    assert f"- blocked: `127.0.0.1:{port}` (1 request): egress is off while the agent runs" in summary
    (event,) = events
    assert [r["allowed"] for r in event.data["requests"]] == [False, False]
    assert job_containers(docker_client, job) == []
