"""When to retry a failed GitHub request, and after how long. Pure functions."""

from __future__ import annotations

import random
from collections.abc import Mapping

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter for the `attempt`-th failure (1-based)."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))


def retry_delay(status: int, headers: Mapping[str, str], attempt: int, now: float) -> float | None:
    """Seconds to wait before retrying, or None when the failure is final.

    Follows GitHub's guidance: honour `Retry-After`; when the primary limit is used up wait
    until `x-ratelimit-reset`; otherwise back off exponentially (5xx, 429 without a hint)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if status in (403, 429):
        if "retry-after" in lowered:
            try:
                return max(0.0, float(lowered["retry-after"]))
            except ValueError:
                return backoff(attempt)
        if lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
            try:
                return max(0.0, float(lowered["x-ratelimit-reset"]) - now) + 1.0
            except ValueError:
                return backoff(attempt)
        return backoff(attempt) if status == 429 else None  # a plain 403 is a real refusal
    if status >= 500:
        return backoff(attempt)
    return None
