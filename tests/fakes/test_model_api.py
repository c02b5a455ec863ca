"""The fake Anthropic Messages API on its own: wire format, script, side requests, faults."""

from __future__ import annotations

import json
import logging

import pytest

from app.fakes.model_api import (
    EXHAUSTED_TEXT,
    SIDE_REQUEST_TEXT,
    MODELS,
    FakeModelAPI,
    ScriptedTurn,
    ToolUse,
    is_main_loop_request,
    serve_fake_model_api,
)

KEY = "sk-ant-test-key"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
TOOLS = [{"name": "Write", "description": "write", "input_schema": {"type": "object"}}]


def main_body(**kw) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "go"}], **kw}


def parse_sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def assemble(events: list[tuple[str, dict]]) -> dict:
    """Rebuild the message from the stream the way an SDK does."""
    message = None
    for name, data in events:
        assert name == data["type"]
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            block = dict(data["content_block"])
            if block["type"] == "tool_use":
                block["_json"] = ""
            message["content"].append(block)
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["_json"] += delta["partial_json"]
        elif name == "content_block_stop":
            block = message["content"][data["index"]]
            if "_json" in block:
                block["input"] = json.loads(block.pop("_json"))
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message


@pytest.fixture
async def fake_client(aiohttp_client):
    fake = FakeModelAPI(api_key=KEY)
    client = await aiohttp_client(fake.make_app())
    return fake, client


async def test_streams_a_tool_use_turn_then_text_then_done(fake_client) -> None:
    fake, client = fake_client
    fake.script = [
        ScriptedTurn(text="Let me write a long enough sentence to be split into pieces.",
                     tool_uses=[ToolUse(name="Write", input={"file_path": "a.py", "content": "x = 1\n" * 20})]),
        ScriptedTurn(text="All done."),
    ]
    r = await client.post("/v1/messages?beta=true", json=main_body(), headers=HEADERS)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["request-id"].startswith("req_")
    events = parse_sse(await r.text())
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert sum(1 for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "text_delta") > 1
    assert sum(1 for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta") > 2
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    message = assemble(events)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": fake.script[0].text}
    tool = message["content"][1]
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_") and tool["name"] == "Write"
    assert tool["input"] == {"file_path": "a.py", "content": "x = 1\n" * 20}
    assert message["usage"]["output_tokens"] > 1

    r = await client.post("/v1/messages", json=main_body(), headers=HEADERS)
    message = assemble(parse_sse(await r.text()))
    assert message["stop_reason"] == "end_turn" and message["content"] == [{"type": "text", "text": "All done."}]

    r = await client.post("/v1/messages", json=main_body(), headers=HEADERS)
    assert assemble(parse_sse(await r.text()))["content"][0]["text"] == EXHAUSTED_TEXT
    assert fake.turns_played == 3 and len(fake.requests) == 3
    assert [c.turn_index for c in fake.calls] == [0, 1, None]


async def test_side_requests_do_not_consume_the_script(fake_client) -> None:
    fake, client = fake_client
    fake.script = [ScriptedTurn(text="main turn")]
    no_tools = {k: v for k, v in main_body(model="claude-haiku-4-5").items() if k != "tools"}
    quota = main_body(max_tokens=1)
    for body in (no_tools, quota, dict(no_tools, stream=False)):
        r = await client.post("/v1/messages", json=body, headers=HEADERS)
        raw = await r.text()
        text = json.loads(raw)["content"][0]["text"] if not body["stream"] else assemble(parse_sse(raw))["content"][0]["text"]
        assert text == SIDE_REQUEST_TEXT
    assert fake.turns_played == 0
    r = await client.post("/v1/messages", json=main_body(), headers=HEADERS)
    assert assemble(parse_sse(await r.text()))["content"][0]["text"] == "main turn"
    assert [c.kind for c in fake.calls] == ["side", "side", "side", "main"]
    assert not is_main_loop_request(no_tools) and not is_main_loop_request(quota) and is_main_loop_request(main_body())


async def test_subagent_requests_use_their_own_script(fake_client) -> None:
    fake, client = fake_client
    fake.script = [ScriptedTurn(text="main")]
    fake.subagent_script = [ScriptedTurn(text="sub")]
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330; cc_entrypoint=sdk-cli; cc_is_subagent=true;"}]
    r = await client.post("/v1/messages", json=main_body(system=system), headers=HEADERS)
    assert assemble(parse_sse(await r.text()))["content"][0]["text"] == "sub"
    r = await client.post("/v1/messages", json=main_body(), headers=HEADERS)
    assert assemble(parse_sse(await r.text()))["content"][0]["text"] == "main"
    assert [c.kind for c in fake.calls] == ["subagent", "main"]


async def test_non_streaming_message(fake_client) -> None:
    fake, client = fake_client
    fake.script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "ls"}, id="toolu_fixed")])]
    r = await client.post("/v1/messages", json=main_body(stream=False), headers=HEADERS)
    message = await r.json()
    assert message["type"] == "message" and message["role"] == "assistant" and message["stop_reason"] == "tool_use"
    assert message["content"] == [{"type": "tool_use", "id": "toolu_fixed", "name": "Bash", "input": {"command": "ls"}}]
    assert set(message["usage"]) >= {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}


async def test_auth_and_version_checks(fake_client) -> None:
    fake, client = fake_client
    for headers in ({"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, {"anthropic-version": "2023-06-01"}):
        r = await client.post("/v1/messages", json=main_body(), headers=headers)
        assert r.status == 401
        body = await r.json()
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert body["request_id"].startswith("req_")
    r = await client.post("/v1/messages", json=main_body(stream=False),
                          headers={"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"})
    assert r.status == 200
    r = await client.post("/v1/messages", json=main_body(), headers={"x-api-key": KEY})
    assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
    r = await client.post("/v1/messages", data=b"{not json", headers=HEADERS)
    assert r.status == 400
    r = await client.post("/v1/messages", json={"model": "m"}, headers=HEADERS)
    assert r.status == 400
    assert fake.turns_played == 1  # only the Bearer call was a turn
    assert [c.kind for c in fake.calls].count("unauthorized") == 2
    assert len(fake.requests) == 2  # authenticated JSON /v1/messages bodies: the Bearer one and {"model"}


async def test_injected_errors_then_recovery(fake_client) -> None:
    fake, client = fake_client
    fake.script = [ScriptedTurn(text="after the storm")]
    fake.inject_error(529, times=2)
    fake.inject_error(500)
    statuses = []
    for _ in range(4):
        r = await client.post("/v1/messages", json=main_body(), headers=HEADERS)
        statuses.append(r.status)
        if r.status != 200:
            body = await r.json()
            assert body["type"] == "error"
            if r.status == 529:
                assert body["error"]["type"] == "overloaded_error" and r.headers["retry-after"] == "0"
                assert r.headers["x-should-retry"] == "true"
            else:
                assert body["error"]["type"] == "api_error"
        else:
            assert assemble(parse_sse(await r.text()))["content"][0]["text"] == "after the storm"
    assert statuses == [529, 529, 500, 200]
    assert fake.turns_played == 1


async def test_count_tokens_and_probe(fake_client) -> None:
    fake, client = fake_client
    r = await client.post("/v1/messages/count_tokens", json={"model": "m", "messages": [{"role": "user", "content": "hello " * 100}]},
                          headers=HEADERS)
    assert r.status == 200 and (await r.json())["input_tokens"] > 100
    r = await client.head("/api/hello")
    assert r.status == 200
    assert [c.kind for c in fake.calls] == ["count_tokens", "probe"] and fake.turns_played == 0


async def test_models_lists_them_for_a_good_key_and_refuses_a_wrong_one(fake_client) -> None:
    fake, client = fake_client
    r = await client.get("/v1/models", headers=HEADERS)
    page = await r.json()
    assert r.status == 200 and [m["id"] for m in page["data"]] == [m["id"] for m in MODELS]
    assert page["has_more"] is False and page["first_id"] == MODELS[0]["id"] and page["last_id"] == MODELS[-1]["id"]
    assert {m["type"] for m in page["data"]} == {"model"}
    r = await client.get("/v1/models", params={"limit": "1", "after_id": MODELS[0]["id"]}, headers=HEADERS)
    page = await r.json()
    assert [m["id"] for m in page["data"]] == [MODELS[1]["id"]] and page["has_more"] is True
    r = await client.get("/v1/models", params={"limit": "1", "before_id": MODELS[2]["id"]}, headers=HEADERS)
    assert [m["id"] for m in (await r.json())["data"]] == [MODELS[1]["id"]]
    assert (await client.get("/v1/models", params={"limit": "0"}, headers=HEADERS)).status == 400
    r = await client.get("/v1/models", headers={**HEADERS, "x-api-key": "sk-ant-wrong"})
    body = await r.json()
    assert r.status == 401 and body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert [c.kind for c in fake.calls] == ["models", "models", "models", "error", "unauthorized"]


async def test_unknown_paths_are_logged_loudly(fake_client, caplog) -> None:
    fake, client = fake_client
    with caplog.at_level(logging.WARNING, logger="app.fakes.model_api"):
        r = await client.get("/v1/files", headers=HEADERS)
    assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    assert fake.unknown_calls[0].path == "/v1/files"
    assert any("unknown request GET /v1/files" in rec.getMessage() for rec in caplog.records)


async def test_serves_on_a_unix_socket(tmp_path) -> None:
    import aiohttp

    fake = FakeModelAPI([ScriptedTurn(text="hi")], api_key=KEY)
    async with serve_fake_model_api(fake, unix_path=tmp_path / "m.sock") as running:
        assert running.socket_path.exists() and running.url is None
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(running.socket_path))) as s:
            async with s.post("http://x/v1/messages", json=main_body(stream=False), headers=HEADERS) as r:
                assert (await r.json())["content"][0]["text"] == "hi"
    async with serve_fake_model_api(fake) as running:
        assert running.url.startswith("http://127.0.0.1:") and running.port > 0
