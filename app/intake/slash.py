"""Slash commands in comments: `/agentvine <instruction>` or `/agentvine <subcommand>`.

Only lines outside fenced/indented code blocks and block quotes count, so quoting someone's
command (or showing one in an example) never triggers work."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.intents import SLASH_COMMANDS


_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class ParsedCommand:
    name: str  # one of SLASH_COMMANDS, or "instruction"
    text: str  # the instruction, or what follows a subcommand


def _live_lines(body: str) -> list[tuple[int, str]]:
    """(index, line) for every line that is neither code nor a quote."""
    lines = body.splitlines()
    live, fence = [], None
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        if line.startswith(("    ", "\t")) or line.lstrip().startswith(">"):
            continue
        live.append((index, line))
    return live


def parse_command(body: str | None, prefix: str) -> ParsedCommand | None:
    """The first command in `body`, or None when the comment holds no command."""
    if not body:
        return None
    lines = body.splitlines()
    for index, line in _live_lines(body):
        stripped = line.strip()
        if stripped != prefix and not stripped.startswith(prefix + " "):
            continue
        rest = stripped[len(prefix) :].strip()
        word, _, tail = rest.partition(" ")
        if word.lower() in SLASH_COMMANDS:
            return ParsedCommand(word.lower(), tail.strip())
        if not rest:
            return ParsedCommand("help", "")
        # A free-form instruction may go on below the command line.
        following = "\n".join(lines[index + 1 :]).strip()
        return ParsedCommand("instruction", f"{rest}\n\n{following}".strip())
    return None
