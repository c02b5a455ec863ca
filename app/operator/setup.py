"""`agentvine setup`: create the GitHub App from its manifest and write its settings file.

GitHub's manifest flow: a page served here (loopback by default) posts the App's manifest
(app/github/manifest.py) to GitHub's registration page with a random `state`; the person checks it
and clicks "Create GitHub App"; GitHub sends the browser back to this page's `/callback` with a
one-time code and the state; the code is exchanged for the App's id, private key and webhook secret
(`POST /app-manifests/{code}/conversions`), which are written to the settings file, 0600 from its
first byte (AGENTVINE_ENV_FILE, else ./agentvine.env; app/settings.py reads it)."""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from app.github.manifest import (
    EVENTS, NAME_MAX, CreatedApp, ManifestError, app_settings_url, build_manifest, convert_code, permissions,
    registration_url,
)
from app.github.urls import GITHUB_COM, GitHubUrlError, GitHubUrls, github_urls
from app.settings import (
    DEFAULT_ENV_FILE, SettingsFileError, check_private, env_file_path, format_settings, other_settings,
    write_private_file,
)

PREFIX = "agentvine setup: "
OPEN_PAGE = ("Open {url} in a browser on this machine and create the App on GitHub.\n"
             "(From another machine: ssh -L {port}:127.0.0.1:{port} <this host>, then open the same address.)\n"
             "Waiting for GitHub to send the browser back (Ctrl-C stops)...")
FILE_EXISTS = "{path} already exists; --force replaces the App settings in it (its other lines are kept)"
STATE_MISMATCH = ("the page GitHub sent back carries another state than this setup's: it was not started here "
                  "(or a second setup ran). Nothing was exchanged or written; run `agentvine setup` again.")
NO_CODE = "GitHub sent the browser back without a code. Nothing was written; run `agentvine setup` again."
WRITE_FAILED = ("the App {name} was created, but its settings could not be written to {path}: {error}. "
                "Generate a new private key on {settings_url} and write the settings by hand "
                "(docs/github-app.md, 'By hand').")
NOT_KEPT = "{path} could be read or written by others; its other lines were not kept."
NO_WEBHOOK_SECRET = ("GitHub gave no webhook secret: set one on {settings_url} and write it to {path} as "
                     "AGENTVINE_WEBHOOK_SECRET (serve refuses to start without it).")
CREATED = "Created the GitHub App “{name}” (id {id}) and wrote its settings to {path} (only you may read it)."
NEXT_STEPS = ("Next:\n"
              "  1. Install the App on your repositories: {install_url}\n"
              "  2. agentvine doctor   checks the settings, GitHub, Docker and the model key\n"
              "  3. agentvine serve    runs it (ANTHROPIC_API_KEY in the environment or in {path})")
KEEP_ENV_FILE = "Keep AGENTVINE_ENV_FILE={path} set for doctor and serve."
CANCELLED = "stopped; nothing was written."
PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>AgentVine setup</title>
<h1>Create the GitHub App “{name}”</h1>
<p>On <b>{web}</b> for {account}. Its webhook goes to <code>{webhook}</code>, which GitHub must reach.
GitHub shows the App before it creates it; this setup then writes its settings to <code>{path}</code>.</p>
<p>Permissions: {permissions}.<br>Events: {events}.</p>
<form action="{action}" method="post">
<input type="hidden" name="manifest" value="{manifest}">
<button type="submit">Create the App on GitHub</button>
</form>
"""
DONE_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>AgentVine setup</title>
<h1>{title}</h1><p>{text}</p>
"""


@dataclass(frozen=True)
class SetupOptions:
    public_url: str  # this service's address: the App's homepage, its job pages
    webhook_url: str
    name: str
    github: GitHubUrls
    env_file: Path
    org: str | None = None
    host: str = "127.0.0.1"
    port: int = 3000
    replace: bool = False
    workflows: bool = False


class SetupError(Exception):
    """The setup cannot go on; the message says why (and what to do)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    setup = subparsers.add_parser(
        "setup", help="create the GitHub App from its manifest and write its settings file",
        description="Serves a page that creates AgentVine's GitHub App on GitHub (the manifest flow), then writes "
                    "the App's id, private key and webhook secret to AGENTVINE_ENV_FILE (default ./agentvine.env), "
                    "readable by you only. See docs/github-app.md.")
    setup.add_argument("--public-url", required=True,
                       help="this service's public address (GitHub must reach <url>/webhooks), e.g. https://agentvine.example.com")
    setup.add_argument("--webhook-url", help="where GitHub delivers webhooks (default: <public url>/webhooks)")
    setup.add_argument("--name", help=f"the App's name, at most {NAME_MAX} characters (default: AgentVine <host>)")
    setup.add_argument("--org", help="create the App in this organization rather than in your account")
    setup.add_argument("--github-url", default=GITHUB_COM,
                       help="GitHub Enterprise Server: its address, https://HOST (the API is https://HOST/api/v3)")
    setup.add_argument("--api-url", help="the REST API's address when it is not the usual one for --github-url")
    setup.add_argument("--host", default="127.0.0.1", help="where the setup page listens (default: loopback only)")
    setup.add_argument("--port", type=int, default=3000, help="the setup page's port (0: any free one)")
    setup.add_argument("--force", action="store_true", help="replace the App settings in an existing settings file")
    setup.add_argument("--workflows", action="store_true",
                       help="also ask for the workflows permission (for allow_workflow_changes: true)")
    setup.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        options = options_from(args, os.environ)
        check_destination(options)
    except SetupError as exc:
        print(PREFIX + str(exc), file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(options))
    except KeyboardInterrupt:
        print(PREFIX + CANCELLED, file=sys.stderr)
        return 130


def _web_address(url: str, what: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SetupError(f"{what} must be an http(s) address such as https://agentvine.example.com, not {url!r}")
    return url.strip().rstrip("/")


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> SetupOptions:
    public_url = _web_address(args.public_url, "--public-url")
    webhook_url = _web_address(args.webhook_url, "--webhook-url") if args.webhook_url else f"{public_url}/webhooks"
    host = (urlsplit(public_url).hostname or "").removeprefix("agentvine.")
    name = args.name if args.name is not None else f"AgentVine {host}"[:NAME_MAX].rstrip(" .-")
    if not name.strip() or len(name) > NAME_MAX:
        raise SetupError(f"--name must have 1 to {NAME_MAX} characters (GitHub's limit), not {len(name)}")
    try:
        github = github_urls(args.github_url, args.api_url)
    except GitHubUrlError as exc:
        raise SetupError(str(exc)) from None
    if not 0 <= args.port <= 65535:
        raise SetupError(f"--port must be 0 to 65535, not {args.port}")
    env_file, _ = env_file_path(environ)
    return SetupOptions(public_url=public_url, webhook_url=webhook_url, name=name, github=github, env_file=env_file,
                        org=args.org, host=args.host, port=args.port, replace=args.force, workflows=args.workflows)


def check_destination(options: SetupOptions) -> None:
    """Refuse before anything is created on GitHub: a settings file that exists (without --force) or a
    folder that cannot take it would lose the App's one-time private key."""
    path = options.env_file
    if (path.exists() or path.is_symlink()) and not options.replace:
        raise SetupError(FILE_EXISTS.format(path=path))
    if path.is_dir():
        raise SetupError(f"{path} is a folder; AGENTVINE_ENV_FILE must name a file")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SetupError(f"cannot create {path}: {folder} is not a folder this user may write to")


def settings_values(options: SetupOptions, app: CreatedApp) -> dict[str, str]:
    values = {"AGENTVINE_APP_ID": str(app.id), "AGENTVINE_APP_SLUG": app.slug, "AGENTVINE_PRIVATE_KEY": app.pem}
    if app.webhook_secret:
        values["AGENTVINE_WEBHOOK_SECRET"] = app.webhook_secret
    values["AGENTVINE_PUBLIC_URL"] = options.public_url
    if not options.github.is_github_com:  # serve's defaults are github.com's
        values |= {"AGENTVINE_GITHUB_API_URL": options.github.api, "AGENTVINE_GIT_URL": options.github.git}
    return values


def write_settings(options: SetupOptions, app: CreatedApp, say: Callable[[str], None]) -> None:
    """The settings file for the App; with --force the other lines of a private existing file stay."""
    values = settings_values(options, app)
    header = (f"Written by `agentvine setup` for the GitHub App “{app.name}” ({app.html_url}).\n"
              "It holds the App's private key: keep it readable by its owner only (chmod 600).")
    kept = ""
    path = options.env_file
    if options.replace and path.exists() and not path.is_symlink():
        try:
            check_private(path)
            kept = other_settings(path, set(values) | {"AGENTVINE_PRIVATE_KEY_PATH"})
        except SettingsFileError:
            say(NOT_KEPT.format(path=path))
    text = format_settings(values, header)
    write_private_file(path, text + ("\n# Kept from the previous file:\n" + kept if kept.strip() else ""),
                       replace=options.replace)


def _page(title: str, text: str, status: int = 200) -> web.Response:
    body = DONE_PAGE.format(title=html.escape(title), text=html.escape(text))
    return web.Response(status=status, text=body, content_type="text/html")


class SetupFlow:
    """The local page, the callback and the exchange; `finished()` is the exit code."""

    def __init__(self, options: SetupOptions, *, say: Callable[[str], None] = print,
                 complain: Callable[[str], None] = lambda text: print(PREFIX + text, file=sys.stderr)) -> None:
        self.options = options
        self.say = say
        self.complain = complain
        self.state = secrets.token_urlsafe(32)
        self.url = ""
        self._claimed = False
        self._runner: web.AppRunner | None = None
        self._done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def redirect_url(self, port: int) -> str:
        host = self.options.host if self.options.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/callback"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/callback", self._callback)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.options.host, self.options.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise SetupError(f"cannot listen on {self.options.host}:{self.options.port} ({exc.strerror or exc}); "
                             "choose another --port") from None
        port = self._runner.addresses[0][1]
        self.url = self.redirect_url(port).removesuffix("callback")
        self.say(OPEN_PAGE.format(url=self.url, port=port))
        return self.url

    async def finished(self) -> int:
        try:
            return await self._done
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def manifest_json(self) -> str:
        port = int(urlsplit(self.url).port or 0)
        return build_manifest(name=self.options.name, public_url=self.options.public_url,
                              webhook_url=self.options.webhook_url, redirect_url=self.redirect_url(port),
                              workflows=self.options.workflows).model_dump_json()

    async def _index(self, _request: web.Request) -> web.Response:
        o = self.options
        body = PAGE.format(
            name=html.escape(o.name), web=html.escape(o.github.web), webhook=html.escape(o.webhook_url),
            account=html.escape(f"the organization {o.org}" if o.org else "your account"),
            path=html.escape(str(o.env_file)),
            permissions=html.escape(", ".join(f"{k}: {v}" for k, v in permissions(workflows=o.workflows).items())),
            events=html.escape(", ".join(e.name for e in EVENTS)),
            action=html.escape(registration_url(o.github, self.state, o.org), quote=True),
            manifest=html.escape(self.manifest_json(), quote=True))
        return web.Response(text=body, content_type="text/html")

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        if self._claimed:
            return _page("Already done", "This setup has already had its answer; see its terminal.", 409)
        self._claimed = True
        state, code = request.query.get("state", ""), request.query.get("code", "")
        if not secrets.compare_digest(state.encode(), self.state.encode()):
            return await self._end(request, 1, STATE_MISMATCH, status=400)
        if not code:
            return await self._end(request, 1, NO_CODE, status=400)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=15)) as session:
                created = await convert_code(session, self.options.github.api, code)
        except ManifestError as exc:
            return await self._end(request, 1, str(exc), status=502)
        except Exception as exc:  # noqa: BLE001  (a bug must end the flow, not leave it waiting forever)
            return await self._end(request, 1, f"the exchange failed unexpectedly: {exc!r}", status=500)
        return await self._save(request, created)

    async def _save(self, request: web.Request, app: CreatedApp) -> web.StreamResponse:
        path = self.options.env_file
        settings_url = app_settings_url(self.options.github, app.slug, self.options.org)
        try:
            write_settings(self.options, app, self.say)
        except (OSError, ValueError) as exc:
            text = WRITE_FAILED.format(name=app.name, path=path, error=exc, settings_url=settings_url)
            return await self._end(request, 1, text, status=500)
        self.say(CREATED.format(name=app.name, id=app.id, path=path))
        code = 0
        if not app.webhook_secret:
            self.complain(NO_WEBHOOK_SECRET.format(settings_url=settings_url, path=path))
            code = 1
        self.say(NEXT_STEPS.format(install_url=app.install_url, path=path))
        if path != DEFAULT_ENV_FILE:
            self.say(KEEP_ENV_FILE.format(path=path))
        text = f"Its settings are in {path}. Next, install it on your repositories: {app.install_url}"
        return await self._send(request, code, _page(f"Created the GitHub App “{app.name}”", text))

    async def _end(self, request: web.Request, code: int, text: str, *, status: int) -> web.StreamResponse:
        self.complain(text)
        return await self._send(request, code, _page("AgentVine setup did not finish", text, status))

    async def _send(self, request: web.Request, code: int, page: web.Response) -> web.StreamResponse:
        # The page goes out before the flow ends (and the server with it).
        await page.prepare(request)
        await page.write_eof()
        if not self._done.done():
            self._done.set_result(code)
        return page


async def run(options: SetupOptions) -> int:
    flow = SetupFlow(options, say=lambda text: print(text, flush=True))
    try:
        await flow.start()
    except SetupError as exc:
        print(PREFIX + str(exc), file=sys.stderr)
        return 2
    return await flow.finished()
