"""Shared test helpers: the shared test data, and webhook deliveries signed as GitHub signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path(os.environ.get("AGENTVINE_TESTDATA", ROOT.parent / "shared" / "testdata"))
WEBHOOKS = TESTDATA / "github" / "webhooks"
IN_CI = os.environ.get("CI", "").lower() == "true"


def example_payload(event: str, name: str) -> bytes:
    """The exact bytes of one of GitHub's example payloads."""
    return (WEBHOOKS / event / name).read_bytes()


def all_example_payloads() -> list[tuple[str, Path]]:
    return sorted((path.parent.name, path) for path in WEBHOOKS.glob("*/*.json"))


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(event: str, body: bytes, secret: str, delivery_id: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }


def as_bytes(payload: dict) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not WEBHOOKS.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA} (set AGENTVINE_TESTDATA)")
    return TESTDATA
