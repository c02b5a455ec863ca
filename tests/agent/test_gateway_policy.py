"""Attacks on the gateway by a process that holds the job's token (the agent has a shell and the
token in its environment): each request that breaks the job's policy is refused with an
Anthropic-style error and never reaches the upstream. Also the budget, counted by the gateway."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from app.agent.gateway import ModelGateway
from app.agent.policy import CLAUDE_CODE_BETAS, DEFAULT_MAX_TOKENS, ModelPolicy, price_of
from app.agent.usage import Usage
from app.fakes.model_api import ScriptedTurn
from tests.agent.test_gateway import BODY, post
from tests.support.model import POLICY

CLAUDE_BETAS = ",".join(sorted(CLAUDE_CODE_BETAS))


def tool(**extra) -> dict:
    return {"name": "x", "input_schema": {"type": "object"}, **extra}


FORBIDDEN = {
    "other-model": (dict(BODY, model="claude-opus-4-1"), {}),
    "huge-max-tokens": (dict(BODY, max_tokens=DEFAULT_MAX_TOKENS + 1), {}),
    "max-tokens-not-int": (dict(BODY, max_tokens="99999999"), {}),
    "mcp-servers": (dict(BODY, mcp_servers=[{"type": "url", "url": "https://evil.example/mcp", "name": "x"}]), {}),
    "container": (dict(BODY, container="container_abc"), {}),
    "priority-tier": (dict(BODY, service_tier="priority"), {}),
    "web-search": (dict(BODY, tools=[{"type": "web_search_20250305", "name": "web_search"}]), {}),
    "web-fetch": (dict(BODY, tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}]), {}),
    "code-execution": (dict(BODY, tools=[{"type": "code_execution_20250825", "name": "code_execution"}]), {}),
    "computer": (dict(BODY, tools=[tool(type="computer_20250124", display_width_px=1, display_height_px=1)]), {}),
    "mcp-toolset": (dict(BODY, tools=[{"type": "mcp_toolset", "mcp_server_name": "x"}]), {}),
    "url-image": (dict(BODY, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://evil.example/?secret=1"}}]}]), {}),
    "files-api-document": (dict(BODY, messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
        "content": [{"type": "document", "source": {"type": "file", "file_id": "file_011"}}]}]}]), {}),
    "beta-header": (BODY, {"anthropic-beta": CLAUDE_BETAS + ",mcp-client-2025-04-04"}),
    "files-beta": (BODY, {"anthropic-beta": "files-api-2025-04-14"}),
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
async def test_a_request_breaking_the_policy_is_refused_and_never_forwarded(
    gateway: ModelGateway, fake_upstream, name: str
) -> None:
    fake, _ = fake_upstream
    body, headers = FORBIDDEN[name]
    channel = await gateway.open_job("job-attack", POLICY)
    status, _, raw = await post(channel.socket_path, channel.token, body, headers=headers)
    assert status == 403, raw
    error = json.loads(raw)
    assert error["type"] == "error" and error["error"]["type"] == "permission_error"
    assert "not allowed" in error["error"]["message"] or "ceiling" in error["error"]["message"]
    assert fake.calls == []
    assert channel.usage.requests == 0 and channel.usage.refused_policy == 1 and channel.usage.rejected == 1


async def test_count_tokens_is_checked_too(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-count", POLICY)
    status, _, _ = await post(channel.socket_path, channel.token, dict(BODY, model="claude-opus-4-1"),
                              path="/v1/messages/count_tokens?beta=true")
    assert status == 403 and fake.calls == []


async def test_bad_json_and_odd_query_are_refused(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-json", POLICY)
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(channel.socket_path))) as s:
        async with s.post("http://gw/v1/messages", data=b"{not json", headers={"x-api-key": channel.token}) as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
    status, _, _ = await post(channel.socket_path, channel.token, path="/v1/messages?beta=true&x=1")
    assert status == 403 and fake.calls == []


async def test_what_claude_code_sends_is_allowed(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="ok")]
    channel = await gateway.open_job("job-ok", POLICY)
    body = dict(BODY, max_tokens=32000, metadata={"user_id": "{}"}, thinking={"type": "enabled", "budget_tokens": 31999},
                context_management={"edits": []}, tools=[tool(), tool(defer_loading=True), tool(type="custom")])
    status, _, _ = await post(channel.socket_path, channel.token, body, headers={"anthropic-beta": CLAUDE_BETAS})
    assert status == 200 and len(fake.calls) == 1


def test_a_job_policy_allows_the_model_claude_code_sends_for_the_configured_one() -> None:
    assert ModelPolicy.for_job("sonnet").models == {"sonnet", "claude-sonnet-5-5"}
    assert ModelPolicy.for_job("claude-opus-4-1").models == {"claude-opus-4-1", "claude-opus-5-5"}
    assert ModelPolicy.for_job("claude-sonnet-4-5").models == {"claude-sonnet-4-5"}
    assert ModelPolicy.for_job("claude-sonnet-4-5", budget_usd=0).budget_usd is None  # 0: no budget


def test_cost_is_an_estimate_from_the_price_table() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_input_tokens=1_000_000)
    assert ModelPolicy.for_job("claude-sonnet-4-5").cost(usage) == pytest.approx(3.0 + 1.5 + 0.3)
    assert price_of("claude-opus-4-1").output == 75.0 and price_of("claude-haiku-4-5").input == 1.0
    assert price_of("some-new-model") == price_of("claude-opus-4-0")  # unknown: the dearest


async def test_after_the_budget_requests_are_refused_and_counted(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="x" * 4000), ScriptedTurn(text="never played")]
    # The fake counts characters / 4: the first answer (~1000 output tokens at $15/M) passes $0.01.
    policy = ModelPolicy.for_job("claude-sonnet-4-5", budget_usd=0.01)
    channel = await gateway.open_job("job-budget", policy)
    status, _, _ = await post(channel.socket_path, channel.token)
    assert status == 200 and channel.usage.cost_usd >= 0.01
    status, _, raw = await post(channel.socket_path, channel.token)
    assert status == 403
    error = json.loads(raw)["error"]
    assert error["type"] == "permission_error" and "budget" in error["message"]
    assert len(fake.calls) == 1
    usage = await gateway.close_job("job-budget")
    assert usage.refused_budget == 1 and usage.turns == 1 and usage.requests == 1
    assert usage.cost_usd == policy.cost(usage) > 0.01 and usage.model_seconds > 0


async def test_parallel_requests_cannot_run_past_the_budget_together(gateway: ModelGateway, fake_upstream) -> None:
    """The budget is checked before each request: many requests sent at once would all pass that
    check. The gateway lets a job have `max_in_flight` requests at a time; the next gets a 429."""
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="slow", delay_seconds=0.5) for _ in range(10)]
    policy = ModelPolicy.for_job("claude-sonnet-4-5", budget_usd=0.01)
    channel = await gateway.open_job("job-parallel", policy)
    statuses = [s for s, _, _ in await asyncio.gather(*(post(channel.socket_path, channel.token) for _ in range(10)))]
    assert sorted(statuses) == [200] * policy.max_in_flight + [429] * (10 - policy.max_in_flight)
    assert len(fake.calls) == policy.max_in_flight and channel.usage.rejected == 10 - policy.max_in_flight
