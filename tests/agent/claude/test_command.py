"""build_command: the argv shape checked against the real CLI in test_cli_gateway.py."""

from __future__ import annotations

import pytest

from app.agent.claude.command import MAX_PROMPT_BYTES, ClaudeOptions, build_command

BASE = dict(model="claude-sonnet-4-5", max_turns=30, permission_mode="bypassPermissions", allowed_tools=None)


def test_minimal() -> None:
    assert build_command("Fix the bug", ClaudeOptions(**BASE)) == [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--model", "claude-sonnet-4-5", "--max-turns", "30", "--permission-mode", "bypassPermissions",
        "--", "Fix the bug",
    ]


def test_tools_resume_and_executable() -> None:
    argv = build_command("--answer: use --json", ClaudeOptions(
        **dict(BASE, allowed_tools=["Read", "Edit", "Bash(git diff *)"]),
        disallowed_tools=["WebFetch"],
        resume_session="ab9e9cfa-1fd9-4284-8f9c-633333b154a3",
        executable="/opt/claude/bin/claude",
    ))
    assert argv[0] == "/opt/claude/bin/claude"
    i = argv.index("--allowedTools")
    assert argv[i + 1 : i + 4] == ["Read", "Edit", "Bash(git diff *)"]
    j = argv.index("--disallowedTools")
    assert argv[j + 1] == "WebFetch"
    assert argv[argv.index("--resume") + 1] == "ab9e9cfa-1fd9-4284-8f9c-633333b154a3"
    # The prompt is last, after "--", so neither a variadic flag nor a leading "-" can eat it.
    assert argv[-2:] == ["--", "--answer: use --json"]


def test_empty_tool_lists_are_left_out() -> None:
    argv = build_command("x", ClaudeOptions(**dict(BASE, allowed_tools=[]), disallowed_tools=[]))
    assert "--allowedTools" not in argv and "--disallowedTools" not in argv


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(prompt=""),
        dict(prompt="   "),
        dict(prompt="a\x00b"),
        dict(prompt="x" * (MAX_PROMPT_BYTES + 1)),
        dict(max_turns=0),
        dict(max_turns=True),
        dict(max_turns="5"),
        dict(permission_mode="yolo"),
        dict(model=""),
        dict(model="--dangerously-skip-permissions"),
        dict(allowed_tools=["Read,Write"]),
        dict(allowed_tools=[""]),
        dict(allowed_tools=["--help"]),
        dict(disallowed_tools=["  "]),
        dict(resume_session="../../etc/passwd"),
        dict(resume_session=""),
    ],
)
def test_rejects_bad_input(kwargs: dict) -> None:
    args = dict(BASE, prompt="do it")
    args.update(kwargs)
    prompt = args.pop("prompt")
    with pytest.raises(ValueError):
        build_command(prompt, ClaudeOptions(**args))


def test_all_permission_modes_of_the_cli() -> None:
    for mode in ("default", "acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan"):
        assert build_command("x", ClaudeOptions(**dict(BASE, permission_mode=mode)))[10] == mode
