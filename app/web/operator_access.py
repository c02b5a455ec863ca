"""Who may list jobs: whoever holds AGENTVINE_OPERATOR_TOKEN. Without that setting the list is refused,
never open: it names repositories and issues, which a job's own page does not.

A program sends `Authorization: Bearer <token>`. A browser cannot add that header to a link it follows
or to an EventSource, so the HTML list takes `?token=` once, answers with a cookie and sends the browser
to the same address without the token (it does not stay in the history, a bookmark or a Referer). The
cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page makes the browser send
it), Secure when the service is reached over HTTPS, limited to /jobs and to 12 hours. Its value is an
HMAC of the token, not the token: changing the token ends every cookie, and a browser never stores it."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

COOKIE = "agentvine_operator"
COOKIE_MAX_AGE_S = 12 * 3600
MIN_TOKEN_CHARS = 16
TOKEN_PARAM = "token"

NOT_CONFIGURED = ("Listing jobs is turned off: set AGENTVINE_OPERATOR_TOKEN (a random string of at least "
                  f"{MIN_TOKEN_CHARS} characters, e.g. `openssl rand -hex 32`) and restart agentvine serve.")
TOO_SHORT = (f"Listing jobs is turned off: AGENTVINE_OPERATOR_TOKEN is shorter than {MIN_TOKEN_CHARS} characters; "
             "set a longer one (e.g. `openssl rand -hex 32`) and restart agentvine serve.")
REFUSED = ("This needs the operator token: send `Authorization: Bearer <AGENTVINE_OPERATOR_TOKEN>`, or open "
           "/jobs?token=<AGENTVINE_OPERATOR_TOKEN> once in the browser.")


class Refusal(Exception):
    """Why a request may not list jobs: 403 (not configured) or 401 (no or a wrong token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OperatorAccess:
    def __init__(self, token: str | None, *, secure: bool) -> None:
        self._token = token or None
        self._secure = secure

    def _problem(self) -> Refusal | None:
        if self._token is None:
            return Refusal(403, NOT_CONFIGURED)
        if len(self._token) < MIN_TOKEN_CHARS:
            return Refusal(403, TOO_SHORT)
        return None

    def _cookie_value(self) -> str:
        assert self._token is not None
        return hmac.new(self._token.encode(), b"agentvine operator cookie", hashlib.sha256).hexdigest()

    def _matches(self, given: str, expected: str) -> bool:
        return hmac.compare_digest(given.encode(), expected.encode())

    def check(self, request: web.Request) -> None:
        """Raises Refusal unless the request carries the token or the cookie made from it."""
        problem = self._problem()
        if problem is not None:
            raise problem
        assert self._token is not None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(given.strip(), self._token):
            return
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and self._matches(cookie, self._cookie_value()):
            return
        raise Refusal(401, REFUSED)

    def sign_in(self, request: web.Request) -> web.Response | None:
        """For `?token=` on the HTML list: the cookie, and the same address without the token. None
        when the request has no token parameter; Refusal when the token is wrong or not configured."""
        given = request.query.get(TOKEN_PARAM)
        if given is None:
            return None
        problem = self._problem()
        if problem is not None:
            raise problem
        assert self._token is not None
        if not self._matches(given, self._token):
            raise Refusal(401, REFUSED)
        query = request.query.copy()
        del query[TOKEN_PARAM]
        response = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(query))})
        response.set_cookie(COOKIE, self._cookie_value(), max_age=COOKIE_MAX_AGE_S, path="/jobs",
                            httponly=True, samesite="Strict", secure=self._secure)
        return response
