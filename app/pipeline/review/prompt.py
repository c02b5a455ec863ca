"""What the reviewer is given: the pull request's diff, fenced so the code cannot end the block, and
how to report its findings (the format app/pipeline/review/report.py reads)."""

from __future__ import annotations

import re

from app.github.ops import RepoOps
from app.pipeline.review.report import MAX_FINDINGS, MAX_MESSAGE_CHARS, MAX_SUMMARY_CHARS

MAX_PULL_FILES = 300


async def fetch_pull_files(github: RepoOps, pull_number: int) -> list[dict]:
    """The pull request's changed files the reviewer is shown, at most MAX_PULL_FILES of them."""
    return await github.pull_files(pull_number, limit=MAX_PULL_FILES)

REVIEW_INSTRUCTIONS = f"""\
## How to report your review

You are reviewing this pull request; you are not changing it. Do NOT create, edit, move or
delete any file, do not commit, and do not push. Read the code, run read-only commands if they
help, and report.

End your final message with exactly one fenced ```json block (nothing after it) holding one JSON
object with exactly these keys:

- "summary": your overall assessment in Markdown (at most {MAX_SUMMARY_CHARS} characters).
- "findings": a list (at most {MAX_FINDINGS}) of objects with exactly these keys:
  - "path": the file's path relative to the repository root, e.g. "src/app/parser.py";
  - "line": a line number (an integer, from 1) in the NEW version of the file, preferably a line
    the pull request adds or changes: only lines in the diff can get an inline comment;
  - "severity": "failure" for a bug, a security problem or anything that must be fixed before
    merging; "warning" for everything worth fixing that does not block the merge;
  - "message": what is wrong and how to fix it (1 to {MAX_MESSAGE_CHARS} characters).

Use an empty list when you found nothing worth reporting. For example:

```json
{{
  "summary": "The parser change is sound, but one error path leaks a file handle.",
  "findings": [
    {{"path": "src/app/parser.py", "line": 42, "severity": "failure",
     "message": "`open()` is never closed when `parse_header` raises; use a `with` block."}},
    {{"path": "README.md", "line": 7, "severity": "warning",
     "message": "The example still shows the old `--strict` flag."}}
  ]
}}
```
"""



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
