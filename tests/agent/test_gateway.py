"""The model gateway, driven with plain HTTP over its Unix socket (no CLI needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse
from app.agent.gateway import ModelGateway, _Redactor
from tests.support.model import POLICY, UPSTREAM_KEY

HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219", "content-type": "application/json"}
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
    "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
}


def unix_session(socket_path: Path) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket_path)))


async def post(socket_path: Path, token: str | None, body: dict | None = None, *, path: str = "/v1/messages?beta=true",
               headers: dict | None = None, method: str = "POST") -> tuple[int, CIMultiDict, bytes]:
    h = dict(HEADERS, **(headers or {}))
    if token is not None:
        h["x-api-key"] = token
    async with unix_session(socket_path) as s:
        async with s.request(method, "http://gateway" + path, json=body if body is not None else BODY, headers=h) as r:
            return r.status, CIMultiDict(r.headers), await r.read()


def sse_events(raw: bytes) -> list[dict]:
    return [json.loads(line[5:]) for line in raw.decode().splitlines() if line.startswith("data:")]


@contextlib.asynccontextmanager
async def upstream(handler) -> AsyncIterator[str]:
    """A stand-in model API with one POST /v1/messages handler; yields its URL."""
    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


async def test_forwards_with_real_key_and_streams_back(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="Working.", tool_uses=[ToolUse(name="Write", input={"file_path": "a", "content": "b"})])]
    channel = await gateway.open_job("job-1", POLICY)
    status, headers, raw = await post(channel.socket_path, channel.token)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert [e["type"] for e in events][:2] == ["message_start", "ping"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-1]["type"] == "message_stop"
    # Upstream got the real key, the query, the anthropic headers; not the job token.
    (call,) = fake.calls
    assert call.path == "/v1/messages?beta=true"
    assert call.headers["x-api-key"] == UPSTREAM_KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["anthropic-beta"] == "claude-code-20250219"
    assert channel.token not in json.dumps(call.headers)
    assert call.body == BODY
    # Usage: what message_start and message_delta reported.
    start_usage, delta_usage = events[0]["message"]["usage"], events[-2]["usage"]
    assert channel.usage.requests == 1
    assert channel.usage.input_tokens == delta_usage["input_tokens"] == start_usage["input_tokens"]
    assert channel.usage.output_tokens == delta_usage["output_tokens"]
    assert UPSTREAM_KEY.encode() not in raw and UPSTREAM_KEY not in str(list(headers.items()))


async def test_bearer_token_is_accepted(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-bearer", POLICY)
    status, _, _ = await post(channel.socket_path, None, headers={"authorization": f"Bearer {channel.token}"})
    assert status == 200
    assert fake.calls[0].headers["x-api-key"] == UPSTREAM_KEY
    assert "Authorization" not in fake.calls[0].headers and "authorization" not in fake.calls[0].headers


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "agv-wrong"},
        {},
        {"authorization": "Bearer agv-wrong"},
        {"authorization": "Basic Zm9vOmJhcg=="},
    ],
    ids=["wrong-x-api-key", "no-credentials", "wrong-bearer", "basic-auth"],
)
async def test_bad_credentials_get_401_and_nothing_goes_upstream(gateway: ModelGateway, fake_upstream, headers) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-auth", POLICY)
    status, _, raw = await post(channel.socket_path, None, headers=headers)
    assert status == 401
    body = json.loads(raw)
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert fake.calls == [] and fake.requests == []
    assert channel.usage.rejected == 1 and channel.usage.requests == 0


async def test_right_key_with_wrong_bearer_is_refused(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-mixed", POLICY)
    status, _, _ = await post(channel.socket_path, channel.token, headers={"authorization": "Bearer agv-other"})
    assert status == 401 and fake.calls == []


async def test_another_jobs_token_is_refused(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    a = await gateway.open_job("job-a", POLICY)
    b = await gateway.open_job("job-b", POLICY)
    assert a.token != b.token and a.socket_path != b.socket_path
    status, _, _ = await post(b.socket_path, a.token)
    assert status == 401 and fake.calls == []


async def test_close_job_revokes_token_and_removes_socket(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    closing = await gateway.open_job("job-closing", POLICY)
    other = await gateway.open_job("job-other", POLICY)
    token, socket_path = closing.token, closing.socket_path
    assert (await post(socket_path, token))[0] == 200
    usage = await gateway.close_job("job-closing")
    assert usage.requests == 1 and usage.output_tokens > 0
    assert not socket_path.exists() and not socket_path.parent.exists()
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(socket_path, token)
    # The revoked token is worth nothing anywhere else either.
    status, _, raw = await post(other.socket_path, token)
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
    assert len(fake.calls) == 1
    with pytest.raises(KeyError):
        await gateway.close_job("job-closing")
    # The same job may get a new channel later (a resumed job), with a new token.
    again = await gateway.open_job("job-closing", POLICY)
    assert again.token != token
    assert (await post(again.socket_path, token))[0] == 401
    assert (await post(again.socket_path, again.token))[0] == 200


async def test_revoked_token_on_a_kept_alive_connection(gateway: ModelGateway, fake_upstream) -> None:
    """A connection opened before close_job cannot carry another request after it."""
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-keepalive", POLICY)
    async with unix_session(channel.socket_path) as s:
        h = dict(HEADERS, **{"x-api-key": channel.token})
        async with s.post("http://gateway/v1/messages", json=BODY, headers=h) as r:
            assert r.status == 200
            await r.read()
        await gateway.close_job("job-keepalive")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with s.post("http://gateway/v1/messages", json=BODY, headers=h) as r:
                assert r.status == 401  # if the server still answered, it must refuse
                raise aiohttp.ClientConnectionError("answered 401")
    assert len(fake.calls) == 1


async def test_socket_permissions_and_layout(gateway: ModelGateway, socket_dir: Path) -> None:
    channel = await gateway.open_job("job-perms", POLICY)
    assert channel.socket_path == socket_dir / "job-perms" / "model.sock"
    assert stat.S_ISSOCK(channel.socket_path.stat().st_mode)
    assert stat.S_IMODE(channel.socket_path.stat().st_mode) == 0o666
    assert stat.S_IMODE(channel.socket_path.parent.stat().st_mode) == 0o711
    assert len(channel.token) > 40 and channel.token not in repr(channel)
    assert UPSTREAM_KEY not in repr(gateway)


async def test_open_job_rejects_duplicates_and_bad_ids(gateway: ModelGateway) -> None:
    await gateway.open_job("job-dup", POLICY)
    with pytest.raises(ValueError):
        await gateway.open_job("job-dup", POLICY)
    for bad in ("../etc", "a/b", "", "x" * 65, ".hidden"):
        with pytest.raises(ValueError):
            await gateway.open_job(bad, POLICY)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/complete"), ("POST", "/v1/files"), ("GET", "/v1/messages"),
     ("POST", "/v1/messages/batches"), ("POST", "/api/oauth/token"), ("POST", "/v1/messages/../../admin")],
)
async def test_paths_outside_the_allow_list_get_404(gateway: ModelGateway, fake_upstream, method, path) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-paths", POLICY)
    status, _, raw = await post(channel.socket_path, channel.token, path=path, method=method)
    assert status == 404 and json.loads(raw)["error"]["type"] == "not_found_error"
    assert fake.calls == []


async def test_connectivity_probe_is_answered_locally(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    channel = await gateway.open_job("job-probe", POLICY)
    async with unix_session(channel.socket_path) as s:
        async with s.head("http://gateway/api/hello") as r:
            assert r.status == 200
    assert fake.calls == []


async def test_count_tokens_and_non_streaming(gateway: ModelGateway, fake_upstream) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="Plain JSON answer.")]
    channel = await gateway.open_job("job-json", POLICY)
    status, _, raw = await post(channel.socket_path, channel.token, {k: v for k, v in BODY.items() if k != "max_tokens"},
                                path="/v1/messages/count_tokens?beta=true")
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    assert channel.usage.input_tokens == 0  # counting is not spending
    status, _, raw = await post(channel.socket_path, channel.token, dict(BODY, stream=False))
    message = json.loads(raw)
    assert status == 200 and message["content"][0]["text"] == "Plain JSON answer."
    assert channel.usage.input_tokens == message["usage"]["input_tokens"]
    assert channel.usage.output_tokens == message["usage"]["output_tokens"]
    assert channel.usage.requests == 2


@pytest.mark.parametrize("status", [529, 500, 429, 401, 400])
async def test_upstream_errors_pass_through_unchanged(gateway: ModelGateway, fake_upstream, status) -> None:
    fake, _ = fake_upstream
    body = {"type": "error", "error": {"type": "custom_error", "message": f"upstream said {status}"}, "request_id": "req_x"}
    fake.inject_error(status, body=body)
    channel = await gateway.open_job("job-err", POLICY)
    got_status, headers, raw = await post(channel.socket_path, channel.token)
    assert got_status == status and json.loads(raw) == body
    assert headers.get("request-id") == "req_x"
    if status in (429, 529):
        assert headers.get("retry-after") == "0"
    assert channel.usage.upstream_errors == 1 and channel.usage.requests == 1


async def test_upstream_unreachable_gives_502(socket_dir: Path) -> None:
    gw = ModelGateway("http://127.0.0.1:9", UPSTREAM_KEY, socket_dir=socket_dir)
    try:
        channel = await gw.open_job("job-down", POLICY)
        status, _, raw = await post(channel.socket_path, channel.token)
        assert status == 502 and json.loads(raw)["type"] == "error"
    finally:
        await gw.close()


async def test_sse_is_streamed_without_buffering(socket_dir: Path) -> None:
    """The first event reaches the client while upstream is still holding back the rest."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}\n\n')
        await asyncio.wait_for(release.wait(), 10)
        await resp.write(b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":42}}\n\n')
        await resp.write(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return resp

    async with upstream(slow) as url:
        gw = ModelGateway(url, UPSTREAM_KEY, socket_dir=socket_dir)
        try:
            channel = await gw.open_job("job-slow", POLICY)
            async with unix_session(channel.socket_path) as s:
                h = dict(HEADERS, **{"x-api-key": channel.token})
                async with s.post("http://gateway/v1/messages", json=BODY, headers=h) as r:
                    started = time.monotonic()
                    first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
                    assert b"message_start" in first and time.monotonic() - started < 2
                    # Usage is counted live, before the stream ends.
                    assert channel.usage.input_tokens == 7 and channel.usage.output_tokens == 1
                    release.set()
                    rest = await r.read()
            assert b"message_stop" in rest
            assert channel.usage.output_tokens == 42 and channel.usage.input_tokens == 7
        finally:
            release.set()
            await gw.close()


async def test_real_key_echoed_by_upstream_never_reaches_the_client(socket_dir: Path) -> None:
    async def leaky(request: web.Request) -> web.StreamResponse:
        key = request.headers["x-api-key"]
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": f"req_{key}"})
        await resp.prepare(request)
        # The key split across writes, and whole.
        await resp.write(f"data: {{\"k\": \"{key[:5]}".encode())
        await asyncio.sleep(0.05)
        await resp.write(f"{key[5:]}\", \"again\": \"{key}\"}}\n\n".encode())
        return resp

    async with upstream(leaky) as url:
        gw = ModelGateway(url, UPSTREAM_KEY, socket_dir=socket_dir)
        try:
            channel = await gw.open_job("job-leak", POLICY)
            status, headers, raw = await post(channel.socket_path, channel.token)
            assert status == 200
            assert UPSTREAM_KEY.encode() not in raw and raw.count(b"[REDACTED]") == 2
            assert UPSTREAM_KEY not in str(list(headers.items())) and "request-id" not in {k.lower() for k in headers}
        finally:
            await gw.close()


def test_redactor_holds_back_only_a_possible_prefix() -> None:
    r = _Redactor(b"sk-secret")
    assert r.feed(b"event: x\n\n") == b"event: x\n\n"  # nothing held back
    assert r.feed(b"abc sk-se") == b"abc "
    assert r.feed(b"cret and sk") == b"[REDACTED] and "
    assert r.feed(b"ip") == b"skip"
    assert r.feed(b"s") == b""
    assert r.flush() == b"s"


async def test_close_is_idempotent_and_closes_every_job(fake_upstream, socket_dir: Path) -> None:
    _, url = fake_upstream
    gw = ModelGateway(url, UPSTREAM_KEY, socket_dir=socket_dir)
    a = await gw.open_job("job-1", POLICY)
    b = await gw.open_job("job-2", POLICY)
    await gw.close()
    await gw.close()
    assert not a.socket_path.exists() and not b.socket_path.exists() and gw.open_jobs == []


async def test_own_client_session_with_fake_on_unix_socket(tmp_path: Path, socket_dir: Path) -> None:
    """The fake can listen on a Unix socket too; the gateway accepts a caller's session."""
    from app.fakes.model_api import serve_fake_model_api

    fake = FakeModelAPI([ScriptedTurn(text="over unix")], api_key=UPSTREAM_KEY)
    async with serve_fake_model_api(fake, unix_path=socket_dir / "fake.sock") as running:
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(running.socket_path)))
        gw = ModelGateway("http://fake-upstream", UPSTREAM_KEY, socket_dir=socket_dir / "jobs", session=session)
        try:
            channel = await gw.open_job("job-u", POLICY)
            status, _, raw = await post(channel.socket_path, channel.token)
            assert status == 200 and b"over unix" in raw
        finally:
            await gw.close()
            assert not session.closed  # not ours to close
            await session.close()


async def test_close_job_cuts_a_stream_in_flight(fake_upstream, socket_dir: Path) -> None:
    fake, url = fake_upstream
    fake.script = [ScriptedTurn(text="slow", delay_seconds=30)]
    gw = ModelGateway(url, UPSTREAM_KEY, socket_dir=socket_dir, shutdown_timeout=0.5)
    try:
        channel = await gw.open_job("job-inflight", POLICY)
        async with unix_session(channel.socket_path) as s:
            h = dict(HEADERS, **{"x-api-key": channel.token})
            async with s.post("http://gateway/v1/messages", json=BODY, headers=h) as r:
                await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)  # message_start is through
                started = time.monotonic()
                usage = await gw.close_job("job-inflight")
                assert time.monotonic() - started < 5
                with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.IncompleteReadError)):
                    await asyncio.wait_for(r.read(), 5)
        assert usage.requests == 1 and usage.input_tokens > 0  # counted from message_start
    finally:
        await gw.close()
