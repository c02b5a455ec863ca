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


def parse_expires_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class InstallationTokens:
    """Caches one token per installation until shortly before it expires.

    `fetch(installation_id, jwt)` performs the POST to GitHub; concurrent callers for the
    same installation share one request."""

    def __init__(
        self,
        auth: AppAuth,
        fetch: Callable[[int, str], Awaitable[InstallationToken]],
        *,
        clock: Callable[[], float] = time.time,
        maxsize: int = 4096,
    ) -> None:
        self._auth = auth
        self._fetch = fetch
        self._cache: TLRUCache[int, InstallationToken] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, value, _now: value.expires_at - TOKEN_REFRESH_MARGIN_S, timer=clock
        )
        self._locks: dict[int, asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, installation_id: int) -> str:
        cached = self._cache.get(installation_id)
        if cached is not None:
            return cached.token
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(installation_id)
            if cached is None:
                self.fetches += 1
                cached = await self._fetch(installation_id, self._auth.jwt())
                self._cache[installation_id] = cached
            return cached.token

    def invalidate(self, installation_id: int, token: str | None = None) -> None:
        """Forget the token (only if it is still `token`, so a fresher one is kept)."""
        cached = self._cache.get(installation_id)
        if cached is not None and (token is None or cached.token == token):
            del self._cache[installation_id]
