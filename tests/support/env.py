"""The shared test data, the settings a test service runs with, and CI's rule that nothing skips."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(os.environ.get("AGENTVINE_TESTDATA", ROOT.parent / "shared" / "testdata"))
WEBHOOKS = TESTDATA / "github" / "webhooks"
IN_CI = os.environ.get("CI", "").lower() == "true"
SECRET = "test-webhook-secret"


def example_payload(event: str, name: str) -> bytes:
    """The exact bytes of one of GitHub's example payloads."""
    return (WEBHOOKS / event / name).read_bytes()


def all_example_payloads() -> list[tuple[str, Path]]:
    return sorted((path.parent.name, path) for path in WEBHOOKS.glob("*/*.json"))


def as_bytes(payload: dict) -> bytes:
    return json.dumps(payload).encode()


DOCKER_HINT = "the Docker tests must run; see .ci/install-docker.sh"


def unavailable(message: str, hint: str = DOCKER_HINT):
    """Skip locally; fail in CI (CI=true) where the sandbox (and whatever else `hint` names) must be tested for real."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: {hint})", pytrace=False)
    pytest.skip(message)


def reachable_by_host_git(path: Path) -> Path:
    """pytest's temporary folders are mode 0700; host git runs as another user (app/agent/boundary/hostgit.py)
    and must be able to pass through them, as through any operator's data directory."""
    for folder in [path, *path.parents]:
        if folder == Path(tempfile.gettempdir()) or folder == folder.parent:
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    return path


def make_settings(tmp_path: Path, *, private_key: str, github_url: str = "http://127.0.0.1:9", app_id: int = 4242,
                  api_url: str | None = None, **extra):
    from app.settings import Settings

    reachable_by_host_git(tmp_path)
    return Settings(
        app_id=app_id,
        private_key=private_key,
        webhook_secret=SECRET,
        github_api_url=api_url or github_url,  # GitHub Enterprise Server: its API under /api/v3
        git_url=github_url,
        data_dir=tmp_path / "agentvine",
        **extra,
    )
