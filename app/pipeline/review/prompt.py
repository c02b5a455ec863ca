"""What the reviewer is given: the pull request's diff (or what is new since the last review), fenced
so the code cannot end the block, the findings already posted, and how to report its own (the format
app/pipeline/review/report.py reads)."""

from __future__ import annotations

import re

from app.domain.findings import TrackedFinding
from app.github.ops import RepoOps
from app.pipeline.review.incremental import Scope
from app.pipeline.review.report import MAX_FINDINGS, MAX_MESSAGE_CHARS, MAX_SUMMARY_CHARS

MAX_PULL_FILES = 300


async def fetch_pull_files(github: RepoOps, pull_number: int) -> list[dict]:
    """The pull request's changed files the reviewer is shown, at most MAX_PULL_FILES of them."""
    return await github.pull_files(pull_number, limit=MAX_PULL_FILES)

REVIEW_INSTRUCTIONS = f"""\
## How to report your review

You are reviewing this pull request; you are not changing it. Do NOT create, edit, move or
delete any file, do not commit, and do not push. Read the code, run read-only commands if they
help, and report. Whether the pull request is approved is for a person to decide, not you.

End your final message with exactly one fenced ```json block (nothing after it) holding one JSON
object with these keys, and no others:

- "summary": Markdown (at most {MAX_SUMMARY_CHARS} characters): first what the pull request does,
  in a sentence or two, then your overall assessment.
- "findings": a list (at most {MAX_FINDINGS}) of objects with these keys:
  - "path": the file's path relative to the repository root, e.g. "src/app/parser.py";
  - "line": the line (an integer, from 1) in the NEW version of the file the finding is about, or
    the last of several; only lines in the diff can get an inline comment;
  - "start_line" (only for several consecutive lines): the first of them;
  - "severity": "critical" (breaks things, loses data, a security hole), "major" (a bug or risk
    that must be fixed before merging), "minor" (worth fixing, does not block the merge) or "nit"
    (style, naming, a small improvement);
  - "message": what is wrong and how to fix it (1 to {MAX_MESSAGE_CHARS} characters);
  - "suggestion" (optional, only for a concrete, small fix): the exact new text of the lines
    start_line..line (or of `line` alone), indented as in the file. It REPLACES exactly those
    lines, so repeat any of them you keep; GitHub lets people commit it with one click.

Use an empty list when you found nothing worth reporting. For example:

```json
{{
  "summary": "Adds a header parser. The change is sound, but one error path leaks a file handle.",
  "findings": [
    {{"path": "src/app/parser.py", "line": 43, "start_line": 42, "severity": "major",
     "message": "`open()` is never closed when `parse_header` raises; use a `with` block.",
     "suggestion": "    with open(path) as handle:\\n        header = parse_header(handle)"}},
    {{"path": "README.md", "line": 7, "severity": "nit",
     "message": "The example still shows the old `--strict` flag."}}
  ]
}}
```
"""

MAX_EARLIER_SHOWN = 50


def scope_section(scope: Scope, head: str) -> str:
    """The diff the reviewer reviews: the pull request's, or what is new since the last review."""
    if scope.kind == "incremental":
        heading = (f"## What is new since AgentVine's last review\n\nAgentVine reviewed this pull request at "
                   f"{(scope.since or '')[:12]}; it has moved on to {head[:12]} since. Review only these changes: "
                   "the rest was reviewed already. Read the files in the workspace for context.")
    else:
        heading = "## The pull request's changes"
    return f"{heading}\n\n{render_diff_for_prompt(scope.files)}"


def earlier_section(findings: list[TrackedFinding]) -> str:
    """The findings on the pull request already: the reviewer is told not to report them again."""
    open_now = [f for f in findings if f.status == "open"]
    if not open_now:
        return ""
    items = [f"- {f.path}:{f.line} ({f.severity}): {' '.join(f.message.split())[:300]}" for f in open_now[:MAX_EARLIER_SHOWN]]
    return ("## Findings already posted on this pull request\n\nThese are on the pull request already and still "
            "open. Do not report them again.\n\n" + "\n".join(items) + "\n")


def _fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run in `text`, so the text cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _file_heading(entry: dict) -> str:
    name = entry.get("filename", "?")
    status = entry.get("status", "modified")
    if entry.get("previous_filename"):
        status = f"{status} from {entry['previous_filename']}"
    return f"### {name} ({status}, +{entry.get('additions', 0)} -{entry.get('deletions', 0)})"


def render_diff_for_prompt(files: list[dict], limit_chars: int = 60_000) -> str:
    """The pull request's changes as Markdown for the prompt, at most about `limit_chars`.

    Per file a "### path (status, +a -d)" heading and its patch in a ```diff block. When the
    next file does not fit, its patch is cut at a line (if a useful part fits) and a closing
    note names the files left out, so the agent can read them in the workspace.
    """
    if not files:
        return "(The pull request changes no files.)\n"
    out: list[str] = []
    used = 0
    shown = 0
    truncated_patch = False
    for entry in files:
        heading = _file_heading(entry)
        patch = entry.get("patch")
        if not isinstance(patch, str) or not patch:
            section = f"{heading}\n\n(no textual diff: binary, empty or too large to show)\n"
        else:
            fence = _fence_for(patch)
            section = f"{heading}\n\n{fence}diff\n{patch.rstrip(chr(10))}\n{fence}\n"
        if used + len(section) + 1 <= limit_chars:
            out.append(section)
            used += len(section) + 1
            shown += 1
            continue
        room = limit_chars - used - len(heading) - 40
        if isinstance(patch, str) and room >= 1_000:
            cut = patch[:room]
            cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
            fence = _fence_for(cut)
            out.append(f"{heading}\n\n{fence}diff\n{cut}\n{fence}\n(this file's patch is truncated)\n")
            shown += 1
            truncated_patch = True
        break
    left_out = [str(e.get("filename", "?")) for e in files[shown:]]
    if left_out or truncated_patch:
        names = ", ".join(left_out[:50]) + (f" and {len(left_out) - 50} more" if len(left_out) > 50 else "")
        note = f"(The diff is longer than {limit_chars} characters and was cut here."
        if left_out:
            note += f" {len(left_out)} file{'s' if len(left_out) != 1 else ''} not shown: {names}."
        note += " Read them in the workspace if the review needs them.)"
        out.append(note + "\n")
    return "\n".join(out)
