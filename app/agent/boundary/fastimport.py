"""The commit of a change set, written into the host's repository with `git fast-import`.

The commit is made from the bytes the host itself reads from the agent's tree (by fd, without
following links; nofollow.py), streamed to fast-import with every path quoted. Git never gets
the agent's tree as a work tree, so none of its config, attributes or hooks can apply.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from app.agent.boundary.hostgit import run_git
from app.agent.boundary.nofollow import DIR_FLAGS, parent_fd, read_content
from app.agent.boundary.workspace import Workspace

if TYPE_CHECKING:
    from app.agent.boundary.changeset import ChangeSet

__all__ = ["commit"]


def _quoted(path: str) -> bytes:
    """A C-style quoted path, as fast-import reads it whatever the path holds."""
    out = bytearray(b'"')
    for byte in path.encode("utf-8", "surrogateescape"):
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')


def commit(ws: Workspace, changes: ChangeSet, message: str, *, author_name: str, author_email: str) -> str:
    """Write `changes` on top of the base commit into the host repository; returns the commit.

    Deletions go first, so a file that became a directory (or the reverse) comes out right."""
    base_commit, _ = ws.base()
    stamp = f"{author_name} <{author_email}> {int(time.time())} +0000".encode()
    ordered = sorted(changes.changes, key=lambda c: (c.mode is not None, c.path))

    def stream() -> Iterator[bytes]:
        msg = message.encode("utf-8", "replace")  # the agent's text may carry lone surrogates
        yield b"commit refs/agentvine/commit\nmark :1\nauthor " + stamp + b"\ncommitter " + stamp + b"\n"
        yield b"data %d\n" % len(msg) + msg + b"\nfrom " + base_commit.encode() + b"\n"
        root_fd = os.open(ws.path, DIR_FLAGS)
        try:
            for change in ordered:
                if change.mode is None:
                    yield b"D " + _quoted(change.path) + b"\n"
                    continue
                fd, name = parent_fd(root_fd, change.path)
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                finally:
                    os.close(fd)
                data = read_content(root_fd, change.path, st)
                yield b"M " + change.mode.encode() + b" inline " + _quoted(change.path) + b"\ndata %d\n" % len(data)
                yield data + b"\n"
        finally:
            os.close(root_fd)
        yield b"get-mark :1\ndone\n"

    out = run_git(ws.git_dir, "fast-import", "--quiet", "--force", "--cat-blob-fd=1", "--done",
                  user=ws.git_user, input=stream())
    return out.decode().split()[-1]
