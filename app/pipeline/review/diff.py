"""Diff arithmetic: the lines of each file GitHub accepts an inline review comment on (the right
side of the diff's hunks)."""

from __future__ import annotations

import re

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _right_lines(patch: str) -> set[int]:
    """RIGHT-side line numbers inside the hunks of one file's patch: added and context lines."""
    lines: set[int] = set()
    new = old_left = new_left = 0
    for text in patch.split("\n"):  # not splitlines(): a form feed or U+2028 in code is no line break
        hunk = _HUNK.match(text)
        if hunk:
            old_left = int(hunk.group(2)) if hunk.group(2) is not None else 1
            new = int(hunk.group(3))
            new_left = int(hunk.group(4)) if hunk.group(4) is not None else 1
            continue
        if old_left <= 0 and new_left <= 0:
            continue  # outside a hunk (or after its announced lines)
        if text.startswith("\\"):  # "\ No newline at end of file": not a line of either side
            continue
        if text.startswith("-"):
            old_left -= 1
        elif text.startswith("+"):
            lines.add(new)
            new += 1
            new_left -= 1
        else:  # context (" x", or "" when a tool stripped the blank's leading space)
            lines.add(new)
            new += 1
            old_left -= 1
            new_left -= 1
    return lines


def commentable_lines(files: list[dict]) -> dict[str, set[int]]:
    """Per filename, the RIGHT-side lines GitHub accepts a review comment on (side=RIGHT).

    Files without a "patch" (binary, too large) get an empty set.
    """
    result: dict[str, set[int]] = {}
    for entry in files:
        name = entry.get("filename")
        if not isinstance(name, str):
            continue
        patch = entry.get("patch")
        result[name] = _right_lines(patch) if isinstance(patch, str) else set()
    return result
