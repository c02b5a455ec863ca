"""No secret enters the sandbox: neither the real model API key nor a GitHub token, in the
environment, the mounts or any file. Checked from inside (the real agent runs the inspection in
the container and its output comes back to the model) and from the host (docker inspect). The
egress proxy adds a read-only socket and proxy variables, and no way to the services that hold
the secrets: the model API and GitHub, asked through it, answer 403 from the proxy."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.agent.sandbox.caches import CACHE_KINDS, repo_key
from app.agent.sandbox.layout import (AGENT_HOME, CONTAINER_EGRESS_SOCKET, CONTAINER_GATEWAY_SOCKET, RUNTIME_DIR,
                                     WORKSPACE)
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]
CACHES = {target for target, _ in CACHE_KINDS.values()}

# Through the proxy to each URL in $TARGETS (the model API's and GitHub's): the first line of the answer.
VIA_PROXY = (
    "for t in $TARGETS; do exec 3<>/dev/tcp/127.0.0.1/${HTTP_PROXY##*:}; "
    "printf 'GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' \"$t\" >&3; echo \"proxy: $(head -n1 <&3)\"; exec 3<&-; done; "
)
INSPECT = (
    "echo '== env'; env; echo '== mounts'; cat /proc/self/mounts; echo '== proxy'; " + VIA_PROXY +
    "echo '== grep'; grep -rIl --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e \"$NEEDLES\" / 2>/dev/null; "
    "echo '== done'"
)


@pytest.mark.parametrize("image", ["profile", "team"])
async def test_no_secret_in_the_sandbox(tmp_path, sandbox_image, docker_client, request, image):
    """In AgentVine's own image, and in a team's image with AgentVine's runtime volume mounted."""
    files, settings = None, {}
    expected_mounts = {WORKSPACE, AGENT_HOME, CONTAINER_GATEWAY_SOCKET, CONTAINER_EGRESS_SOCKET, *CACHES}
    if image == "team":
        request.getfixturevalue("runtime_volume")
        team = request.getfixturevalue("team_image")
        files = {"README.md": "# hello\n", ".github/agentvine.yml": f"sandbox: {{image: '{team}'}}\n"}
        settings, expected_mounts = {"allowed_images": (team,)}, expected_mounts | {RUNTIME_DIR}
    script = [
        # The needles are the secrets themselves; the test fills them in below, once known.
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "true"})]),
        ScriptedTurn(text="Inspected.", delay_seconds=4),  # keeps the container up for docker inspect
    ]
    async with end_to_end(tmp_path, sandbox_image, script, files=files, **settings) as (bot, model):
        # Tokens that exist before the run: a GitHub token is issued at the acknowledgement.
        issue = bot.github.add_issue(REPO, title="Inspect", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        job_id = answer["jobs"][0]

        # The Bash command searches for the real model key and every GitHub token issued so far.
        async def needles() -> str:
            while not bot.github.tokens.tokens:
                await asyncio.sleep(0.05)
            return "\n".join([model.api_key, *bot.github.tokens.tokens])
        secrets = (await needles()).split("\n")
        targets = [f"{bot.service.settings.model_api_url}/v1/messages", f"{bot.github.api_url}/app"]
        script[0].tool_uses[0].input["command"] = (f"NEEDLES={json.dumps(chr(10).join(secrets))}; "
                                                   f"TARGETS={json.dumps(' '.join(targets))}; {INSPECT}")

        # From the host, while it runs: the container's configuration.
        container = None
        for _ in range(400):
            found = job_containers(docker_client, job_id)
            if found:
                container = found[0]
                break
            await asyncio.sleep(0.05)
        assert container is not None, "the job's container never appeared"
        attrs = docker_client.api.inspect_container(container.id)
        env = "\n".join(attrs["Config"]["Env"])
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        await bot.settle(timeout=180)

    for secret in secrets:
        assert secret not in env
    assert "ANTHROPIC_API_KEY=agv-" in env  # the per-job token the gateway swaps, not the key
    assert set(mounts) == expected_mounts
    assert mounts[CONTAINER_GATEWAY_SOCKET]["RW"] is False and mounts.get(RUNTIME_DIR, {}).get("RW") is not True
    assert mounts[CONTAINER_EGRESS_SOCKET]["RW"] is False and "HTTP_PROXY=http://127.0.0.1:" in env
    # Both writable mounts are on the job's own filesystem; the host repository is not in reach.
    assert all("/mnt/" in mounts[m]["Source"] and "/git" not in mounts[m]["Source"] for m in (WORKSPACE, AGENT_HOME))
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    # The package caches: this repository's own folders, and nothing else of the data directory.
    for target in CACHES:
        assert mounts[target]["Source"].endswith(f"/caches/{repo_key(REPO)}/{target.rsplit('/', 1)[1]}")
    assert "PIP_CACHE_DIR=/cache/pip" in env and "npm_config_cache=/cache/npm" in env

    (result,) = model.tool_results()
    output = json.dumps(result)
    assert "== done" in output  # the inspection ran to the end…
    grep_hits = output.split("== grep")[1].split("== done")[0].replace("\\n", "").strip()
    assert grep_hits == ""  # …and found no secret in any file
    for secret in secrets:
        assert secret not in output
    assert "agv-" in output  # it did see its own environment
    proxied = output.split("== proxy")[1].split("== grep")[0]
    assert proxied.count("proxy: HTTP/1.1 403 Forbidden") == 2, proxied  # neither the model API nor GitHub
    assert job_containers(docker_client, job_id) == []
