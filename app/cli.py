"""The `agentvine` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from app.agent.sandbox import __main__ as sandbox_cli
from app.assembly import Service, load_service_config, make_production_app, make_web_only_app, run_worker, tune_gc
from app.domain.config import ConfigError
from app.observability import init_sentry
from app.operator import jobs as jobs_command
from app.operator import prune as prune_command
from app.operator import replay
from app.operator import setup as setup_command
from app.operator import doctor, image
from app.settings import SettingsFileError, load_settings


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsFileError as exc:
        print(f"agentvine serve: cannot start, the settings file cannot be used: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print("agentvine serve: cannot start, these settings are not valid:", file=sys.stderr)
        for error in exc.errors():
            print(f"  AGENTVINE_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}", file=sys.stderr)
        return 2
    missing = settings.missing_for_serve()
    if missing:
        print("agentvine serve: cannot start, these settings are missing: " + ", ".join(missing), file=sys.stderr)
        print("See README.md, 'Settings'. To try AgentVine without a GitHub App, run: agentvine demo", file=sys.stderr)
        return 2
    try:
        load_service_config(settings)
    except ConfigError as exc:
        print(f"agentvine serve: cannot start, {exc.source} cannot be used:", file=sys.stderr)
        print("\n".join(f"  {problem}" for problem in exc.problems), file=sys.stderr)
        print("See docs/configuration.md ('Ceilings' for a value above the operator's).", file=sys.stderr)
        return 2
    init_sentry(settings)
    tune_gc()
    if args.role == "worker":  # no HTTP at all: the workers of a scaled-out service (docs/scale-out.md)
        asyncio.run(run_worker(settings))
        return 0
    if args.single_process:
        app = Service(settings).make_app()
    elif args.role == "web":
        app = make_web_only_app(settings)
    else:
        app = make_production_app(settings, args.log_level.upper())
    web.run_app(app, host=args.host, port=args.port, access_log=None)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from app import demo  # here, not above: the fakes it runs stay out of a production process

    return demo.main(args.keep_running)


def _sandbox(args: argparse.Namespace) -> int:
    if args.rest[:1] == ["prune"]:  # needs the settings (data_dir), which the sandbox package may not import
        return prune_command.main(args.rest[1:])
    return sandbox_cli.main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentvine", description="A GitHub App that hands issues to Claude Code.")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the webhook service")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--single-process", action="store_true", help="run the worker in the web process")
    serve.add_argument("--role", choices=("both", "web", "worker"), default="both",
                       help="web: the webhook and pages only; worker: a worker only; both (default): a web "
                            "process and its worker process")
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="the whole flow on embedded fakes (no GitHub App, no API key)")
    demo.add_argument("--keep-running", action="store_true", help="keep the fakes and AgentVine up afterwards")
    demo.set_defaults(func=_demo)
    sandbox = sub.add_parser("sandbox", help="build the sandbox image, remove orphan containers (see `sandbox --help`)")
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=_sandbox)
    jobs_command.add_parser(sub)
    setup_command.add_parser(sub)
    replay.add_parser(sub)
    doctor.add_parser(sub)
    image.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
