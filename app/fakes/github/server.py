"""The fake's HTTP face: GitHub's REST API and git's smart HTTP on one aiohttp application.

Every REST request goes through the same steps, in GitHub's order: injected faults,
operation lookup, authentication, repository access, rate limit, OpenAPI validation of the
request, the handler, ETag / 304, OpenAPI validation of the response, and a RecordedCall.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import git_http, handlers_checks, handlers_issues, handlers_pulls, handlers_repos, handlers_reviews, manifests, render
from .auth import DOC_JWT, JWTRejected, unverified_issuer, verify_app_jwt
from .openapi import Match
from .rest import ApiRequest, ApiResponse, Handler, not_found

if TYPE_CHECKING:
    from .state import FakeGitHub

HANDLERS: dict[str, Handler] = {
    **handlers_repos.HANDLERS,
    **handlers_issues.HANDLERS,
    **handlers_checks.HANDLERS,
    **handlers_pulls.HANDLERS,
    **handlers_reviews.HANDLERS,
    **manifests.HANDLERS,
}
# Operations GitHub serves only to the App itself (Bearer <JWT>), and those open to either.
JWT_ONLY = {"apps/list-installations", "apps/create-installation-access-token", "apps/get-repo-installation",
            "apps/get-authenticated"}
JWT_OR_TOKEN = {"rate-limit/get"}
# The manifest flow's conversion takes no credentials: the one-time code is the credential.
ANONYMOUS = {"apps/create-from-manifest"}
FAKE_KEY = web.AppKey("fake_github", object)


def make_app(fake: "FakeGitHub") -> web.Application:
    missing = {op.operation_id for op in fake.validator.operations} - HANDLERS.keys()
    if missing:
        raise RuntimeError(f"operations without a handler: {sorted(missing)}")
    # Pushes can be large; GitHub accepts up to 2 GiB, we accept what a test can produce.
    app = web.Application(client_max_size=512 * 1024 * 1024)
    app[FAKE_KEY] = fake

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD") and not request.path.endswith("/git-upload-pack"):
            fake.writes.append((time.time(), request.method, request.path, request.host))
        if git_http.is_git_path(request.path):
            return await git_http.handle(fake, request)
        if fake.api_prefix:  # GitHub Enterprise Server: the REST API under /api/v3, git at the root
            if not request.path.startswith(fake.api_prefix + "/"):
                fake.violations.append(f"{request.method} {request.path}: outside the REST API root {fake.api_prefix}")
                return _json_response(404, render.error("Not Found"), {})
            # The raw (still encoded) path: decoding it first would turn an encoded "?" or "%" into syntax.
            rel = request.rel_url
            request = request.clone(rel_url=URL.build(path=rel.raw_path[len(fake.api_prefix):],
                                                      query_string=rel.raw_query_string, encoded=True))
        return await _rest(fake, request)

    manifests.add_routes(app, fake)  # the web pages, before everything else
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if status == 304 or body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers,
                        content_type="application/json", charset="utf-8")


def _credentials(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


class _Refused(Exception):
    def __init__(self, response: ApiResponse) -> None:
        self.response = response


def _authenticate(fake: "FakeGitHub", req: ApiRequest, operation_id: str) -> None:
    """Fill in actor/token/rate_key, or refuse as GitHub would."""
    if operation_id in ANONYMOUS:
        req.rate_key = "anonymous"
        return
    credential = _credentials(req.headers.get("Authorization"))
    if credential is None:
        raise _Refused(ApiResponse(401, render.error("Requires authentication", status="401")))
    looks_like_jwt = credential.count(".") == 2
    if operation_id in JWT_ONLY or (operation_id in JWT_OR_TOKEN and looks_like_jwt):
        if not looks_like_jwt:
            raise _Refused(ApiResponse(401, render.error("A JSON web token could not be decoded", DOC_JWT, status="401")))
        app_id, public_key = fake.signing_key(unverified_issuer(credential))
        try:
            verify_app_jwt(credential, public_key, app_id)
        except JWTRejected as exc:
            raise _Refused(ApiResponse(401, render.error(str(exc), DOC_JWT, status="401"))) from None
        req.app_id, req.rate_key = app_id, f"app:{app_id}"
        req.actor = fake.user(fake.bot["login"] if app_id == fake.app_id else f"{fake.manifests.apps[app_id].integration['slug']}[bot]")
        return
    token = fake.tokens.lookup(credential)
    if token is None:
        raise _Refused(ApiResponse(401, render.error("Bad credentials", status="401")))
    req.actor, req.token, req.rate_key = fake.user(fake.bot["login"]), token, f"installation:{token.installation_id}"


def _authorize_repo(fake: "FakeGitHub", req: ApiRequest) -> None:
    if "owner" not in req.params or "repo" not in req.params:
        return
    repo = fake.find_repo(req.params["owner"], req.params["repo"])
    if repo is None:
        raise _Refused(not_found())
    if req.token is not None and (repo.installation_id != req.token.installation_id or not req.token.covers(repo.full_name)):
        # GitHub hides repositories a token cannot see behind 404, not 403.
        raise _Refused(not_found())
    if req.token is None and repo.installation_id not in fake.installations:
        raise _Refused(not_found())
    req.repo = repo


# The permission each operation needs of an installation token (GitHub's "Permissions required for
# GitHub Apps" in each operation's documentation): reads need `read`, everything else `write`.
PERMISSION_OF = {"checks": "checks", "git": "contents", "issues": "issues", "pulls": "pull_requests",
                 "reactions": "issues", "repos": "metadata"}
PERMISSION_OF_OPERATION = {"repos/get-content": "contents", "repos/compare-commits-with-basehead": "contents",
                           "reactions/create-for-pull-request-review-comment": "pull_requests"}
DOC_PERMISSIONS = "https://docs.github.com/rest/authentication/permissions-required-for-github-apps"


def _authorize_permission(req: ApiRequest, operation_id: str, method: str) -> None:
    """An installation token narrowed to some permissions (access_tokens' `permissions`) is refused the rest."""
    if req.token is None:
        return
    needed = PERMISSION_OF_OPERATION.get(operation_id) or PERMISSION_OF.get(operation_id.split("/")[0])
    if needed is None:
        return
    granted = req.token.permissions.get(needed)
    want_write = method not in ("GET", "HEAD") and needed != "metadata"
    if granted is None or (want_write and granted != "write"):
        raise _Refused(ApiResponse(403, render.error("Resource not accessible by integration", DOC_PERMISSIONS, status="403")))


def _rate_limit(fake: "FakeGitHub", req: ApiRequest, headers: dict[str, str]) -> None:
    bucket = fake.bucket(req.rate_key)
    if bucket.remaining <= 0:
        headers.update(_rate_headers(bucket))
        who = req.rate_key.replace("installation:", "installation ID ").replace("app:", "app ID ")
        raise _Refused(ApiResponse(403, render.error(
            f"API rate limit exceeded for {who}.",
            "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting", status="403")))
    bucket.used += 1
    headers.update(_rate_headers(bucket))


def _rate_headers(bucket: Any) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(bucket.limit),
        "X-RateLimit-Remaining": str(bucket.remaining),
        "X-RateLimit-Reset": str(bucket.reset),
        "X-RateLimit-Used": str(bucket.used),
        "X-RateLimit-Resource": "core",
    }


def _fault_rate_headers(fake: "FakeGitHub", req: ApiRequest, fault: Any, headers: dict[str, str]) -> None:
    """GitHub sends the whole x-ratelimit-* set on every answer; the fault's own headers win."""
    credential = _credentials(req.headers.get("Authorization")) or ""
    token = fake.tokens.lookup(credential)
    key = f"installation:{token.installation_id}" if token else f"app:{fake.app_id}"
    overridden = {k.lower() for k in fault.headers}
    headers.update({k: v for k, v in _rate_headers(fake.bucket(key)).items() if k.lower() not in overridden})


def _fault_response(fault: Any) -> ApiResponse:
    headers = dict(fault.headers)
    if fault.body is not None:
        return ApiResponse(fault.status, fault.body, headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    if fault.status == 403 and lowered.get("x-ratelimit-remaining") == "0":
        body = render.error("API rate limit exceeded for installation.", "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
    elif fault.status in (403, 429):
        body = render.error("You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits")
    elif fault.status >= 500:
        body = render.error("Server Error" if fault.status == 500 else "Service Unavailable")
    else:
        body = render.error(f"Injected fault {fault.status}")
    return ApiResponse(fault.status, body, headers)


SUPPORTED_API_VERSIONS = ("2022-11-28",)  # api.github.com's; the description is of this version


def _check_api_version(fake: "FakeGitHub", request: web.Request) -> None:
    """GitHub answers 400 for an X-GitHub-Api-Version it does not support; without the header it
    uses 2022-11-28 (docs.github.com/rest/about-the-rest-api/api-versions)."""
    version = request.headers.get("X-GitHub-Api-Version")
    if version is not None and version not in SUPPORTED_API_VERSIONS:
        fake.violations.append(f"{request.method} {request.path}: X-GitHub-Api-Version {version!r} is not supported")
        raise _Refused(ApiResponse(400, render.error(f"API version '{version}' is not supported.", status="400")))


async def _rest(fake: "FakeGitHub", request: web.Request) -> web.StreamResponse:
    from .state import RecordedCall

    started = time.perf_counter()
    raw = await request.read()
    body: Any = None
    parse_error = False
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            parse_error = True
    req = ApiRequest(method=request.method, path=request.path, base_url=f"{request.scheme}://{request.host}{fake.api_prefix}",
                     query=dict(request.query), params={}, body=body, headers=CIMultiDict(request.headers))
    headers = {
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-GitHub-Api-Version-Selected": "2022-11-28",
        "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
    }
    match: Match | None = None
    injected = False
    try:
        fault = fake.take_fault(request.method, request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                injected = True
                _fault_rate_headers(fake, req, fault, headers)
                raise _Refused(_fault_response(fault))
        _check_api_version(fake, request)
        match = fake.validator.match(request.method, request.path)
        if match is None:
            fake.violations.append(f"{request.method} {request.path}: no such operation in GitHub's REST API")
            raise _Refused(not_found())
        req.params = match.path_params
        op_id = match.operation.operation_id
        _authenticate(fake, req, op_id)
        if parse_error:
            fake.violations.append(f"{request.method} {request.path} ({op_id}): request body is not JSON")
            raise _Refused(ApiResponse(400, render.error("Problems parsing JSON", status="400")))
        path_result, rest_result = fake.validator.validate_request(match, req.query, body, bool(raw))
        for problem in path_result.errors + rest_result.errors:
            fake.violations.append(f"{request.method} {request.path} ({op_id}): {problem}")
        if not path_result.ok:
            raise _Refused(not_found())
        _authorize_repo(fake, req)
        _authorize_permission(req, op_id, request.method)
        _rate_limit(fake, req, headers)
        if not rest_result.ok:
            raise _Refused(ApiResponse(422, render.validation_failed(
                [{"resource": op_id.split("/")[0], "code": "invalid", "message": e} for e in rest_result.errors],
                message="Invalid request.\n\n" + "\n".join(rest_result.errors))))
        response = await HANDLERS[op_id](fake, req)
    except _Refused as refused:
        response = refused.response
    except Exception as exc:  # a bug in the fake: make it loud in the test, not a hung client
        fake.violations.append(f"{request.method} {request.path}: the fake crashed: {exc!r}")
        response = ApiResponse(500, render.error("Server Error", status="500"))
    headers.update(response.headers)
    status, out = response.status, response.body
    if response.raw is not None:
        return _raw_answer(fake, request, match, response, headers, body, started)
    if request.method == "GET" and status == 200:
        digest = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
        headers["ETag"] = f'W/"{digest}"'
        if _etag_matches(request.headers.get("If-None-Match"), digest):
            status, out = 304, None
            if req.rate_key:  # a conditional hit does not count against the rate limit
                bucket = fake.bucket(req.rate_key)
                bucket.used = max(bucket.used - 1, 0)
                headers.update(_rate_headers(bucket))
    # 304 is HTTP's answer to a conditional GET; GitHub gives it on any GET, documented or not.
    if match is not None and not injected and status != 304:
        result = fake.validator.validate_response(match.operation, status, out)
        for problem in result.errors:
            fake.violations.append(f"{request.method} {request.path} ({match.operation.operation_id}): {problem}")
    fake.calls.append(RecordedCall(
        method=request.method, path=request.path, query=dict(request.query), status=status, request_json=body,
        response_json=out, operation_id=match.operation.operation_id if match else None,
        duration=time.perf_counter() - started,
        request_headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
        response_headers=dict(headers), injected=injected,
    ))
    return _json_response(status, out, headers)


def _raw_answer(fake: "FakeGitHub", request: web.Request, match: Match | None,
                response: ApiResponse, headers: dict[str, str], body: Any, started: float) -> web.Response:
    from .state import RecordedCall

    assert response.raw is not None
    digest = hashlib.sha256(response.raw).hexdigest()
    headers["ETag"] = f'W/"{digest}"'
    status, payload = response.status, response.raw
    if _etag_matches(request.headers.get("If-None-Match"), digest):
        status, payload = 304, b""
    fake.calls.append(RecordedCall(
        method=request.method, path=request.path, query=dict(request.query), status=status, request_json=body,
        response_json=None, operation_id=match.operation.operation_id if match else None,
        duration=time.perf_counter() - started,
        request_headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
        response_headers=dict(headers)))
    if status == 304:
        return web.Response(status=304, headers=headers)
    return web.Response(status=status, body=payload, headers=headers, content_type=response.content_type)


def _etag_matches(header: str | None, digest: str) -> bool:
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or c.removeprefix("W/").strip('"') == digest for c in candidates)
