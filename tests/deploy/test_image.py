"""The deployable image: the Dockerfile builds here (no registry: the base image from Debian's archive,
the wheels through the host), a second build takes seconds, and `agentvine doctor` passes in a container
of it that uses the host's Docker engine, against the fakes on the host's loopback."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from app.agent.sandbox.rootfs import BuildError
from app.operator.deploy.build import ImagePlan, build_service_image
from app.operator.doctor import ALL_PASSED, CHECKS
from tests.support.doctor import doctor_world
from tests.support.env import ROOT, unavailable

pytestmark = pytest.mark.docker
TAG = "agentvine:test"
SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="session")
def service_image(docker_client) -> str:
    import shutil

    if shutil.which("mmdebstrap") is None:
        unavailable("mmdebstrap is not installed to build the base image")
    lines: list[str] = []
    started = time.monotonic()
    try:
        build_service_image(ImagePlan(source=ROOT, tag=TAG), log=lines.append, client=docker_client)
    except BuildError as exc:
        pytest.fail(f"building the image failed: {exc}", pytrace=False)
    print(f"\nbuilt {TAG} in {time.monotonic() - started:.0f}s")
    return TAG


def run_in_container(client, image: str, env: dict[str, str], mounts: dict[str, str], *command: str) -> tuple[int, str]:
    """`docker run --network host -v <each mount> <image> <command>` with the host's engine mounted."""
    volumes = {SOCKET: {"bind": SOCKET, "mode": "rw"}, **{h: {"bind": c, "mode": "rw"} for h, c in mounts.items()}}
    container = client.containers.run(image, list(command), environment=env, network_mode="host", volumes=volumes,
                                      detach=True, labels={"agentvine.test": "image"})
    try:
        code = container.wait(timeout=180)["StatusCode"]
        return code, container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)


def test_a_second_build_reuses_every_layer(service_image, docker_client):
    """The base image, the wheels and every layer stay (docs/deploy.md has the times)."""
    before = docker_client.images.get(service_image).id
    lines: list[str] = []
    assert build_service_image(ImagePlan(source=ROOT, tag=service_image), log=lines.append,
                               client=docker_client) == before  # the same image: nothing was rebuilt
    assert any("not rebuilding" in line for line in lines) and any("are up to date" in line for line in lines)
    steps = [line for line in lines if line.startswith("Step ")]
    assert sum("Using cache" in line for line in lines) >= len(steps) - 2, lines  # ARG and FROM show no cache line


async def test_doctor_passes_in_the_container_with_the_hosts_engine(service_image, sandbox_image, docker_client,
                                                                   tmp_path):
    async with doctor_world(tmp_path, sandbox_image) as world:
        # The data directory (and the key beside it) at the same path inside and out.
        code, out = await asyncio.to_thread(run_in_container, docker_client, service_image, world.env,
                                            {str(tmp_path): str(tmp_path)}, "agentvine", "doctor")
    assert code == 0, out
    assert out.splitlines()[-1] == ALL_PASSED.format(count=len(CHECKS)), out
    assert f"answers at unix://{SOCKET}" in out and f"{tmp_path}/data/tmp" in out, out  # TMPDIR in the data dir
    world.github.assert_no_violations()


async def test_doctor_in_the_container_finds_a_data_dir_the_host_engine_cannot_see(service_image, sandbox_image,
                                                                                  docker_client, tmp_path):
    inside_only = f"/srv/agentvine-{secrets.token_hex(4)}"  # exists in the container only
    async with doctor_world(tmp_path, sandbox_image) as world:
        env = {**world.env, "AGENTVINE_DATA_DIR": inside_only}
        code, out = await asyncio.to_thread(run_in_container, docker_client, service_image, env,
                                            {str(tmp_path): str(tmp_path)}, "agentvine", "doctor")
    assert code == 1, out
    line = next(line for line in out.splitlines() if line.split()[:2] == ["failed", "engine-paths"])
    assert inside_only in line and "mount each at the same path" in line and "Traceback" not in out, out


def test_image_build_outside_a_checkout_says_so_without_a_traceback(tmp_path, capsys):
    from app.cli import main

    assert main(["image", "build", "--source", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path} has no Dockerfile: run this in a checkout of AgentVine" in err and "Traceback" not in err
