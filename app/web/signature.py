"""A delivery's headers as GitHub sends them, `X-Hub-Signature-256` made over the exact bytes. The
webhook checks that signature (webhook.py, with gidgethub); `agentvine replay` and the GitHub fake make it."""

from __future__ import annotations

import hashlib
import hmac
import uuid


def sign(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256`: the HMAC-SHA256 of the exact bytes, keyed with the webhook secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(event: str, body: bytes, secret: str, delivery_id: str | None = None, *,
                     user_agent: str = "GitHub-Hookshot/agentvine") -> dict[str, str]:
    """The headers GitHub sends with a delivery of `body`: a fresh UUID as the delivery id unless given."""
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "User-Agent": user_agent,
    }
