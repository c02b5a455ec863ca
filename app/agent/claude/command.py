"""The Claude Code command line the bot runs (checked against `claude --help` of 2.1.330).

    claude -p --output-format stream-json --verbose --model M --max-turns N --permission-mode P
           [--allowedTools T1 T2 ...] [--disallowedTools T3 ...] [--resume SESSION_ID] -- PROMPT

Why this shape:
- `-p/--print` is a boolean flag; the prompt is the positional argument. It goes last, after
  `--`, because `--allowedTools`/`--disallowedTools` are variadic (`<tools...>`): a positional
  right after them is swallowed as one more tool name (the CLI then stops with "... was read as a
  value of --allowedTools, not as a prompt"), and a prompt that starts with `-` would otherwise be
  read as an unknown option ("error: unknown option '--fix ...'"). Both verified on 2.1.330.
- `--allowedTools` takes a "comma or space-separated list"; we pass one flag followed by one argv
  element per tool, so a rule with a space inside, such as `Bash(git diff *)`, stays one rule. A
  rule may not contain a comma (the CLI would split it), so we refuse those.
- `--output-format stream-json` requires `--verbose` with `-p`.
- Linux limits one argv string to 128 KiB (MAX_ARG_STRLEN); a longer prompt is refused here. The
  CLI also reads the prompt from stdin when none is given (`claude -p ... < prompt.txt`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

#: The environment Claude Code runs with wherever AgentVine starts it (set in the image, on the
#: container, and by the gateway's channel): no telemetry or other non-essential requests (so
#: the gateway sees only model calls), and no self-update (the version is pinned).
CLAUDE_CODE_ENV = MappingProxyType({
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
})
PERMISSION_MODES = frozenset({"default", "acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan"})
MAX_PROMPT_BYTES = 128 * 1024 - 1
_SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _tool_args(flag: str, tools: list[str] | None) -> list[str]:
    if not tools:
        return []
    for tool in tools:
        if not tool or not tool.strip():
            raise ValueError(f"{flag}: empty tool name")
        if "," in tool:
            raise ValueError(f"{flag}: {tool!r} contains a comma, which the CLI would split")
        if tool.startswith("-"):
            raise ValueError(f"{flag}: {tool!r} looks like an option")
    return [flag, *(t.strip() for t in tools)]


_TOOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ClaudeOptions:
    """The CLI options of one run (checked by :func:`build_command`, which adds the prompt).

    ``tools``: the exact set of built-in tools the session has (None: the CLI's default);
    ``allowed_tools`` / ``disallowed_tools``: permission rules; ``resume_session``: a session
    id to continue. (No spending flag: the model gateway counts and enforces the job's budget.)"""

    model: str
    max_turns: int
    permission_mode: str
    allowed_tools: list[str] | None
    disallowed_tools: list[str] | None = None
    resume_session: str | None = None
    executable: str = "claude"
    tools: list[str] | None = None


def _check_prompt(prompt: str) -> None:
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty")
    if len(prompt.encode()) > MAX_PROMPT_BYTES:
        raise ValueError(f"the prompt is {len(prompt.encode())} bytes; one argument may be at most {MAX_PROMPT_BYTES}")
    if "\x00" in prompt:
        raise ValueError("the prompt contains a NUL byte")


def build_command(prompt: str, options: ClaudeOptions) -> list[str]:
    """The argv for one Claude Code run (see the module docstring for the order and why)."""
    _check_prompt(prompt)
    model, max_turns, permission_mode = options.model, options.max_turns, options.permission_mode
    tools, resume_session = options.tools, options.resume_session
    if not model or model.startswith("-"):
        raise ValueError(f"bad model {model!r}")
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise ValueError(f"max_turns must be a positive integer, not {max_turns!r}")
    if permission_mode not in PERMISSION_MODES:
        raise ValueError(f"permission_mode must be one of {sorted(PERMISSION_MODES)}, not {permission_mode!r}")
    argv = [
        options.executable,
        "-p",
        "--output-format", "stream-json",
        "--verbose",
        "--model", model,
        "--max-turns", str(max_turns),
        "--permission-mode", permission_mode,
    ]
    if tools is not None:
        # The exact set of built-in tools the session has ("" for none): unlike a deny-list,
        # a tool added by a newer CLI is not silently available.
        if any(not _TOOL_NAME_RE.match(t) for t in tools):
            raise ValueError(f"bad tool name in {tools!r}")
        argv += ["--tools", ",".join(tools)]
    argv += _tool_args("--allowedTools", options.allowed_tools)
    argv += _tool_args("--disallowedTools", options.disallowed_tools)
    if resume_session is not None:
        if not _SESSION_RE.match(resume_session):
            raise ValueError(f"bad session id {resume_session!r}")
        argv += ["--resume", resume_session]
    argv += ["--", prompt]
    return argv
