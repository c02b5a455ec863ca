"""Suggested changes in review comments: the ```suggestion blocks of a body, and committing one as
GitHub's "Commit suggestion" button does (the block's lines replace lines start_line..line of the
file at the pull request's head)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import FakeGitHub

_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})([^`]*)$")


def suggestion_blocks(body: str) -> list[list[str] | None]:
    """The lines of each fenced code block whose info string is `suggestion` (CommonMark fences: up to
    three spaces of indent, three or more backticks or tildes, closed by a run as long); None for a
    block left open, which Markdown runs to the end of the comment."""
    blocks: list[list[str] | None] = []
    lines = body.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        i += 1
        if match is None:
            continue
        indent, fence, info = len(match.group(1)), match.group(2), match.group(3).strip()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        content: list[str] = []
        while i < len(lines) and not closing.match(lines[i]):
            content.append(re.sub(rf"^ {{0,{indent}}}", "", lines[i]))
            i += 1
        closed = i < len(lines)
        i += 1
        if info.split(" ", 1)[0] == "suggestion":
            blocks.append(content if closed else None)
    return blocks


def apply_suggestion(fake: "FakeGitHub", full_name: str, comment_id: int, *, user: str) -> str:
    """Commit the suggestion of review comment `comment_id` on its pull request's branch, as `user`
    pressing "Commit suggestion"; the new head. ValueError when GitHub would not offer the button:
    no (single, closed) suggestion, a pull request that is not open, or lines changed since the comment."""
    comment = next((c for c in fake.review_comments if c["id"] == comment_id), None)
    if comment is None:
        raise ValueError(f"no review comment {comment_id}")
    blocks = suggestion_blocks(comment["body"])
    if len(blocks) != 1 or blocks[0] is None or comment.get("side") != "RIGHT" or comment.get("line") is None:
        raise ValueError("the comment holds no suggestion GitHub could commit")
    pull = fake.pull(full_name, int(comment["pull_request_url"].rsplit("/", 1)[1]))
    if pull is None or pull["state"] != "open":
        raise ValueError("the pull request is not open")
    first, last = comment.get("start_line") or comment["line"], comment["line"]
    repo = fake.repo(full_name)
    then = _lines(repo.git.read_file(comment["commit_id"], comment["path"]))
    now = _lines(repo.git.read_file(pull["head"]["sha"], comment["path"]))
    if then is None or now is None or then[first - 1:last] != now[first - 1:last] or last > len(now):
        raise ValueError("the suggestion is outdated: its lines changed since the comment")
    changed = now[: first - 1] + blocks[0] + now[last:]
    text = "\n".join(changed) + "\n"
    return fake.push_files(full_name, pull["head"]["ref"], {comment["path"]: text},
                           message=f"Apply suggestion from code review\n\nCo-authored-by: {user}")


def _lines(data: bytes | None) -> list[str] | None:
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    return text.removesuffix("\n").split("\n") if text else []
