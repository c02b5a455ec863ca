"""Fixtures shared by every test folder; the helpers they use live in tests/support/."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from app.agent.sandbox.image import BuildError, build_image, image_exists
from app.agent.sandbox.recipe import DEFAULT_IMAGE
from tests.support.env import TESTDATA, WEBHOOKS, unavailable
from tests.support.model import (  # noqa: F401  (pytest finds fixtures by name)
    claude_bin,
    cli_runner,
    fake_upstream,
    gateway,
    socket_dir,
)

# A developer's own ./agentvine.env (what `agentvine setup` writes) must not reach the tests, nor the
# processes they start: every test reads an empty settings file unless it names another.
_EMPTY_ENV_FILE = Path(tempfile.mkdtemp(prefix="agentvine-tests-")) / "empty.env"
_EMPTY_ENV_FILE.touch(mode=0o600)
os.environ["AGENTVINE_ENV_FILE"] = str(_EMPTY_ENV_FILE)

@pytest.fixture(scope="session")
def testdata() -> Path:
    if not WEBHOOKS.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA} (set AGENTVINE_TESTDATA)")
    return TESTDATA


# --- a running AgentVine service --------------------------------------------------------------


@pytest.fixture(scope="session")
def app_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


# --- Docker and the sandbox image (shared by tests/agent/sandbox and tests/e2e) ----------------------


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
    from tests.support.harness import arrange_github

    async with running_fake(tmp_path) as fake:
        arrange_github(fake)
        yield fake
        fake.assert_no_violations()


@pytest.fixture
async def bot(github, tmp_path):
    from tests.support.harness import running_agentvine

    # max_concurrent_jobs=0: acknowledge, run no agent (tests/e2e runs them).
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0) as harness:
        yield harness
