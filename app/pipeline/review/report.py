"""The publishing half of the `review` worker.

Claude Code reviews a pull request with read-only tools and ends its final message with one
fenced ```json block of findings. This module reads that block (untrusted text: it may be
garbage, huge or hostile), works out which diff lines GitHub accepts an inline comment on, and
publishes one PR review: inline comments where GitHub allows them, everything else listed in the
review's body. The same findings become check-run annotations and the check's conclusion.

The pure parts (parsing, diff arithmetic, rendering) do no I/O; `fetch_pull_files` and
`publish_review` take a gidgethub-style API (`getiter`, `post`), such as
`app.github.client.InstallationAPI`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import gidgethub
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.domain.untrusted import defuse_mentions

MAX_REPORT_CHARS = 200_000  # what parse_report reads of the agent's final message (its tail)
MAX_FINDINGS = 100
MAX_PATH_CHARS = 400
MAX_MESSAGE_CHARS = 2_000
MAX_SUMMARY_CHARS = 10_000
MAX_LINE = 10_000_000  # far beyond any reviewable file; keeps absurd integers away from GitHub
MAX_PULL_FILES = 300
MAX_BODY_CHARS = 60_000  # GitHub refuses a review body over 65,536 characters
MAX_TITLE_CHARS = 255  # check-run annotation title
MAX_ERRORS_SHOWN = 5


# ----------------------------------------------------------------------------- the report


class Finding(BaseModel):
    """One problem the reviewer found, at a line of the NEW version of a file."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    path: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
    line: Annotated[int, Field(strict=True, ge=1, le=MAX_LINE)]
    severity: Literal["warning", "failure"]
    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]

    @field_validator("path")
    @classmethod
    def _repository_relative(cls, path: str) -> str:
        if path.startswith("/"):
            raise ValueError("must be relative to the repository root (no leading '/')")
        if "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
            raise ValueError("must not contain backslashes or control characters")
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise ValueError("must not contain '..', '.' or empty segments")
        return path


class ReviewReport(BaseModel):
    """What the reviewer reports: a summary for the review's body and the findings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    summary: Annotated[str, Field(max_length=MAX_SUMMARY_CHARS)]
    findings: Annotated[list[Finding], Field(max_length=MAX_FINDINGS)]


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

_OPEN_FENCE = re.compile(r"^\s*```+\s*json\s*$", re.IGNORECASE)
_CLOSE_FENCE = re.compile(r"^\s*```+\s*$")


def _last_json_block(text: str) -> str | None:
    """The body of the last ```json block; an unterminated last block runs to the end."""
    # Split on "\n" only: str.splitlines() would also split on U+2028 or a form feed, which
    # JSON strings may hold raw.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    for start in range(len(lines) - 1, -1, -1):
        if _OPEN_FENCE.match(lines[start]):
            body: list[str] = []
            for line in lines[start + 1:]:
                if _CLOSE_FENCE.match(line):
                    break
                body.append(line)
            return "\n".join(body)
    return None


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as "findings.0.line: Input should be ...", without echoing the input."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        parts.append(f"{where}: {error['msg']}")
    more = len(errors) - MAX_ERRORS_SHOWN
    if more > 0:
        parts.append(f"and {more} more error{'s' if more > 1 else ''}")
    return "; ".join(parts)


def parse_report(text: str | None) -> tuple[ReviewReport | None, str | None]:
    """(report, None), or (None, why the report could not be read). Never raises.

    Reads the LAST ```json block of the agent's final message; only the last
    MAX_REPORT_CHARS characters are looked at, as the block belongs at the end.
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return None, "the agent's final message is empty"
        if len(text) > MAX_REPORT_CHARS:
            text = text[-MAX_REPORT_CHARS:]
        block = _last_json_block(text)
        if block is None:
            return None, "no ```json block in the agent's final message"
        if not block.strip():
            return None, "the ```json block is empty"
        try:
            data = json.loads(block)
        except RecursionError:
            return None, "the ```json block is not valid JSON: nested too deeply"
        except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
            return None, f"the ```json block is not valid JSON: {str(exc)[:200]}"
        if not isinstance(data, dict):
            return None, f"the ```json block must hold a JSON object, not {type(data).__name__}"
        try:
            return ReviewReport.model_validate(data), None
        except ValidationError as exc:
            return None, f"the ```json block does not match the report format: {_describe(exc)}"
    except Exception as exc:  # noqa: BLE001 - untrusted input must never crash the job
        return None, f"the report could not be read ({type(exc).__name__})"


# ----------------------------------------------------------------------------- the diff

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


async def fetch_pull_files(api: Any, owner: str, repo: str, pull_number: int) -> list[dict]:
    """The pull request's changed files (pulls/list-files), at most MAX_PULL_FILES of them."""
    files: list[dict] = []
    async for entry in api.getiter(
        "/repos/{owner}/{repo}/pulls/{pull_number}/files{?per_page}",
        {"owner": owner, "repo": repo, "pull_number": pull_number, "per_page": 100},
    ):
        files.append(entry)
        if len(files) >= MAX_PULL_FILES:
            break
    return files


# ----------------------------------------------------------------------------- rendering

_defuse = defuse_mentions  # the agent read untrusted code: what it writes must not ping anyone


def _list_item(finding: Finding) -> str:
    message = _defuse(finding.message).replace("\n", "\n  ")
    return f"- **{finding.severity}** `{finding.path}:{finding.line}`: {message}"


def review_body(report: ReviewReport, outside_diff: list[Finding]) -> str:
    """The review's main text: the summary, then the findings that could not be placed inline."""
    summary = _defuse(report.summary) if report.summary else ""
    if not summary:
        summary = "No findings." if not report.findings else "Review findings below."
    parts = [summary]
    if outside_diff:
        parts.append(
            f"**Findings outside the diff** ({len(outside_diff)}): GitHub takes inline comments only on "
            "lines this pull request shows, so these are listed here."
        )
        items: list[str] = []
        used = sum(len(p) + 2 for p in parts)
        for i, finding in enumerate(outside_diff):
            item = _list_item(finding)
            if used + len(item) + 1 > MAX_BODY_CHARS - 200:
                rest = len(outside_diff) - i
                items.append(f"- … and {rest} more (see the check run's annotations)")
                break
            items.append(item)
            used += len(item) + 1
        parts.append("\n".join(items))
    return "\n\n".join(parts)


def _title(finding: Finding) -> str:
    first = finding.message.splitlines()[0].strip() if finding.message else ""
    title = f"{finding.severity}: {first}" if first else finding.severity
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def check_annotations(report: ReviewReport) -> list[dict]:
    """The findings as check-run annotations (GitHub takes at most 50 per request)."""
    return [
        {
            "path": f.path,
            "start_line": f.line,
            "end_line": f.line,
            "annotation_level": f.severity,
            "message": f.message,
            "title": _title(f),
        }
        for f in report.findings
    ]


def review_conclusion(report: ReviewReport) -> str:
    """"failure" if any finding is a failure, "neutral" if only warnings, "success" if none."""
    if any(f.severity == "failure" for f in report.findings):
        return "failure"
    return "neutral" if report.findings else "success"


# ----------------------------------------------------------------------------- publishing


class PublishedReview(BaseModel):
    review_id: int
    html_url: str | None
    inline: int  # findings published as inline comments
    outside_diff: list[Finding]  # findings listed in the review's body instead


async def publish_review(
    api: Any,
    *,
    owner: str,
    repo: str,
    pull_number: int,
    commit_sha: str,
    report: ReviewReport,
    files: list[dict],
) -> PublishedReview:
    """Publish one COMMENT review: findings on commentable lines inline, the rest in the body.

    `files` must describe the diff at `commit_sha` (fetch them for that head). If GitHub still
    refuses an inline comment (422), the review is posted once more with every finding in the
    body, so it is never lost. Other errors propagate.
    """
    allowed = commentable_lines(files)
    inline = [f for f in report.findings if f.line in allowed.get(f.path, ())]
    outside = [f for f in report.findings if f.line not in allowed.get(f.path, ())]
    url = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"
    url_vars = {"owner": owner, "repo": repo, "pull_number": pull_number}

    def payload(inline: list[Finding], outside: list[Finding]) -> dict[str, Any]:
        data: dict[str, Any] = {"commit_id": commit_sha, "event": "COMMENT", "body": review_body(report, outside)}
        if inline:
            data["comments"] = [
                {"path": f.path, "line": f.line, "side": "RIGHT", "body": f"**{f.severity}**: {_defuse(f.message)}"}
                for f in inline
            ]
        return data

    try:
        review = await api.post(url, url_vars, data=payload(inline, outside))
    except gidgethub.BadRequest as exc:
        if exc.status_code != 422 or not inline:
            raise
        inline, outside = [], list(report.findings)
        review = await api.post(url, url_vars, data=payload(inline, outside))
    return PublishedReview(
        review_id=int(review["id"]), html_url=review.get("html_url"), inline=len(inline), outside_diff=outside
    )
