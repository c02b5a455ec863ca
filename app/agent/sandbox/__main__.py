"""``agentvine sandbox build|tag|remove-orphans`` (app/cli.py forwards here; see docs/sandbox.md)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: agentvine sandbox build [--profile base|full|all] [--tag TAG] [--claude-version V] [--force]\n"
             "       agentvine sandbox tag            (print the default image tag: the full profile's)\n"
             "       agentvine sandbox remove-orphans (remove every agentvine container)")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "build":
        from .image import main as build_main

        return build_main(rest)
    if cmd == "tag":
        from .recipe import DEFAULT_IMAGE

        print(DEFAULT_IMAGE)
        return 0
    if cmd == "remove-orphans":
        from .orphans import remove_orphans

        for job in remove_orphans():
            print(f"removed the container of job {job}")
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
