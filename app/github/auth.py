"""GitHub App authentication: the App's JWT and installation access tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NamedTuple

import jwt
from cachetools import TLRUCache

JWT_BACKDATE_S = 60  # GitHub's advice: allow for clock drift
JWT_LIFETIME_S = 9 * 60  # GitHub refuses more than 10 minutes between iat... and exp
JWT_REUSE_MARGIN_S = 60
TOKEN_REFRESH_MARGIN_S = 5 * 60  # a token is renewed this long before `expires_at`


class AppAuth:
    """Signs the App's RS256 JWT and reuses it while it is comfortably valid."""

    def __init__(self, app_id: int | str, private_key_pem: str, *, clock: Callable[[], float] = time.time) -> None:
        self.app_id = str(app_id)
        self._key = private_key_pem
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    def jwt(self) -> str:
        now = self._clock()
        if self._token is None or now >= self._expires - JWT_REUSE_MARGIN_S:
            iat = int(now) - JWT_BACKDATE_S
            self._expires = float(int(now) + JWT_LIFETIME_S)
            self._token = jwt.encode({"iat": iat, "exp": int(self._expires), "iss": self.app_id}, self._key, "RS256")
        return self._token


class InstallationToken(NamedTuple):
    token: str
    expires_at: float  # epoch seconds


class TokenScope(NamedTuple):
    """What a token may touch: one repository of the installation, with the permissions a step needs
    (GitHub narrows the token to them; an installation-wide token could reach every repository)."""

    repository: str  # the name, without the owner
    permissions: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, repository: str, permissions: dict[str, str]) -> TokenScope:
        return cls(repository, tuple(sorted(permissions.items())))

    def request(self) -> dict:
        """The body of POST /app/installations/{id}/access_tokens for this scope."""
        return {"repositories": [self.repository], "permissions": dict(self.permissions)}


def parse_expires_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class InstallationTokens:
    """Caches one token per installation and scope until shortly before it expires.

    `fetch(installation_id, jwt, scope)` performs the POST to GitHub; concurrent callers for the
    same installation and scope share one request."""

    def __init__(
        self,
        auth: AppAuth,
        fetch: Callable[[int, str, TokenScope | None], Awaitable[InstallationToken]],
        *,
        clock: Callable[[], float] = time.time,
        maxsize: int = 4096,
    ) -> None:
        self._auth = auth
        self._fetch = fetch
        self._cache: TLRUCache[tuple[int, TokenScope | None], InstallationToken] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, value, _now: value.expires_at - TOKEN_REFRESH_MARGIN_S, timer=clock
        )
        self._locks: dict[tuple[int, TokenScope | None], asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, installation_id: int, scope: TokenScope | None = None) -> str:
        key = (installation_id, scope)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.token
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is None:
                self.fetches += 1
                cached = await self._fetch(installation_id, self._auth.jwt(), scope)
                self._cache[key] = cached
            return cached.token

    def invalidate(self, installation_id: int, token: str | None = None, scope: TokenScope | None = None) -> None:
        """Forget the token (only if it is still `token`, so a fresher one is kept)."""
        key = (installation_id, scope)
        cached = self._cache.get(key)
        if cached is not None and (token is None or cached.token == token):
            del self._cache[key]
