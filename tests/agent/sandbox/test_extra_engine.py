"""The extra Docker engines of the scale-out tests (tests/support/engines.py): apart from the main engine,
able to run the sandbox image without a network, and gone without a trace once stopped."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.engines import (
    EngineError,
    EngineSettings,
    ExtraEngine,
    missing_requirements,
)

pytestmark = pytest.mark.docker

SLEEP = ["sleep", "300"]
MARK = "org.agentvine.test.extra-engine"


def _sleeper(client, image: str):
    return client.containers.run(image, SLEEP, detach=True, network_mode="none",
                                 labels={MARK: uuid.uuid4().hex}, name=f"avx-test-{uuid.uuid4().hex[:8]}")


def _ids(client) -> set[str]:
    return {c.id for c in client.containers.list(all=True, ignore_removed=True)}


def test_each_engine_lists_only_its_own_containers(extra_engine, extra_sandbox_image, docker_client):
    extra = extra_engine.client()
    on_extra = _sleeper(extra, extra_sandbox_image)
    on_main = _sleeper(docker_client, extra_sandbox_image)
    try:
        assert on_extra.id in _ids(extra) and on_extra.id not in _ids(docker_client)
        assert on_main.id in _ids(docker_client) and on_main.id not in _ids(extra)
        assert extra.info()["DockerRootDir"] == str(extra_engine.data_root)
    finally:
        on_extra.remove(force=True)
        on_main.remove(force=True)


def test_the_sandbox_image_runs_there_without_a_network(extra_engine, extra_sandbox_image):
    output = extra_engine.client().containers.run(
        extra_sandbox_image, ["sh", "-c", "echo hello; ls /sys/class/net"], remove=True, network_mode="none",
        user="1000:1000", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True)
    assert output.decode().split() == ["hello", "lo"]


def test_an_image_already_there_is_not_loaded_again(extra_engine, extra_sandbox_image, docker_client):
    assert extra_engine.ensure_image(extra_sandbox_image, docker_client) is False


def _requirements() -> None:
    from tests.support.env import unavailable

    reason = missing_requirements()
    if reason:
        unavailable(reason)


def _traces(engine: ExtraEngine, dockerd: int) -> dict[str, object]:
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
              if str(engine.data_root) in line or str(engine.run_dir) in line]
    return {"mounts": mounts, "netns": engine.netns.exists(), "dockerd": Path(f"/proc/{dockerd}").exists(),
            "data root": engine.data_root.exists(), "run dir": engine.run_dir.exists()}


def test_stop_leaves_no_netns_process_or_mount(tmp_path, docker_client, sandbox_image):
    _requirements()
    engine = ExtraEngine(EngineSettings.like(docker_client))
    engine.start(tmp_path)
    dockerd = engine.pid
    try:
        engine.load_image(sandbox_image, docker_client)
        _sleeper(engine.client(), sandbox_image)  # a running container: an overlay mount, a shim
        running = _traces(engine, dockerd)
        assert running["mounts"] and running["netns"] and running["dockerd"]
    finally:
        engine.stop()
    assert _traces(engine, dockerd) == {"mounts": [], "netns": False, "dockerd": False, "data root": False,
                               "run dir": False}


def test_a_dockerd_that_cannot_start_says_why_and_leaves_nothing(tmp_path, docker_client):
    _requirements()
    engine = ExtraEngine(EngineSettings(storage_driver="no-such-driver"))
    with pytest.raises(EngineError, match="(?s)exited with code.*dockerd's log:.*no-such-driver"):
        engine.start(tmp_path)
    assert not engine.netns.exists() and not engine.run_dir.exists()
