"""The path rules of a change set: which paths a job may add, change or delete.

Pure functions of a path (and a symlink's target): no file system, no git. A path is checked as
written *and* in the form a case-insensitive, Unicode-normalising system would see (so
`.GitHub/Workflows/x.yml` or `.git\u200chub/...` count as `.github/workflows/`). Apart from the
reading of the tree (changeset.py) so that the rules can be read, and tested, on their own.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from app.agent.boundary.workspace import SYMLINK
from app.domain.untrusted import code_span

__all__ = ["CI_DIRS", "WORKFLOWS_DIR", "Rules", "canonical", "path_matches", "rule_refusal", "symlink_refusal"]

WORKFLOWS_DIR = ".github/workflows/"
# What GitHub Actions runs with the repository's secrets: workflows, and the local actions they use
# (`uses: ./.github/actions/x`), which run as much code as a workflow does.
CI_DIRS = (WORKFLOWS_DIR, ".github/actions/")
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
    held = [d for d in CI_DIRS if d.startswith(canon + "/")]
    if mode == SYMLINK and not rules.allow_workflows and held:
        return f"a symlink in place of .github/ or {held[0]} (allow_workflow_changes)"
    if any(part in (".git", "git~1") for part in canon.split("/")):
        return "git metadata"
    if canon == ".gitmodules":
        return "submodule configuration (.gitmodules) is not changed by agents"
    inside = [d for d in CI_DIRS if (canon + "/").startswith(d)]
    if not rules.allow_workflows and inside:
        return f"changes to {inside[0]} are not allowed (allow_workflow_changes)"
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
