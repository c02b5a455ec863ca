"""Host-side git, run only on the host's own repository of a job (never on the agent's tree).

Every command is hermetic: no system or global config, no hooks, no fsmonitor, no attributes
file, no credential helper, no local protocols. When AgentVine runs as root, git runs as an
unprivileged user (`AGENTVINE_GIT_USER`, default 65534 "nobody"), so that a future mistake in
what git is given is not a root shell on the host. The installation token reaches git in the
environment of one command (`http.extraHeader`) and never lands in a file or a stored URL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 120
DEFAULT_GIT_USER = "65534:65534"

# Options that make every git call ignore what any config could ask for.
HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.attributesFile=/dev/null",
    "-c", "core.excludesFile=/dev/null",
    "-c", "core.sshCommand=false",
    "-c", "protocol.file.allow=never",
    "-c", "protocol.ext.allow=never",
    "-c", "submodule.recurse=false",
    "-c", "credential.helper=",
    "-c", "gc.auto=0",
)


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class GitUser:
    """Who host git runs as: (uid, gid), or None for "this process's own user"."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> "GitUser":
        """`uid:gid` (or `uid`) when running as root; the current user otherwise."""
        if os.geteuid() != 0:
            return cls()
        uid, _, gid = (spec or DEFAULT_GIT_USER).partition(":")
        return cls(int(uid), int(gid or uid))

    def own(self, path: Path, mode: int = 0o700) -> None:
        """Make `path` a directory that only this user can use."""
        path.mkdir(mode=mode, exist_ok=True)
        if self.uid is not None:
            os.chown(path, self.uid, self.gid if self.gid is not None else -1)
        os.chmod(path, mode)

    def check_reachable(self, path: Path) -> None:
        """Git makes its paths absolute, so every parent of `path` must be searchable by the user."""
        if self.uid is None:
            return
        for parent in [*reversed(path.resolve().parents)]:
            st = os.stat(parent)
            if st.st_uid == self.uid or st.st_mode & stat.S_IXOTH or (st.st_gid == self.gid and st.st_mode & stat.S_IXGRP):
                continue
            raise GitError(
                f"host git runs as uid {self.uid} (AGENTVINE_GIT_USER) and cannot reach {path}: "
                f"{parent} is not searchable by it (chmod o+x {parent}, or move AGENTVINE_DATA_DIR)"
            )


def _env(token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "LC_ALL": "C",
    }
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
    env.update(extra or {})
    return env


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _popen(git_dir: Path, args: tuple[str, ...], user: GitUser, token: str | None, env: dict[str, str] | None,
           cwd: Path | None) -> subprocess.Popen:
    return subprocess.Popen(
        ["git", *HARDENING, f"--git-dir={git_dir}", *args], cwd=cwd or git_dir, env=_env(token, env),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        user=user.uid, group=user.gid, extra_groups=[] if user.uid is not None else None,
    )


def cat_blobs(git_dir: Path, shas: list[str], *, user: GitUser) -> Iterator[bytes]:
    """The contents of `shas`, in order, streamed from one `cat-file --batch` (one blob in memory at a time)."""
    proc = _popen(git_dir, ("cat-file", "--batch"), user, None, None, None)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            for sha in shas:
                proc.stdin.write(f"{sha}\n".encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, name="git-cat-file-feed", daemon=True)
    writer.start()
    try:
        for sha in shas:
            header = proc.stdout.readline().split()
            if len(header) != 3 or header[0].decode() != sha:
                raise GitError(f"git cat-file: unexpected answer for {sha}: {b' '.join(header)[:200]!r}")
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)  # the newline after each object
            yield data
    finally:
        proc.kill()
        proc.wait()
        writer.join()
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]


def run_git(git_dir: Path, *args: str, user: GitUser, token: str | None = None,
            input: bytes | Iterable[bytes] | None = None, env: dict[str, str] | None = None, cwd: Path | None = None,
            ok_codes: tuple[int, ...] = (0,), timeout: float = GIT_TIMEOUT_S) -> bytes:
    """One hermetic git command in the host repository `git_dir`; GitError (token redacted) on failure.

    `input` may be an iterable of chunks, written as they come (a commit's file contents)."""
    proc = _popen(git_dir, args, user, token, env, cwd)
    try:
        if input is not None and not isinstance(input, bytes):
            try:
                for chunk in input:
                    proc.stdin.write(chunk)  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # git stopped reading; its exit code and stderr say why
            input = None
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise GitError(f"git {args[0]} took longer than {timeout:g} s") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode not in ok_codes:
        text = err.decode("utf-8", "replace").strip()
        raise GitError(f"git {args[0]} failed: {_redact(text, token)[-2000:]}")
    return out


async def git(git_dir: Path, *args: str, user: GitUser, token: str | None = None, input: bytes | None = None,
              env: dict[str, str] | None = None) -> bytes:
    return await asyncio.to_thread(run_git, git_dir, *args, user=user, token=token, input=input, env=env)
