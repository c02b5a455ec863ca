"""The review's report: the reviewer ends its final message with one fenced ```json block of
findings. That block is untrusted text (it may be garbage, huge or hostile): it is read with limits
and validated into typed findings, or refused with a reason people can act on."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_REPORT_CHARS = 200_000  # what parse_report reads of the agent's final message (its tail)
MAX_FINDINGS = 100
MAX_PATH_CHARS = 400
MAX_MESSAGE_CHARS = 2_000
MAX_SUMMARY_CHARS = 10_000
MAX_LINE = 10_000_000  # far beyond any reviewable file; keeps absurd integers away from GitHub
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
