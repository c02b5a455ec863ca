"""The proxy's side of HTTP/1.1: a request's head read strictly, its target, the head forwarded.

Only what a forward proxy needs: `CONNECT host:port` (authority form) and absolute-form
`http://host[:port]/path` requests. The head is bounded (MAX_HEAD_BYTES, MAX_HEADERS) and parsed
as bytes the sandbox wrote: anything unusual is a 400, never a guess. The body is not parsed: after
the head, the bytes are relayed as they come to the one upstream the head named, so a body that
lies about its length reaches that same upstream, which the allow-list lets the sandbox talk to
anyway (through CONNECT it could send it any bytes)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.egress import parse_host, split_port

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
_METHOD = re.compile(r"^[A-Z]{1,20}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Per RFC 9110 7.6.1, plus the proxy's own; Transfer-Encoding stays: the body is relayed as it is.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                        "proxy-authenticate", "te", "trailer", "upgrade", "host"})

STATUS_TEXT = {200: "OK", 400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 429: "Too Many Requests",
               431: "Request Header Fields Too Large", 502: "Bad Gateway", 504: "Gateway Timeout"}
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class Refused(Exception):
    """The proxy answers `status` with `reason` (a sentence) and closes the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Request:
    method: str
    kind: str  # "name" or "ip", as app/domain/egress.py's parse_host says
    host: str  # validated: a lowercase name or a canonical address (IPv6 without brackets)
    port: int
    path: str = ""  # origin form, for plain HTTP ("" for CONNECT)
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def tunnel(self) -> bool:
        return self.method == "CONNECT"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if (not self.tunnel and self.port == 80) else f"{host}:{self.port}"


def parse_request(raw: bytes) -> Request:
    """The request a head (up to and including its blank line) makes; Refused(400) if malformed."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(400, "the request's head is not ASCII") from None
    lines = text.split("\r\n")
    if len(lines) < 3 or lines[-2:] != ["", ""]:
        raise Refused(400, "the request's head does not end with an empty line")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.match(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise Refused(400, "the request line is not METHOD TARGET HTTP/1.1")
    headers = _headers(lines[1:-2])
    method, target = parts[0], parts[1]
    if method == "CONNECT":
        host, port = _authority(target)
        if port is None:
            raise Refused(400, "CONNECT needs host:port")
        kind, name = _host(host)
        return Request(method, kind, name, port, headers=headers)
    return _absolute(method, target, headers)


def _headers(lines: list[str]) -> tuple[tuple[str, str], ...]:
    if len(lines) > MAX_HEADERS:
        raise Refused(431, f"the request has more than {MAX_HEADERS} header fields")
    found = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name) or any(c in value for c in "\0\r\n"):
            raise Refused(400, "a header field is malformed (or folded over lines)")
        found.append((name, value.strip(" \t")))
    return tuple(found)


def _authority(text: str) -> tuple[str, int | None]:
    if not text or "@" in text:
        raise Refused(400, "the target names no host (or carries credentials)")
    try:
        return split_port(text)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None


def _host(text: str) -> tuple[str, str]:
    try:
        return parse_host(text)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None


def _absolute(method: str, target: str, headers: tuple[tuple[str, str], ...]) -> Request:
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() != "http":
        if scheme.lower() == "https" and sep:
            raise Refused(400, "an https:// URL goes through CONNECT (the proxy never sees TLS plaintext)")
        raise Refused(400, "this is a forward proxy: send an absolute http:// URL, or CONNECT for TLS")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    host, port = _authority(authority)
    kind, name = _host(host)
    path = path if path.startswith("/") else "/" + path
    if any(ord(c) <= 32 or ord(c) == 127 for c in path):
        raise Refused(400, "the URL's path holds spaces or control characters")
    return Request(method, kind, name, port or 80, path=path, headers=headers)


def forwarded_head(request: Request) -> bytes:
    """The head sent upstream for plain HTTP: origin form, the URL's own Host, one request per
    connection (`Connection: close`), the proxy's hop-by-hop fields dropped."""
    named = {token.strip().lower() for name, value in request.headers if name.lower() == "connection"
             for token in value.split(",")}
    kept = [f"{name}: {value}" for name, value in request.headers
            if name.lower() not in HOP_BY_HOP and name.lower() not in named]
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {request.authority}", *kept, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def refusal(status: int, reason: str) -> bytes:
    """The proxy's own answer: a status, and a body that says why in one sentence."""
    body = f"AgentVine egress proxy: {reason}.\n".encode()
    head = (f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Error')}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nX-AgentVine-Egress: refused\r\nConnection: close\r\n\r\n")
    return head.encode() + body
