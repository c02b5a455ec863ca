"""`agentvine replay FILE --event NAME`: a saved webhook payload through exactly the path of a delivery
(Probot's `receive`). By default to the configured service: the file's bytes signed with its webhook
secret, POSTed to its /webhooks, then followed at /deliveries/{id} (replay_service.py). With --embedded,
to AgentVine run in this process against the embedded GitHub and a scripted model (replay_embedded.py).

Everything read here (the file, the options, the service's answers) may be wrong: each problem is one
sentence on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import math
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from app.settings import Settings, SettingsFileError, load_settings
from app.web.webhook import DELIVERY_ID, EVENT_NAME

PROG = "agentvine replay"
HELP = "feed a saved webhook payload through the path of a delivery (to the service, or --embedded)"
DESCRIPTION = """\
Deliver a saved webhook payload as GitHub would: the file's exact bytes, signed with
AGENTVINE_WEBHOOK_SECRET, POSTed to <AGENTVINE_PUBLIC_URL or --url>/webhooks under a fresh
X-GitHub-Delivery, then followed until the worker has taken it in; its outcome and the jobs it
started are printed.

With --embedded, no service and no GitHub App are needed: AgentVine runs in this process against the
embedded GitHub, arranged from the payload, with the real sandbox and a scripted model that only
looks; what AgentVine did there is printed."""
EPILOG = """\
The same body twice starts work once: the service ignores a signed body that already started work,
since a signature proves who made a body, not when (anyone holding an old delivery could re-run it).
To run work again, use `/agentvine retry` on the issue or pull request, or the check run's Retry
button (docs/usage.md).

Exit codes: 0 the delivery was taken in and its outcome printed; 1 the service refused it, could not
be reached, did not take it in within --wait or could not interpret it (--embedded: or a job failed);
2 the file, an option or the settings cannot be used."""

PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
DEFAULT_WAIT_S = 30.0  # the service: until the worker has taken the delivery in
DEFAULT_EMBEDDED_WAIT_S = 600.0  # --embedded: until the jobs ended (a real Claude Code run)
MAX_WAIT_S = 3600.0

NO_FILE = "{path} does not exist"
NOT_A_FILE = "{path} is not a regular file"
CANNOT_READ = "cannot read {path}: {reason}"
TOO_LARGE = ("{path} has {size} bytes, more than a delivery may have (AGENTVINE_MAX_BODY_BYTES is {limit}): "
             "the service would answer 413")
NOT_JSON = "{path} is not JSON: {reason}"
NOT_AN_OBJECT = "{path} holds a JSON {kind}, not an object: a webhook payload is one JSON object"
BAD_EVENT = ("--event {event!r} is not an event name the service takes: GitHub's names are lower-case "
             "letters and _ (issues, issue_comment, pull_request, ...), at most 64")
BAD_DELIVERY_ID = "--delivery-id {value!r} is not a UUID, which is what GitHub sends and the service takes"
BAD_WAIT = "--wait must be a number of seconds from 0 to {max:.0f}"
BAD_URL = "{value!r} is not an http:// or https:// address (from {source})"
PERMISSION_NEEDS_EMBEDDED = "--sender-permission only applies with --embedded: the service asks GitHub for the sender's"
URL_NEEDS_SERVICE = "--url and --delivery-id name the service's delivery: with --embedded there is no service"
SETTINGS_FILE = "the settings file cannot be used: {error}"
BAD_SETTING = "a setting cannot be used: {error}"


class ReplayError(Exception):
    """What went wrong, in one sentence for the operator, and the exit code it ends with."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SavedDelivery:
    """A payload file, read and checked as the webhook would check it: `body` is sent byte for byte."""

    path: Path
    event: str
    body: bytes
    payload: dict[str, Any]


@dataclass(frozen=True)
class ReplayRequest:
    saved: SavedDelivery
    settings: Settings
    url: str
    delivery_id: str | None
    wait: float
    sender_permission: str


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_saved(path: Path, event: str, max_bytes: int) -> SavedDelivery:
    """The file at `path` as a delivery of `event`; ReplayError says what keeps it from being one."""
    if not EVENT_NAME.fullmatch(event):
        raise ReplayError(BAD_EVENT.format(event=event))
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ReplayError(NOT_A_FILE.format(path=path))
        if info.st_size > max_bytes:
            raise ReplayError(TOO_LARGE.format(path=path, size=info.st_size, limit=max_bytes))
        with path.open("rb") as file:
            body = file.read(max_bytes + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise ReplayError(NO_FILE.format(path=path)) from None
    except OSError as exc:
        raise ReplayError(CANNOT_READ.format(path=path, reason=exc.strerror or exc)) from None
    if len(body) > max_bytes:
        raise ReplayError(TOO_LARGE.format(path=path, size=len(body), limit=max_bytes))
    try:
        payload = orjson.loads(body)  # what the worker parses it with (app/intake/ingest.py)
    except orjson.JSONDecodeError as exc:
        raise ReplayError(NOT_JSON.format(path=path, reason=exc)) from None
    if not isinstance(payload, dict):
        raise ReplayError(NOT_AN_OBJECT.format(path=path, kind=_json_kind(payload)))
    return SavedDelivery(path=path, event=event, body=body, payload=payload)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsFileError as exc:
        raise ReplayError(SETTINGS_FILE.format(error=exc)) from None
    except ValidationError as exc:
        raise ReplayError(BAD_SETTING.format(error=exc)) from None


def _service_url(args: argparse.Namespace, settings: Settings) -> str:
    value, source = (args.url, "--url") if args.url else (settings.public_url, "AGENTVINE_PUBLIC_URL")
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ReplayError(BAD_URL.format(value=value, source=source))
    return value.rstrip("/")


def _request(args: argparse.Namespace) -> ReplayRequest:
    """The options and the file, checked before anything is sent or started."""
    wait = DEFAULT_EMBEDDED_WAIT_S if args.embedded else DEFAULT_WAIT_S
    if args.wait is not None:
        wait = args.wait
    if not (math.isfinite(wait) and 0 <= wait <= MAX_WAIT_S):
        raise ReplayError(BAD_WAIT.format(max=MAX_WAIT_S))
    if args.embedded and (args.url or args.delivery_id):
        raise ReplayError(URL_NEEDS_SERVICE)
    if args.sender_permission and not args.embedded:
        raise ReplayError(PERMISSION_NEEDS_EMBEDDED)
    if args.delivery_id is not None and not DELIVERY_ID.fullmatch(args.delivery_id):
        raise ReplayError(BAD_DELIVERY_ID.format(value=args.delivery_id))
    settings = _settings()
    saved = read_saved(Path(args.file), args.event, settings.max_body_bytes)
    url = "" if args.embedded else _service_url(args, settings)
    return ReplayRequest(saved=saved, settings=settings, url=url, delivery_id=args.delivery_id, wait=wait,
                         sender_permission=args.sender_permission or "write")


def _run(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
        if args.embedded:
            from app.operator import replay_embedded  # here, not above: the fakes stay out of other commands

            return replay_embedded.main(request)
        from app.operator.replay_service import replay_to_service

        return asyncio.run(replay_to_service(request))
    except ReplayError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("replay", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="the payload: one JSON object, as GitHub delivered it")
    parser.add_argument("--event", required=True, metavar="NAME",
                        help="the X-GitHub-Event it came with (issues, issue_comment, pull_request, ...)")
    parser.add_argument("--url", help="the service's address (default: AGENTVINE_PUBLIC_URL)")
    parser.add_argument("--delivery-id", metavar="UUID", help="the X-GitHub-Delivery to send (default: a fresh one)")
    parser.add_argument("--wait", type=float, metavar="SECONDS",
                        help=f"how long to wait for the outcome (default {DEFAULT_WAIT_S:.0f}; "
                             f"--embedded: for the jobs to end, {DEFAULT_EMBEDDED_WAIT_S:.0f})")
    parser.add_argument("--embedded", action="store_true",
                        help="no service, no App: run AgentVine here against the embedded GitHub (needs Docker)")
    parser.add_argument("--sender-permission", choices=PERMISSIONS,
                        help="--embedded: the sender's permission on the repository (default write)")
    parser.set_defaults(func=_run)

