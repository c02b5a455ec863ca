"""Pure rendering for CI follow-ups: the checks a PR comment names, and the failures a prompt shows."""

from __future__ import annotations

import re

from app.domain.ci import CIFailure, FailedCheck
from app.domain.untrusted import code_span

NAMES_SHOWN = 5


def short_sha(sha: str) -> str:
    return code_span(sha[:12])


def check_names(names: list[str]) -> str:
    """`tests`, `lint` and 2 more: names another App chose (untrusted), each in a code span."""
    shown = ", ".join(code_span(name, 100) for name in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def fenced(text: str) -> str:
    """`text` in a code fence no line of it can close (a fence longer than its longest run of backticks)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _check(check: FailedCheck) -> str:
    app = f", from {check.app}" if check.app else ""
    parts = [f"### Check {check.name!r}: {check.conclusion}{app}"]
    if check.url:
        parts.append(f"Run: {check.url}")
    for label, value in (("Title", check.title), ("Summary", check.summary), ("Output", check.text)):
        if value:
            parts.append(f"{label}:\n{fenced(value)}")
    if check.annotations:
        lines = [f"- {a.path}:{a.start_line}" + (f"-{a.end_line}" if a.end_line != a.start_line else "")
                 + f" ({a.level or 'notice'})" + (f" {a.title}:" if a.title else ":") + f" {a.message or ''}"
                 for a in check.annotations]
        parts.append("Annotations:\n" + fenced("\n".join(lines)))
    if check.annotations_left_out:
        parts.append(f"({check.annotations_left_out} more annotations not shown.)")
    return "\n\n".join(parts)


def failures(failure: CIFailure) -> str:
    """The failing checks for the agent: plain text, each value fenced."""
    text = "\n\n".join(_check(check) for check in failure.checks)
    if failure.checks_left_out:
        text += f"\n\n({failure.checks_left_out} more failing checks not shown.)"
    return text
