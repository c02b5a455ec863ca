"""Run one command in a locked-down sandbox container and stream its output.

One job = one container, created per run and always removed afterwards:

* no network at all (``network_mode="none"``); the only way out is the gateway's Unix socket,
  bind-mounted at ``/run/agentvine/gateway.sock`` and exposed on ``127.0.0.1:<port>`` by the
  image's entrypoint (socat), with ``ANTHROPIC_BASE_URL`` pointing there;
* read-only root filesystem, a size-limited tmpfs ``/tmp``, the job's workspace at
  ``/workspace`` and the job's home at ``/home/agent`` (both bind mounts, read-write);
* uid/gid 1000, all capabilities dropped, ``no-new-privileges``, Docker's default seccomp
  profile, an init process (reaps zombies), memory (no swap) / CPU / pids limits, no core dumps;
* labels ``agentvine=1`` and ``agentvine.job=<job_id>`` and the name ``agentvine-<job_id>``, so
  that :func:`remove_orphans` finds what a crash left behind.

stdout is read through a Docker *attach* stream opened before the container starts (nothing is
lost, nothing depends on the log driver), in a dedicated thread that never blocks on the
consumer; complete lines are handed to ``on_line`` in order. stderr is kept apart (its last
``stderr_tail_bytes``) for error messages.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from app.agent.claude.command import CLAUDE_CODE_ENV

from .layout import (
    AGENT_GID,
    AGENT_HOME,
    AGENT_UID,
    CONTAINER_GATEWAY_SOCKET,
    DEFAULT_GATEWAY_PORT,
    LABEL,
    LABEL_JOB,
    NAME_PREFIX,
    WORKSPACE,
)

__all__ = [
    "LABEL",
    "LABEL_JOB",
    "SandboxError",
    "SandboxResult",
    "SandboxSpec",
    "container_name",
    "container_settings",
    "remove_orphans",
    "run_sandbox",
]

log = logging.getLogger(__name__)

#: A line longer than this is handed over in pieces (a bound on host memory per container).
MAX_LINE_BYTES = 32 * 1024 * 1024
#: After a kill, how long the output already produced may take to reach ``on_line``.
DRAIN_AFTER_KILL_S = 5.0

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SandboxError(RuntimeError):
    """The sandbox could not be set up (engine unreachable, image missing, host dirs...)."""


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


@dataclass
class SandboxResult:
    #: the command's exit code; None when the container was killed (timeout, cancel)
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    #: container start to exit (or kill), seconds
    duration_s: float
    #: the last bytes the command wrote to stderr (decoded, for error messages)
    stderr_tail: str = ""
    #: the kernel's OOM killer ended the command (memory limit)
    oom_killed: bool = False
    #: why the guard stopped the command (killed, ``exit_code`` None); None when it did not
    stopped: str | None = None


OnLine = Callable[[str], "Awaitable[None] | None"]


def container_name(job_id: str) -> str:
    return NAME_PREFIX + job_id


def _docker():
    import docker

    return docker


def _make_client():
    docker = _docker()
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


def _prepare_host(spec: SandboxSpec) -> None:
    for d in (spec.workspace, spec.home):
        if not Path(d).is_absolute():
            raise SandboxError(f"{d} must be an absolute path")
        Path(d).mkdir(parents=True, exist_ok=True)
        _chown_tree(Path(d))
    os.chmod(spec.home, 0o700)
    if spec.gateway_socket is not None:
        sock = Path(spec.gateway_socket)
        try:
            st = os.stat(sock)
        except FileNotFoundError as exc:
            raise SandboxError(f"gateway socket {sock} does not exist") from exc
        if not stat.S_ISSOCK(st.st_mode):
            raise SandboxError(f"gateway socket {sock} is not a Unix socket")
        # connect() needs write permission on the socket file for uid 1000 in the container.
        if st.st_uid != AGENT_UID and (st.st_mode & 0o002) == 0:
            try:
                os.chmod(sock, stat.S_IMODE(st.st_mode) | 0o666)
            except PermissionError as exc:
                raise SandboxError(
                    f"gateway socket {sock} is not connectable by uid {AGENT_UID} "
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
        env.pop("AGENTVINE_GATEWAY_PORT", None)
    for k, v in env.items():
        if not _ENV_KEY_RE.match(k) or not isinstance(v, str) or "\0" in v:
            raise SandboxError(f"bad environment variable {k!r}")
    return env


def container_settings(spec: SandboxSpec) -> dict[str, Any]:
    """The keyword arguments for ``client.containers.create`` (every isolation setting)."""
    docker = _docker()
    if not _JOB_ID_RE.match(spec.job_id):
        raise SandboxError(f"job id {spec.job_id!r} is not usable in a container name")
    if not spec.command or not all(isinstance(a, str) for a in spec.command):
        raise SandboxError("command must be a non-empty list of strings")
    mounts = [
        docker.types.Mount(WORKSPACE, str(Path(spec.workspace).resolve()), type="bind"),
        docker.types.Mount(AGENT_HOME, str(Path(spec.home).resolve()), type="bind"),
    ]
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
    return dict(
        image=spec.image,
        command=list(spec.command),
        name=container_name(spec.job_id),
        labels={LABEL: "1", LABEL_JOB: spec.job_id},
        user=f"{AGENT_UID}:{AGENT_GID}",
        working_dir=WORKSPACE,
        environment=_environment(spec),
        hostname="agentvine-sandbox",
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,exec,size={spec.tmp_size},mode=1777"},
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
    )


def _create(client, settings: dict[str, Any]):
    docker = _docker()
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


# --- output reader -------------------------------------------------------------------------

_EOF = object()


class _Reader(threading.Thread):
    """Reads the attach stream (blocking) and posts stdout lines to an asyncio queue."""

    def __init__(self, stream, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue,
                 stderr_cap: int, job_id: str):
        super().__init__(name=f"sandbox-reader-{job_id}", daemon=True)
        self.stream = stream
        self.loop = loop
        self.queue = queue
        self.stderr_cap = stderr_cap
        self.stderr = bytearray()
        self.error: BaseException | None = None

    def _post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody listens any more
            pass

    def _emit(self, raw: bytes) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self._post(raw.decode("utf-8", errors="replace"))

    def run(self) -> None:
        buf = bytearray()
        scan = 0
        try:
            for out, err in self.stream:
                if out:
                    buf += out
                    while True:
                        i = buf.find(b"\n", scan)
                        if i < 0:
                            scan = len(buf)
                            break
                        self._emit(bytes(buf[:i]))
                        del buf[: i + 1]
                        scan = 0
                    if len(buf) >= MAX_LINE_BYTES:
                        self._emit(bytes(buf))
                        buf.clear()
                        scan = 0
                if err:
                    self.stderr += err
                    if len(self.stderr) > self.stderr_cap:
                        del self.stderr[: len(self.stderr) - self.stderr_cap]
        except BaseException as exc:  # noqa: BLE001 - e.g. the stream was closed by us
            self.error = exc
        finally:
            if buf:
                self._emit(bytes(buf))
            self._post(_EOF)

    def stderr_text(self) -> str:
        return bytes(self.stderr).decode("utf-8", errors="replace")


async def _pump(queue: asyncio.Queue, on_line: OnLine) -> None:
    while True:
        item = await queue.get()
        if item is _EOF:
            return
        res = on_line(item)
        if inspect.isawaitable(res):
            await res


async def _watch(guard: Callable[[], str | None], interval: float) -> str:
    while True:
        await asyncio.sleep(interval)
        reason = guard()
        if reason:
            return reason


def _kill(container) -> None:
    docker = _docker()
    try:
        container.kill()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # 409: not running any more
        if exc.status_code != 409:
            raise


def _remove(container) -> None:
    docker = _docker()
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "already in progress" in str(exc):
            return
        raise


# --- the runner ----------------------------------------------------------------------------


async def run_sandbox(
    spec: SandboxSpec,
    on_line: OnLine,
    *,
    cancel: asyncio.Event | None = None,
    client=None,
    stderr_tail_bytes: int = 64 * 1024,
    guard: Callable[[], str | None] | None = None,
    guard_interval_s: float = 1.0,
) -> SandboxResult:
    """Run ``spec.command`` in a fresh sandbox container; call ``on_line`` per stdout line.

    ``on_line`` may be a plain function or a coroutine function; it is called in order, one
    line at a time (without the newline). Returns when the command exits, when
    ``spec.timeout_s`` has passed (killed, ``timed_out``), or when ``cancel`` is set (killed,
    ``cancelled``). The container is removed in every case, also when ``on_line`` raises or
    the calling task is cancelled. Raises :class:`SandboxError` for setup problems.

    ``guard``, when given, is called every ``guard_interval_s`` while the command runs; a
    reason it returns kills the container (``stopped``), e.g. the workspace's quota.
    """
    loop = asyncio.get_running_loop()
    t_begin = loop.time()
    deadline = t_begin + spec.timeout_s
    if cancel is not None and cancel.is_set():
        return SandboxResult(None, False, True, 0.0)
    settings = container_settings(spec)

    own_client = client is None
    if own_client:
        client = await asyncio.to_thread(_make_client)
    container = None
    stream = None
    reader: _Reader | None = None
    pump: asyncio.Task | None = None
    cancel_task: asyncio.Task | None = None
    guard_task: asyncio.Task | None = None
    t_start = t_end = None
    try:
        await asyncio.to_thread(_prepare_host, spec)
        container = await asyncio.to_thread(_create, client, settings)
        # Attach before start: every byte of output is seen, whatever the log driver.
        stream = await asyncio.to_thread(
            client.api.attach, container.id,
            stdout=True, stderr=True, stream=True, logs=False, demux=True,
        )
        queue: asyncio.Queue = asyncio.Queue()
        reader = _Reader(stream, loop, queue, stderr_tail_bytes, spec.job_id)
        reader.start()
        pump = asyncio.create_task(_pump(queue, on_line))
        await asyncio.to_thread(container.start)
        t_start = loop.time()
        log.info("sandbox %s started (%s)", settings["name"], container.short_id)

        waiters: set[asyncio.Future] = {pump}
        if cancel is not None:
            cancel_task = asyncio.create_task(cancel.wait())
            waiters.add(cancel_task)
        if guard is not None:
            guard_task = asyncio.create_task(_watch(guard, guard_interval_s))
            waiters.add(guard_task)
        remaining = max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait(waiters, timeout=remaining,
                                     return_when=asyncio.FIRST_COMPLETED)
        timed_out = cancelled = False
        stopped: str | None = None
        exit_code: int | None = None
        if pump in done:
            pump.result()  # re-raises what on_line raised
            try:
                # The output ends when the container stops, so this returns at once.
                state = await asyncio.to_thread(
                    container.wait, timeout=max(5.0, deadline - loop.time()))
            except Exception as exc:  # noqa: BLE001 - e.g. a read timeout from requests
                raise SandboxError(
                    f"the output of {settings['name']} ended but the container did not exit: "
                    f"{exc}") from exc
            t_end = loop.time()
            exit_code = int(state.get("StatusCode", -1))
        else:
            if cancel_task is not None and cancel_task in done:
                cancelled = True
                log.info("sandbox %s cancelled", settings["name"])
            elif guard_task is not None and guard_task in done:
                stopped = guard_task.result()
                log.info("sandbox %s stopped: %s", settings["name"], stopped)
            else:
                timed_out = True
                log.info("sandbox %s timed out after %.1fs", settings["name"], spec.timeout_s)
            await asyncio.to_thread(_kill, container)
            t_end = loop.time()
            # Hand over what was printed before the kill (the stream ends with the container).
            try:
                await asyncio.wait_for(asyncio.shield(pump), DRAIN_AFTER_KILL_S)
            except asyncio.TimeoutError:
                log.warning("sandbox %s: output did not end after the kill", settings["name"])
        oom = False
        try:
            await asyncio.to_thread(container.reload)
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        except Exception:  # noqa: BLE001 - informative only
            pass
        return SandboxResult(
            exit_code=exit_code,
            timed_out=timed_out,
            cancelled=cancelled,
            duration_s=(t_end - t_start) if t_start is not None else 0.0,
            stderr_tail=reader.stderr_text() if reader else "",
            oom_killed=oom,
            stopped=stopped,
        )
    finally:
        for task in (cancel_task, guard_task, pump):
            if task is not None and not task.done():
                task.cancel()
        removal: asyncio.Future | None = None
        try:
            if container is not None:
                # The thread runs to the end even if this task is cancelled meanwhile.
                removal = asyncio.ensure_future(asyncio.to_thread(_remove, container))
                try:
                    await asyncio.shield(removal)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - remove_orphans will catch it later
                    log.exception("could not remove sandbox container %s", settings["name"])
        finally:
            if stream is not None:
                try:
                    stream.close()
                except Exception:  # noqa: BLE001
                    pass
            if reader is not None and reader.error is not None and not isinstance(
                reader.error, (OSError, StopIteration)
            ):
                log.warning("sandbox %s: output reader failed: %r", settings["name"],
                            reader.error)
            if own_client and (removal is None or removal.done()):
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass


def remove_orphans(client=None, *, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Remove every container labelled ``agentvine=1`` whose job is not in ``keep``.

    Call it when the service starts (after a crash) with the ids of jobs that are really
    running. Returns the job ids whose containers were removed.
    """
    docker = _docker()
    own = client is None
    client = client or _make_client()
    removed: list[str] = []
    try:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            job = c.labels.get(LABEL_JOB, "")
            if job in keep:
                continue
            try:
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            log.warning("removed orphan sandbox container %s (job %s)", c.name, job)
            removed.append(job)
    finally:
        if own:
            client.close()
    return removed
