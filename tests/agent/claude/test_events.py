"""parse_line / describe_activity on real transcripts (tests/support/claude_streams, captured from Claude
Code 2.1.330 against the fake) and on garbage."""

from __future__ import annotations

import json

import pytest

from app.agent.claude.events import (
    RAW_LIMIT,
    ApiRetry,
    AssistantMessage,
    ParseError,
    PermissionDenied,
    Result,
    SystemEvent,
    SystemInit,
    TextBlock,
    ToolUseBlock,
    Unknown,
    UserMessage,
    describe_activity,
    parse_line,
)
from tests.support.model import FIXTURES, load_fixture_lines


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonl")))
def test_every_fixture_line_parses(name: str) -> None:
    events = [parse_line(line) for line in load_fixture_lines(name)]
    assert events and all(e is not None for e in events)
    assert not [e for e in events if isinstance(e, (ParseError, Unknown))]
    assert isinstance(events[0], SystemInit)
    assert isinstance(events[-1], Result)


def test_write_bash_edit_read_transcript() -> None:
    events = [parse_line(line) for line in load_fixture_lines("stream_write_bash_edit_read.jsonl")]
    init = events[0]
    assert isinstance(init, SystemInit)
    assert init.model == "claude-sonnet-4-5" and init.permission_mode == "bypassPermissions"
    assert {"Bash", "Edit", "Read", "Write"} <= set(init.tools)
    assert init.cwd and init.session_id and init.claude_code_version == "2.1.330"
    assert [type(e).__name__ for e in events] == [
        "SystemInit",
        "AssistantMessage", "AssistantMessage", "UserMessage",  # text, Write, its result
        "AssistantMessage", "UserMessage",  # Bash
        "AssistantMessage", "UserMessage",  # Edit
        "AssistantMessage", "UserMessage",  # Read
        "AssistantMessage", "Result",
    ]
    assistants = [e for e in events if isinstance(e, AssistantMessage)]
    assert isinstance(assistants[0].message.content[0], TextBlock)
    assert assistants[0].text == "I'll create the module." and assistants[0].tool_uses == []
    # One content block per line; the text and the Write share the API message id.
    assert assistants[0].message.id == assistants[1].message.id
    write = assistants[1].tool_uses[0]
    assert isinstance(write, ToolUseBlock) and write.name == "Write"
    assert write.input == {"file_path": "hello.py", "content": "print('hi')\n"}
    results = [r for e in events if isinstance(e, UserMessage) for r in e.tool_results]
    assert [r.tool_use_id for r in results] == [a.tool_uses[0].id for a in assistants[1:5]]
    assert results[1].text == "hi" and not results[1].is_error  # python3 hello.py
    assert [describe_activity(e, cwd=init.cwd) for e in assistants] == [
        None, "Wrote `hello.py`", "Ran `python3 hello.py`", "Edited `hello.py`", "Read `hello.py`", None,
    ]
    result = events[-1]
    assert isinstance(result, Result)
    assert result.ok and result.subtype == "success" and not result.is_error
    assert result.num_turns == 5 and result.result == "Created hello.py; it prints hello."
    assert result.session_id == init.session_id
    assert result.total_cost_usd > 0 and result.duration_ms > 0 and result.duration_api_ms > 0
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.terminal_reason == "completed" and result.permission_denials == []


def test_max_turns_transcript() -> None:
    result = parse_line(load_fixture_lines("stream_max_turns.jsonl")[-1])
    assert isinstance(result, Result)
    assert result.subtype == "error_max_turns" and result.is_error and not result.ok
    assert result.result is None and result.errors == ["Reached maximum number of turns (1)"]
    assert result.terminal_reason == "max_turns"


def test_api_error_transcript() -> None:
    events = [parse_line(line) for line in load_fixture_lines("stream_api_error_401.jsonl")]
    retry = events[1]
    assert isinstance(retry, ApiRetry) and retry.error_status == 401 and retry.attempt == 1
    assert describe_activity(retry) == "Model API error (401), retrying (1/1)"
    result = events[-1]
    # An API failure still says subtype "success": is_error is what tells.
    assert isinstance(result, Result) and result.subtype == "success" and result.is_error and not result.ok
    assert result.api_error_status == 401 and result.terminal_reason == "api_error"


def test_permission_denied_transcript() -> None:
    events = [parse_line(line) for line in load_fixture_lines("stream_permission_denied.jsonl")]
    denied = next(e for e in events if isinstance(e, PermissionDenied))
    assert denied.tool_name == "Bash" and denied.tool_use_id
    assert describe_activity(denied) == "Was not allowed to use `Bash`"
    result = events[-1]
    assert isinstance(result, Result) and result.ok
    assert [d.tool_name for d in result.permission_denials] == ["Bash"]
    assert result.permission_denials[0].tool_input == {"command": "echo hi > b.txt"}


def test_subagent_transcript_has_two_results() -> None:
    """With a background subagent the CLI prints a second init and a second result: read to EOF."""
    events = [parse_line(line) for line in load_fixture_lines("stream_subagent.jsonl")]
    assert sum(isinstance(e, Result) for e in events) == 2
    assert sum(isinstance(e, SystemInit) for e in events) == 2
    assert {e.subtype for e in events if isinstance(e, SystemEvent)} >= {"task_started", "task_notification"}
    agent_call = next(e for e in events if isinstance(e, AssistantMessage) and e.tool_uses)
    assert describe_activity(agent_call) == "Started a subagent: `look around`"
    sub = [e for e in events if isinstance(e, AssistantMessage) and e.parent_tool_use_id]
    assert sub and sub[0].parent_tool_use_id == agent_call.tool_uses[0].id


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        "{\"type\": \"assistant\", \"message\": ",  # cut off
        "[1, 2, 3]",
        "42",
        "null",
        "\"a string\"",
        "\x00\x01\x02\xff",
        "{" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        "{\"type\": \"result\", \"num_turns\": \"many\"}",
        "{\"type\": \"system\", \"subtype\": \"init\", \"tools\": 5}",
        "{\"type\": \"assistant\", \"message\": {\"id\": [1]}}",
    ],
)
def test_garbage_never_raises(line: str) -> None:
    event = parse_line(line)
    assert isinstance(event, ParseError)
    assert len(event.raw) <= RAW_LIMIT + 1 and event.error


def test_odd_but_valid_lines() -> None:
    assert parse_line("") is None and parse_line("   \n") is None
    assert isinstance(parse_line(b'{"type": "result", "subtype": "success"}'), Result)
    unknown = parse_line('{"type": "stream_event", "event": {"type": "ping"}, "session_id": "s"}')
    assert isinstance(unknown, Unknown) and unknown.type == "stream_event" and unknown.data["event"] == {"type": "ping"}
    assert isinstance(parse_line('{"no_type": true}'), Unknown)
    other = parse_line('{"type": "system", "subtype": "compact_boundary", "compact_metadata": {"trigger": "auto"}}')
    assert isinstance(other, SystemEvent) and other.subtype == "compact_boundary"
    # Strange message content degrades to empty / other blocks instead of failing.
    a = parse_line('{"type": "assistant", "message": "nope"}')
    assert isinstance(a, AssistantMessage) and a.message.content == [] and describe_activity(a) is None
    a = parse_line('{"type": "assistant", "message": {"content": [{"type": "server_tool_use", "x": 1}, 7]}}')
    assert isinstance(a, AssistantMessage) and [b.type for b in a.message.content] == ["server_tool_use", "invalid"]
    u = parse_line('{"type": "user", "message": {"role": "user", "content": "plain text"}}')
    assert isinstance(u, UserMessage) and u.tool_results == []
    # Unknown fields are kept.
    r = parse_line(json.dumps({"type": "result", "subtype": "success", "brand_new_field": 1}))
    assert isinstance(r, Result) and r.model_extra["brand_new_field"] == 1


def test_huge_garbage_is_truncated() -> None:
    event = parse_line("x" * 1_000_000)
    assert isinstance(event, ParseError) and len(event.raw) == RAW_LIMIT + 1 and event.raw.endswith("…")


def tool_line(name: str, tool_input: dict) -> AssistantMessage:
    event = parse_line(json.dumps({"type": "assistant", "message": {
        "role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": name, "input": tool_input}]}}))
    assert isinstance(event, AssistantMessage)
    return event


@pytest.mark.parametrize(
    ("name", "tool_input", "expected"),
    [
        ("Edit", {"file_path": "/work/src/x.py", "old_string": "a", "new_string": "b"}, "Edited `src/x.py`"),
        ("Write", {"file_path": "/elsewhere/y.py", "content": ""}, "Wrote `/elsewhere/y.py`"),
        ("Read", {"file_path": "/work/README.md"}, "Read `README.md`"),
        ("Bash", {"command": "pytest -q"}, "Ran `pytest -q`"),
        ("Bash", {"command": "echo `whoami`\nrm -rf x"}, "Ran `echo 'whoami' rm -rf x`"),
        ("Bash", {"command": "x" * 200}, "Ran `" + "x" * 79 + "…`"),
        ("Grep", {"pattern": "TODO"}, "Searched for `TODO`"),
        ("Glob", {"pattern": "**/*.py"}, "Listed files matching `**/*.py`"),
        ("NotebookEdit", {"notebook_path": "/work/n.ipynb"}, "Edited notebook `n.ipynb`"),
        ("WebFetch", {"url": "https://example.com"}, "Fetched `https://example.com`"),
        ("TodoWrite", {"todos": []}, "Updated its task list"),
        ("mcp__github__create_issue", {}, "Used `mcp__github__create_issue`"),
        ("Edit", {}, "Edited ``"),
    ],
)
def test_describe_activity(name: str, tool_input: dict, expected: str) -> None:
    assert describe_activity(tool_line(name, tool_input), cwd="/work") == expected


def test_describe_activity_other_events() -> None:
    assert describe_activity(None) is None
    assert describe_activity(parse_line('{"type": "result", "subtype": "success"}')) is None
    assert describe_activity(parse_line("garbage")) is None
    init = parse_line('{"type": "system", "subtype": "init", "model": "claude-sonnet-4-5", "session_id": "s"}')
    assert describe_activity(init) == "Started Claude Code (claude-sonnet-4-5)"
    two = parse_line(json.dumps({"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "1", "name": "Read", "input": {"file_path": "a"}},
        {"type": "tool_use", "id": "2", "name": "Read", "input": {"file_path": "b"}}]}}))
    assert describe_activity(two) == "Read `a`; Read `b`"
