"""What the agent changed, read by the host as plain data, and the commit built from it.

The agent's tree is hostile input. The host walks it with directory file descriptors and
`O_NOFOLLOW` (a symlink is read as a link, never followed), only after the container is gone (so
nothing changes while it reads), compares it with what it wrote at checkout (app/agent/boundary/workspace.py),
and validates every change before anything is committed:

- only regular files and symlinks; a symlink's target must stay inside the repository;
- no hard links, no FIFOs, sockets or devices, no `.git` below the top level, nothing inside a
  submodule's directory, no change to `.gitmodules`;
- the worker's allowed paths, and `.github/workflows/` unless allowed, checked on the path as
  written *and* as a case-insensitive, Unicode-normalised form (what other systems would see);
- a size limit per file and a limit on the number of changed files.

Which new files count is decided by the repository's `.gitignore` files, which git reads as
patterns (data) in a shadow tree that holds nothing else. The commit is then written into the
host's repository with `git fast-import` from the bytes the host read: git never sees the
agent's tree, its config or its attributes.

This module walks the tree and decides the change set; the path rules are in pathrules.py, the
no-follow file reads in nofollow.py, the commit in fastimport.py (all re-exported here).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.agent.boundary.fastimport import commit
from app.agent.boundary.hostgit import run_git
from app.agent.boundary.nofollow import DIR_FLAGS, read_content, read_file
from app.agent.boundary.pathrules import Rules, canonical, path_matches, rule_refusal, symlink_refusal
from app.agent.boundary.workspace import EXECUTABLE, GITLINK, REGULAR, SYMLINK, BaseEntry, Workspace
from app.domain.untrusted import code_span

# The path rules (pathrules.py) and the commit (fastimport.py) are part of this module's API.
__all__ = [
    "Change",
    "ChangeSet",
    "Rules",
    "canonical",
    "commit",
    "path_matches",
    "read_changes",
    "rule_refusal",
    "symlink_refusal",
]

MAX_DEPTH = 200
MAX_PATH_BYTES = 4096  # PATH_MAX: a longer path is refused and not entered
MAX_NAMES_BYTES = 64 * 1024 * 1024  # all recorded paths together: bounds the host's memory
MAX_GITIGNORE_BYTES = 1024 * 1024
MAX_GITIGNORE_TOTAL = 16 * 1024 * 1024
MAX_LISTED = 20  # refusals named on GitHub; the rest are counted


@dataclass(frozen=True)
class Change:
    path: str
    mode: str | None  # git's mode; None: deleted


@dataclass
class ChangeSet:
    changes: list[Change] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return sorted(c.path for c in self.changes)

    def refusals_text(self) -> str:
        shown = [f"- {code_span(path)}: {why}" for path, why in self.refused[:MAX_LISTED]]
        if len(self.refused) > MAX_LISTED:
            shown.append(f"- … and {len(self.refused) - MAX_LISTED} more")
        return "\n".join(shown)


# --- reading the agent's tree ---------------------------------------------------------------

def _kind(st: os.stat_result) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(st.st_mode):
            return name
    return "not a regular file or symlink"


@dataclass
class _Found:
    path: str
    st: os.stat_result
    problem: str | None = None  # set: this path may not be committed, whatever it is


@dataclass
class _Walk:
    files: dict[str, _Found] = field(default_factory=dict)  # regular files, symlinks, specials
    gitignores: dict[str, bytes] = field(default_factory=dict)
    gitignore_bytes: int = 0
    names_bytes: int = 0
    overflow: bool = False  # more names than can be checked: the change set is refused whole


def _walk(root_fd: int, gitlinks: set[str]) -> _Walk:
    """Every entry below the workspace except its top-level `.git`; directories by fd only."""
    out = _Walk()
    stack: list[tuple[int, str, Iterator[os.DirEntry]]] = [(root_fd, "", iter(list(os.scandir(root_fd))))]
    try:
        _walk_stack(stack, root_fd, gitlinks, out)
    finally:
        for fd, _, _ in stack:
            if fd != root_fd:
                os.close(fd)
    return out


def _walk_stack(stack: list[tuple[int, str, Iterator[os.DirEntry]]], root_fd: int, gitlinks: set[str], out: _Walk) -> None:
    while stack:
        fd, prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            if fd != root_fd:
                os.close(fd)
            continue
        name = entry.name
        if not prefix and name == ".git":
            continue  # the agent's own copy: never read
        path = prefix + name
        st = entry.stat(follow_symlinks=False)
        out.names_bytes += len(path) + 64
        if out.names_bytes > MAX_NAMES_BYTES:
            out.overflow = True
            return
        if len(os.fsencode(path)) > MAX_PATH_BYTES:
            out.files[path[:200] + "…"] = _Found(path, st, f"a path longer than {MAX_PATH_BYTES} bytes")
            continue
        if stat.S_ISDIR(st.st_mode):
            if canonical(name) in (".git", "git~1"):
                out.files[path] = _Found(path, st, "a `.git` below the top level")
                continue
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            children = list(os.scandir(child))
            if path in gitlinks:
                os.close(child)
                if children:
                    out.files[path] = _Found(path, st, "files inside a submodule's directory (submodules are not changed by agents)")
                continue
            if len(stack) >= MAX_DEPTH:
                os.close(child)
                out.files[path] = _Found(path, st, f"directories nested deeper than {MAX_DEPTH}")
                continue
            stack.append((child, path + "/", iter(children)))
        elif path in gitlinks:
            out.files[path] = _Found(path, st, "replaces a submodule (submodules are not changed by agents)")
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            out.files[path] = _Found(path, st, None if _utf8(path) else "a name that is not UTF-8")
            if (name == ".gitignore" and stat.S_ISREG(st.st_mode) and st.st_size <= MAX_GITIGNORE_BYTES
                    and out.gitignore_bytes + st.st_size <= MAX_GITIGNORE_TOTAL and len(path) <= MAX_PATH_BYTES // 2):
                # Past the total (or too deep for the shadow tree's longer paths), more new files
                # count as changes: the limits refuse, nothing is lost.
                out.gitignores[path] = read_file(fd, name, st.st_size)
                out.gitignore_bytes += st.st_size
        else:
            out.files[path] = _Found(path, st, _kind(st))


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir keeps undecodable bytes as surrogates
        return False
    return True


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _mode(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK
    return EXECUTABLE if st.st_mode & stat.S_IXUSR else REGULAR


def _ignored(ws: Workspace, paths: list[str], gitignores: dict[str, bytes]) -> set[str]:
    """Which of the new `paths` the repository's .gitignore files exclude, as git decides.

    Git reads the patterns in a shadow tree under the host repository that holds the
    .gitignore files the host copied and nothing else, so only patterns reach it."""
    if not paths or not gitignores:
        return set()
    shadow = ws.git_dir / "agentvine-ignore"
    shutil.rmtree(shadow, ignore_errors=True)
    shadow.mkdir(mode=0o700)
    try:
        for rel, data in gitignores.items():
            target = shadow.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if ws.git_user.uid is not None:
            for dirpath, dirnames, filenames in os.walk(shadow):
                for name in [*dirnames, *filenames, ""]:
                    os.lchown(os.path.join(dirpath, name) if name else dirpath, ws.git_user.uid, ws.git_user.gid or -1)
        out = run_git(ws.git_dir, f"--work-tree={shadow}", "check-ignore", "--no-index", "--stdin", "-z",
                      # "./": a name such as `:(glob)x` is a path, not pathspec magic
                      user=ws.git_user, input="".join(f"./{p}\0" for p in paths).encode("utf-8", "surrogateescape"),
                      cwd=shadow, ok_codes=(0, 1))
    finally:
        shutil.rmtree(shadow, ignore_errors=True)
    return {p.decode("utf-8", "surrogateescape").removeprefix("./") for p in out.split(b"\0") if p}


def read_changes(ws: Workspace, rules: Rules) -> ChangeSet:
    """Everything the agent changed, validated; `refused` says what may not be committed and why."""
    _commit, base = ws.base()
    gitlinks = {p for p, e in base.items() if e.mode == GITLINK}
    root_fd = os.open(ws.path, DIR_FLAGS)
    try:
        walk = _walk(root_fd, gitlinks)
        result = ChangeSet()
        if walk.overflow:
            result.refused.append(("the workspace", f"more names than the host checks ({MAX_NAMES_BYTES // 2**20} MiB of paths)"))
            return result
        new = sorted(p for p in walk.files if p not in base)
        ignored = _ignored(ws, new, walk.gitignores)
        max_bytes = rules.max_file_mb * 1024 * 1024
        changed: list[tuple[_Found, str]] = []
        for path, found in sorted(walk.files.items()):
            entry = base.get(path)
            if (entry is None and path in ignored) or (entry is not None and _same(root_fd, found, entry, max_bytes)):
                continue  # ignored, or tracked and not changed (perhaps touched)
            if found.problem is not None:
                result.refused.append((path, found.problem))
            else:
                changed.append((found, _mode(found.st)))
        deleted = [p for p in base if p not in walk.files and p not in gitlinks]
        if len(changed) + len(deleted) > rules.max_changed_files:
            result.refused.append((f"{len(changed) + len(deleted)} files",
                                   f"more changed files than workspace.max_changed_files ({rules.max_changed_files})"))
            return result
        links = {p for p, e in base.items() if e.mode == SYMLINK and p in walk.files} | {
            f.path for f, mode in changed if mode == SYMLINK}
        links -= {f.path for f, mode in changed if mode != SYMLINK}
        checks = _Checks(root_fd, rules, max_bytes, gitlinks, links)
        for found, mode in changed:
            why = checks.refusal(found, mode)
            if why:
                result.refused.append((found.path, why))
            else:
                result.changes.append(Change(found.path, mode))
        for path in deleted:
            why = rule_refusal(path, rules)
            if why:
                result.refused.append((path, why))
            else:
                result.changes.append(Change(path, None))
        return result
    finally:
        os.close(root_fd)


def _same(root_fd: int, found: _Found, entry: BaseEntry, max_bytes: int) -> bool:
    """A tracked file is unchanged when its stat is as written, or its bytes and mode are."""
    if entry.unchanged(found.st):
        return True
    st = found.st
    if found.problem or entry.stat is None or _mode(st) != entry.mode or st.st_size > max_bytes:
        return False
    return _blob_sha(read_content(root_fd, found.path, st)) == entry.sha


@dataclass(frozen=True)
class _Checks:
    """What each added or modified path is checked against, beyond the path rules."""

    root_fd: int  # the workspace, to read a symlink's target
    rules: Rules
    max_bytes: int  # workspace.max_file_mb in bytes
    gitlinks: set[str]  # the base commit's submodules
    links: set[str]  # the symlinks the tree holds once the change set is committed

    def refusal(self, found: _Found, mode: str) -> str | None:
        path, st = found.path, found.st
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            return "a hard link (commit a copy, or a symlink)"
        if st.st_size > self.max_bytes:
            return f"{st.st_size / 1024 / 1024:.0f} MB, larger than workspace.max_file_mb ({self.rules.max_file_mb} MB)"
        held = next((g for g in self.gitlinks if g.startswith(path + "/")), None)
        if held is not None:  # a file or link where a submodule's parent folder was would drop the submodule
            return f"replaces the folder of the submodule {code_span(held)} (submodules are not changed by agents)"
        why = rule_refusal(path, self.rules, mode)
        if why is None and mode == SYMLINK:
            why = symlink_refusal(path, read_content(self.root_fd, path, st), self.links.__contains__)
        return why
