"""Driving the Claude Code CLI: its command line and its stream-json events."""

from app.agent.claude.command import CLAUDE_CODE_ENV, ClaudeOptions, build_command
from app.agent.claude.events import (
    ApiRetry,
    AssistantMessage,
    Event,
    ParseError,
    PermissionDenied,
    Result,
    SystemEvent,
    SystemInit,
    Unknown,
    UserMessage,
    describe_activity,
    parse_line,
)

__all__ = [
    "ApiRetry",
    "AssistantMessage",
    "CLAUDE_CODE_ENV",
    "ClaudeOptions",
    "Event",
    "ParseError",
    "PermissionDenied",
    "Result",
    "SystemEvent",
    "SystemInit",
    "Unknown",
    "UserMessage",
    "build_command",
    "describe_activity",
    "parse_line",
]
