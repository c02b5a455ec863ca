"""Build the runtime volume (runtime.py): AgentVine's agent runtime for images that are not its own.

It is made from the ``full`` profile's image, with no network: a container of that image compiles
the forwarder (forwarder.py) statically with the image's gcc, copies the image's Claude Code
binary (the pinned one, checked when the image was built) and writes the entrypoint, all into a
fresh Docker volume; the marker file goes last. A smoke test then runs the runtime's entrypoint as
the agent would (uid 1000, read-only, no network): ``claude`` must be the runtime's and the
forwarder must listen before the command runs. A volume that fails any step is removed, so a
volume with the marker is a whole one; its name carries the hash of what went in (runtime.py).
"""

from __future__ import annotations

import io
import tarfile
import time

from .forwarder import FORWARDER_C, FORWARDER_NAME
from .layout import AGENT_GID, AGENT_UID, DEFAULT_GATEWAY_PORT, RUNTIME_DIR
from .recipe import image_tag
from .rootfs import BuildError, Log
from .runtime import RUNTIME_BIN, RUNTIME_ENTRYPOINT, machine_arch, runtime_entrypoint, runtime_volume_name

__all__ = ["build_runtime", "runtime_is_complete"]

LABEL_RUNTIME = "agentvine.runtime"
_OUT = "/out"  # where the build container sees the new volume
_BUILD_SCRIPT = f"""set -eu
mkdir -p {_OUT}/bin
gcc -static -O2 -Wall -o {_OUT}/bin/{FORWARDER_NAME} {_OUT}/src/forward.c
strip {_OUT}/bin/{FORWARDER_NAME}
cp /usr/local/bin/claude {_OUT}/bin/claude
cp {_OUT}/src/entrypoint {_OUT}/entrypoint
rm -rf {_OUT}/src
chmod 0755 {_OUT} {_OUT}/bin {_OUT}/entrypoint {_OUT}/bin/claude {_OUT}/bin/{FORWARDER_NAME}
printf '%s\\n' "$AGENTVINE_RUNTIME" > {_OUT}/.complete
"""
# The forwarder must listen when the entrypoint hands over: /proc/net/tcp shows 127.0.0.1:port in LISTEN (0A).
_SMOKE_SCRIPT = (f'command -v claude; claude --version; grep -q "0100007F:{DEFAULT_GATEWAY_PORT:04X} 00000000:0000 0A" '
                 '/proc/net/tcp && echo forwarder listens')


def _container_options(image: str, mounts: list, **extra) -> dict:
    return dict(image=image, network_mode="none", read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
                cap_drop=["ALL"], security_opt=["no-new-privileges"], mounts=mounts,
                # Not the sandboxes' label: a worker starting meanwhile removes every container that has it.
                labels={"agentvine.build": "runtime"}, **extra)


def _run(client, options: dict, what: str, files: dict[str, str] | None = None) -> str:
    """Run a container to its end and return its output; BuildError (with the output) if it fails."""
    container = client.containers.create(**options)
    try:
        if files:
            container.put_archive(_OUT, _tar(files))
        container.start()
        code = container.wait(timeout=300).get("StatusCode", -1)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    if code != 0:
        raise BuildError(f"{what} failed with exit code {code}:\n{output[-3000:]}")
    return output


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def runtime_is_complete(client, name: str, image: str) -> bool:
    """Whether the volume ``name`` exists and its build finished (the marker names the volume)."""
    import docker

    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    mount = docker.types.Mount(_OUT, name, type="volume", read_only=True)
    try:
        out = _run(client, _container_options(image, [mount], entrypoint=["/bin/cat"], command=[f"{_OUT}/.complete"]),
                   "reading the runtime's marker")
    except BuildError:
        return False
    return out.strip() == name


def _smoke_test(client, name: str, image: str, log: Log) -> None:
    import docker

    mount = docker.types.Mount(RUNTIME_DIR, name, type="volume", read_only=True, no_copy=True)
    out = _run(client, _container_options(
        image, [mount], entrypoint=[RUNTIME_ENTRYPOINT], command=["/bin/sh", "-c", _SMOKE_SCRIPT],
        user=f"{AGENT_UID}:{AGENT_GID}", environment={"AGENTVINE_FORWARDS": f"{DEFAULT_GATEWAY_PORT}=/tmp/none.sock"},
    ), "the runtime's smoke test")
    lines = out.split("\n")
    if lines[0].strip() != f"{RUNTIME_BIN}/claude" or "forwarder listens" not in out:
        raise BuildError(f"the runtime's smoke test printed something unexpected:\n{out[-2000:]}")
    log("runtime smoke test: " + " | ".join(line for line in lines if line))


def build_runtime(claude_version: str, *, force: bool = False, log: Log = print, client=None) -> str:
    """Build the runtime volume for ``claude_version`` from the ``full`` image (which must exist);
    skipped when a whole one exists, unless ``force``. Returns the volume's name."""
    import docker

    from .image import docker_client, image_exists

    client = client or docker_client(timeout=600)
    name, image = runtime_volume_name(claude_version), image_tag(claude_version, "full")
    if not image_exists(image, client):
        raise BuildError(f"the runtime volume is made from the full image {image}: build it first "
                         "(agentvine sandbox build --profile full)")
    if not force and runtime_is_complete(client, name, image):
        log(f"runtime volume {name} already exists; not rebuilding")
        return name
    t0 = time.monotonic()
    _remove(client, name)
    client.volumes.create(name, labels={LABEL_RUNTIME: "1", "agentvine.claude-version": claude_version,
                                        "agentvine.arch": machine_arch()})
    try:
        mount = docker.types.Mount(_OUT, name, type="volume")
        _run(client, _container_options(image, [mount], entrypoint=["/bin/sh", "-c", _BUILD_SCRIPT], user="0:0",
                                        environment={"AGENTVINE_RUNTIME": name}),
             "building the runtime volume", {"src/forward.c": FORWARDER_C, "src/entrypoint": runtime_entrypoint()})
        _smoke_test(client, name, image, log)
    except BaseException:
        _remove(client, name)
        raise
    log(f"built runtime volume {name} in {time.monotonic() - t0:.1f}s")
    return name


def _remove(client, name: str) -> None:
    import docker

    try:
        client.volumes.get(name).remove()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # 409: a running job's container uses it
        raise BuildError(f"cannot replace the runtime volume {name}: {exc.explanation or exc}") from exc
