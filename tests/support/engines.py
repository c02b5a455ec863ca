"""Extra Docker engines on this machine: the "hosts" of the scale-out tests, where each AgentVine worker
runs its sandboxes on the engine its DOCKER_HOST names.

Each engine is a dockerd of its own (with its own managed containerd) in a network namespace of its own,
so that its networks, and its `host` network, are not the main engine's. Sandboxes run with network
none, so the namespace needs no route out: only its loopback is up. Root only.

`ip netns exec` cannot be used here: it also remounts /sys in a mount namespace of its own, which fails
under this machine's devices cgroup; `nsenter --net` enters the network namespace alone, so dockerd's
mounts (overlay2 layers, /proc/mounts) stay in the host's mount namespace, where stop() can see them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

TOOLS = ("dockerd", "nsenter", "ip")
NETNS_DIR = Path("/run/netns")
# The socket, pidfile and exec root live here, not under pytest's folders: a Unix socket's path must
# stay under 108 bytes (sun_path), and containerd's sockets sit deeper in the exec root than ours.
RUN_PARENT = "/run"
SOCKET_PATH_LIMIT = 100
LOG_TAIL_LINES = 40
API_TIMEOUT = 600  # seconds: loading a 1 GB image is one request answered at its end
CHUNK_SIZE = 4 * 1024 * 1024
_MNT_DETACH = 2

NOT_ROOT = "extra Docker engines need root (dockerd, network namespaces)"
MISSING_TOOLS = "extra Docker engines need {tools} on PATH"
NOT_READY = "the extra Docker engine {name} did not answer within {seconds:g}s"
EXITED = "the extra Docker engine {name} exited with code {code} while starting"
SOCKET_TOO_LONG = "the extra Docker engine's socket path {path} is {length} bytes (limit {limit})"
MOUNTS_LEFT = "mounts left behind by the extra Docker engine {name}: {mounts}"
NOT_LOADED = "{tag} is not in the extra Docker engine {name} after loading it"


class EngineError(RuntimeError):
    """An extra engine that could not be started; the message ends with the tail of dockerd's log."""


def missing_requirements() -> str | None:
    """Why no extra engine can run here, or None."""
    if os.geteuid() != 0:
        return NOT_ROOT
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return MISSING_TOOLS.format(tools=", ".join(missing))
    return None


@dataclass(frozen=True)
class EngineSettings:
    """What an extra engine copies from the main one: the same storage and cgroup drivers, so that it
    behaves as the main engine does (and overlay2 is known to work on this kernel)."""

    storage_driver: str | None = None
    cgroup_driver: str | None = None
    containerd_snapshotter: bool = False

    @classmethod
    def like(cls, client) -> EngineSettings:
        info = client.info()
        snapshotter = any(key == "driver-type" and "snapshotter" in value
                          for key, value in info.get("DriverStatus") or [])
        return cls(storage_driver=None if snapshotter else info.get("Driver") or None,
                   cgroup_driver=info.get("CgroupDriver") or None, containerd_snapshotter=snapshotter)


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of the roots, deepest first (so that they unmount in order)."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space, and so on
            if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _unmount(point: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(point.encode(), _MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"umount {point}: {os.strerror(errno)}")


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process still there."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])  # after "(comm) state"
            found[int(proc.name)] = (parent, (proc / "cmdline").read_bytes())
        except (OSError, ValueError):
            continue
    return found


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class ExtraEngine:
    """One extra dockerd. start() it, give its `docker_host` to a worker, stop() it at the end."""

    settings: EngineSettings = field(default_factory=EngineSettings)
    name: str = field(default_factory=lambda: f"avx-{uuid.uuid4().hex[:8]}")
    start_timeout: float = 60.0
    stop_timeout: float = 30.0
    data_root: Path | None = field(default=None, init=False)
    run_dir: Path | None = field(default=None, init=False)
    log_path: Path | None = field(default=None, init=False)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _client: Any = field(default=None, init=False, repr=False)

    # --- where it is ----------------------------------------------------------------------------

    @property
    def netns(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def socket(self) -> Path:
        assert self.run_dir is not None, "the engine is not started"
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def client(self):
        """A docker-py client of this engine (one, kept until stop())."""
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.docker_host, timeout=API_TIMEOUT)
        return self._client

    # --- starting ---------------------------------------------------------------------------------

    def start(self, tmpdir: Path) -> Self:
        """Start dockerd with its data root and log in tmpdir; return once it answers a ping."""
        tmpdir = Path(tmpdir)
        self.data_root, self.log_path = tmpdir / "data", tmpdir / "dockerd.log"
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=RUN_PARENT))
        if len(str(self.socket)) >= SOCKET_PATH_LIMIT:
            self.stop()
            raise EngineError(SOCKET_TOO_LONG.format(path=self.socket, length=len(str(self.socket)),
                                                     limit=SOCKET_PATH_LIMIT))
        config = tmpdir / "daemon.json"
        # Its own configuration file: /etc/docker/daemon.json is the main engine's (a bridge, a data root).
        features = ', "features": {"containerd-snapshotter": true}' if self.settings.containerd_snapshotter else ""
        config.write_text(f'{{"log-level": "info"{features}}}\n')
        try:
            subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, text=True)
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True,
                           capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise EngineError(f"{' '.join(exc.cmd)}: {exc.stderr.strip()}") from exc
        with open(self.log_path, "ab") as log:
            # nsenter without --fork execs dockerd: the process we hold is dockerd itself.
            self._process = subprocess.Popen(
                ["nsenter", f"--net={self.netns}", "dockerd", *self._arguments(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_ready()
        except EngineError:
            self.stop()
            raise
        return self

    def _arguments(self, config: Path) -> list[str]:
        assert self.run_dir is not None and self.data_root is not None
        args = [
            f"--config-file={config}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.run_dir / 'exec'}",
            f"--pidfile={self.run_dir / 'dockerd.pid'}",
            f"--host={self.docker_host}",
            # No network of its own to manage: no docker0 bridge, no iptables rules in the host's tables
            # (the namespace has its own, but nothing needs them), no proxy processes for ports.
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false",
            # A containerd found at /run/containerd would be shared: keep our containers apart in it.
            f"--containerd-namespace={self.name}", f"--containerd-plugins-namespace={self.name}-plugins",
            "--shutdown-timeout=2",
        ]
        if self.settings.storage_driver:
            args.append(f"--storage-driver={self.settings.storage_driver}")
        if self.settings.cgroup_driver:
            args.append(f"--exec-opt=native.cgroupdriver={self.settings.cgroup_driver}")
        return args

    def _wait_until_ready(self) -> None:
        assert self._process is not None and self.log_path is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise EngineError(f"{EXITED.format(name=self.name, code=code)}; dockerd's log:\n"
                                  f"{_log_tail(self.log_path)}")
            if self.socket.exists():
                try:
                    self.client().ping()
                    return
                except Exception as exc:  # noqa: BLE001  (not listening yet)
                    last_error = exc
            time.sleep(0.05)
        raise EngineError(f"{NOT_READY.format(name=self.name, seconds=self.start_timeout)} "
                          f"(last error: {last_error}); dockerd's log:\n{_log_tail(self.log_path)}")

    # --- images -----------------------------------------------------------------------------------

    def load_image(self, tag: str, from_client) -> None:
        """Stream `docker save` of tag from another engine into this one (the CLI's pipe is no faster:
        both take as long as this engine needs to unpack the layers)."""
        import docker

        # named=tag: saved by id alone, the image would arrive without its tag.
        self.client().images.load(from_client.images.get(tag).save(chunk_size=CHUNK_SIZE, named=tag))
        try:
            self.client().images.get(tag)
        except docker.errors.ImageNotFound as exc:
            raise EngineError(NOT_LOADED.format(tag=tag, name=self.name)) from exc

    def has_image(self, tag: str) -> bool:
        import docker

        try:
            self.client().images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def ensure_image(self, tag: str, from_client) -> bool:
        """Load tag from another engine unless this one has it already; True if it was loaded."""
        if self.has_image(tag):
            return False
        self.load_image(tag, from_client)
        return True

    # --- stopping ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop dockerd (SIGTERM, then SIGKILL), then remove what it leaves: mounts, the network
        namespace, its folders. Safe to call twice, or after a start that failed half-way."""
        self._remove_containers()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            self._stop_process()
        if self.run_dir is not None:
            self._kill_strays()
        roots = [root for root in (self.data_root, self.run_dir) if root is not None]
        for point in _mounts_under(*roots):
            _unmount(point)
        if self.netns.exists():
            subprocess.run(["ip", "netns", "delete", self.name], check=True, capture_output=True)
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
        leftover = _mounts_under(*roots)
        if leftover:
            raise EngineError(MOUNTS_LEFT.format(name=self.name, mounts=", ".join(leftover)))

    def _remove_containers(self) -> None:
        """Killed now rather than given dockerd's stop timeout each: a sandbox may ignore SIGTERM."""
        if self._client is None or self._process is None or self._process.poll() is not None:
            return
        # Whatever goes wrong here, dockerd's own shutdown still stops them (in --shutdown-timeout).
        with contextlib.suppress(Exception):
            for container in self._client.containers.list(all=True, ignore_removed=True):
                container.remove(force=True)

    def _stop_process(self) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _kill_strays(self) -> None:
        """After a SIGKILL, dockerd's containerd and the shims of its containers outlive it: they are
        found by the exec root they were given, which is ours alone; a shim's children are the
        containers' first processes (killing one ends its PID namespace)."""
        assert self.run_dir is not None
        processes = _processes()
        ours = {pid for pid, (_, cmdline) in processes.items()
                if str(self.run_dir).encode() in cmdline and pid != os.getpid()}
        children = {pid for pid, (parent, _) in processes.items() if parent in ours}
        for pid in [*children, *ours]:
            _kill(pid)
        deadline = time.monotonic() + self.stop_timeout
        while any(Path(f"/proc/{pid}").exists() for pid in ours) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
