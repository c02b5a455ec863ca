"""The signature `agentvine replay` (and the GitHub fake) makes is the one the webhook accepts."""

from __future__ import annotations

import uuid

import pytest
from gidgethub import ValidationFailure, sansio

from app.web.signature import delivery_headers, sign


def test_the_signature_is_what_gidgethub_verifies_and_nothing_else():
    body = b'{"action": "labeled"}'
    sansio.validate_event(body, signature=sign(body, "s3cret"), secret="s3cret")
    with pytest.raises(ValidationFailure):
        sansio.validate_event(body, signature=sign(body, "other"), secret="s3cret")
    with pytest.raises(ValidationFailure):
        sansio.validate_event(body + b" ", signature=sign(body, "s3cret"), secret="s3cret")


def test_each_delivery_gets_a_fresh_uuid_unless_one_is_given():
    first, second = (delivery_headers("issues", b"{}", "s")["X-GitHub-Delivery"] for _ in range(2))
    assert first != second and uuid.UUID(first)
    given = str(uuid.uuid4())
    headers = delivery_headers("issues", b"{}", "s", given, user_agent="agentvine-replay")
    assert headers["X-GitHub-Delivery"] == given and headers["User-Agent"] == "agentvine-replay"
    assert headers["X-GitHub-Event"] == "issues" and headers["Content-Type"] == "application/json"
