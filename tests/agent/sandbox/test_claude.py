"""The real Claude Code CLI in the real sandbox, talking through the gateway socket to a tiny
host-side stand-in for the Anthropic Messages API (just enough for these tests; the project's
full fake lives elsewhere)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from app.agent.sandbox import SandboxSpec, run_sandbox
from app.agent.sandbox.layout import PINNED

pytestmark = [pytest.mark.docker, pytest.mark.claude]

MODEL = "claude-sonnet-4-5"
TOKEN = "avjob-test-token-0123456789"


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: object


@dataclass
class MiniModelAPI:
    """Plays ``turns`` in order: each is ``("text", str)`` or ``("tool", name, input)``."""

    turns: list[tuple] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    _n: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app

    def _record(self, request: web.Request, body) -> None:
        self.calls.append(Call(request.method, request.path_qs, dict(request.headers), body))

    async def count_tokens(self, request: web.Request) -> web.Response:
        self._record(request, await request.json())
        return web.json_response({"input_tokens": 42})

    async def other(self, request: web.Request) -> web.Response:
        self._record(request, (await request.read()).decode(errors="replace"))
        return web.json_response(
            {"type": "error", "error": {"type": "not_found_error", "message": "not here"}},
            status=404)

    def _next_turn(self) -> tuple:
        turn = self.turns[self._n] if self._n < len(self.turns) else ("text", "done")
        self._n += 1
        return turn

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        turn = self._next_turn()
        model = body.get("model", MODEL)
        msg_id = f"msg_{len(self.calls):04d}"
        if turn[0] == "text":
            block = {"type": "text", "text": turn[1]}
            stop = "end_turn"
        else:
            block = {"type": "tool_use", "id": f"toolu_{len(self.calls):04d}", "name": turn[1],
                     "input": turn[2]}
            stop = "tool_use"
        usage = {"input_tokens": 100, "output_tokens": 10}
        if not body.get("stream"):
            return web.json_response({
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage,
            })
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(_sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 1}}}))
        if block["type"] == "text":
            await resp.write(_sse("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}))
            await resp.write(_sse("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            await resp.write(_sse("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                  "input": {}}}))
            await resp.write(_sse("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta",
                          "partial_json": json.dumps(block["input"])}}))
        await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        await resp.write(_sse("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 10}}))
        await resp.write(_sse("message_stop", {"type": "message_stop"}))
        await resp.write_eof()
        return resp

    def summary(self) -> str:
        out = []
        for c in self.calls:
            keys = sorted(c.body) if isinstance(c.body, dict) else type(c.body).__name__
            hdrs = {k: v for k, v in c.headers.items()
                    if k.lower() in ("x-api-key", "authorization", "anthropic-version",
                                     "anthropic-beta", "user-agent", "x-app")}
            out.append(f"{c.method} {c.path} headers={hdrs} body_keys={keys}")
        return "\n".join(out)


@pytest.fixture
async def model_api(short_tmp):
    api = MiniModelAPI()
    runner = web.AppRunner(api.app())
    await runner.setup()
    sock = short_tmp / "gateway.sock"
    site = web.UnixSite(runner, str(sock))
    await site.start()
    api.socket = sock  # type: ignore[attr-defined]
    yield api
    await runner.cleanup()


def claude_cmd(prompt: str, *extra: str, max_turns: int = 1) -> list[str]:
    return ["claude", "-p", prompt, "--output-format", "stream-json", "--verbose",
            "--model", MODEL, "--max-turns", str(max_turns),
            "--permission-mode", "bypassPermissions", *extra]


def claude_spec(image, job_id, dirs, api, command) -> SandboxSpec:
    ws, home = dirs
    return SandboxSpec(job_id=job_id, image=image, command=command, workspace=ws, home=home,
                       gateway_socket=api.socket, env={"ANTHROPIC_API_KEY": TOKEN},
                       timeout_s=120)


async def run_claude(image, job_id, dirs, api, command) -> tuple[list[dict], object]:
    events: list[dict] = []
    raw: list[str] = []

    def on_line(line: str) -> None:
        raw.append(line)
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"type": "<not json>", "line": line})

    res = await run_sandbox(claude_spec(image, job_id, dirs, api, command), on_line)
    assert res.exit_code == 0, f"exit {res.exit_code}; stderr: {res.stderr_tail}\n" + \
        "\n".join(raw[-5:])
    return events, res


async def test_claude_version_as_uid_1000(sandbox_image, job_id, job_dirs):
    lines: list[str] = []
    ws, home = job_dirs
    res = await run_sandbox(SandboxSpec(job_id=job_id, image=sandbox_image,
                                        command=["sh", "-c", "id -u; claude --version"],
                                        workspace=ws, home=home, timeout_s=60), lines.append)
    assert res.exit_code == 0, res.stderr_tail
    assert lines == ["1000", f"{PINNED} (Claude Code)"]


async def test_claude_print_mode_through_gateway_socket(sandbox_image, job_id, job_dirs,
                                                        model_api):
    model_api.turns = [("text", "Hello from the fake model")]
    events, res = await run_claude(sandbox_image, job_id, job_dirs, model_api,
                                   claude_cmd("hi"))
    print("\nCLI requests:\n" + model_api.summary())
    types = [e.get("type") for e in events]
    assert types[0] == "system" and events[0]["subtype"] == "init"
    assert events[0]["model"] == MODEL
    assert events[0]["permissionMode"] == "bypassPermissions"
    assert events[0]["apiKeySource"] == "ANTHROPIC_API_KEY"
    assert "assistant" in types
    result = events[-1]
    assert result["type"] == "result", events
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "Hello from the fake model"
    assert result["num_turns"] == 1
    assert result["session_id"] == events[0]["session_id"]
    for key in ("total_cost_usd", "usage", "duration_ms"):
        assert key in result

    # What the CLI sent: one streaming Messages request, authenticated with x-api-key.
    msgs = [c for c in model_api.calls if c.path.startswith("/v1/messages")]
    assert msgs, model_api.summary()
    first = msgs[0]
    assert first.method == "POST"
    assert first.path in ("/v1/messages", "/v1/messages?beta=true")
    assert first.headers.get("x-api-key") == TOKEN
    assert "authorization" not in {k.lower() for k in first.headers}
    assert first.headers.get("anthropic-version") == "2023-06-01"
    assert first.body["model"] == MODEL
    assert first.body["stream"] is True
    assert {"messages", "system", "tools", "max_tokens"} <= set(first.body)
    unknown = [c for c in model_api.calls if not c.path.startswith("/v1/messages")]
    assert unknown == [], model_api.summary()


async def test_claude_runs_tools_and_resumes_session(sandbox_image, job_id, job_dirs,
                                                     model_api):
    """Bash, Write, Read and Edit work in the read-only sandbox; the session survives for --resume."""
    ws, home = job_dirs
    (ws / "README.md").write_text("# demo\nneedle in a haystack\n")
    model_api.turns = [
        ("tool", "Bash", {"command": "echo made-by-agent > created.txt && git --version",
                          "description": "make a file"}),
        ("tool", "Write", {"file_path": "/workspace/written.txt", "content": "via Write\n"}),
        ("tool", "Read", {"file_path": "/workspace/README.md"}),
        ("tool", "Edit", {"file_path": "/workspace/README.md", "old_string": "needle",
                          "new_string": "pin"}),
        ("text", "All done."),
    ]
    events, _ = await run_claude(sandbox_image, job_id, job_dirs, model_api,
                                 claude_cmd("do things", max_turns=10))
    print("\nCLI requests:\n" + model_api.summary())
    result = events[-1]
    assert result["type"] == "result" and result["subtype"] == "success", result
    assert result["result"] == "All done."
    session_id = result["session_id"]

    assert (ws / "created.txt").read_text() == "made-by-agent\n"
    assert (ws / "written.txt").read_text() == "via Write\n"
    tool_results = [b for e in events if e.get("type") == "user"
                    for b in e["message"]["content"] if b.get("type") == "tool_result"]
    assert len(tool_results) == 4
    texts = [json.dumps(b["content"]) for b in tool_results]
    assert "git version" in texts[0]
    assert not any(b.get("is_error") for b in tool_results), texts
    assert "needle in a haystack" in texts[2]
    assert (ws / "README.md").read_text() == "# demo\npin in a haystack\n"

    # The session is on the host, in the job's home ...
    assert list(home.glob(f".claude/projects/*/{session_id}.jsonl"))
    # ... so a new container resumes it: the model sees the earlier conversation.
    n_before = len(model_api.calls)
    model_api.turns.append(("text", "Resumed."))
    events2, _ = await run_claude(sandbox_image, job_id + "-r", job_dirs, model_api,
                                  claude_cmd("and now?", "--resume", session_id))
    assert events2[-1]["type"] == "result" and events2[-1]["result"] == "Resumed."
    resumed = model_api.calls[n_before]
    assert "created.txt" in json.dumps(resumed.body["messages"])
    assert "and now?" in json.dumps(resumed.body["messages"])
