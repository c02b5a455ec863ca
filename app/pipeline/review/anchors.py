"""The code a finding points at: files read at the reviewed commit from the host's own repository (git's
objects, never the agent's tree), each finding's line anchor, and earlier findings followed to where
their code stands now."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from app.agent.boundary.hostgit import GitError, cat_blobs, run_git
from app.agent.boundary.workspace import Workspace
from app.domain.findings import FileIndex, TrackedFinding, anchor_of, relocate
from app.pipeline.review.report import Finding

MAX_FILE_BYTES = 1_000_000  # a larger file is not followed (its findings keep their line)
MAX_FILES_READ = 300


def _read(ws: Workspace, commit: str, paths: list[str]) -> dict[str, list[str] | None]:
    listing = run_git(ws.git_dir, "ls-tree", "-z", "-l", "--full-tree", commit, "--", *paths, user=ws.git_user,
                      env={"GIT_LITERAL_PATHSPECS": "1"})  # a `*` in a path the agent wrote is no glob
    blobs: dict[str, str] = {}
    too_large: set[str] = set()
    for record in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) != 4 or parts[1] != "blob" or not parts[3].isdigit():
            continue
        if int(parts[3]) > MAX_FILE_BYTES:
            too_large.add(path)
        else:
            blobs[path] = parts[2]
    found: dict[str, list[str] | None] = {p: None for p in paths if p not in too_large}
    names = [p for p in paths if p in blobs]
    for name, data in zip(names, cat_blobs(ws.git_dir, [blobs[n] for n in names], user=ws.git_user)):
        text = data.decode("utf-8", "replace")
        found[name] = text.removesuffix("\n").split("\n") if text else []
    return found


async def read_files(ws: Workspace, commit: str, paths: Iterable[str]) -> dict[str, list[str] | None]:
    """Each path's lines at `commit`; None for one that is no file there (gone, a folder, a submodule).
    A path over MAX_FILE_BYTES is left out, and so is every path when the repository cannot say: what
    is not known is neither anchored nor taken for gone."""
    wanted = sorted(set(paths))[:MAX_FILES_READ]
    if not wanted:
        return {}
    try:
        return await asyncio.to_thread(_read, ws, commit, wanted)
    except GitError:
        return {}


def tracked(finding: Finding, files: dict[str, list[str] | None], head: str) -> TrackedFinding:
    """A finding of this review, anchored to the code it points at in `head`."""
    lines = files.get(finding.path)
    return TrackedFinding(path=finding.path, line=finding.line, start_line=finding.start_line, severity=finding.severity,
                          message=finding.message, suggestion=finding.suggestion, anchor=anchor_of(lines, finding.first, finding.line) if lines else "",
                          first_seen=head)


def follow(findings: list[TrackedFinding], files: dict[str, list[str] | None]) -> list[TrackedFinding]:
    """Earlier findings at the place their code stands now; outdated where it changed or went."""
    indexes = {path: FileIndex(lines) for path, lines in files.items() if lines is not None}
    return [relocate(f, indexes.get(f.path)) if f.path in files else f for f in findings]
