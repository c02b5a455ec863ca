"""Real bare git repositories behind the fake: refs, files and diffs come from git itself."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

# Deterministic identity and no user/system config: the fake must behave the same everywhere.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "GitHub Fake",
    "GIT_AUTHOR_EMAIL": "noreply@github.invalid",
    "GIT_COMMITTER_NAME": "GitHub Fake",
    "GIT_COMMITTER_EMAIL": "noreply@github.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

ZERO_SHA = "0" * 40


class GitError(RuntimeError):
    pass


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_GIT_ENV)
    env["HOME"] = env.get("HOME", "/nonexistent")
    return env


@dataclass(frozen=True)
class FileChange:
    """One file of a diff, with what GitHub's diff-entry needs."""

    filename: str
    status: str  # GitHub's words: added, removed, modified, renamed, copied, changed
    additions: int
    deletions: int
    blob_sha: str | None
    previous_filename: str | None = None
    patch: str = ""
    # Lines a review comment may target: side -> line numbers present in the hunks.
    commentable: dict[str, set[int]] = field(default_factory=dict)
    # Number of lines in the patch after the first "@@" line (review comment `position`).
    positions: int = 0
    # The commentable lines hunk by hunk, per side.
    hunks: dict[str, list[set[int]]] = field(default_factory=dict)


FileSpec = str | bytes | tuple[str, str | bytes]

_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class BareRepo:
    def __init__(self, path: Path) -> None:
        self.path = path

    # ---- plumbing

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=input,
            capture_output=True,
            env=git_env(),
        )
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    @classmethod
    def create(cls, path: Path, default_branch: str, files: dict[str, str]) -> "BareRepo":
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--bare", "-q", f"--initial-branch={default_branch}", str(path)],
            check=True,
            capture_output=True,
            env=git_env(),
        )
        # Pushes over smart HTTP must be accepted (http-backend refuses them by default).
        with open(path / "config", "a") as config:
            config.write("[http]\n\treceivepack = true\n")
        repo = cls(path)
        repo.commit_files(default_branch, files, "Initial commit", parent=None)
        return repo

    def commit_files(self, branch: str, files: dict[str, "FileSpec"], message: str, parent: str | None) -> str:
        """Commit `files` on top of `parent` and move `branch`: one fast-import run.

        A file is its text or bytes (mode 100644), or `(mode, content)`: `("100755", text)`,
        `("120000", target)` for a symlink, `("160000", commit sha)` for a submodule."""
        stamp = f"GitHub Fake <noreply@github.invalid> {int(time.time())} +0000"
        msg = message.encode()
        stream = [f"commit refs/heads/{branch}\nmark :1\ncommitter {stamp}\n".encode(),
                  f"data {len(msg)}\n".encode(), msg, b"\n"]
        if parent:
            stream.append(f"from {parent}\n".encode())
        for name, spec in files.items():
            mode, content = spec if isinstance(spec, tuple) else ("100644", spec)
            if mode == "160000":
                stream.append(f"M 160000 {content} {name}\n".encode())
                continue
            data = content.encode() if isinstance(content, str) else content
            stream += [f"M {mode} inline {name}\ndata {len(data)}\n".encode(), data, b"\n"]
        stream.append(b"get-mark :1\n")
        out = self.git("fast-import", "--quiet", "--force", "--cat-blob-fd=1", input=b"".join(stream))
        return out.decode().strip().splitlines()[-1]

    # ---- reading

    def resolve(self, ref: str) -> str | None:
        """Commit sha of a branch, tag, full ref or sha; None if it names no commit."""
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            out = self.git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", check=False).strip()
            if out:
                return out.decode()
        return None

    def ref_sha(self, full_ref: str) -> str | None:
        out = self.git("rev-parse", "--verify", "--quiet", full_ref, check=False).strip()
        return out.decode() if out and full_ref.startswith("refs/") else None

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", prefix).decode()
        return {name: sha for sha, name in (line.split(" ", 1) for line in out.splitlines() if line)}

    def branches(self) -> dict[str, str]:
        return {name.removeprefix("refs/heads/"): sha for name, sha in self.refs("refs/heads/").items()}

    def has_commit(self, sha: str) -> bool:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "cat-file", "-e", f"{sha}^{{commit}}"],
            capture_output=True,
            env=git_env(),
        )
        return proc.returncode == 0

    def entry(self, commit: str, path: str) -> tuple[str, str, str] | None:
        """(mode, type, sha) of a path at a commit, or None. `path` "" is the root tree."""
        if path in ("", "/"):
            tree = self.git("rev-parse", f"{commit}^{{tree}}").decode().strip()
            return ("040000", "tree", tree)
        out = self.git("ls-tree", "-z", commit, "--", path.strip("/"), check=False)
        if not out:
            return None
        meta, _name = out.rstrip(b"\0").split(b"\t", 1)
        mode, kind, sha = meta.decode().split()
        return mode, kind, sha

    def list_tree(self, commit: str, path: str) -> list[tuple[str, str, str, str, int]]:
        """(mode, type, sha, path, size) of a directory's entries."""
        spec = f"{commit}:{path.strip('/')}" if path.strip("/") else commit
        out = self.git("ls-tree", "-z", "-l", spec)
        entries = []
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, name = record.split(b"\t", 1)
            mode, kind, sha, size = meta.decode().split()
            entries.append((mode, kind, sha, prefix + name.decode(), int(size) if size != "-" else 0))
        return entries

    def blob(self, sha: str) -> bytes:
        return self.git("cat-file", "blob", sha)

    def read_file(self, ref: str, path: str) -> bytes | None:
        commit = self.resolve(ref)
        if not commit:
            return None
        entry = self.entry(commit, path)
        if not entry or entry[1] != "blob":
            return None
        return self.blob(entry[2])

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "merge-base", "--is-ancestor", ancestor, descendant],
            capture_output=True,
            env=git_env(),
        )
        return proc.returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        out = self.git("merge-base", a, b, check=False).strip()
        return out.decode() if out else None

    def commit_count(self, base: str, head: str) -> int:
        return int(self.git("rev-list", "--count", f"{base}..{head}").decode().strip() or 0)

    def commits(self, base: str, head: str, limit: int = 250) -> list[dict[str, Any]]:
        """The commits on `head` since `base` (`git log base..head`), oldest first, as GitHub lists them."""
        return self._log("--reverse", f"{base}..{head}")[-limit:]

    def commit_record(self, sha: str) -> dict[str, Any]:
        return self._log("-1", sha)[0]

    def _log(self, *args: str) -> list[dict[str, Any]]:
        fields = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e"
        out = self.git("log", f"--format={fields}", *args).decode(errors="replace")
        found = []
        for record in out.split("\x1e")[:-1]:
            sha, tree, parents, an, ae, ad, cn, ce, cd, message = record.lstrip("\n").split("\x00")
            found.append({"sha": sha, "tree": tree, "parents": parents.split(), "message": message.rstrip("\n"),
                          "author": {"name": an, "email": ae, "date": ad},
                          "committer": {"name": cn, "email": ce, "date": cd}})
        return found

    def diff(self, base: str, head: str) -> list[FileChange]:
        """Files changed on `head` since it forked from `base` (GitHub's three-dot diff)."""
        start = self.merge_base(base, head) or base
        raw = self.git("diff", "--raw", "--no-abbrev", "-z", "-M", "--numstat", start, head).split(b"\0")
        changes = self._parse_raw_numstat([r.decode(errors="replace") for r in raw])
        patches = self._patches(start, head)
        result = []
        for change in changes:
            patch = patches.get(change["filename"], "")
            commentable, positions, hunks = _commentable_lines(patch)
            result.append(
                FileChange(
                    filename=change["filename"],
                    status=change["status"],
                    additions=change["additions"],
                    deletions=change["deletions"],
                    blob_sha=change["blob_sha"],
                    previous_filename=change.get("previous_filename"),
                    patch=patch,
                    commentable=commentable,
                    positions=positions,
                    hunks=hunks,
                )
            )
        return result

    @staticmethod
    def _parse_raw_numstat(fields: list[str]) -> list[dict]:
        # `--raw -z --numstat`: raw records first (":meta\0path[\0path2]"), then numstat records
        # ("add\tdel\tpath\0" or "add\tdel\t\0old\0new\0" for renames).
        changes: list[dict] = []
        i = 0
        while i < len(fields) and fields[i].startswith(":"):
            meta = fields[i][1:].split()
            letter = meta[4][0]
            if letter in "RC":
                old, new = fields[i + 1], fields[i + 2]
                i += 3
            else:
                old, new = None, fields[i + 1]
                i += 2
            changes.append(
                {
                    "filename": new,
                    "previous_filename": old,
                    "status": _STATUS.get(letter, "modified"),
                    "blob_sha": None if letter == "D" else meta[3],
                }
            )
        counts = []
        while i < len(fields):
            record = fields[i]
            if not record:
                i += 1
                continue
            add, delete, path = record.split("\t", 2)
            if path == "":  # rename: old and new follow
                i += 3
            else:
                i += 1
            counts.append((0 if add == "-" else int(add), 0 if delete == "-" else int(delete)))
        for change, (add, delete) in zip(changes, counts):
            change["additions"], change["deletions"] = add, delete
        return changes

    def _patches(self, start: str, head: str) -> dict[str, str]:
        text = self.git("diff", "-M", "--no-color", "--no-prefix", start, head).decode(errors="replace")
        patches: dict[str, str] = {}
        current: str | None = None
        lines: list[str] = []
        for line in text.splitlines():
            if line.startswith("diff --git "):
                if current is not None:
                    patches[current] = "\n".join(lines)
                current, lines = None, []
                continue
            if lines:  # inside the hunks: "--- x" is a removed line "-- x", not a header
                lines.append(line)
            elif line.startswith("+++ "):
                target = line[4:]
                current = target if target != "/dev/null" else current
            elif line.startswith("--- "):
                source = line[4:]
                if source != "/dev/null":
                    current = current or source
            elif line.startswith("@@"):
                lines.append(line)
        if current is not None:
            patches[current] = "\n".join(lines)
        return patches


def _commentable_lines(patch: str) -> tuple[dict[str, set[int]], int, dict[str, list[set[int]]]]:
    """Line numbers a review comment may point at, per side; the patch's position count; and the same
    lines hunk by hunk (a multi-line comment must stay within one)."""
    hunks: dict[str, list[set[int]]] = {"LEFT": [], "RIGHT": []}
    old = new = 0
    lines = patch.splitlines()
    for line in lines:
        hunk = _HUNK.match(line)
        if hunk:
            old, new = int(hunk.group(1)), int(hunk.group(3))
            hunks["LEFT"].append(set())
            hunks["RIGHT"].append(set())
            continue
        if line.startswith("\\") or not hunks["RIGHT"]:
            continue
        if line.startswith("-"):
            hunks["LEFT"][-1].add(old)
            old += 1
        elif line.startswith("+"):
            hunks["RIGHT"][-1].add(new)
            new += 1
        else:  # context: commentable on both sides
            hunks["LEFT"][-1].add(old)
            hunks["RIGHT"][-1].add(new)
            old += 1
            new += 1
    sides = {side: set().union(*parts) if parts else set() for side, parts in hunks.items()}
    return sides, max(len(lines) - 1, 0), hunks
