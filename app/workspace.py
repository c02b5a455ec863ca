"""The job's workspace on the host: clone, branch, inspect, commit and push with git.

Security: the workspace is shared with the sandbox, so everything git reads from it may have
been written by the agent. Every git command here runs hermetically (no global or system config,
no hooks, no fsmonitor) and the sandbox sees `.git` read-only, so nothing the agent writes can
make git run code on the host. The installation token reaches git per command, in the
environment, and is never written to `.git/config` or a stored URL."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 120
WORKFLOWS_DIR = ".github/workflows/"

# Options that make every git call ignore what a repository's config could ask for.
_HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.sshCommand=false",
    "-c", "protocol.file.allow=never",
    "-c", "protocol.ext.allow=never",
    "-c", "submodule.recurse=false",
    "-c", "credential.helper=",
)


class GitError(RuntimeError):
    pass


def branch_name(worker: str, issue_number: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-") or "work"
    return f"agentvine/{worker}-{issue_number}-{slug}"


def _env(token: str | None, workspace: Path | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "LC_ALL": "C",
    }
    pairs = []
    if workspace is not None:
        # The sandbox owns the files (uid 1000); git refuses such a repository unless told.
        pairs.append(("safe.directory", str(workspace)))
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        pairs.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


async def git(*args: str, cwd: Path | None = None, token: str | None = None, workspace: Path | None = None) -> str:
    """Run one hermetic git command; GitError (token redacted) when it fails."""
    cmd = ["git", *_HARDENING, *args]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=cwd, env=_env(token, workspace), capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )

    try:
        done = await asyncio.to_thread(run)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_redact(done.stderr.strip(), token)[-2000:]}")
    return done.stdout


@dataclass
class Workspace:
    root: Path  # data_dir/jobs/<job id>
    branch: str

    @property
    def path(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        """The agent's home: Claude Code keeps its sessions here, so a later run can resume."""
        return self.root / "home"

    async def git(self, *args: str, token: str | None = None) -> str:
        return await git(*args, cwd=self.path, token=token, workspace=self.path)


async def prepare(root: Path, clone_url: str, base_branch: str, branch: str, token: str) -> tuple[Workspace, str | None]:
    """A fresh shallow clone of `base_branch` on a new local `branch`.

    Returns the workspace and the sha the remote `branch` has now (None when it does not exist),
    so that the push later replaces only what this job saw."""
    ws = Workspace(root, branch)
    if ws.path.exists():
        shutil.rmtree(ws.path)  # a retried job starts from the default branch again
    ws.path.parent.mkdir(parents=True, exist_ok=True)
    ws.home.mkdir(parents=True, exist_ok=True)
    await git(
        "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--branch", base_branch, "--",
        clone_url, str(ws.path), token=token,
    )
    if branch != base_branch:  # a follow-up on a pull request works on the PR's own branch
        await ws.git("checkout", "--quiet", "-b", branch)
    remote = await ws.git("ls-remote", "--heads", "origin", f"refs/heads/{branch}", token=token)
    return ws, (remote.split()[0] if remote.strip() else None)


@dataclass(frozen=True)
class Change:
    status: str  # git's two-letter porcelain status
    path: str


async def changes(ws: Workspace) -> list[Change]:
    out = await ws.git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    entries = [e for e in out.split("\0") if e]
    return [Change(entry[:2], entry[3:]) for entry in entries]


def path_matches(path: str, pattern: str) -> bool:
    """Glob match where `*` crosses directories and a leading `**/` may match nothing (as in .gitignore)."""
    if fnmatch.fnmatchcase(path, pattern):
        return True
    return pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])


def refused_paths(paths: list[str], allowed: list[str], *, allow_workflows: bool) -> list[tuple[str, str]]:
    """(path, why) for each changed path the job may not push."""
    refused = []
    for path in paths:
        if not allow_workflows and path.startswith(WORKFLOWS_DIR):
            refused.append((path, "changes to .github/workflows/ are not allowed (allow_workflow_changes)"))
        elif path == ".git" or path.startswith(".git/") or "/.git/" in path:
            refused.append((path, "git metadata"))
        elif not any(path_matches(path, pattern) for pattern in allowed):
            refused.append((path, f"outside the worker's allowed paths ({', '.join(allowed) or 'none'})"))
    return refused


async def commit(ws: Workspace, message: str, *, author_name: str, author_email: str) -> str:
    await ws.git("add", "--all")
    await ws.git(
        "-c", f"user.name={author_name}", "-c", f"user.email={author_email}",
        "commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message,
    )
    return (await ws.git("rev-parse", "HEAD")).strip()


async def push(ws: Workspace, token: str, *, expected_remote: str | None) -> None:
    """Push the branch; replaces the remote branch only if it is still what the job saw."""
    lease = f"--force-with-lease=refs/heads/{ws.branch}:{expected_remote or ''}"
    await ws.git("push", "--quiet", lease, "origin", f"HEAD:refs/heads/{ws.branch}", token=token)


