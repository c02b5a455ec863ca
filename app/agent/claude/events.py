"""Typed events for the lines `claude -p ... --output-format stream-json --verbose` prints.

Field names follow what Claude Code 2.1.330 really prints (a captured transcript is in
tests/support/claude_streams/). Every model keeps unknown fields (`extra="allow"`), so a newer CLI that adds
fields parses the same; a line of a type we do not know becomes `Unknown`, a line that is not JSON
becomes `ParseError`. `parse_line` never raises.

Shapes (one JSON object per line):
- `{"type":"system","subtype":"init","session_id","cwd","model","tools":[...],"permissionMode",
   "claude_code_version","apiKeySource",...}` once at the start (again after background tasks).
- `{"type":"assistant","message":{"id","model","role":"assistant","content":[ONE block],
   "stop_reason":null,"usage":{...}},"parent_tool_use_id","session_id","uuid","timestamp"}`: one
  line per content block (text, tool_use, thinking); blocks of one API message share `message.id`.
- `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id",
   "content": str | [blocks],"is_error"?}]},"tool_use_result":{...},"tool_result_meta":[...],...}`.
- `{"type":"system","subtype":"api_retry","attempt","max_retries","retry_delay_ms","error_status",
   "error"}` and `{"type":"system","subtype":"permission_denied","tool_name","tool_use_id",
   "message"}`; other subtypes (task_started, task_notification, ...) become `SystemEvent`.
- `{"type":"result","subtype":"success"|"error_max_turns"|"error_during_execution"|...,
   "is_error","num_turns","total_cost_usd","usage","duration_ms","duration_api_ms","result"?,
   "session_id","stop_reason","terminal_reason","errors"?,"permission_denials","api_error_status"}`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RAW_LIMIT = 2000  # characters of a bad line kept in ParseError / Unknown


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ----------------------------------------------------------------------------- content blocks
class TextBlock(_Model):
    type: Literal["text"] = "text"
    text: str = ""


class ToolUseBlock(_Model):
    type: Literal["tool_use"] = "tool_use"
    id: str = ""
    name: str = ""
    input: dict[str, Any] = Field(default_factory=dict)


class ThinkingBlock(_Model):
    type: Literal["thinking"] = "thinking"
    thinking: str = ""


class ToolResultBlock(_Model):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = ""
    content: str | list[dict[str, Any]] | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "\n".join(str(b.get("text", "")) for b in self.content if isinstance(b, dict))
        return ""


class OtherBlock(_Model):
    type: str = ""


ContentBlock = TextBlock | ToolUseBlock | ThinkingBlock | ToolResultBlock | OtherBlock
_BLOCKS: dict[str, type[_Model]] = {
    "text": TextBlock,
    "tool_use": ToolUseBlock,
    "thinking": ThinkingBlock,
    "tool_result": ToolResultBlock,
}


def _block(raw: Any) -> ContentBlock:
    if not isinstance(raw, dict):
        return OtherBlock(type="invalid", value=raw)
    cls = _BLOCKS.get(str(raw.get("type")), OtherBlock)
    try:
        return cls.model_validate(raw)  # type: ignore[return-value]
    except ValidationError:
        return OtherBlock.model_validate({**raw, "type": str(raw.get("type", ""))})


class TokenUsage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class Message(_Model):
    id: str | None = None
    role: str = ""
    model: str | None = None
    content: list[ContentBlock] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: TokenUsage | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> Message:
        if not isinstance(raw, dict):
            return cls()
        content = raw.get("content")
        if isinstance(content, str):  # the API allows a bare string for user content
            blocks: list[ContentBlock] = [TextBlock(text=content)]
        elif isinstance(content, list):
            blocks = [_block(b) for b in content]
        else:
            blocks = []
        rest = {k: v for k, v in raw.items() if k != "content"}
        if not isinstance(rest.get("usage"), dict):
            rest.pop("usage", None)
        msg = cls.model_validate(rest)
        msg.content = blocks
        return msg


# ----------------------------------------------------------------------------- events
class _Event(_Model):
    type: str
    session_id: str | None = None
    uuid: str | None = None


class SystemInit(_Event):
    type: Literal["system"] = "system"
    subtype: Literal["init"] = "init"
    cwd: str | None = None
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    permission_mode: str | None = Field(default=None, alias="permissionMode")
    claude_code_version: str | None = None
    api_key_source: str | None = Field(default=None, alias="apiKeySource")
    mcp_servers: list[Any] = Field(default_factory=list)


class ApiRetry(_Event):
    """The CLI got an error from the model API and will retry (`error_status` 529, 500, 401, ...)."""

    type: Literal["system"] = "system"
    subtype: Literal["api_retry"] = "api_retry"
    attempt: int = 0
    max_retries: int = 0
    retry_delay_ms: float = 0
    error_status: int | None = None
    error: str | None = None


class PermissionDenied(_Event):
    type: Literal["system"] = "system"
    subtype: Literal["permission_denied"] = "permission_denied"
    tool_name: str = ""
    tool_use_id: str | None = None
    message: str | None = None


class SystemEvent(_Event):
    """Any other `system` line (task_started, task_notification, compact_boundary, ...)."""

    type: Literal["system"] = "system"
    subtype: str = ""


class AssistantMessage(_Event):
    type: Literal["assistant"] = "assistant"
    message: Message = Field(default_factory=Message)
    parent_tool_use_id: str | None = None  # set when a subagent speaks
    timestamp: str | None = None

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.message.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.message.content if isinstance(b, ToolUseBlock)]


class UserMessage(_Event):
    type: Literal["user"] = "user"
    message: Message = Field(default_factory=Message)
    parent_tool_use_id: str | None = None
    timestamp: str | None = None
    tool_use_result: Any = None  # the tool's structured result (shape depends on the tool)

    @property
    def tool_results(self) -> list[ToolResultBlock]:
        return [b for b in self.message.content if isinstance(b, ToolResultBlock)]


class PermissionDenial(_Model):
    tool_name: str = ""
    tool_use_id: str | None = None
    tool_input: dict[str, Any] = Field(default_factory=dict)


class Result(_Event):
    """The last line of a run. On API failures subtype is still "success" but is_error is true."""

    type: Literal["result"] = "result"
    subtype: str = ""  # success, error_max_turns, error_during_execution, error_max_budget_usd, ...
    is_error: bool = False
    num_turns: int = 0
    total_cost_usd: float = 0.0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    duration_ms: int | float = 0
    duration_api_ms: int | float = 0
    result: str | None = None  # the final text; absent on error_max_turns
    stop_reason: str | None = None
    terminal_reason: str | None = None  # completed, max_turns, api_error, ...
    errors: list[str] = Field(default_factory=list)
    permission_denials: list[PermissionDenial] = Field(default_factory=list)
    api_error_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.subtype == "success" and not self.is_error


class Unknown(_Event):
    """A JSON line of a type this module does not model (kept whole in `data`)."""

    type: str = "unknown"
    subtype: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ParseError(_Model):
    """A line that is not a JSON object, or does not fit its type's model."""

    type: Literal["parse_error"] = "parse_error"
    raw: str
    error: str


Event = (
    SystemInit | ApiRetry | PermissionDenied | SystemEvent | AssistantMessage | UserMessage | Result | Unknown | ParseError
)

_SYSTEM_SUBTYPES: dict[str, type[_Event]] = {
    "init": SystemInit,
    "api_retry": ApiRetry,
    "permission_denied": PermissionDenied,
}


def _truncate(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"


def parse_event(data: dict[str, Any]) -> Event:
    """Turn one decoded stream-json object into an event. Never raises."""
    etype = data.get("type")
    try:
        if etype == "system":
            cls = _SYSTEM_SUBTYPES.get(str(data.get("subtype")), SystemEvent)
            return cls.model_validate(data)  # type: ignore[return-value]
        if etype in ("assistant", "user"):
            rest = {k: v for k, v in data.items() if k != "message"}
            event = (AssistantMessage if etype == "assistant" else UserMessage).model_validate(rest)
            event.message = Message.from_raw(data.get("message"))
            return event
        if etype == "result":
            return Result.model_validate(data)
    except (ValidationError, TypeError, ValueError) as exc:
        return ParseError(raw=_truncate(json.dumps(data, ensure_ascii=False)), error=f"{etype}: {exc}".splitlines()[0])
    sub = data.get("subtype")
    return Unknown(
        type=str(etype) if etype is not None else "unknown",
        subtype=sub if isinstance(sub, str) else None,
        session_id=data.get("session_id") if isinstance(data.get("session_id"), str) else None,
        data=data,
    )


def parse_line(line: str | bytes) -> Event | None:
    """Parse one line of stream-json output. Blank lines give None; garbage gives ParseError."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = line.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return ParseError(raw=_truncate(text), error=f"not JSON: {exc}")
    if not isinstance(data, dict):
        return ParseError(raw=_truncate(text), error=f"not a JSON object: {type(data).__name__}")
    return parse_event(data)


# ----------------------------------------------------------------------------- progress lines
_SNIPPET = 80


def _code(value: Any, cwd: str | None = None) -> str:
    """A one-line, backtick-safe code span for a path or a command."""
    text = str(value) if value is not None else ""
    if cwd and text.startswith(cwd.rstrip("/") + "/"):
        text = text[len(cwd.rstrip("/")) + 1 :]
    text = " ".join(text.split())  # one line
    text = text.replace("`", "'")
    if len(text) > _SNIPPET:
        text = text[: _SNIPPET - 1] + "…"
    return f"`{text}`"


def describe_tool_use(name: str, tool_input: dict[str, Any], *, cwd: str | None = None) -> str:
    """One line for one tool call, e.g. "Edited `src/x.py`", "Ran `pytest -q`"."""
    path = tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    if name == "Write":
        return f"Wrote {_code(path, cwd)}"
    if name in ("Edit", "MultiEdit"):
        return f"Edited {_code(path, cwd)}"
    if name == "NotebookEdit":
        return f"Edited notebook {_code(path, cwd)}"
    if name == "Read":
        return f"Read {_code(path, cwd)}"
    if name == "Bash":
        return f"Ran {_code(tool_input.get('command'))}"
    if name == "Glob":
        return f"Listed files matching {_code(tool_input.get('pattern'))}"
    if name == "Grep":
        return f"Searched for {_code(tool_input.get('pattern'))}"
    if name == "WebFetch":
        return f"Fetched {_code(tool_input.get('url'))}"
    if name == "WebSearch":
        return f"Searched the web for {_code(tool_input.get('query'))}"
    if name in ("Agent", "Task"):
        return f"Started a subagent: {_code(tool_input.get('description') or tool_input.get('subagent_type'))}"
    if name in ("TodoWrite", "TaskCreate", "TaskUpdate"):
        return "Updated its task list"
    return f"Used {_code(name)}"


def describe_activity(event: Event | None, *, cwd: str | None = None) -> str | None:
    """A one-line human description of what the agent just did, or None if nothing worth showing.

    Tool calls give "Wrote `a.py`", "Edited `src/x.py`", "Ran `pytest -q`", "Read `README.md`";
    paths under `cwd` are shown relative to it. Plain assistant text, tool results and results give
    None (the caller shows those its own way).
    """
    if isinstance(event, AssistantMessage):
        uses = event.tool_uses
        if not uses:
            return None
        return "; ".join(describe_tool_use(u.name, u.input, cwd=cwd) for u in uses)
    if isinstance(event, ApiRetry):
        status = f" ({event.error_status})" if event.error_status else ""
        return f"Model API error{status}, retrying ({event.attempt}/{event.max_retries})"
    if isinstance(event, PermissionDenied):
        return f"Was not allowed to use {_code(event.tool_name)}"
    if isinstance(event, SystemInit):
        return f"Started Claude Code ({event.model})" if event.model else "Started Claude Code"
    return None
