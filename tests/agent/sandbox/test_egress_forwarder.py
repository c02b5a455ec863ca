"""The sandbox's way to the egress proxy: the socket mounted read-only, the entrypoint's second
forwarder on 127.0.0.1:3128, the proxy variables; and still no route out without it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from app.agent.egress import EgressPolicy, EgressProxy
from app.agent.sandbox import SandboxError, run_sandbox
from app.agent.sandbox.container import NO_PROXY, container_settings
from app.agent.sandbox.layout import CONTAINER_EGRESS_SOCKET, DEFAULT_EGRESS_PORT

from .test_container import Collector, spec_for

pytestmark = pytest.mark.docker


@pytest.fixture
async def host_server():
    """An HTTP server on the host's loopback (127.0.0.1), which the sandbox can reach only through the proxy."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f"from the host: {request.path}\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]
    await runner.cleanup()


@pytest.fixture
async def egress_proxy():
    folder = Path(tempfile.mkdtemp(prefix="av-eg-"))
    proxy = EgressProxy(folder)
    yield proxy
    await proxy.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_the_socket_is_mounted_read_only_and_the_proxy_variables_are_set(job_id, job_dirs, tmp_path):
    settings = container_settings(spec_for("img", job_id, job_dirs, ["true"], egress_socket=tmp_path / "e.sock"))
    (mount,) = [m for m in settings["mounts"] if m["Target"] == CONTAINER_EGRESS_SOCKET]
    assert mount["ReadOnly"] is True and mount["Type"] == "bind"
    env = settings["environment"]
    proxy = f"http://127.0.0.1:{DEFAULT_EGRESS_PORT}"
    assert {env[k] for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} == {proxy}
    assert env["NO_PROXY"] == env["no_proxy"] == NO_PROXY == "localhost,127.0.0.1,::1"
    assert env["AGENTVINE_EGRESS_PORT"] == str(DEFAULT_EGRESS_PORT)
    assert settings["network_mode"] == "none"  # the proxy adds no network device


def test_without_a_socket_there_is_no_proxy_at_all(job_id, job_dirs):
    env = container_settings(spec_for("img", job_id, job_dirs, ["true"], env={"AGENTVINE_EGRESS_PORT": "1"}))["environment"]
    assert not {"HTTP_PROXY", "http_proxy"} & set(env)
    assert env["AGENTVINE_EGRESS_PORT"] == env["AGENTVINE_FORWARDS"] == ""  # set empty: never an image's ENV


def test_the_runtime_forwarder_in_other_images_gets_the_pair(job_id, job_dirs, tmp_path):
    spec = spec_for("img", job_id, job_dirs, ["true"], egress_socket=tmp_path / "e.sock",
                    env={"AGENTVINE_FORWARDS": "9000=/run/x.sock"})
    env = container_settings(spec)["environment"]
    assert env["AGENTVINE_FORWARDS"] == f"9000=/run/x.sock {DEFAULT_EGRESS_PORT}={CONTAINER_EGRESS_SOCKET}"


async def test_the_sandbox_reaches_an_allowed_host_through_the_proxy_and_nothing_directly(
        sandbox_image, job_id, job_dirs, egress_proxy, host_server):
    channel = await egress_proxy.open_job(job_id[-60:], EgressPolicy([f"127.0.0.1:{host_server}"],
                                                                     [f"127.0.0.1:{host_server}"]), enabled=True)
    script = (
        'echo "proxy=$HTTP_PROXY"; port=${HTTP_PROXY##*:}; '
        'exec 3<>/dev/tcp/127.0.0.1/$port; '
        f'printf "GET http://127.0.0.1:{host_server}/pkg HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" >&3; '
        'echo "allowed: $(tail -n1 <&3)"; exec 3<&-; '
        'exec 3<>/dev/tcp/127.0.0.1/$port; '
        'printf "CONNECT pypi.org:443 HTTP/1.1\\r\\n\\r\\n" >&3; echo "blocked: $(head -n1 <&3)"; exec 3<&-; '
        f'if (exec 4<>/dev/tcp/127.0.0.1/{host_server}) 2>/dev/null; then echo "direct: open"; else echo "direct: refused"; fi; '
        'if (exec 4<>/dev/tcp/192.0.2.1/80) 2>/dev/null; then echo "route: yes"; else echo "route: none"; fi'
    )
    out = Collector()
    result = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["bash", "-c", script],
                                        egress_socket=channel.socket_path), out)
    assert result.exit_code == 0, result.stderr_tail
    assert out.lines == [f"proxy=http://127.0.0.1:{DEFAULT_EGRESS_PORT}", "allowed: from the host: /pkg",
                         "blocked: HTTP/1.1 403 Forbidden", "direct: refused", "route: none"]
    log = await egress_proxy.close_job(channel.job_id)
    assert [(r.method, r.host, r.allowed) for r in log.items] == [
        ("GET", "127.0.0.1", True), ("CONNECT", "pypi.org", False)]


async def test_a_missing_egress_socket_is_a_clear_error(sandbox_image, job_id, job_dirs, tmp_path):
    spec = spec_for(sandbox_image, job_id, job_dirs, ["true"], egress_socket=tmp_path / "nope.sock")
    with pytest.raises(SandboxError, match="egress socket .* does not exist"):
        await run_sandbox(spec, print)
