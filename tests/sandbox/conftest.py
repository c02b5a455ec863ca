"""Fixtures for the sandbox tests: a Docker client, the sandbox image, per-test job ids.

Docker tests SKIP when no Docker engine answers, except when CI=true: there they FAIL with a
clear message, so a CI machine without Docker can never pass by skipping everything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from app.sandbox.container import LABEL, LABEL_JOB
from app.sandbox.image import DEFAULT_IMAGE, BuildError, build_image, image_exists

IN_CI = os.environ.get("CI", "").lower() == "true"
#: Every job id used by this test session starts with this, so that the leftover check only
#: looks at our own containers even on a Docker host where other things run.
SESSION_PREFIX = f"t{uuid.uuid4().hex[:6]}"


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


@pytest.fixture
def job_id(request) -> str:
    return f"{SESSION_PREFIX}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def job_dirs(tmp_path) -> tuple[Path, Path]:
    """(workspace, home) host directories for one job."""
    ws, home = tmp_path / "workspace", tmp_path / "home"
    ws.mkdir()
    home.mkdir()
    return ws, home


@pytest.fixture
def short_tmp():
    """A short directory for Unix sockets (sun_path is limited to 107 bytes), mode 0700."""
    d = tempfile.mkdtemp(prefix="av-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def our_containers(client) -> list:
    return [
        c
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
        if c.labels.get(LABEL_JOB, "").startswith(SESSION_PREFIX)
    ]


@pytest.fixture(autouse=True)
def no_leftover_containers(request):
    """After every Docker test: no container of this session may be left behind."""
    yield
    if request.node.get_closest_marker("docker") is None:
        return
    if "docker_client" not in request.fixturenames:
        return
    client = request.getfixturevalue("docker_client")
    left = our_containers(client)
    for c in left:
        c.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
