"""Shared test helpers: the shared test data, and webhook deliveries signed as GitHub signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
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


# --- a running AgentVine service --------------------------------------------------------------

SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def app_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def reachable_by_host_git(path: Path) -> Path:
    """pytest's temporary folders are mode 0700; host git runs as another user (app/hostgit.py)
    and must be able to pass through them, as through any operator's data directory."""
    for folder in [path, *path.parents]:
        if folder == Path(tempfile.gettempdir()) or folder == folder.parent:
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    return path


def make_settings(tmp_path: Path, *, private_key: str, github_url: str = "http://127.0.0.1:9", app_id: int = 4242, **extra):
    from app.settings import Settings

    reachable_by_host_git(tmp_path)
    return Settings(
        app_id=app_id,
        private_key=private_key,
        webhook_secret=SECRET,
        github_api_url=github_url,
        git_url=github_url,
        data_dir=tmp_path / "agentvine",
        **extra,
    )


from app.agent.sandbox.image import DEFAULT_IMAGE, BuildError, build_image, image_exists  # noqa: E402

# --- Docker and the sandbox image (shared by tests/sandbox and tests/e2e) ----------------------


def unavailable(message: str):
    """Skip locally; fail in CI (CI=true) where the sandbox must be tested for real."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the Docker tests must run; see .ci/install-docker.sh)",
                    pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker
    except ImportError:
        unavailable("docker-py is not installed")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"no Docker engine answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The sandbox image, built once per session if it is missing (about a minute)."""
    tag = os.environ.get("AGENTVINE_TEST_SANDBOX_IMAGE", DEFAULT_IMAGE)
    if image_exists(tag, docker_client):
        return tag
    missing = [t for t in ("mmdebstrap", "npm") if shutil.which(t) is None]
    if missing:
        unavailable(f"the sandbox image {tag} is missing and {', '.join(missing)} "
                    "is not installed to build it")
    lines: list[str] = []
    t0 = time.monotonic()
    try:
        build_image(tag, log=lines.append, client=docker_client)
    except BuildError as exc:
        pytest.fail(f"building the sandbox image failed: {exc}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - t0:.0f}s")
    return tag




# --- the GitHub fake with one repository, and AgentVine acknowledging without running agents ---


@pytest.fixture
async def github(tmp_path):
    from app.fakes.github.testing import running_fake
    from tests.agentvine_harness import arrange_github

    async with running_fake(tmp_path) as fake:
        arrange_github(fake)
        yield fake
        fake.assert_no_violations()


@pytest.fixture
async def bot(github, tmp_path):
    from tests.agentvine_harness import running_agentvine

    # max_concurrent_jobs=0: acknowledge, run no agent (tests/e2e runs them).
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0) as harness:
        yield harness
