"""`agentvine sandbox prune [--repo owner/name]`: delete the package caches (pip, npm) AgentVine keeps per
repository under <data_dir>/caches (app/agent/sandbox/caches.py). Safe while jobs run: a job that has a
cache mounted keeps writing to the folder it had, which is deleted; the next job starts with an empty one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.agent.sandbox.caches import prune
from app.settings import SettingsFileError, load_settings

DONE = "removed the package caches of {count} repositor{plural} ({where})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentvine sandbox prune", description=__doc__)
    parser.add_argument("--repo", help="only this repository's caches (owner/name)")
    args = parser.parse_args(argv)
    if args.repo is not None and args.repo.count("/") != 1:
        print(f"--repo must be owner/name, not {args.repo!r}", file=sys.stderr)
        return 2
    try:
        root = Path(load_settings().data_dir).resolve() / "caches"
    except SettingsFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        removed = prune(root, args.repo)
    except OSError as exc:
        print(f"could not remove the caches in {root}: {exc.strerror}", file=sys.stderr)
        return 1
    print(DONE.format(count=len(removed), plural="y" if len(removed) == 1 else "ies", where=root))
    return 0
