"""A fake Anthropic Messages API that plays a script, so the *real* Claude Code CLI does real work.

It speaks the same wire format as https://api.anthropic.com: `POST /v1/messages` with
`stream: true` answers real server-sent events (`message_start`, `ping`, `content_block_*`
with `text_delta` / `input_json_delta`, `message_delta` with `usage`, `message_stop`); without
`stream` it answers one JSON message; `POST /v1/messages/count_tokens` answers
`{"input_tokens": n}`; `GET /v1/models` lists `MODELS` (the Models API's `ModelInfo` objects, newest
first, paginated by `limit` / `after_id` / `before_id`: what `agentvine doctor` asks to learn
whether a key is accepted). Errors have Anthropic's shape
(`{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`).

Main loop vs side requests (see docs/model-gateway.md): a `/v1/messages` request is an agent
turn when it offers tools (`tools` is a non-empty list) and `max_tokens > 1`. Everything else (no
tools: title / summary / topic / compaction prompts; `max_tokens <= 1`: quota probes) is a *side
request*: it gets a short text and consumes nothing. An agent turn whose system prompt carries
Claude Code's `cc_is_subagent=true` marker comes from a subagent (the `Agent` tool) and takes the
next turn of `subagent_script`; any other agent turn takes the next turn of `script`. When a
script is exhausted, each further turn answers `Done.`.

Run it standalone (demo mode):  python -m app.fakes.model_api --port 8123 --script script.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sk-ant-fake-upstream-key"
SIDE_REQUEST_TEXT = "OK"
EXHAUSTED_TEXT = "Done."

# Error type per HTTP status, as the real API names them.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_B62 = string.ascii_letters + string.digits

# What `GET /v1/models` lists, newest first, as the Models API does (id, created_at, display_name, type).
MODELS: tuple[dict[str, str], ...] = (
    {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5",
     "created_at": "2025-10-01T00:00:00Z"},
    {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
     "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-opus-4-1-20250805", "display_name": "Claude Opus 4.1",
     "created_at": "2025-08-05T00:00:00Z"},
)


def _rand_id(prefix: str, n: int = 24) -> str:
    return prefix + "01" + "".join(secrets.choice(_B62) for _ in range(n - 2))


def error_body(status: int, message: str | None = None, *, error_type: str | None = None) -> dict[str, Any]:
    """An error body in the shape the Anthropic API uses."""
    etype = error_type or ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": message or etype.replace("_", " ").capitalize()},
        "request_id": _rand_id("req_"),
    }


class ToolUse(BaseModel):
    """One `tool_use` block the fake model emits, e.g. `ToolUse(name="Write", input={...})`."""

    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None  # generated (toolu_01...) when not given


class ScriptedTurn(BaseModel):
    """One assistant turn of the main conversation: optional text, then tool uses."""

    text: str | None = None
    tool_uses: list[ToolUse] = Field(default_factory=list)
    # Seconds to wait after the message_start event (to test timeouts and cancellation).
    delay_seconds: float = 0.0


@dataclass
class RecordedCall:
    method: str
    path: str  # path and query string as received, e.g. "/v1/messages?beta=true"
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw text, or None
    kind: str  # "main", "subagent", "side", "count_tokens", "models", "error", "unauthorized", "probe", "unknown"
    turn_index: int | None = None  # which scripted turn answered (main requests)
    status: int = 200


@dataclass
class _InjectedError:
    status: int
    remaining: int
    body: dict[str, Any] | None
    headers: dict[str, str]


SUBAGENT_MARKER = "cc_is_subagent=true"


def is_main_loop_request(body: dict[str, Any]) -> bool:
    """True when a `/v1/messages` body is a turn of an agent loop (see the module docstring)."""
    tools = body.get("tools")
    max_tokens = body.get("max_tokens")
    return bool(tools) and isinstance(tools, list) and isinstance(max_tokens, int) and max_tokens > 1


def is_subagent_request(body: dict[str, Any]) -> bool:
    """True when the system prompt carries Claude Code's subagent marker (billing header block)."""
    system = body.get("system")
    if isinstance(system, str):
        return SUBAGENT_MARKER in system
    if isinstance(system, list):
        return any(isinstance(b, dict) and SUBAGENT_MARKER in str(b.get("text", "")) for b in system)
    return False


def _estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, math.ceil(len(text) / 4))


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeModelAPI:
    """The fake.

    `requests`: every JSON body that reached `POST /v1/messages` with a valid key and an
    `anthropic-version` (agent turns, side requests, and those answered with an injected error),
    in order. `calls`: every request of any kind, with its `kind` and status. `main_requests`:
    bodies of the main agent loop's turns. `tool_results()`: the `tool_result` blocks in the last
    of those (the CLI resends the whole history each turn).
    """

    def __init__(
        self,
        script: list[ScriptedTurn] | None = None,
        *,
        api_key: str = DEFAULT_API_KEY,
        subagent_script: list[ScriptedTurn] | None = None,
        respond: Callable[[dict[str, Any]], ScriptedTurn] | None = None,
    ) -> None:
        # `respond`, when given, answers each main-loop turn from the request alone, as the real API does
        # (it keeps no state between requests): for many conversations at once, where one script's order
        # would hand one job's turns to another.
        self.respond = respond
        self.script: list[ScriptedTurn] = list(script or [])
        self.subagent_script: list[ScriptedTurn] = list(subagent_script or [])
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.calls: list[RecordedCall] = []
        self.unknown_calls: list[RecordedCall] = []
        self.turns_played = 0
        self.subagent_turns_played = 0
        self._errors: list[_InjectedError] = []

    # ----------------------------------------------------------------- test helpers
    def inject_error(
        self, status: int, times: int = 1, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        """The next `times` `/v1/messages` requests (main or side) fail with `status`.

        `body` defaults to Anthropic's error shape for the status. 429 and 529 carry
        `retry-after: 0` / `retry-after-ms: 1` unless `headers` says otherwise (Claude Code 2.1.330
        backs off ~0.5 s, 1 s, 2 s, ... regardless; bound it with CLAUDE_CODE_MAX_RETRIES).
        500 and 529 carry `x-should-retry: true`. Injected errors never consume the script.
        """
        if headers is None:
            headers = {"retry-after": "0", "retry-after-ms": "1"} if status in (429, 529) else {}
        self._errors.append(_InjectedError(status, times, body, dict(headers)))

    def add_turns(self, *turns: ScriptedTurn) -> None:
        self.script.extend(turns)

    @property
    def main_requests(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.kind == "main"]

    def tool_results(self) -> list[dict[str, Any]]:
        """Every `tool_result` block in the last main-loop request (the whole history is resent)."""
        mains = self.main_requests
        if not mains:
            return []
        out = []
        for msg in mains[-1].get("messages", []):
            content = msg.get("content")
            if msg.get("role") == "user" and isinstance(content, list):
                out.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return out

    # ----------------------------------------------------------------- app
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        # Claude Code's connectivity probe (only sent without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC).
        app.router.add_get("/api/hello", self._hello)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def _record(self, request: web.Request, body: Any, kind: str, **kw: Any) -> RecordedCall:
        call = RecordedCall(request.method, request.path_qs, dict(request.headers), body, kind, **kw)
        self.calls.append(call)
        return call

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        return given is not None and secrets.compare_digest(given.encode(), self.api_key.encode())

    async def _read_json(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace"), self._error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return body, self._error(400, "Request body must be a JSON object")
        return body, None

    @staticmethod
    def _error(status: int, message: str | None = None, body: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
        payload = body if body is not None else error_body(status, message)
        resp = web.json_response(payload, status=status, headers=headers)
        if isinstance(payload, dict) and payload.get("request_id"):
            resp.headers["request-id"] = payload["request_id"]
        if status in (500, 529):
            resp.headers.setdefault("x-should-retry", "true")
        return resp

    def _check_common(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        return None

    async def _hello(self, request: web.Request) -> web.Response:
        self._record(request, None, "probe")
        return web.Response(status=200)

    async def _unknown(self, request: web.Request) -> web.Response:
        raw = await request.read()
        call = self._record(request, raw.decode("utf-8", "replace")[:2000] or None, "unknown", status=404)
        self.unknown_calls.append(call)
        log.warning("FAKE MODEL API: unknown request %s %s (answered 404)", request.method, request.path_qs)
        return self._error(404, f"Not found: {request.method} {request.path}")

    async def _models(self, request: web.Request) -> web.Response:
        failure = self._check_common(request)
        if failure is None:
            page, failure = _models_page(request.query)
        if failure is not None:
            self._record(request, None, "unauthorized" if failure.status == 401 else "error", status=failure.status)
            return failure
        self._record(request, None, "models")
        return web.json_response(page, headers={"request-id": _rand_id("req_")})

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body, bad = await self._read_json(request)
        failure = bad or self._check_common(request)
        self._record(request, body, "count_tokens", status=failure.status if failure else 200)
        if failure:
            return failure
        counted = {k: body.get(k) for k in ("system", "messages", "tools") if body.get(k)}
        return web.json_response({"input_tokens": _estimate_tokens(counted)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._read_json(request)
        if bad is not None:
            self._record(request, body, "error", status=400)
            return bad
        failure = self._check_common(request)
        if failure is not None:
            self._record(request, body, "unauthorized" if failure.status == 401 else "error", status=failure.status)
            return failure
        self.requests.append(body)
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            self._record(request, body, "error", status=400)
            return self._error(400, f"{missing[0]}: Field required")
        if self._errors:
            inj = self._errors[0]
            inj.remaining -= 1
            if inj.remaining <= 0:
                self._errors.pop(0)
            self._record(request, body, "error", status=inj.status)
            return self._error(inj.status, body=inj.body, headers=inj.headers)

        if is_main_loop_request(body) and is_subagent_request(body):
            idx = self.subagent_turns_played
            self.subagent_turns_played += 1
            played = idx < len(self.subagent_script)
            turn = self.subagent_script[idx] if played else ScriptedTurn(text=EXHAUSTED_TEXT)
            self._record(request, body, "subagent", turn_index=idx if played else None)
        elif is_main_loop_request(body) and self.respond is not None:
            self.turns_played += 1
            turn = self.respond(body)
            self._record(request, body, "main", turn_index=None)
        elif is_main_loop_request(body):
            idx = self.turns_played
            self.turns_played += 1
            played = idx < len(self.script)
            turn = self.script[idx] if played else ScriptedTurn(text=EXHAUSTED_TEXT)
            self._record(request, body, "main", turn_index=idx if played else None)
        else:
            turn = ScriptedTurn(text=SIDE_REQUEST_TEXT)
            self._record(request, body, "side")

        blocks: list[dict[str, Any]] = []
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        for tu in turn.tool_uses:
            blocks.append({"type": "tool_use", "id": tu.id or _rand_id("toolu_"), "name": tu.name, "input": tu.input})
        if not blocks:
            blocks.append({"type": "text", "text": ""})
        stop_reason = "tool_use" if turn.tool_uses else "end_turn"
        input_tokens = _estimate_tokens({k: body.get(k) for k in ("system", "messages", "tools") if body.get(k)})
        output_tokens = _estimate_tokens(blocks)
        message = {
            "id": _rand_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(input_tokens, output_tokens),
        }
        if not body.get("stream"):
            if turn.delay_seconds:
                await asyncio.sleep(turn.delay_seconds)
            return web.json_response(message, headers={"request-id": _rand_id("req_")})
        return await self._stream(request, message, turn.delay_seconds)

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    async def _stream(self, request: web.Request, message: dict[str, Any], delay: float) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "request-id": _rand_id("req_"),
            }
        )
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())

        usage = message["usage"]
        start = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=dict(usage, output_tokens=1))
        await send("message_start", {"type": "message_start", "message": start})
        await send("ping", {"type": "ping"})
        if delay:
            await asyncio.sleep(delay)
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                for piece in _chunks(block["text"], 24):
                    await send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}})
            else:
                start_block = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": start_block})
                # Like the real API: an empty first fragment, then the JSON in pieces.
                for piece in ["", *_chunks(json.dumps(block["input"], ensure_ascii=False), 40)]:
                    await send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}})
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                             "cache_read_input_tokens", "output_tokens")},
        })
        await send("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp


def _models_page(query: Any) -> tuple[dict[str, Any], web.Response | None]:
    """One page of `MODELS` for the Models API's `limit` (1-1000, default 20), `after_id` and `before_id`."""
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return {}, FakeModelAPI._error(400, "limit: Input should be between 1 and 1000")
    ids = [m["id"] for m in MODELS]
    for name in ("after_id", "before_id"):
        if name in query and query[name] not in ids:
            return {}, FakeModelAPI._error(404, f"{name}: model {query[name]!r} not found")
    window = list(MODELS)
    if "before_id" in query:
        window = window[: ids.index(query["before_id"])]
    if "after_id" in query:
        window = [m for m in window if ids.index(m["id"]) > ids.index(query["after_id"])]
    # before_id pages backwards: the `limit` models just before it; has_more says whether more lie that way.
    data = window[-limit:] if "before_id" in query else window[:limit]
    page = {"data": data, "has_more": len(window) > len(data),
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
    return page, None


# --------------------------------------------------------------------- running it
@dataclass
class RunningFake:
    fake: FakeModelAPI
    runner: web.AppRunner
    url: str | None = None  # http://127.0.0.1:<port> when on TCP
    socket_path: Path | None = None  # when on a Unix socket
    port: int | None = None


@contextlib.asynccontextmanager
async def serve_fake_model_api(
    fake: FakeModelAPI, *, host: str = "127.0.0.1", port: int = 0, unix_path: str | os.PathLike[str] | None = None
) -> AsyncIterator[RunningFake]:
    """Run `fake` on a TCP port (0 = any free port) or, with `unix_path`, on a Unix socket."""
    # handler_cancellation: a delayed turn stops when its client goes away (as a real server would).
    runner = web.AppRunner(fake.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        if unix_path is not None:
            site: web.BaseSite = web.UnixSite(runner, str(unix_path))
            await site.start()
            yield RunningFake(fake, runner, socket_path=Path(unix_path))
        else:
            site = web.TCPSite(runner, host, port)
            await site.start()
            server = site._server  # noqa: SLF001 - the only way to learn the bound port
            bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
            yield RunningFake(fake, runner, url=f"http://{host}:{bound}", port=bound)
    finally:
        await runner.cleanup()


def load_script(path: str | os.PathLike[str]) -> list[ScriptedTurn]:
    """A JSON file holding a list of turns: [{"text": ..., "tool_uses": [{"name": ..., "input": {...}}]}]."""
    data = json.loads(Path(path).read_text())
    return [ScriptedTurn.model_validate(t) for t in data]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Anthropic Messages API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--unix", help="listen on this Unix socket instead of TCP")
    parser.add_argument("--script", help="JSON file with the scripted turns")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    fake = FakeModelAPI(load_script(args.script) if args.script else [], api_key=args.api_key)
    if args.unix:
        web.run_app(fake.make_app(), path=args.unix)
    else:
        web.run_app(fake.make_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
