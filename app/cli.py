"""The `agentvine` command."""

from __future__ import annotations

import argparse
import logging
import sys

from app.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from app.observability import init_sentry
    from app.service import Service

    settings = Settings()
    missing = settings.missing_for_serve()
    if missing:
        print("agentvine serve: cannot start, these settings are missing: " + ", ".join(missing), file=sys.stderr)
        print("See README.md, 'Settings'. To try AgentVine without a GitHub App, run: agentvine demo", file=sys.stderr)
        return 2
    init_sentry(settings)
    service = Service(settings)
    web.run_app(service.make_app(), host=args.host, port=args.port, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentvine", description="A GitHub App that hands issues to Claude Code.")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the webhook service")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
