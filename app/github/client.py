"""The GitHub REST client: gidgethub's aiohttp API with retries, rate-limit handling, an ETag
cache, and installation tokens that refresh once on a 401."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.sansio
from cachetools import LRUCache

from app import metrics
from app.domain.lease import check_current
from app.github.auth import AppAuth, InstallationToken, InstallationTokens, TokenScope, parse_expires_at
from app.github.retry import backoff, retry_delay

USER_AGENT = "agentvine"
# The REST API version AgentVine is written against, and GitHub's media type for it. gidgethub
# sends neither (its Accept is the older application/vnd.github.v3+json, no version header), so
# every request gets them here; a call asking for another media type (a diff, raw) keeps its own.
API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH"})
# The call each HTTP request belongs to, for agentvine_github_requests_total: (operation, installation).
_CALL: contextvars.ContextVar[tuple[str, str | int | None]] = contextvars.ContextVar("github_call",
                                                                                     default=("other", None))


def operation(method: str, url: str) -> str:
    """A call's name for metrics: the method and the route template, without its query part
    (`GET /repos/{owner}/{repo}/contents/{+path}`); never the path filled in (no names, no numbers)."""
    if "://" in url:  # a link GitHub handed over (the next page) that no template is known for
        return f"{method} other"
    return f"{method} {url.split('{?', 1)[0]}"


class RetryingGitHubAPI(gidgethub.aiohttp.GitHubAPI):
    """Retries 5xx, rate limits (primary and secondary) and connection failures."""

    max_attempts = 5
    max_wait_s = 120.0  # a longer Retry-After fails the call instead of stalling the job

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self.requests = 0  # HTTP requests actually sent, retries included
        self.retries = 0
        self.token_owners: LRUCache[str, int] = LRUCache(maxsize=4096)  # installation token -> its installation
        self._pages: LRUCache[str, str] = LRUCache(maxsize=256)  # a next-page link -> the operation it pages

    async def _make_request(self, method: str, url: str, url_vars: Any, *args: Any, **kwargs: Any) -> Any:
        """gidgethub's, with the call's operation and installation known to each request it sends."""
        name = self._pages.pop(url, None) or operation(method, url)
        who = "app" if kwargs.get("jwt") else self.token_owners.get(kwargs.get("oauth_token") or "")
        reset = _CALL.set((name, who))
        try:
            data, more, status = await super()._make_request(method, url, url_vars, *args, **kwargs)
        finally:
            _CALL.reset(reset)
        if more:
            self._pages[more] = name
        return data, more, status

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: gidgethub.HTTPException, attempt: int
    ) -> bool:
        if attempt >= self.max_attempts:
            return False
        wait = retry_delay(int(exception.status_code), exception.headers or {}, attempt, self._clock())
        if wait is None or wait > self.max_wait_s:
            return False
        self.retries += 1
        await self.sleep(wait)
        return True

    async def _request(self, method: str, url: str, headers: Any, body: bytes = b"") -> tuple[int, Any, bytes]:
        headers = {**headers, "x-github-api-version": API_VERSION}
        if headers.get("accept") in (None, gidgethub.sansio.accept_format()):
            headers["accept"] = ACCEPT
        attempt = 0
        while True:
            attempt += 1
            if method != "GET":  # each attempt: a retry may come after a long wait, the lease lost meanwhile
                check_current()  # a worker that lost the job's lease publishes nothing (app/domain/lease.py)
            self.requests += 1
            try:
                status, answer_headers, answer = await super()._request(method, url, headers, body)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                metrics.github_request(*_CALL.get(), "error", None)
                # A POST that may have reached GitHub is not repeated: it could post twice.
                may_repeat = method in IDEMPOTENT or isinstance(exc, aiohttp.ClientConnectorError)
                if attempt >= self.max_attempts or not may_repeat:
                    raise
                self.retries += 1
                await self.sleep(backoff(attempt))
                continue
            metrics.github_request(*_CALL.get(), status, answer_headers.get("x-ratelimit-remaining"))
            return status, answer_headers, answer


class InstallationAPI:
    """Calls GitHub as one installation; a 401 refreshes the token once and repeats the call."""

    def __init__(self, api: RetryingGitHubAPI, tokens: InstallationTokens, installation_id: int,
                 scope: TokenScope | None = None) -> None:
        self._api = api
        self._tokens = tokens
        self.installation_id = installation_id
        self.scope = scope  # None: the whole installation (only for calls about no one repository)

    async def _call(self, verb: str, url: str, **kwargs: Any) -> Any:
        token = await self.token()
        try:
            return await getattr(self._api, verb)(url, oauth_token=token, **kwargs)
        except gidgethub.BadRequest as exc:
            if exc.status_code != 401:
                raise
            self._tokens.invalidate(self.installation_id, token, self.scope)
            return await getattr(self._api, verb)(url, oauth_token=await self.token(), **kwargs)

    async def token(self) -> str:
        """The current installation token (also for git over HTTPS on the host)."""
        return await self._tokens.get(self.installation_id, self.scope)

    async def getitem(self, url: str, url_vars: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await self._call("getitem", url, url_vars=url_vars, **kw)

    async def post(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any, **kw: Any) -> Any:
        return await self._call("post", url, url_vars=url_vars, data=data, **kw)

    async def patch(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any, **kw: Any) -> Any:
        return await self._call("patch", url, url_vars=url_vars, data=data, **kw)

    async def put(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any = b"", **kw: Any) -> Any:
        return await self._call("put", url, url_vars=url_vars, data=data, **kw)

    async def delete(self, url: str, url_vars: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await self._call("delete", url, url_vars=url_vars, **kw)

    async def getiter(self, url: str, url_vars: dict[str, Any] | None = None, **kw: Any) -> AsyncIterator[Any]:
        token = await self.token()
        async for item in self._api.getiter(url, url_vars=url_vars, oauth_token=token, **kw):
            yield item


class GitHubClients:
    """Owns the HTTP session, the App's credentials and the caches shared by every installation."""

    def __init__(
        self,
        *,
        app_id: int | str,
        private_key_pem: str,
        base_url: str = "https://api.github.com",
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._own_session = session is None
        self.session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, connect=10))
        self.auth = AppAuth(app_id, private_key_pem, clock=clock)
        self.api = RetryingGitHubAPI(
            self.session, USER_AGENT, cache=LRUCache(maxsize=2048), base_url=base_url.rstrip("/"), clock=clock
        )
        self.tokens = InstallationTokens(self.auth, self._fetch_token, clock=clock)

    async def _fetch_token(self, installation_id: int, app_jwt: str, scope: TokenScope | None) -> InstallationToken:
        data = await self.api.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": installation_id},
            data=scope.request() if scope else {},
            jwt=app_jwt,
        )
        self.api.token_owners[data["token"]] = installation_id  # whose rate limit its calls' answers report
        return InstallationToken(data["token"], parse_expires_at(data["expires_at"]))

    def for_installation(self, installation_id: int) -> InstallationAPI:
        return InstallationAPI(self.api, self.tokens, installation_id)

    def for_repository(self, installation_id: int, repository: str, permissions: dict[str, str]) -> InstallationAPI:
        """Calls about one repository, with a token that can reach only it, only as far as `permissions`."""
        return InstallationAPI(self.api, self.tokens, installation_id, TokenScope.of(repository, permissions))

    async def close(self) -> None:
        if self._own_session:
            await self.session.close()
