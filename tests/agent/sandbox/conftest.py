"""Fixtures for the sandbox tests: a Docker client, the sandbox image, per-test job ids.

Docker tests SKIP when no Docker engine answers, except when CI=true: there they FAIL with a
clear message, so a CI machine without Docker can never pass by skipping everything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from app.agent.sandbox.layout import LABEL, LABEL_JOB

IN_CI = os.environ.get("CI", "").lower() == "true"
#: Every job id used by this test session starts with this, so that the leftover check only
#: looks at our own containers even on a Docker host where other things run.
SESSION_PREFIX = f"t{uuid.uuid4().hex[:6]}"


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
        for c in client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL}=1"})
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
