"""GitHub's App manifest flow, as the fake plays it (docs/github-fake.md, "The App manifest flow").

The registration page (`POST /settings/apps/new`, or `/organizations/{org}/settings/apps/new`) takes
the form field `manifest` as github.com does, checks it, and redirects to the manifest's
`redirect_url` with a one-time `code` and the `state` of the form's query string, as GitHub does once
the person clicks "Create GitHub App". `POST /app-manifests/{code}/conversions` (no credentials)
turns a code into an App with a key pair of its own; its JWT signs in to the fake afterwards
(`GET /app`). A code works once and for an hour, as on GitHub; otherwise the answer is 404.
"""

from __future__ import annotations

import copy
import html
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from . import render
from .auth import generate_private_key_pem, public_key_pem
from .rest import ApiRequest, ApiResponse, Handler, not_found

if TYPE_CHECKING:
    from .state import FakeGitHub

CODE_LIFETIME = 3600  # GitHub: "the code expires after one hour"
NAME_MAX = 34  # GitHub refuses longer App names
ACCESS = ("read", "write", "admin")
# The permission an App needs before it may subscribe to an event (GitHub's "Webhook events and
# payloads", "Availability"): any one of them. Events not listed here are not checked.
EVENT_NEEDS: dict[str, tuple[str, ...]] = {
    "issues": ("issues",),
    "issue_comment": ("issues", "pull_requests"),
    "pull_request": ("pull_requests",),
    "pull_request_review": ("pull_requests",),
    "pull_request_review_comment": ("pull_requests",),
    "check_run": ("checks",),
    "check_suite": ("checks",),
    "push": ("contents",),
}
DOC_CONVERSION = "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest"


@dataclass
class CreatedApp:
    """An App the manifest flow created: what GitHub keeps of it, and what it handed out once."""

    integration: dict[str, Any]
    private_key_pem: str
    public_key_pem: bytes
    webhook_secret: str | None
    client_secret: str


@dataclass
class PendingCode:
    manifest: dict[str, Any]
    owner: dict[str, Any]
    expires_at: float


class ManifestFlow:
    """The codes handed out and the Apps created from them, for one fake."""

    def __init__(self, fake: "FakeGitHub") -> None:
        self.fake = fake
        self.codes: dict[str, PendingCode] = {}
        self.apps: dict[int, CreatedApp] = {}
        self._ids = itertools.count(700001)

    def expire_codes(self) -> None:
        """Every code handed out so far is past its hour: converting it gets GitHub's 404."""
        for pending in self.codes.values():
            pending.expires_at = 0.0

    def problems(self, manifest: Any) -> list[str]:
        """What GitHub's registration page would refuse in a manifest."""
        if not isinstance(manifest, dict):
            return ["the manifest is not a JSON object"]
        found = []
        name = manifest.get("name")
        if not isinstance(name, str) or not name.strip():
            found.append("Name can't be blank")
        elif len(name) > NAME_MAX:
            found.append(f"Name is too long (maximum is {NAME_MAX} characters)")
        elif _slug(name) in self._slugs():
            found.append("Name is already in use")
        if not isinstance(manifest.get("url"), str) or not manifest["url"]:
            found.append("Homepage URL can't be blank")
        hook = manifest.get("hook_attributes")
        if hook is not None and (not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or not hook["url"]):
            found.append("Webhook URL can't be blank")
        if not isinstance(manifest.get("redirect_url"), str):
            found.append("redirect_url is missing (the fake hands the code back only through it)")
        found += _permission_problems(manifest.get("default_permissions") or {}, manifest.get("default_events") or [])
        return found

    def _slugs(self) -> set[str]:
        return {self.fake.app_slug} | {a.integration["slug"] for a in self.apps.values()}

    def hand_out_code(self, manifest: dict[str, Any], owner: dict[str, Any]) -> str:
        code = secrets.token_hex(10)
        self.codes[code] = PendingCode(copy.deepcopy(manifest), owner, time.time() + CODE_LIFETIME)
        return code

    def convert(self, code: str) -> CreatedApp | None:
        """The App for a code, once: a used, unknown or expired code gives None."""
        pending = self.codes.pop(code, None)
        if pending is None or pending.expires_at <= time.time():
            return None
        return self._create(pending.manifest, pending.owner)

    def _create(self, manifest: dict[str, Any], owner: dict[str, Any]) -> CreatedApp:
        app_id = next(self._ids)
        slug = _slug(manifest["name"])
        integration = render.app_integration(self.fake.urls, app_id, slug, owner, render.now_iso())
        permissions = {"metadata": "read", **(manifest.get("default_permissions") or {})}  # GitHub adds metadata
        integration.update(name=manifest["name"], description=manifest.get("description") or "",
                           external_url=manifest["url"], permissions=permissions,
                           events=list(manifest.get("default_events") or []))
        pem = generate_private_key_pem()
        hooked = isinstance(manifest.get("hook_attributes"), dict)
        created = CreatedApp(integration, pem, public_key_pem(pem), secrets.token_hex(20) if hooked else None,
                             secrets.token_hex(20))
        self.apps[app_id] = created
        self.fake.add_user(f"{slug}[bot]", type="Bot")
        return created


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _permission_problems(permissions: Any, events: Any) -> list[str]:
    if not isinstance(permissions, dict) or not isinstance(events, list):
        return ["default_permissions must be an object and default_events a list"]
    found = [f"Permission {name} must be one of {', '.join(ACCESS)}" for name, access in permissions.items()
             if access not in ACCESS]
    for event in events:
        needs = EVENT_NEEDS.get(event, ())
        if needs and not any(n in permissions for n in needs):
            found.append(f"Default events unsupported: {event} (needs the {' or '.join(needs)} permission)")
    return found


# --- the web page ------------------------------------------------------------------------------


def add_routes(app: web.Application, fake: "FakeGitHub") -> None:
    async def personal(request: web.Request) -> web.Response:
        return await _registration(fake, request, fake.user(fake.web_user))

    async def organization(request: web.Request) -> web.Response:
        org = fake.users.get(request.match_info["org"].lower())
        if org is None or org["type"] != "Organization":
            return _page(404, "Not Found", ["There is no such organization."])
        return await _registration(fake, request, copy.deepcopy(org))

    app.router.add_post("/settings/apps/new", personal)
    app.router.add_post("/organizations/{org}/settings/apps/new", organization)


async def _registration(fake: "FakeGitHub", request: web.Request, owner: dict[str, Any]) -> web.Response:
    form = await request.post()
    raw = form.get("manifest")
    try:
        manifest = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        manifest = None
    problems = ["the form has no manifest field, or it is not JSON"] if manifest is None else fake.manifests.problems(manifest)
    if problems:
        fake.violations.append(f"POST {request.path} (the App registration page): " + "; ".join(problems))
        return _page(422, "The GitHub App could not be registered", problems)
    code = fake.manifests.hand_out_code(manifest, owner)
    back = {"code": code}
    if "state" in request.query:
        back["state"] = request.query["state"]
    target = manifest["redirect_url"]
    raise web.HTTPFound(target + ("&" if "?" in target else "?") + urlencode(back))


def _page(status: int, title: str, lines: list[str]) -> web.Response:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    body = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><ul>{items}</ul>"
    return web.Response(status=status, text=body, content_type="text/html")


# --- the REST side -----------------------------------------------------------------------------


async def create_from_manifest(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    created = fake.manifests.convert(req.params["code"])
    if created is None:
        return not_found(DOC_CONVERSION)
    answer = {**copy.deepcopy(created.integration), "client_secret": created.client_secret,
              "webhook_secret": created.webhook_secret, "pem": created.private_key_pem}
    return ApiResponse(201, answer)


async def get_authenticated(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    created = fake.manifests.apps.get(req.app_id or 0)
    integration = copy.deepcopy(created.integration if created else fake.app)
    integration["installations_count"] = sum(1 for i in fake.installations.values() if i["app_id"] == integration["id"])
    return ApiResponse(200, integration)


HANDLERS: dict[str, Handler] = {
    "apps/create-from-manifest": create_from_manifest,
    "apps/get-authenticated": get_authenticated,
}
