"""Reading single files of the agent's tree by directory file descriptor, never following a link.

Every component of a path is opened with `O_NOFOLLOW` from the workspace's own fd, so a symlink
the agent planted anywhere on the way is an error, not a detour to a host file; a file is read
only if it is still the regular file of the size the walk saw. Shared by the walk that finds
the changes (changeset.py) and the commit that stores their bytes (fastimport.py).
"""

from __future__ import annotations

import os
import stat

from app.agent.boundary.hostgit import GitError

__all__ = ["DIR_FLAGS", "FILE_FLAGS", "parent_fd", "read_content", "read_file"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_file(dir_fd: int, name: str, size: int) -> bytes:
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise GitError(f"{name} changed while it was read")
        chunks, left = [], size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parent_fd(root_fd: int, path: str) -> tuple[int, str]:
    """An fd of `path`'s directory, opened component by component without following links."""
    *dirs, name = path.split("/")
    fd = os.dup(root_fd)
    try:
        for d in dirs:
            nxt = os.open(d, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def read_content(root_fd: int, path: str, st: os.stat_result) -> bytes:
    """The bytes to commit for `path`: a file's content, or a symlink's target."""
    fd, name = parent_fd(root_fd, path)
    try:
        return os.readlink(name, dir_fd=fd).encode("utf-8", "surrogateescape") if stat.S_ISLNK(st.st_mode) \
            else read_file(fd, name, st.st_size)
    finally:
        os.close(fd)
