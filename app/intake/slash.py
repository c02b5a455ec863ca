"""Slash commands in comments: `/agentvine <instruction>` or `/agentvine <subcommand>`.

Only lines outside fenced/indented code blocks and block quotes count, so quoting someone's
command (or showing one in an example) never triggers work. Neither does anything inside an HTML
comment (`<!-- ... -->`, on one line or several): GitHub does not show it, so nobody reading the
thread could see what was asked. It is left out of a free-form instruction too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.intents import SLASH_COMMANDS


_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class ParsedCommand:
    name: str  # one of SLASH_COMMANDS, or "instruction"
    text: str  # the instruction, or what follows a subcommand


def _hide_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    """The part of `line` an HTML comment does not hide, and whether a comment is still open after it."""
    visible, pos = [], 0
    while pos <= len(line):
        if in_comment:
            end = line.find("-->", pos)
            if end < 0:
                break
            pos, in_comment = end + 3, False
        else:
            start = line.find("<!--", pos)
            if start < 0:
                visible.append(line[pos:])
                break
            visible.append(line[pos:start])
            pos, in_comment = start + 4, True
    return "".join(visible), in_comment


def _visible_lines(body: str) -> list[tuple[str, bool]]:
    """(text as GitHub shows it, whether a command may stand there) for every line that is not
    entirely inside an HTML comment. In code, `<!--` is text; code and quotes hold no command."""
    lines = []
    fence: str | None = None
    in_comment = False
    for line in body.splitlines():
        if fence is not None:
            match = _FENCE.match(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            lines.append((line, False))
            continue
        if not in_comment and line.startswith(("    ", "\t")):
            lines.append((line, False))  # indented code: `<!--` is text there too
            continue
        was_in_comment = in_comment
        shown, in_comment = _hide_comments(line, in_comment)
        if was_in_comment and not shown.strip():
            continue  # wholly hidden
        if "<!--" in line and not shown.strip():
            continue  # wholly hidden
        match = _FENCE.match(shown)
        if match:
            fence = match.group(1)
            lines.append((shown, False))
            continue
        lines.append((shown, not shown.lstrip().startswith(">")))
    return lines


def parse_command(body: str | None, prefix: str) -> ParsedCommand | None:
    """The first command in `body`, or None when the comment holds no command."""
    if not body:
        return None
    lines = _visible_lines(body)
    for index, (line, live) in enumerate(lines):
        if not live:
            continue
        stripped = line.strip()
        if stripped != prefix and not stripped.startswith(prefix + " "):
            continue
        rest = stripped[len(prefix) :].strip()
        word, _, tail = rest.partition(" ")
        if word.lower() in SLASH_COMMANDS:
            return ParsedCommand(word.lower(), tail.strip())
        if not rest:
            return ParsedCommand("help", "")
        # A free-form instruction may go on below the command line (what GitHub shows of it).
        following = "\n".join(text for text, _ in lines[index + 1 :]).strip()
        return ParsedCommand("instruction", f"{rest}\n\n{following}".strip())
    return None
