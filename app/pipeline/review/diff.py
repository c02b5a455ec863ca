"""Diff arithmetic: the lines of each file GitHub accepts an inline review comment on (the right
side of the diff's hunks), and whether a range of them lies within one hunk, as a multi-line comment
and a suggested change need."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _right_hunks(patch: str) -> list[set[int]]:
    """RIGHT-side line numbers inside each hunk of one file's patch: added and context lines."""
    hunks: list[set[int]] = []
    new = old_left = new_left = 0
    for text in patch.split("\n"):  # not splitlines(): a form feed or U+2028 in code is no line break
        hunk = _HUNK.match(text)
        if hunk:
            old_left = int(hunk.group(2)) if hunk.group(2) is not None else 1
            new = int(hunk.group(3))
            new_left = int(hunk.group(4)) if hunk.group(4) is not None else 1
            hunks.append(set())
            continue
        if not hunks or (old_left <= 0 and new_left <= 0):
            continue  # outside a hunk (or after its announced lines)
        if text.startswith("\\"):  # "\ No newline at end of file": not a line of either side
            continue
        if text.startswith("-"):
            old_left -= 1
        elif text.startswith("+"):
            hunks[-1].add(new)
            new += 1
            new_left -= 1
        else:  # context (" x", or "" when a tool stripped the blank's leading space)
            hunks[-1].add(new)
            new += 1
            old_left -= 1
            new_left -= 1
    return hunks


@dataclass
class FileDiff:
    """The RIGHT side of one file's diff, hunk by hunk."""

    hunks: list[set[int]] = field(default_factory=list)

    @property
    def lines(self) -> set[int]:
        return set().union(*self.hunks) if self.hunks else set()

    def spans(self, first: int, last: int) -> bool:
        """Whether lines `first`..`last` all lie in one hunk: what a multi-line comment (and the
        suggestion that replaces exactly those lines) needs."""
        return any(all(n in hunk for n in range(first, last + 1)) for hunk in self.hunks)


def file_diffs(files: list[dict]) -> dict[str, FileDiff]:
    """Per filename, its diff's RIGHT side. Files without a "patch" (binary, too large) have no hunk."""
    result: dict[str, FileDiff] = {}
    for entry in files:
        name = entry.get("filename")
        if not isinstance(name, str):
            continue
        patch = entry.get("patch")
        result[name] = FileDiff(_right_hunks(patch) if isinstance(patch, str) else [])
    return result


def commentable_lines(files: list[dict]) -> dict[str, set[int]]:
    """Per filename, the RIGHT-side lines GitHub accepts a review comment on (side=RIGHT).

    Files without a "patch" (binary, too large) get an empty set.
    """
    return {name: diff.lines for name, diff in file_diffs(files).items()}
