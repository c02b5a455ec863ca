"""Fixtures shared by every test folder; the helpers they use live in tests/support/."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.agent.sandbox.image import BuildError, BuildOptions, build_image, image_exists
from app.agent.sandbox.recipe import PROFILE_IMAGES
from app.store.base import JobStore
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

@pytest.fixture
def needs_root() -> None:
    """Tests of what only root may do (chown to uid 1000, switching the git user): skipped for a user,
    failed in CI (root there), so a broken install never hides behind a skip."""
    if os.geteuid() != 0:
        unavailable("needs root")


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


def _profile_image(client, profile: str, override: str) -> str:
    """A profile's image, built once per session if it is missing (base about a minute, full 1-2)."""
    tag = os.environ.get(override, PROFILE_IMAGES[profile])
    if image_exists(tag, client):
        return tag
    missing = [t for t in ("mmdebstrap", "npm") if shutil.which(t) is None]
    if missing:
        unavailable(f"the sandbox image {tag} is missing and {', '.join(missing)} "
                    "is not installed to build it")
    lines: list[str] = []
    t0 = time.monotonic()
    try:
        build_image(tag, BuildOptions(profile=profile), log=lines.append, client=client)
    except BuildError as exc:
        pytest.fail(f"building the sandbox image failed: {exc}", pytrace=False)
    print(f"\nbuilt {tag} in {time.monotonic() - t0:.0f}s")
    return tag


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The base profile's image: what most tests need (git and the CLI), and the quickest to build."""
    return _profile_image(docker_client, "base", "AGENTVINE_TEST_SANDBOX_IMAGE")


@pytest.fixture(scope="session")
def full_image(docker_client) -> str:
    """The full profile's image (Python, Node.js, gcc, ...): the default of new installations."""
    return _profile_image(docker_client, "full", "AGENTVINE_TEST_FULL_IMAGE")


@pytest.fixture(scope="session")
def runtime_volume(docker_client, full_image) -> str:
    """AgentVine's runtime for images that are not its own (made from the full image in seconds)."""
    from app.agent.sandbox.layout import PINNED
    from app.agent.sandbox.runtime_build import build_runtime

    try:
        return build_runtime(PINNED, log=lambda _line: None, client=docker_client)
    except BuildError as exc:
        pytest.fail(f"building the runtime volume failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def team_image(docker_client, sandbox_image) -> str:
    """A team's own development image: Debian with git and bash, without Claude Code, socat or uid 1000's name."""
    from tests.support.team_images import team_image as make

    return make(docker_client, sandbox_image)


# --- PostgreSQL: one private server per session, one empty database per test (tests/support/postgres.py) ---

POSTGRES_HINT = "the PostgreSQL tests must run; see .ci/install-postgres.sh"


@pytest.fixture(scope="session")
def postgres_server():
    """The server of AGENTVINE_TEST_DATABASE_URL, else a private one (initdb and start: about 0.5 s)."""
    from tests.support.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.for_tests()
    except PostgresUnavailable as exc:
        unavailable(str(exc), POSTGRES_HINT)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> Iterator[str]:
    """The URL of a new empty database (UTF-8, C collation) for this test alone, dropped after it
    with the sessions it left open."""
    with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path) -> Iterator[Callable[[], JobStore]]:
    """Opens the backend's store on one database: each call another connection to the same data (a
    second process, or the next one after a restart). Every store it opened is closed after the test.
    Parametrized: a test that takes it runs against SQLite in a file and a real PostgreSQL server."""
    if request.param == "sqlite":
        from app.store import SQLiteJobStore

        def factory() -> JobStore:
            return SQLiteJobStore(tmp_path / "db.sqlite")
    else:
        from app.store.postgres import PostgresJobStore

        url = request.getfixturevalue("pg_url")

        def factory() -> JobStore:
            return PostgresJobStore(url)
    opened: list[JobStore] = []

    def open_one() -> JobStore:
        opened.append(factory())
        return opened[-1]

    yield open_one
    for store in opened:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass


# --- a second Docker engine, another "host" for the scale-out tests (tests/support/engines.py) -----


@pytest.fixture(scope="session")
def extra_engine(docker_client, tmp_path_factory):
    """An extra dockerd in a network namespace of its own, with the main engine's storage and cgroup
    drivers and no images: load them with `extra_engine.ensure_image(tag, docker_client)`, or take
    `extra_sandbox_image`. Its `docker_host` goes into a worker's DOCKER_HOST. Starts in well under a second."""
    from tests.support.engines import (
        EngineError,
        EngineSettings,
        ExtraEngine,
        missing_requirements,
    )

    reason = missing_requirements()
    if reason:
        unavailable(reason)
    engine = ExtraEngine(EngineSettings.like(docker_client))
    try:
        engine.start(tmp_path_factory.mktemp("extra-engine"))
    except EngineError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def extra_sandbox_image(extra_engine, docker_client, sandbox_image) -> str:
    """The base profile's image in the extra engine too (copied from the main engine, 5-8s)."""
    extra_engine.ensure_image(sandbox_image, docker_client)
    return sandbox_image


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
