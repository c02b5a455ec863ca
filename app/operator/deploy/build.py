"""Building the service's image without a container registry or a package index in the build:

1. the base image (recipe.py): mmdebstrap and `docker import`, as the sandbox image is made, and
   skipped when its tag exists;
2. the wheelhouse (build/wheelhouse/ in the checkout): the dependencies downloaded by the host's pip
   for the base image's Python and glibc (a build container may reach no index; the host reaches
   PyPI), kept while pyproject.toml's dependencies stay the same, and AgentVine's own wheel, built
   reproducibly so an unchanged checkout gives the same bytes (and the engine's layer cache hits);
3. the Dockerfile at the top of the checkout, with the classic builder over that context.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from app.agent.sandbox.image import BuildOptions, docker_client, image_exists, import_rootfs
from app.agent.sandbox.rootfs import BuildError, Log, RootfsSpec, machine_platform, make_rootfs

from .recipe import (
    BASE_IMAGE,
    BASE_PACKAGES,
    BASE_SETUP_SCRIPT,
    DEFAULT_SERVICE_IMAGE,
    GLIBC_MINOR,
    PYTHON_VERSION,
    base_changes,
)

WHEELHOUSE = Path("build") / "wheelhouse"  # in the checkout; .dockerignore lets only it (and deploy/) through
SOURCES = ("pyproject.toml", "README.md", "app", "bot_config")  # what AgentVine's wheel is built from
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold
BUILD_TIMEOUT_S = 900  # one request of the engine's build may run that long (pip inside it)


@dataclass(frozen=True)
class ImagePlan:
    source: Path  # the checkout: Dockerfile, .dockerignore, pyproject.toml, app/, bot_config/, deploy/
    tag: str = DEFAULT_SERVICE_IMAGE
    base_tag: str = BASE_IMAGE
    rebuild_base: bool = False


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BuildError(f"{what} failed (exit code {done.returncode}):\n{tail}")


def build_base_image(client, tag: str, log: Log, *, force: bool = False) -> None:
    """The base image `tag` from Debian's archive (skipped when it exists, unless `force`)."""
    if not force and image_exists(tag, client):
        log(f"base image {tag} already exists; not rebuilding")
        return
    arch, _ = machine_platform()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentvine-base-") as tmp:
        setup, rootfs = Path(tmp) / "setup.sh", Path(tmp) / "rootfs.tar"
        setup.write_text(BASE_SETUP_SCRIPT)
        make_rootfs(arch, rootfs, RootfsSpec(BASE_PACKAGES, {}, setup), BuildOptions().mirrors(), log)
        import_rootfs(client, rootfs, tag, base_changes())
    _smoke_test_base(client, tag)
    log(f"built base image {tag} in {time.monotonic() - started:.0f}s")


def _smoke_test_base(client, tag: str) -> None:
    import docker

    script = "python3 -c 'import ensurepip, venv' && git --version && docker --version && tini --version"
    try:
        client.containers.run(tag, ["/bin/sh", "-c", script], remove=True, network_mode="none")
    except (docker.errors.ContainerError, docker.errors.APIError) as exc:
        client.images.remove(tag, force=True)
        raise BuildError(f"the base image {tag} lacks what the service needs: {exc}") from exc


def _dependencies(source: Path) -> list[str]:
    try:
        return list(tomllib.loads((source / "pyproject.toml").read_text())["project"]["dependencies"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{source}/pyproject.toml has no readable [project] dependencies: {exc}") from exc


def _wheel_platforms() -> list[str]:
    """Every manylinux tag the base image's glibc runs (pip takes no range, only a list)."""
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    return [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 4, -1)] + [
        f"{alias}_{machine}" for alias in ("manylinux2014", "manylinux2010", "manylinux1")]


def download_dependencies(source: Path, log: Log) -> Path:
    """The dependencies' wheels for the base image's Python, by the host's pip (kept while unchanged)."""
    deps = source / WHEELHOUSE / "deps"
    wanted = "\n".join(_dependencies(source)) + "\n"
    stamp = deps / "requirements.txt"  # written last: its presence says the download completed
    if stamp.is_file() and stamp.read_text() == wanted:
        log(f"dependency wheels in {deps} are up to date")
        return deps
    shutil.rmtree(deps, ignore_errors=True)
    deps.mkdir(parents=True)
    (deps / "wanted.txt").write_text(wanted)
    py = PYTHON_VERSION.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(deps),
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", f"cp{py}",
           *[arg for p in _wheel_platforms() for arg in ("--platform", p)], "-r", str(deps / "wanted.txt")]
    log(f"downloading the dependencies' wheels for Python {PYTHON_VERSION} into {deps}")
    _run(cmd, "pip download")
    (deps / "wanted.txt").unlink()
    stamp.write_text(wanted)
    return deps


def build_app_wheel(source: Path, log: Log) -> Path:
    """AgentVine's own wheel, from a copy of its sources (pip would leave build/ in the checkout)."""
    out = source / WHEELHOUSE / "app"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="agentvine-wheel-") as tmp:
        for name in SOURCES:
            src, dst = source / name, Path(tmp) / name
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)
        env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--no-build-isolation", "--wheel-dir", str(out), tmp], "building AgentVine's wheel", env)
    log(f"built {', '.join(p.name for p in out.glob('*.whl'))}")
    return out


def docker_build(client, plan: ImagePlan, log: Log) -> str:
    """The Dockerfile over the checkout, with the base image as BASE_IMAGE; the new image's id."""
    stream = client.api.build(path=str(plan.source), dockerfile="Dockerfile", tag=plan.tag, rm=True, forcerm=True,
                              buildargs={"BASE_IMAGE": plan.base_tag}, decode=True, pull=False)
    for chunk in stream:
        if chunk.get("error"):
            raise BuildError(f"docker build failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "").rstrip()
        if text:
            log(text)
    return client.images.get(plan.tag).id


def build_service_image(plan: ImagePlan, log: Log = print, client=None) -> str:
    """All three steps; the image's id. Raises BuildError, saying which step failed and why."""
    if not (plan.source / "Dockerfile").is_file():
        raise BuildError(f"{plan.source} has no Dockerfile: run this in a checkout of AgentVine (or pass --source)")
    client = client or docker_client(timeout=BUILD_TIMEOUT_S)
    started = time.monotonic()
    build_base_image(client, plan.base_tag, log, force=plan.rebuild_base)
    download_dependencies(plan.source, log)
    build_app_wheel(plan.source, log)
    image_id = docker_build(client, plan, log)
    size = client.images.get(image_id).attrs.get("Size", 0)
    log(f"built {plan.tag} ({size / 1e6:.0f} MB) in {time.monotonic() - started:.0f}s")
    return image_id
