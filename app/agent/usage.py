"""Counting the tokens a job spends, from the model API's answers as they stream past.

The gateway relays each answer chunk by chunk and must not hold it back to count it, so the
counting is a tap fed the same chunks: it parses server-sent events line by line (or a JSON
answer at its end) and adds what the answer reports to the job's :class:`Usage` at once. Apart
from gateway.py because it is about the Messages API's usage fields, not about relaying.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pydantic import BaseModel

from app import metrics

__all__ = ["MAX_JSON_USAGE_BYTES", "USAGE_FIELDS", "Usage", "UsageTap"]

MAX_JSON_USAGE_BYTES = 8 * 1024 * 1024  # JSON answers larger than this are not parsed for usage


class Usage(BaseModel):
    """Tokens and requests one job spent through the gateway."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests: int = 0  # requests forwarded upstream
    upstream_errors: int = 0  # forwarded requests upstream answered with status >= 400
    rejected: int = 0  # requests refused here (bad or missing token, path not allowed, policy, budget)
    refused_policy: int = 0  # of those, refused by the job's policy (app/agent/policy.py)
    refused_budget: int = 0  # of those, refused because the job's budget was reached
    turns: int = 0  # /v1/messages requests upstream answered (status < 400): model turns, subagents' too
    cost_usd: float = 0.0  # ESTIMATED from the tokens and app/agent/policy.py's PRICES
    model_seconds: float = 0.0  # time spent waiting on the upstream, request sent to answer's end

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class UsageTap:
    """Counts usage from a response as it streams past, adding it to a job's totals live.

    SSE: `message_start.message.usage` gives the first figures, each `message_delta.usage` gives
    cumulative figures for the same message (the latest value of each field wins). JSON: the
    top-level `usage` of a message. Deltas are added to the job at once, so a stream cut short
    still counts what was reported so far.
    """

    def __init__(self, usage: Usage, content_type: str, count_json: bool, model: str = metrics.NONE) -> None:
        self._usage = usage
        self._model = model  # the job's, for agentvine_model_tokens_total
        self._sse = content_type.startswith("text/event-stream")
        self._json = count_json and content_type.startswith("application/json")
        self._buf = bytearray()
        self._counted = dict.fromkeys(USAGE_FIELDS, 0)
        self._overflow = False

    def feed(self, chunk: bytes) -> None:
        if self._overflow or not (self._sse or self._json):
            return
        self._buf += chunk
        if self._sse:
            while True:
                nl = self._buf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(self._buf[:nl]).rstrip(b"\r")
                del self._buf[: nl + 1]
                self._sse_line(line)
        if len(self._buf) > MAX_JSON_USAGE_BYTES:
            self._overflow = True
            self._buf.clear()

    def finish(self) -> None:
        if self._json and not self._overflow and self._buf:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                data = json.loads(self._buf)
                if isinstance(data, dict) and isinstance(data.get("usage"), dict):
                    self._apply(data["usage"])
        self._buf.clear()

    def _sse_line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        try:
            data = json.loads(line[5:])
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(data, dict):
            return
        if data.get("type") == "message_start":
            message = data.get("message")
            if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                self._apply(message["usage"])
        elif data.get("type") == "message_delta" and isinstance(data.get("usage"), dict):
            self._apply(data["usage"])

    def _apply(self, reported: dict[str, Any]) -> None:
        for name in USAGE_FIELDS:
            value = reported.get(name)
            if isinstance(value, int) and value >= 0 and value != self._counted[name]:
                setattr(self._usage, name, getattr(self._usage, name) + value - self._counted[name])
                metrics.model_tokens(self._model, name.removesuffix("_tokens"), value - self._counted[name])
                self._counted[name] = value
