"""Create the locked-down sandbox container for one run: every isolation setting, in one place.

One job = one container, created per run (by runner.py, which also removes it afterwards):

* no network at all (``network_mode="none"``); the only way out is the gateway's Unix socket,
  bind-mounted at ``/run/agentvine/gateway.sock`` and exposed on ``127.0.0.1:<port>`` by the
  image's entrypoint (socat), with ``ANTHROPIC_BASE_URL`` pointing there;
* read-only root filesystem, a size-limited tmpfs ``/tmp``, the job's workspace at
  ``/workspace`` and the job's home at ``/home/agent`` (both bind mounts, read-write);
* uid/gid 1000, all capabilities dropped, ``no-new-privileges``, Docker's default seccomp
  profile, an init process (reaps zombies), memory (no swap) / CPU / pids limits, no core dumps;
* labels ``agentvine=1`` and ``agentvine.job=<job_id>`` and the name ``agentvine-<job_id>``, so
  that ``remove_orphans`` (orphans.py) finds what a crash left behind.

An image that is not AgentVine's runs the same way, with AgentVine's own agent runtime mounted
read-only at ``/opt/agentvine`` from the runtime volume (runtime.py) and the runtime's entrypoint in
place of the image's; the volumes the image declares are covered with small tmpfs mounts, so no
anonymous volume (outside the job's quota) is ever made for it.

Running it and streaming its output is runner.py and output.py; this module decides what the
container may do, prepares the host directories it mounts, and creates it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.agent.claude.command import CLAUDE_CODE_ENV
from app.domain.lease import lease_labels

from .layout import (
    AGENT_GID,
    AGENT_HOME,
    AGENT_UID,
    CONTAINER_EGRESS_SOCKET,
    CONTAINER_GATEWAY_SOCKET,
    DEFAULT_EGRESS_PORT,
    DEFAULT_GATEWAY_PORT,
    LABEL,
    LABEL_JOB,
    NAME_PREFIX,
    RUNTIME_DIR,
    WORKSPACE,
)
from .runtime import NEEDS_BASH, RUNTIME_ENTRYPOINT

__all__ = [
    "LABEL",
    "LABEL_JOB",
    "ImageUnusable",
    "SandboxError",
    "SandboxSpec",
    "check_shell",
    "connect_docker",
    "container_name",
    "container_settings",
    "create_container",
    "import_docker",
    "prepare_host",
]

log = logging.getLogger(__name__)

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SandboxError(RuntimeError):
    """The sandbox could not be set up (engine unreachable, image missing, host dirs...)."""


class ImageUnusable(SandboxError):
    """The job's image cannot run the agent: ``problem`` is a key of what is wrong (the pipeline's
    texts.IMAGE_PROBLEM says it to people) and ``fields`` fill in its text."""

    def __init__(self, problem: str, **fields: str) -> None:
        self.problem = problem
        self.fields = fields
        super().__init__(f"image problem {problem}: {fields}")


@dataclass
class SandboxSpec:
    """What to run, and with which limits. Paths are on the host."""

    job_id: str
    image: str
    command: list[str]
    #: host directory, bind-mounted read-write at /workspace (chowned to uid 1000)
    workspace: Path
    #: host directory kept per job, bind-mounted read-write at /home/agent (chowned to uid
    #: 1000, mode 0700); Claude Code keeps its sessions under ~/.claude for a later --resume
    home: Path
    #: a host Unix socket (the model gateway), mounted at /run/agentvine/gateway.sock and
    #: exposed inside on 127.0.0.1:gateway_port; None: no way out at all
    gateway_socket: Path | None = None
    #: extra environment; ANTHROPIC_BASE_URL defaults to the forwarder when a socket is given
    env: dict[str, str] = field(default_factory=dict)
    memory: str = "2g"
    cpus: float = 1.0
    pids: int = 256
    #: wall clock, from the start of run_sandbox; then the container is killed
    timeout_s: float = 1800.0
    gateway_port: int = DEFAULT_GATEWAY_PORT
    #: size of the tmpfs /tmp (it counts against the memory limit)
    tmp_size: str = "512m"
    #: more read-write bind mounts, container path -> host directory (the package caches, caches.py)
    mounts: dict[str, Path] = field(default_factory=dict)
    #: for an image that is not AgentVine's: the runtime volume mounted read-only at /opt/agentvine,
    #: whose entrypoint replaces the image's (runtime.py); None runs the image as it was built
    runtime_volume: str | None = None
    #: the volumes the image declares (VOLUME), each covered by a tmpfs of this size
    image_volumes: tuple[str, ...] = ()
    image_volume_size: str = "64m"
    #: the job's egress proxy socket (app/agent/egress/), mounted at /run/agentvine/egress.sock and
    #: exposed inside on 127.0.0.1:egress_port, where HTTP(S)_PROXY point; None: no egress at all
    egress_socket: Path | None = None
    egress_port: int = DEFAULT_EGRESS_PORT



def container_name(job_id: str) -> str:
    return NAME_PREFIX + job_id


def import_docker():
    """docker-py, imported when a container is first needed (the rest works without it)."""
    import docker

    return docker


def connect_docker():
    """A client of the local Docker engine, checked to answer; :class:`SandboxError` if not."""
    docker = import_docker()
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException, requests errors, ...
        raise SandboxError(f"cannot reach the Docker engine: {exc}") from exc
    return client


# --- host side preparation -----------------------------------------------------------------


def _chown_tree(root: Path) -> None:
    """Give ``root`` and everything under it to uid/gid 1000 (never following symlinks).

    A directory already given (a resumed job's, which the agent wrote) is not walked again."""

    def fix(path: str) -> None:
        st = os.lstat(path)
        if st.st_uid != AGENT_UID or st.st_gid != AGENT_GID:
            os.lchown(path, AGENT_UID, AGENT_GID)

    try:
        st = os.lstat(root)
        if (st.st_uid, st.st_gid) == (AGENT_UID, AGENT_GID):
            return
        fix(str(root))
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                fix(os.path.join(dirpath, name))
    except PermissionError as exc:
        raise SandboxError(
            f"cannot hand {root} to uid {AGENT_UID} (the sandbox user): {exc}. "
            "Run the bot as root, or prepare the directory as uid 1000."
        ) from exc


def prepare_host(spec: SandboxSpec) -> None:
    """Create the workspace and home on the host for uid 1000; let it connect to the socket."""
    for d in (spec.workspace, spec.home):
        if not Path(d).is_absolute():
            raise SandboxError(f"{d} must be an absolute path")
        Path(d).mkdir(parents=True, exist_ok=True)
        _chown_tree(Path(d))
    os.chmod(spec.home, 0o700)
    for what, sock in (("gateway", spec.gateway_socket), ("egress", spec.egress_socket)):
        if sock is not None:
            _check_socket(Path(sock), what)


def _check_socket(sock: Path, what: str) -> None:
    """A host socket the container will connect to: it must be one, and uid 1000 must be allowed to."""
    try:
        st = os.stat(sock)
    except FileNotFoundError as exc:
        raise SandboxError(f"{what} socket {sock} does not exist") from exc
    if not stat.S_ISSOCK(st.st_mode):
        raise SandboxError(f"{what} socket {sock} is not a Unix socket")
    # connect() needs write permission on the socket file for uid 1000 in the container.
    if st.st_uid != AGENT_UID and (st.st_mode & 0o002) == 0:
        try:
            os.chmod(sock, stat.S_IMODE(st.st_mode) | 0o666)
        except PermissionError as exc:
            raise SandboxError(
                f"{what} socket {sock} is not connectable by uid {AGENT_UID} "
                "(make it mode 0666, or owned by uid 1000)"
            ) from exc


def _environment(spec: SandboxSpec) -> dict[str, str]:
    env = dict(CLAUDE_CODE_ENV)
    env.update(spec.env)
    env["HOME"] = AGENT_HOME
    if spec.gateway_socket is not None:
        env["AGENTVINE_GATEWAY_PORT"] = str(spec.gateway_port)
        env["AGENTVINE_GATEWAY_SOCKET"] = CONTAINER_GATEWAY_SOCKET
        env.setdefault("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{spec.gateway_port}")
    else:
        env["AGENTVINE_GATEWAY_PORT"] = ""
    # The entrypoints' own variables are always ours: an image's ENV cannot set them (Docker lets
    # the container's environment override the image's).
    for key in ("AGENTVINE_FORWARDS", NEEDS_BASH):
        env.setdefault(key, "")
    env.update(egress_environment(spec, env["AGENTVINE_FORWARDS"]))
    for k, v in env.items():
        if not _ENV_KEY_RE.match(k) or not isinstance(v, str) or "\0" in v:
            raise SandboxError(f"bad environment variable {k!r}")
    return env


def _cache_mounts(docker, spec: SandboxSpec) -> list:
    mounts = []
    for target, source in sorted(spec.mounts.items()):
        if not target.startswith("/cache/") or ".." in target or not Path(source).is_absolute():
            raise SandboxError(f"extra mount {target!r} must be below /cache/ and come from an absolute path")
        mounts.append(docker.types.Mount(target, str(Path(source).resolve()), type="bind"))
    return mounts


#: Loopback stays direct: inside the sandbox it is the sandbox's own (the gateway's forwarder, servers
#: the agent's tests start); the host's loopback is never reached that way (docs/sandbox.md, "Egress").
NO_PROXY = "localhost,127.0.0.1,::1"


def egress_environment(spec: SandboxSpec, forwards: str = "") -> dict[str, str]:
    """The forwarders' settings and the proxy variables tools read (both spellings: curl and wget read
    only the lowercase http_proxy, most others either). AgentVine's images' entrypoint reads
    AGENTVINE_EGRESS_PORT; the runtime's, in other images, reads the pairs of AGENTVINE_FORWARDS."""
    if spec.egress_socket is None:
        return {"AGENTVINE_EGRESS_PORT": ""}  # an entrypoint's own variable: never the image's ENV
    url = f"http://127.0.0.1:{spec.egress_port}"
    env = {"AGENTVINE_EGRESS_PORT": str(spec.egress_port), "AGENTVINE_EGRESS_SOCKET": CONTAINER_EGRESS_SOCKET,
           "AGENTVINE_FORWARDS": " ".join(filter(None, [forwards, f"{spec.egress_port}={CONTAINER_EGRESS_SOCKET}"]))}
    for name in ("http_proxy", "https_proxy"):
        env[name] = env[name.upper()] = url
    env["no_proxy"] = env["NO_PROXY"] = NO_PROXY
    return env


def _mounts(docker, spec: SandboxSpec) -> list:
    """The workspace and home (read-write), the sockets (read-only), the runtime volume (read-only)."""
    mounts = [
        docker.types.Mount(WORKSPACE, str(Path(spec.workspace).resolve()), type="bind"),
        docker.types.Mount(AGENT_HOME, str(Path(spec.home).resolve()), type="bind"),
    ]
    mounts += _cache_mounts(docker, spec)
    if spec.gateway_socket is not None:
        # The socket file itself, read-only: the container can connect but not replace it,
        # and sees nothing else of the host directory it lives in.
        mounts.append(
            docker.types.Mount(
                CONTAINER_GATEWAY_SOCKET,
                str(Path(spec.gateway_socket).resolve()),
                type="bind",
                read_only=True,
            )
        )
    if spec.egress_socket is not None:  # the same way: the socket file alone, read-only
        mounts.append(docker.types.Mount(CONTAINER_EGRESS_SOCKET, str(Path(spec.egress_socket).resolve()),
                                         type="bind", read_only=True))
    if spec.runtime_volume is not None:
        mounts.append(docker.types.Mount(RUNTIME_DIR, spec.runtime_volume, type="volume", read_only=True,
                                         no_copy=True))
    return mounts


def container_settings(spec: SandboxSpec) -> dict[str, Any]:
    """The keyword arguments for ``client.containers.create`` (every isolation setting)."""
    docker = import_docker()
    if not _JOB_ID_RE.match(spec.job_id):
        raise SandboxError(f"job id {spec.job_id!r} is not usable in a container name")
    if not spec.command or not all(isinstance(a, str) for a in spec.command):
        raise SandboxError("command must be a non-empty list of strings")
    mounts = _mounts(docker, spec)
    settings = dict(
        image=spec.image,
        command=list(spec.command),
        name=container_name(spec.job_id),
        # The lease it runs under, when a worker holds one: the janitor's test of an orphan (orphans.py).
        labels={LABEL: "1", LABEL_JOB: spec.job_id, **lease_labels()},
        user=f"{AGENT_UID}:{AGENT_GID}",
        working_dir=WORKSPACE,
        environment=_environment(spec),
        hostname="agentvine-sandbox",
        network_mode="none",
        read_only=True,
        tmpfs=_tmpfs(spec),
        mounts=mounts,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        ipc_mode="private",
        init=True,
        mem_limit=spec.memory,
        memswap_limit=spec.memory,
        nano_cpus=int(spec.cpus * 1e9),
        pids_limit=spec.pids,
        oom_score_adj=500,
        ulimits=[docker.types.Ulimit(name="core", soft=0, hard=0)],
        log_config=docker.types.LogConfig(
            type="json-file", config={"max-size": "10m", "max-file": "1"}
        ),
        stdin_open=False,
        tty=False,
        # An image's HEALTHCHECK would run commands of its own in the container, unasked.
        healthcheck={"test": ["NONE"]},
    )
    if spec.runtime_volume is not None:
        settings["entrypoint"] = [RUNTIME_ENTRYPOINT]
    return settings


def _tmpfs(spec: SandboxSpec) -> dict[str, str]:
    """/tmp, and a small tmpfs over each volume the image declares: Docker would otherwise make an
    anonymous volume there, writable and outside the job's quota. Ours (the mounts) cover theirs."""
    ours = {WORKSPACE, AGENT_HOME, CONTAINER_GATEWAY_SOCKET, CONTAINER_EGRESS_SOCKET, RUNTIME_DIR, "/tmp", *spec.mounts}
    tmpfs = {"/tmp": f"rw,nosuid,nodev,exec,size={spec.tmp_size},mode=1777"}
    for path in spec.image_volumes:
        if path not in ours:
            tmpfs[path] = f"rw,nosuid,nodev,size={spec.image_volume_size},mode=1777"
    return tmpfs


_GO_MODE_DIR = 1 << 31  # Go's os.ModeDir, in the stat Docker answers with


def check_shell(client, container) -> None:
    """The runtime's entrypoint is a /bin/sh script: ImageUnusable when the image has none. Asked of
    the created container before it starts (a HEAD of its archive: the stat only, never the content,
    which the image chooses), so Docker's start error never has to be read."""
    api = client.api
    answer = api.head(api._url("/containers/{0}/archive", container.id), params={"path": "/bin/sh"}, timeout=30)
    if answer.status_code == 404:
        try:  # a 404 also says the container itself is gone (removed meanwhile): not the image's doing
            api.inspect_container(container.id)
        except import_docker().errors.NotFound as exc:
            raise SandboxError(f"the container {container.id[:12]} was removed before it started") from exc
        raise ImageUnusable("no_shell")
    answer.raise_for_status()
    try:
        mode = json.loads(base64.b64decode(answer.headers.get("X-Docker-Container-Path-Stat", ""))).get("mode", 0)
    except (ValueError, TypeError, AttributeError):
        mode = 0
    if int(mode) & _GO_MODE_DIR:
        raise ImageUnusable("no_shell")


def create_container(client, settings: dict[str, Any]):
    """Create (not start) the container; one a crash left under the same name is replaced."""
    docker = import_docker()
    try:
        return client.containers.create(**settings)
    except docker.errors.ImageNotFound as exc:
        raise SandboxError(
            f"sandbox image {settings['image']} is missing: build it with "
            "`agentvine sandbox build` (see docs/sandbox.md)"
        ) from exc
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        # A container with this name is left from an earlier run (crash); remove it if ours.
        old = client.containers.get(settings["name"])
        if old.labels.get(LABEL) != "1":
            raise SandboxError(f"a container named {settings['name']} exists and is not ours")
        log.warning("removing leftover container %s", settings["name"])
        old.remove(force=True)
        return client.containers.create(**settings)
