"""The review's report: the reviewer ends its final message with one fenced ```json block of
findings. That block is untrusted text (it may be garbage, huge or hostile): it is read with limits
and validated into typed findings, or refused with a reason people can act on."""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from app.domain.findings import Severity

MAX_REPORT_CHARS = 200_000  # what parse_report reads of the agent's final message (its tail)
MAX_FINDINGS = 100
MAX_PATH_CHARS = 400
MAX_MESSAGE_CHARS = 2_000
MAX_SUMMARY_CHARS = 10_000
MAX_LINE = 10_000_000  # far beyond any reviewable file; keeps absurd integers away from GitHub
MAX_ERRORS_SHOWN = 5
MAX_SUGGESTION_CHARS = 5_000
MAX_SPAN = 199  # lines after a finding's first (GitHub takes longer ranges; a review comment should not)


# ----------------------------------------------------------------------------- the report


# The first report format had two severities; a report in it still reads (docs/usage.md, "Reviews").
LEGACY_SEVERITY = {"failure": "major", "warning": "minor"}
_CODE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a suggestion is code: tabs and newlines only


class Finding(BaseModel):
    """One problem the reviewer found, at a line (or lines) of the NEW version of a file, with a fix
    GitHub can offer to commit when it is concrete and small (`suggestion`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    path: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
    line: Annotated[int, Field(strict=True, ge=1, le=MAX_LINE)]
    start_line: Annotated[int | None, Field(strict=True, ge=1, le=MAX_LINE)] = None
    severity: Severity
    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    # The exact text that replaces lines start_line..line ("" deletes them). Not stripped: indentation matters.
    suggestion: Annotated[str, StringConstraints(strip_whitespace=False, max_length=MAX_SUGGESTION_CHARS)] | None = None

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

    @field_validator("severity", mode="before")
    @classmethod
    def _known_severity(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return LEGACY_SEVERITY.get(value, value)
        return value

    @field_validator("suggestion", mode="before")
    @classmethod
    def _code_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.replace("\r\n", "\n")
        if _CODE_CONTROL.search(value):
            raise ValueError("must not contain control characters other than tabs and newlines")
        return value.removesuffix("\n")  # the block's lines are the replacement; a final newline is no line

    @model_validator(mode="after")
    def _span(self) -> Finding:
        if self.start_line is not None:
            if self.start_line > self.line:
                raise ValueError("start_line must not be after line")
            if self.line - self.start_line > MAX_SPAN:
                raise ValueError(f"a finding spans at most {MAX_SPAN + 1} lines")
            if self.start_line == self.line:
                self.start_line = None  # one line: GitHub's comment has no start_line then
        return self

    @property
    def first(self) -> int:
        return self.start_line or self.line


class ReviewReport(BaseModel):
    """What the reviewer reports: a summary for the review's body and the findings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    summary: Annotated[str, Field(max_length=MAX_SUMMARY_CHARS)]
    findings: Annotated[list[Finding], Field(max_length=MAX_FINDINGS)]
    # The review event the model would like (it may ask for APPROVE): read, never obeyed. The event is
    # AgentVine's decision (review.request_changes_on), and it is never APPROVE.
    event: Annotated[str | None, Field(max_length=50)] = None

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
