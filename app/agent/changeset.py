"""What the agent changed, read by the host as plain data, and the commit built from it.

The agent's tree is hostile input. The host walks it with directory file descriptors and
`O_NOFOLLOW` (a symlink is read as a link, never followed), only after the container is gone (so
nothing changes while it reads), compares it with what it wrote at checkout (app/workspace.py),
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
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from app.agent.hostgit import GitError, run_git
from app.domain.untrusted import code_span
from app.agent.workspace import EXECUTABLE, GITLINK, REGULAR, SYMLINK, BaseEntry, Workspace

WORKFLOWS_DIR = ".github/workflows/"
MAX_DEPTH = 200
MAX_PATH_BYTES = 4096  # PATH_MAX: a longer path is refused and not entered
MAX_NAMES_BYTES = 64 * 1024 * 1024  # all recorded paths together: bounds the host's memory
MAX_GITIGNORE_BYTES = 1024 * 1024
MAX_GITIGNORE_TOTAL = 16 * 1024 * 1024
MAX_LISTED = 20  # refusals named on GitHub; the rest are counted
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Code points that HFS+ and others ignore in names, so `.git\u200chub` is `.github` there.
_IGNORABLE = re.compile("[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")


@dataclass(frozen=True)
class Rules:
    """What the job may commit (from the job's RunSettings)."""

    allowed_paths: list[str]
    allow_workflows: bool
    max_file_mb: int
    max_changed_files: int


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


# --- path rules -----------------------------------------------------------------------------

def canonical(path: str) -> str:
    """The form a case-insensitive, normalising file system or tool would see."""
    text = _IGNORABLE.sub("", unicodedata.normalize("NFKC", path)).casefold()
    return "/".join(part.rstrip(" .") or part for part in text.split("/"))


def path_matches(path: str, pattern: str) -> bool:
    """Glob match where `*` crosses directories and a leading `**/` may match nothing (as in .gitignore)."""
    if fnmatch.fnmatchcase(path, pattern):
        return True
    return pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])


def rule_refusal(path: str, rules: Rules, mode: str | None = None) -> str | None:
    """Why the job may not change `path` (added, modified or deleted; `mode` of what it becomes), or None."""
    canon = canonical(path)
    if mode == SYMLINK and not rules.allow_workflows and WORKFLOWS_DIR.startswith(canon + "/"):
        return "a symlink in place of .github/ or .github/workflows/ (allow_workflow_changes)"
    if any(part in (".git", "git~1") for part in canon.split("/")):
        return "git metadata"
    if canon == ".gitmodules":
        return "submodule configuration (.gitmodules) is not changed by agents"
    if not rules.allow_workflows and (canon + "/").startswith(WORKFLOWS_DIR):
        return "changes to .github/workflows/ are not allowed (allow_workflow_changes)"
    if not any(path_matches(path, pattern) for pattern in rules.allowed_paths):
        return f"outside the worker's allowed paths ({', '.join(rules.allowed_paths) or 'none'})"
    return None


def symlink_refusal(path: str, target: bytes, is_link: Callable[[str], bool] = lambda p: False) -> str | None:
    """A committed symlink must point inside the repository, at something that is not `.git`.

    The target is resolved component by component from the link's folder; passing through
    another symlink of the tree (`is_link`) is refused, since `..` after it would go wherever that
    link points (a chain of links each harmless alone can reach `/etc/passwd`)."""
    try:
        text = target.decode("utf-8")
    except UnicodeDecodeError:
        return "a symlink whose target is not UTF-8"
    outside = f"a symlink pointing outside the repository ({code_span(text)})"
    if not text or text.startswith("/") or "\0" in text:
        return outside
    parts = path.split("/")[:-1]
    components = [c for c in text.split("/") if c not in ("", ".")]
    for i, comp in enumerate(components):
        if comp == "..":
            if not parts:
                return outside
            parts.pop()
            continue
        parts.append(comp)
        if canonical(comp) in (".git", "git~1"):
            return f"a symlink into git metadata ({code_span(text)})"
        if i < len(components) - 1 and is_link("/".join(parts)):
            return f"a symlink through another symlink ({code_span(text)})"
    return None


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
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
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
                out.gitignores[path] = _read(fd, name, st.st_size)
                out.gitignore_bytes += st.st_size
        else:
            out.files[path] = _Found(path, st, _kind(st))


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir keeps undecodable bytes as surrogates
        return False
    return True


def _read(dir_fd: int, name: str, size: int) -> bytes:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
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


def _parent_fd(root_fd: int, path: str) -> tuple[int, str]:
    """An fd of `path`'s directory, opened component by component without following links."""
    *dirs, name = path.split("/")
    fd = os.dup(root_fd)
    try:
        for d in dirs:
            nxt = os.open(d, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def read_content(root_fd: int, path: str, st: os.stat_result) -> bytes:
    """The bytes to commit for `path`: a file's content, or a symlink's target."""
    fd, name = _parent_fd(root_fd, path)
    try:
        return os.readlink(name, dir_fd=fd).encode("utf-8", "surrogateescape") if stat.S_ISLNK(st.st_mode) \
            else _read(fd, name, st.st_size)
    finally:
        os.close(fd)


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
    root_fd = os.open(ws.path, _DIR_FLAGS)
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
        for found, mode in changed:
            why = _refusal(root_fd, found, mode, rules, max_bytes, gitlinks, links.__contains__)
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


def _refusal(root_fd: int, found: _Found, mode: str, rules: Rules, max_bytes: int, gitlinks: set[str],
             is_link: Callable[[str], bool]) -> str | None:
    path, st = found.path, found.st
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return "a hard link (commit a copy, or a symlink)"
    if st.st_size > max_bytes:
        return f"{st.st_size / 1024 / 1024:.0f} MB, larger than workspace.max_file_mb ({rules.max_file_mb} MB)"
    held = next((g for g in gitlinks if g.startswith(path + "/")), None)
    if held is not None:  # a file or link where a submodule's parent folder was would drop the submodule
        return f"replaces the folder of the submodule {code_span(held)} (submodules are not changed by agents)"
    why = rule_refusal(path, rules, mode)
    if why is None and mode == SYMLINK:
        why = symlink_refusal(path, read_content(root_fd, path, st), is_link)
    return why


# --- the commit -----------------------------------------------------------------------------

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
        root_fd = os.open(ws.path, _DIR_FLAGS)
        try:
            for change in ordered:
                if change.mode is None:
                    yield b"D " + _quoted(change.path) + b"\n"
                    continue
                fd, name = _parent_fd(root_fd, change.path)
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
