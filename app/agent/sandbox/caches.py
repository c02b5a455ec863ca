"""Package caches (pip, npm) kept per repository between jobs, so a second job's setup is faster.

    <data_dir>/caches/                      root 0700, never mounted
    <data_dir>/caches/<repo key>/pip        → /cache/pip  (PIP_CACHE_DIR), owned by uid 1000
    <data_dir>/caches/<repo key>/npm        → /cache/npm  (npm_config_cache)

Everything inside a cache folder is written by the agent (and by the repository's setup), so the host
treats it as hostile data (docs/sandbox.md, "Package caches"): it never reads a file's contents, and
it only measures (fd-relative `lstat`, no symlink followed, no other filesystem entered) and deletes
(renamed out of the way, then `rm -rf --one-file-system`, which never follows a symlink). A cache
over its bound is cleared as a whole: picking files to keep would mean trusting the agent's
timestamps and names for nothing a second download does not give back."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .layout import AGENT_GID, AGENT_UID

log = logging.getLogger(__name__)

#: kind -> (mount point in the sandbox, the variable that points the tool at it)
CACHE_KINDS = {"pip": ("/cache/pip", "PIP_CACHE_DIR"), "npm": ("/cache/npm", "npm_config_cache")}
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_TRASH = ".trash-"
MAX_ENTRIES = 2_000_000  # a cache with more entries than this counts as over any bound


def repo_key(repo: str) -> str:
    """A folder name for `owner/name`: readable, and distinct for every repository (GitHub's names
    are case-insensitive, so `Owner/Name` and `owner/name` share one)."""
    lowered = repo.lower()
    digest = hashlib.sha256(lowered.encode()).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', lowered)[:80]}-{digest}"


@dataclass(frozen=True)
class RepoCaches:
    """The caches of one repository under `root` (<data_dir>/caches); `max_bytes` bounds each kind."""

    root: Path
    repo: str
    max_bytes: int

    @property
    def folder(self) -> Path:
        return self.root / repo_key(self.repo)

    def prepare(self) -> tuple[dict[str, Path], dict[str, str]]:
        """(mounts, environment) for a sandbox of this repository; each cache trimmed to its bound first.
        No caches when the bound is 0."""
        if self.max_bytes <= 0:
            return {}, {}
        mounts, env = {}, {}
        for kind, (target, variable) in CACHE_KINDS.items():
            path = self._ensure(kind)
            trim(path, self.max_bytes)
            mounts[target] = path
            env[variable] = target
        return mounts, env

    def trim(self) -> None:
        """After a job: each cache back within its bound."""
        for kind in CACHE_KINDS:
            path = self.folder / kind
            if path.is_dir() and not path.is_symlink():
                trim(path, self.max_bytes)

    def _ensure(self, kind: str) -> Path:
        for folder in (self.root, self.folder):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)  # dockerd (root) traverses it; uid 1000 never needs to
        path = self.folder / kind
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):  # only the host writes at this level; refuse anything else
            raise RuntimeError(f"{path} is not a directory")
        if (st.st_uid, st.st_gid) != (AGENT_UID, AGENT_GID):
            os.lchown(path, AGENT_UID, AGENT_GID)  # the folder itself only: its contents are the agent's
        return path


def measure(path: Path) -> int:
    """Bytes allocated under `path`, walked by file descriptor: every directory is opened relative to
    its parent with O_NOFOLLOW, so a symlink (or a directory swapped for one meanwhile) is counted as
    a link and never entered, and no other filesystem is entered. One descriptor is open per level;
    past MAX_DEPTH levels or MAX_ENTRIES entries the cache counts as larger than any bound."""
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    device = os.fstat(top).st_dev
    total, entries = 0, 0
    stack: list[tuple[int, list[str]]] = [(top, _subdirs_and_count(top, device, counted := []))]
    total += sum(counted)
    entries += len(counted)
    try:
        while stack:
            fd, pending = stack[-1]
            if not pending:
                os.close(stack.pop()[0])
                continue
            name = pending.pop()
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:  # gone, or no longer a directory: nothing more to count there
                continue
            counted = []
            stack.append((child, _subdirs_and_count(child, device, counted)))
            total += sum(counted)
            entries += len(counted)
            if entries > MAX_ENTRIES or len(stack) > MAX_DEPTH:
                return OVER_ANY_BOUND
    finally:
        for fd, _ in stack:
            os.close(fd)
    return total


MAX_DEPTH = 256
OVER_ANY_BOUND = 1 << 62


def _subdirs_and_count(fd: int, device: int, counted: list[int]) -> list[str]:
    """The names of the directories in `fd` (same filesystem); the bytes of every entry go to `counted`."""
    subdirs = []
    with os.scandir(fd) as listing:
        for entry in listing:
            st = entry.stat(follow_symlinks=False)
            counted.append(st.st_blocks * 512)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == device:
                subdirs.append(entry.name)
    return subdirs


def trim(path: Path, max_bytes: int) -> bool:
    """Clear the cache at `path` when it holds more than `max_bytes`; True when it did."""
    used = measure(path)
    if used <= max_bytes:
        return False
    log.info("cache %s holds %d bytes, over its bound of %d: cleared", path, used, max_bytes)
    clear(path)
    return True


def clear(path: Path) -> None:
    """Empty the cache at `path`: renamed aside first (a sandbox that still has it mounted keeps
    writing to the old folder, never to the new one), then removed without following any link."""
    trash = path.with_name(f"{_TRASH}{path.name}-{secrets.token_hex(6)}")
    os.rename(path, trash)
    _remove(trash)
    path.mkdir(mode=0o700)
    os.lchown(path, AGENT_UID, AGENT_GID)


def _remove(path: Path) -> None:
    done = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        log.warning("could not remove all of %s: %s", path, done.stderr.strip()[-300:])


def prune(root: Path, repo: str | None = None) -> list[str]:
    """Delete the caches of `repo` (every repository's when None); the folders removed, by name."""
    if not root.is_dir():
        return []
    names = [repo_key(repo)] if repo is not None else sorted(os.listdir(root))
    removed = []
    for name in names:
        folder = root / name
        if folder.is_symlink() or not folder.is_dir():
            continue
        trash = root / f"{_TRASH}{name}-{secrets.token_hex(6)}"
        os.rename(folder, trash)
        _remove(trash)
        removed.append(name)
    return removed
