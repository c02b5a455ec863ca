"""A job's own small filesystem: the workspace and the agent's home, with a size and file quota.

The agent can write as fast as the disk takes it (`fallocate -l 70G` is instant), so a quota
checked by walking the tree afterwards, or polled while it runs, still fills the host's disk
first. The kernel must enforce it: each job gets an ext4 filesystem in a sparse image file,
loop-mounted `nosuid,nodev` at `<job>/mnt`, sized to the quota and with an inode count for the
file limit. A full filesystem answers ENOSPC inside the sandbox and nothing outside it. Being
a filesystem of its own, it also cannot hold a hard link to any file outside it.

The image is written only by the kernel's ext4 driver (the sandbox sees the mounted tree, never
the image), so the host never mounts a filesystem image the agent crafted.

Where loop devices are not available (not root, no /dev/loop-control), `mode="dir"` keeps a plain
directory instead: nothing is enforced while the agent runs; the service logs that at start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DiskMode = Literal["loop", "dir"]
# ext4's own metadata (inode tables, bitmaps) comes on top of the space the agent may use.
_METADATA_MARGIN_MB = 64
_INODE_MARGIN = 1024
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"


class DiskError(RuntimeError):
    pass


def loop_supported() -> bool:
    return os.geteuid() == 0 and os.path.exists("/dev/loop-control") and shutil.which("mkfs.ext4") is not None


def choose_mode(setting: Literal["auto", "loop", "dir"]) -> DiskMode:
    """`auto` picks `loop` where it can run (the setting itself is validated in app/settings.py)."""
    if setting == "auto":
        return "loop" if loop_supported() else "dir"
    if setting == "loop" and not loop_supported():
        raise DiskError("AGENTVINE_WORKSPACE_DISK=loop needs root, /dev/loop-control and mkfs.ext4")
    return setting


@dataclass(frozen=True)
class Usage:
    bytes_used: int
    files_used: int


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise DiskError(f"{cmd[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")


@dataclass(frozen=True)
class JobDisk:
    root: Path  # the job's directory on the host
    mode: DiskMode
    max_size_mb: int
    max_files: int

    @property
    def image(self) -> Path:
        return self.root / "disk.img"

    @property
    def mountpoint(self) -> Path:
        return self.root / "mnt"

    def mounted(self) -> bool:
        return os.path.ismount(self.mountpoint)

    def create(self) -> None:
        """A new, empty filesystem (or directory), mounted."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(mode=0o700, exist_ok=True)
        if self.mode == "dir":
            return
        size = (self.max_size_mb + _METADATA_MARGIN_MB) * 1024 * 1024
        with open(self.image, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.truncate(size)  # sparse: it takes disk space only as the agent writes
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-N", str(self.max_files + _INODE_MARGIN),
             "-E", "lazy_itable_init=1", str(self.image))
        self.mount()

    def mount(self) -> None:
        if self.mode == "dir" or self.mounted():
            return
        if not self.image.is_file():
            raise DiskError(f"the job's disk image {self.image} is gone")
        _run("mount", "-o", _MOUNT_OPTIONS, str(self.image), str(self.mountpoint))

    def unmount(self) -> None:
        if self.mode == "loop" and self.mounted():
            _run("umount", str(self.mountpoint))

    def usage(self) -> Usage:
        """What the job's files take now: one statvfs, cheap enough to poll."""
        if self.mode == "dir":
            return Usage(0, 0)
        st = os.statvfs(self.mountpoint)
        return Usage((st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree)

    def over_quota(self) -> str | None:
        """Which limit the job's files went past, in words for GitHub; None while within both."""
        if self.mode == "dir" or not self.mounted():
            return None
        used = self.usage()
        if used.bytes_used > self.max_size_mb * 1024 * 1024:
            return f"the workspace grew past {self.max_size_mb} MB (workspace.max_size_mb)"
        if used.files_used > self.max_files:
            return f"the workspace holds more than {self.max_files} files (workspace.max_files)"
        return None

    def remove(self) -> None:
        """Unmount and delete everything: the tree goes with the image, nothing walks it."""
        self.unmount()
        self.image.unlink(missing_ok=True)
        if not self.mounted():
            remove_tree(self.mountpoint)


def remove_tree(path: Path) -> None:
    """Delete a folder the agent may have written: GNU rm walks any depth without recursion
    (shutil.rmtree recurses and fails past ~1000 levels), never follows a symlink, and stays on
    one filesystem."""
    if os.path.lexists(path):
        _run("rm", "-rf", "--one-file-system", "--", str(path))
