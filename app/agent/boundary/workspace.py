"""A job's files on the host: the host's own repository, and the tree the agent works in.

    jobs/<id>/git/            the host's repository (bare; objects, refs, config), owned by the
                              git user, mode 0700; the sandbox never sees it
    jobs/<id>/disk.img        the job's filesystem (app/agent/sandbox/disk.py), mounted at mnt/
    jobs/<id>/mnt/workspace/  the checkout the agent changes (uid 1000), with a `.git` copy of
                              its own that the host never reads again
    jobs/<id>/mnt/home/       the agent's home (Claude Code's sessions, kept for --resume)
    jobs/<id>/base.json       what the host wrote into the workspace (docs/sandbox.md)

The host writes the checkout itself from git's object database (exact blob bytes: no filter,
attribute or conversion can apply), records what it wrote, and later reads the agent's tree as
plain data (app/agent/boundary/changeset.py). Git never runs with the agent's tree as its work tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from app.agent.boundary.hostgit import GitError, GitUser, cat_blobs, git, run_git
from app.agent.sandbox.disk import JobDisk, remove_tree
from app.agent.sandbox.layout import AGENT_GID, AGENT_UID
from app.domain.ci import BRANCH_PREFIX
from app.domain.lease import check_current

__all__ = ["BaseEntry", "GitError", "Workspace", "branch_name", "discard", "prepare", "push"]

GITLINK, SYMLINK, EXECUTABLE, REGULAR = "160000", "120000", "100755", "100644"


def branch_name(worker: str, issue_number: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-") or "work"
    return f"{BRANCH_PREFIX}{worker}-{issue_number}-{slug}"


@dataclass(frozen=True)
class BaseEntry:
    """One path of the base commit as the host wrote it: git's mode and blob, and the stat the
    file had right after (a file whose inode, size, mode, mtime and ctime are all unchanged was
    not written since; the agent cannot set ctime)."""

    mode: str
    sha: str
    stat: tuple[int, int, int, int, int] | None  # ino, size, mode, mtime_ns, ctime_ns; None: gitlink

    def unchanged(self, st: os.stat_result) -> bool:
        return self.stat is not None and self.stat == _stat_key(st)


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class Workspace:
    disk: JobDisk  # its root is the job's folder, data_dir/jobs/<job id>
    branch: str
    git_user: GitUser

    @property
    def root(self) -> Path:
        return self.disk.root

    @property
    def git_dir(self) -> Path:
        return self.root / "git"

    @property
    def path(self) -> Path:
        return self.disk.mountpoint / "workspace"

    @property
    def home(self) -> Path:
        """The agent's home: Claude Code keeps its sessions here, so a later run can resume."""
        return self.disk.mountpoint / "home"

    @property
    def _base_file(self) -> Path:
        return self.root / "base.json"

    async def git(self, *args: str, token: str | None = None, input: bytes | None = None,
                  env: dict[str, str] | None = None) -> bytes:
        return await git(self.git_dir, *args, user=self.git_user, token=token, input=input, env=env)

    def base(self) -> tuple[str, dict[str, BaseEntry]]:
        """The base commit and every path the host wrote from it."""
        data = json.loads(self._base_file.read_text())
        return data["commit"], {p: BaseEntry(m, s, tuple(st) if st else None) for p, (m, s, st) in data["entries"].items()}

    def exists(self) -> bool:
        return self._base_file.is_file() and self.git_dir.is_dir()


async def prepare(ws: Workspace, clone_url: str, base_branch: str, token: str) -> str | None:
    """A fresh checkout of `base_branch` for the agent, on the job's own filesystem.

    Returns the sha the remote job branch has now (None when it does not exist), so that the
    push later replaces only what this job saw."""
    await asyncio.to_thread(discard, ws.disk)  # a retried job starts from the default branch again
    ws.root.mkdir(parents=True, exist_ok=True)
    os.chmod(ws.root, 0o711)
    ws.git_user.check_reachable(ws.root)
    ws.git_user.own(ws.git_dir)
    await ws.git("init", "--quiet", "--bare")
    await ws.git("remote", "add", "origin", clone_url)
    await ws.git("fetch", "--quiet", "--depth", "1", "--no-tags", "origin",
                 f"+refs/heads/{base_branch}:refs/heads/{base_branch}", token=token)
    commit = (await ws.git("rev-parse", "--verify", f"refs/heads/{base_branch}^{{commit}}")).decode().strip()
    remote = (await ws.git("ls-remote", "--heads", "origin", f"refs/heads/{ws.branch}", token=token)).decode()
    await asyncio.to_thread(_materialize, ws, commit)
    return remote.split()[0] if remote.strip() else None


def _materialize(ws: Workspace, commit: str) -> None:
    ws.disk.create()
    entries = _checkout(ws, commit)
    _sandbox_git_dir(ws, commit)
    ws._base_file.write_text(json.dumps({"commit": commit, "entries": {
        p: [e.mode, e.sha, list(e.stat) if e.stat else None] for p, e in entries.items()}}))


def _safe_components(path: str) -> list[str]:
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
        raise GitError(f"the repository holds a path that cannot be checked out safely: {path!r}")
    return parts


def _checkout(ws: Workspace, commit: str) -> dict[str, BaseEntry]:
    """Write the commit's tree into the empty workspace from git's objects, byte for byte."""
    listing = run_git(ws.git_dir, "ls-tree", "-r", "-z", "--full-tree", commit, user=ws.git_user)
    records = []
    for item in listing.split(b"\0"):
        if item:
            meta, _, path = item.partition(b"\t")
            mode, _kind, sha = meta.decode().split()
            records.append((mode, sha, path.decode("utf-8", "surrogateescape")))
    blobs = [(m, s, p) for m, s, p in records if m != GITLINK]
    os.mkdir(ws.path, 0o755)
    os.mkdir(ws.home, 0o700)
    entries: dict[str, BaseEntry] = {}
    made: list[Path] = [ws.path, ws.home]
    with closing(cat_blobs(ws.git_dir, [s for _, s, _ in blobs], user=ws.git_user)) as contents:
        for (mode, sha, path), data in zip(blobs, contents):
            target = ws.path.joinpath(*_safe_components(path))
            made += _mkdirs(ws.path, target.parent)
            if mode == SYMLINK:
                os.symlink(data, target)
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if mode == EXECUTABLE else 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            os.lchown(target, AGENT_UID, AGENT_GID)
            entries[path] = BaseEntry(mode, sha, _stat_key(os.lstat(target)))
    for mode, sha, path in records:
        if mode == GITLINK:  # a submodule stays an empty directory, as git leaves it unless asked
            target = ws.path.joinpath(*_safe_components(path))
            made += _mkdirs(ws.path, target)
            entries[path] = BaseEntry(mode, sha, None)
    for d in made:
        os.lchown(d, AGENT_UID, AGENT_GID)
    return entries


def _mkdirs(top: Path, directory: Path) -> list[Path]:
    """Make `directory` below `top`; every existing component must be a real directory (a tree
    with both `a` as a symlink and `a/b` would otherwise write through the link)."""
    made = []
    for d in [*reversed(directory.relative_to(top).parents), directory.relative_to(top)]:
        full = top / d
        if str(d) == ".":
            continue
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            os.mkdir(full, 0o755)
            made.append(full)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise GitError(f"the repository's tree cannot be checked out safely: {d} is not a directory")
    return made


def _sandbox_git_dir(ws: Workspace, commit: str) -> None:
    """The agent's own `.git`: a copy of the host repository on the job branch, so it can use
    git as usual. It is written before the agent runs and never read by the host afterwards."""
    target = ws.path / ".git"
    shutil.copytree(ws.git_dir, target, symlinks=True)
    user = GitUser()  # the copy is the host's own, made a moment ago; the agent has not run yet
    run_git(target, "config", "core.bare", "false", user=user)
    run_git(target, "update-ref", f"refs/heads/{ws.branch}", commit, user=user)
    run_git(target, "symbolic-ref", "HEAD", f"refs/heads/{ws.branch}", user=user)
    run_git(target, "read-tree", commit, user=user, env={"GIT_INDEX_FILE": str(target / "index")})
    for dirpath, dirnames, filenames in os.walk(target):
        for name in [*dirnames, *filenames, ""]:
            os.lchown(os.path.join(dirpath, name) if name else dirpath, AGENT_UID, AGENT_GID)


async def push(ws: Workspace, commit: str, token: str, *, expected_remote: str | None) -> None:
    """Push `commit` to the job branch; replaces the remote branch only if it is still what the job saw."""
    check_current()  # the job's lease, checked last before the branch is published
    lease = f"--force-with-lease=refs/heads/{ws.branch}:{expected_remote or ''}"
    await ws.git("push", "--quiet", lease, "origin", f"{commit}:refs/heads/{ws.branch}", token=token)


async def push_empty_commit(ws: Workspace, clone_url: str, branch: str, token: str, *, message: str,
                            author: tuple[str, str]) -> str:
    """A commit with the tip's own tree on top of `branch`, pushed: it changes no file and makes
    GitHub run the workflows a `skip-checks` trailer held back. Needs no checkout, so no agent file
    is read; the job's files are removed again afterwards."""
    ws.root.mkdir(parents=True, exist_ok=True)
    os.chmod(ws.root, 0o711)
    ws.git_user.own(ws.git_dir)
    try:
        await ws.git("init", "--quiet", "--bare")
        await ws.git("fetch", "--quiet", "--depth", "1", "--no-tags", clone_url,
                     f"+refs/heads/{branch}:refs/heads/{branch}", token=token)
        tip = (await ws.git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")).decode().strip()
        name, email = author
        who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        commit = (await ws.git("commit-tree", f"{tip}^{{tree}}", "-p", tip, input=message.encode(), env=who)).decode().strip()
        await ws.git("push", "--quiet", f"--force-with-lease=refs/heads/{branch}:{tip}", clone_url,
                     f"{commit}:refs/heads/{branch}", token=token)
        return commit
    finally:
        await asyncio.to_thread(discard, ws.disk)


def discard(disk: JobDisk) -> None:
    """Remove a job's files, whatever state they are in: the filesystem goes with its image."""
    root = disk.root
    disk.remove()
    remove_tree(root / "git")
    (root / "base.json").unlink(missing_ok=True)
    for leftover in ("workspace", "home"):  # the layout before the job filesystem
        remove_tree(root / leftover)
    if root.is_dir():
        try:
            root.rmdir()
        except OSError:
            pass
