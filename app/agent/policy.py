"""What one job may ask of the model API through the gateway, and what it has spent.

The agent holds the per-job token and a shell, so it can call the gateway itself with any body
and any header. The gateway therefore checks every request against the job's :class:`ModelPolicy`
before it forwards it under the real key: the job's model only, a `max_tokens` ceiling, client
tools only (no server-side tools, no `mcp_servers`), only the request fields and `anthropic-beta`
values Claude Code sends, no content the API would fetch (URL or Files-API sources), and the job's
budget. What Claude Code 2.1.330 sends, and how it was measured, is in docs/model-gateway.md.

Everything the policy allows is configured here, in one place: MODEL_ALIASES, CLAUDE_CODE_BETAS,
DEFAULT_MAX_TOKENS, REQUEST_FIELDS, PRICES, MAX_IN_FLIGHT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.agent.usage import Usage

# The model names Claude Code 2.1.330 actually puts in the request for a `--model` value (every
# request of a run, subagents included, uses that one model: it has no small/fast side model in
# `-p` mode). A `--model` not listed here is sent as given. Measured, see docs/model-gateway.md.
MODEL_ALIASES: dict[str, str] = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
    "claude-opus-4-0": "claude-opus-5-5",
    "claude-opus-4-1": "claude-opus-5-5",
}

# Every `anthropic-beta` value Claude Code 2.1.330 sends in normal operation (the union over the
# models above; it drops some of them when it retries after a 400). Anything else is refused.
CLAUDE_CODE_BETAS: frozenset[str] = frozenset({
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "context-management-2025-06-27",
    "per-turn-control-2026-07-01",
    "mid-conversation-tool-changes-2026-07-01",
    "thinking-token-count-2026-05-13",
    "advanced-tool-use-2025-11-20",
    "effort-2025-11-24",
    "thinking-display-updates-2026-08-18",
})

# Requests one job may have upstream at once. The budget is checked before each request, so
# requests sent together could all pass it: this bounds the overshoot to MAX_IN_FLIGHT requests.
# Claude Code's main loop sends one at a time (subagents add theirs); a request over the limit
# gets a 429, which Claude Code retries with backoff.
MAX_IN_FLIGHT = 4

# Claude Code asks for 8192 (claude-3-5-haiku), 32000 (4.x models) or 128000 (the 5.5 models).
DEFAULT_MAX_TOKENS = 128_000

# Top-level request fields a job may send: what Claude Code sends, plus the plain sampling
# controls. Not `mcp_servers` (the API would call those servers), `container` (code execution),
# `service_tier` (priority pricing) or anything new.
REQUEST_FIELDS: frozenset[str] = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "metadata", "max_tokens", "thinking",
    "context_management", "output_config", "stream", "stop_sequences", "temperature", "top_k", "top_p",
})
# A tool entry without `type` (or `custom`) is a client tool, run by Claude Code in the sandbox.
# Any other type (web_search_*, web_fetch_*, code_execution_*, computer_*, bash_*,
# text_editor_*, memory_*, tool_search_tool_*, mcp_toolset, ...) is run by the API: refused.
CLIENT_TOOL_TYPES = frozenset({None, "custom"})
# Content `source` types that make the API fetch something: a URL, or a file of the account.
FETCHED_SOURCES = frozenset({"url", "file"})


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    def cost(self, usage: Usage) -> float:
        # Anthropic's published multipliers: cache writes 1.25x input (5-minute), reads 0.1x input.
        tokens_in = usage.input_tokens + 1.25 * usage.cache_creation_input_tokens + 0.1 * usage.cache_read_input_tokens
        return (tokens_in * self.input + usage.output_tokens * self.output) / 1_000_000


# An ESTIMATE of what a job costs, from Anthropic's list prices by model family (first matching
# prefix wins). It is there to stop a runaway job, not to bill anyone; an unknown model is priced
# as the most expensive one, so a budget is never looser than it says.
PRICES: tuple[tuple[str, Price], ...] = (
    ("claude-opus-4-0", Price(15.0, 75.0)),
    ("claude-opus-4-1", Price(15.0, 75.0)),
    ("claude-opus-4-20", Price(15.0, 75.0)),
    ("claude-opus", Price(5.0, 25.0)),
    ("claude-sonnet", Price(3.0, 15.0)),
    ("claude-3-5-haiku", Price(0.8, 4.0)),
    ("claude-haiku", Price(1.0, 5.0)),
)
UNKNOWN_PRICE = Price(15.0, 75.0)


def price_of(model: str) -> Price:
    return next((price for prefix, price in PRICES if model.startswith(prefix)), UNKNOWN_PRICE)


@dataclass(frozen=True)
class Refusal:
    """Why a request is not forwarded: the HTTP status, the Anthropic error type and the reason."""

    status: int
    error_type: str
    message: str
    budget: bool = False


def _denied(message: str) -> Refusal:
    # 403 and not 400: Claude Code stops at once on a 403, while it resends a 400 up to five
    # times, dropping one beta each time (measured on 2.1.330).
    return Refusal(403, "permission_error", message)


@dataclass(frozen=True)
class ModelPolicy:
    """What one job may send. ``models``: the request model names allowed; ``budget_usd``: the
    estimated spend (see PRICES) after which requests are refused (None: no budget)."""

    models: frozenset[str]
    max_tokens: int = DEFAULT_MAX_TOKENS
    budget_usd: float | None = None
    betas: frozenset[str] = field(default=CLAUDE_CODE_BETAS)
    max_in_flight: int = MAX_IN_FLIGHT
    model: str = "none"  # the job's `--model`, as the metrics name it (not a check: `models` is)

    @classmethod
    def for_job(cls, model: str, budget_usd: float | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> ModelPolicy:
        """The policy for a job run with `claude --model <model>`."""
        return cls(models=frozenset({model, MODEL_ALIASES.get(model, model)}), max_tokens=max_tokens,
                   budget_usd=budget_usd or None, model=model)

    @property
    def price(self) -> Price:
        """The job's price: that of its most expensive allowed model."""
        return max((price_of(m) for m in self.models), key=lambda p: (p.output, p.input), default=UNKNOWN_PRICE)

    def cost(self, usage: Usage) -> float:
        return round(self.price.cost(usage), 6)

    def over_budget(self, usage: Usage) -> bool:
        return self.budget_usd is not None and self.cost(usage) >= self.budget_usd

    def check(self, query: str, beta_header: str | None, body: bytes, usage: Usage) -> Refusal | None:
        """None when the request may go upstream, else why not."""
        if query not in ("", "beta=true"):
            return _denied(f"query string {query[:100]!r} is not allowed")
        for beta in (b.strip() for b in (beta_header or "").split(",")):
            if beta and beta not in self.betas:
                return _denied(f"anthropic-beta {beta[:100]!r} is not allowed for this job")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Refusal(400, "invalid_request_error", "the request body is not JSON")
        if not isinstance(data, dict):
            return Refusal(400, "invalid_request_error", "the request body is not a JSON object")
        refusal = self._check_body(data)
        if refusal is None and self.over_budget(usage):
            return Refusal(403, "permission_error", f"the job's budget of ${self.budget_usd:.2f} is reached "
                           f"(estimated ${self.cost(usage):.2f} spent)", budget=True)
        return refusal

    def _check_body(self, data: dict[str, Any]) -> Refusal | None:
        extra = sorted(str(k)[:60] for k in data if k not in REQUEST_FIELDS)
        if extra:
            return _denied(f"request field(s) not allowed: {', '.join(extra)}")
        if data.get("model") not in self.models:
            return _denied(f"model {str(data.get('model'))[:100]!r} is not allowed for this job")
        max_tokens = data.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens > self.max_tokens):
            return _denied(f"max_tokens {str(max_tokens)[:20]} is over this job's ceiling of {self.max_tokens}")
        tools = data.get("tools") or []
        if not isinstance(tools, list):
            return Refusal(400, "invalid_request_error", "tools must be a list")
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, dict) else "?"
            if kind not in CLIENT_TOOL_TYPES:
                return _denied(f"tool type {str(kind)[:100]!r} runs on the API's side and is not allowed")
        if _fetched_source(data.get("messages")) or _fetched_source(data.get("system")):
            return _denied("content the API would fetch (a url or file source) is not allowed")
        return None


def _fetched_source(value: Any, depth: int = 0) -> bool:
    """True when some content block has a `source` the API would fetch (url, file)."""
    if depth > 12:
        return True  # nothing Claude Code sends is nested this deep
    if isinstance(value, list):
        return any(_fetched_source(v, depth + 1) for v in value)
    if isinstance(value, dict):
        source = value.get("source")
        if isinstance(source, dict) and source.get("type") in FETCHED_SOURCES:
            return True
        # A tool_use's `input` is the model's own output, data for a client tool: not fetched.
        return any(_fetched_source(v, depth + 1) for k, v in value.items()
                   if k != "input" and isinstance(v, (list, dict)))
    return False
