"""The pip cache does what it is for, in the real `full` image through the real egress proxy: the
first sandbox downloads a wheel into /cache/pip, a second one (a later job of the same repository:
a fresh home, the same cache folder) installs it from there without fetching it again, and both
get the wheel whole (its hash is in the index page, and pip checks it).

pip caches only what it fetched over HTTPS or from a `--trusted-host`, and only what the answer's
fields make cacheable (tests/support/package_index.py sends PyPI's): the index here is plain HTTP
on the host's loopback, so the command names it trusted, as a repository with such a mirror would."""

from __future__ import annotations

import base64
import random

import pytest

from app.agent.egress import EgressPolicy, EgressProxy
from app.agent.sandbox.caches import RepoCaches
from app.agent.sandbox.container import SandboxSpec
from app.agent.sandbox.runner import run_sandbox
from tests.support.package_index import local_pypi

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("needs_root")]  # caches are chowned to uid 1000

MB = 4  # random bytes in base64: a wheel of about 3 MB, many relay buffers' worth


async def _pip_install(image, proxy, caches, index, job_id, folder) -> tuple[int | None, str]:
    allow = [f"127.0.0.1:{index.port}"]
    channel = await proxy.open_job(job_id, EgressPolicy(allow, allow), enabled=True)
    mounts, env = caches.prepare()
    workspace, home = folder / "workspace", folder / "home"
    workspace.mkdir(parents=True)
    home.mkdir()
    command = ('exec 2>&1\npip install --proxy "$HTTP_PROXY" --user --break-system-packages --disable-pip-version-check '
               f'--trusted-host 127.0.0.1:{index.port} --index-url {index.url}/simple/ agvbig && python3 -c "import agvbig; print(agvbig.X)"')
    lines: list[str] = []
    try:
        run = await run_sandbox(SandboxSpec(job_id=job_id, image=image, command=["/bin/sh", "-c", command],
                                            workspace=workspace, home=home, env=env, mounts=mounts,
                                            egress_socket=channel.socket_path, timeout_s=120), lines.append)
    finally:
        await proxy.close_job(job_id)
    caches.trim()  # what the worker does after each job
    return run.exit_code, "\n".join(lines)


async def test_a_second_sandbox_installs_the_wheel_from_the_cache(full_image, job_id, short_tmp, tmp_path):
    blob = base64.b64encode(random.Random(5).randbytes(MB * 1024 * 1024 * 3 // 4)).decode()
    wheel = "agvbig-1.0-py3-none-any.whl"
    proxy = EgressProxy(short_tmp)
    caches = RepoCaches(tmp_path / "caches", "octo/app", 1 << 30)
    try:
        async with local_pypi("agvbig", "1.0", {"agvbig/__init__.py": "X = 41 + 1\n", "agvbig/blob.txt": blob}) as index:
            code, first = await _pip_install(full_image, proxy, caches, index, f"{job_id}-1", tmp_path / "1")
            assert code == 0 and f"Downloading {index.url}/files/{wheel}" in first and first.endswith("42"), first
            code, second = await _pip_install(full_image, proxy, caches, index, f"{job_id}-2", tmp_path / "2")
            assert code == 0 and f"Using cached {index.url}/files/{wheel}" in second and second.endswith("42"), second
            assert index.requests.count(f"/files/{wheel}") == 1, index.requests
            assert index.revalidated == ["/simple/agvbig/"]  # the page is asked again (max-age=0), and unchanged
    finally:
        await proxy.close()
