"""The model gateway: the sandbox's only way out, and the only holder of the model API key.

Each job gets its own Unix socket (mounted into the job's container) and a fresh random token.
Claude Code in the container sends that token as its API key; the gateway checks it, swaps it for
the real key and, if the job's policy allows it (app/agent/policy.py: model, max_tokens, fields,
tools, betas, budget), forwards the request to the upstream Messages API, streaming the answer back
unchanged, chunk by chunk, while it counts tokens for the job (app/agent/usage.py). When the job ends the token is
revoked and the socket removed. The contract and the reasons are in docs/model-gateway.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from app import metrics
from app.agent.claude.command import CLAUDE_CODE_ENV
from app.agent.policy import ModelPolicy
from app.agent.usage import Usage, UsageTap

log = logging.getLogger(__name__)

# (method, path) pairs forwarded upstream. Claude Code 2.1.x calls only these (with `?beta=true`).
ALLOWED_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
    }
)
# Claude Code's connectivity probe; answered here, never forwarded, needs no token. It is only
# sent when CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is not set.
PROBE_PATHS = frozenset({"/api/hello"})

# Request headers passed upstream (everything else is dropped, notably the client's credentials).
FORWARD_REQUEST_HEADERS = frozenset(
    {
        "anthropic-version",
        "anthropic-beta",
        "content-type",
        "accept",
        "user-agent",
        "x-app",
        "x-claude-code-session-id",
        "x-stainless-retry-count",
        "x-stainless-timeout",
    }
)
# Response headers passed back to the sandbox (plus every `anthropic-ratelimit-*`).
FORWARD_RESPONSE_HEADERS = frozenset(
    {"content-type", "cache-control", "request-id", "retry-after", "retry-after-ms", "x-should-retry"}
)
RATELIMIT_PREFIX = "anthropic-ratelimit-"

MAX_REQUEST_BYTES = 32 * 1024 * 1024  # the Messages API's own request limit
SOCKET_NAME = "model.sock"
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SUN_PATH_MAX = 107  # AF_UNIX path limit (108 bytes with the NUL)


def anthropic_error(status: int, error_type: str, message: str) -> web.Response:
    """An error answer in the shape the Anthropic API uses."""
    request_id = "req_gw_" + secrets.token_hex(12)
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    return web.json_response(body, status=status, headers={"request-id": request_id})


@dataclass
class JobChannel:
    """What a job's sandbox needs: the socket to mount and the token to send as its API key."""

    job_id: str
    socket_path: Path
    token: str = field(repr=False)
    policy: ModelPolicy
    usage: Usage = field(default_factory=Usage)
    opened_at: float = field(default_factory=time.time)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _revoked: bool = field(default=False, repr=False)
    _in_flight: int = field(default=0, repr=False)

    @property
    def socket_dir(self) -> Path:
        """The per-job directory holding the socket (removed by close_job)."""
        return self.socket_path.parent

    def claude_env(self, base_url: str) -> dict[str, str]:
        """Environment for Claude Code in the sandbox, given where the in-container forwarder listens."""
        return {
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": self.token,
            **CLAUDE_CODE_ENV,
        }


class _Redactor:
    """Removes a secret from a byte stream without holding back more than a possible prefix of it."""

    def __init__(self, secret: bytes, replacement: bytes = b"[REDACTED]") -> None:
        self._secret = secret
        self._replacement = replacement
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = (self._pending + chunk).replace(self._secret, self._replacement)
        # Hold back the longest tail that could be the start of the secret.
        keep = 0
        for n in range(min(len(self._secret) - 1, len(data)), 0, -1):
            if data.endswith(self._secret[:n]):
                keep = n
                break
        self._pending = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        out, self._pending = self._pending, b""
        return out


class ModelGateway:
    def __init__(
        self,
        upstream_url: str,
        api_key: str,
        *,
        socket_dir: Path,
        session: aiohttp.ClientSession | None = None,
        shutdown_timeout: float = 2.0,
    ) -> None:
        if not api_key:
            raise ValueError("the model gateway needs the real API key")
        self.upstream_url = upstream_url.rstrip("/")
        self._api_key = api_key
        self._key_bytes = api_key.encode()
        self.socket_dir = Path(socket_dir)
        self._session = session
        self._own_session = session is None
        self._shutdown_timeout = shutdown_timeout
        self._jobs: dict[str, JobChannel] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"ModelGateway(upstream_url={self.upstream_url!r}, jobs={sorted(self._jobs)!r})"

    # ------------------------------------------------------------------ jobs
    def channel(self, job_id: str) -> JobChannel | None:
        return self._jobs.get(job_id)

    @property
    def open_jobs(self) -> list[str]:
        return sorted(self._jobs)

    async def open_job(self, job_id: str, policy: ModelPolicy) -> JobChannel:
        """Start listening on `<socket_dir>/<job_id>/model.sock` with a fresh token for the job,
        forwarding only what `policy` allows (app/agent/policy.py)."""
        if not _JOB_ID_RE.match(job_id):
            raise ValueError(f"job id {job_id!r} is not usable in a socket path")
        async with self._lock:
            if job_id in self._jobs:
                raise ValueError(f"job {job_id} already has an open gateway channel")
            job_dir = self.socket_dir / job_id
            socket_path = job_dir / SOCKET_NAME
            if len(os.fsencode(socket_path)) > _SUN_PATH_MAX:
                raise ValueError(f"socket path too long for AF_UNIX ({socket_path}); use a shorter socket_dir")
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            job_dir.mkdir(exist_ok=True)
            # Searchable by the container's non-root user (uid 1000), listable only by us.
            os.chmod(job_dir, 0o711)
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()  # left over by a crash

            channel = JobChannel(job_id=job_id, socket_path=socket_path, token="agv-" + secrets.token_urlsafe(32),
                                 policy=policy)
            app = web.Application(client_max_size=MAX_REQUEST_BYTES)

            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._handle(channel, request)

            app.router.add_route("*", "/{tail:.*}", handle)
            # handler_cancellation: when the sandbox hangs up (job cancelled, container killed), the
            # upstream request is dropped at once instead of streaming on at the job's expense.
            runner = web.AppRunner(
                app, access_log=None, shutdown_timeout=self._shutdown_timeout, handler_cancellation=True
            )
            await runner.setup()
            try:
                site = web.UnixSite(runner, str(socket_path))
                await site.start()
                # Any local user may connect; only the job's token gets anything through.
                os.chmod(socket_path, 0o666)
            except BaseException:
                await runner.cleanup()
                raise
            channel._runner = runner
            self._jobs[job_id] = channel
            log.info("model gateway: opened channel for job %s at %s", job_id, socket_path)
            return channel

    async def close_job(self, job_id: str) -> Usage:
        """Revoke the job's token, stop listening, remove the socket; return what the job used."""
        async with self._lock:
            channel = self._jobs.pop(job_id, None)
        if channel is None:
            raise KeyError(f"job {job_id} has no open gateway channel")
        channel._revoked = True
        channel.token = ""  # nothing can match an empty token (see _authorized)
        if channel._runner is not None:
            await channel._runner.cleanup()
            channel._runner = None
        with contextlib.suppress(FileNotFoundError):
            channel.socket_path.unlink()
        with contextlib.suppress(OSError):
            shutil.rmtree(channel.socket_dir)
        log.info(
            "model gateway: closed job %s (%d requests, %d in / %d out tokens)",
            job_id, channel.usage.requests, channel.usage.input_tokens, channel.usage.output_tokens,
        )
        channel.usage.cost_usd = channel.policy.cost(channel.usage)
        return channel.usage.model_copy()

    async def close(self) -> None:
        for job_id in list(self._jobs):
            with contextlib.suppress(KeyError):
                await self.close_job(job_id)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ModelGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ requests
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=900)
            )
        return self._session

    @staticmethod
    def _authorized(channel: JobChannel, request: web.Request) -> bool:
        presented: list[str] = []
        if "x-api-key" in request.headers:
            presented.append(request.headers["x-api-key"])
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            presented.append(value.strip() if scheme.lower() == "bearer" else "")
        if channel._revoked or not channel.token or not presented:
            return False
        expected = channel.token.encode()
        # Every credential presented must be the job's token.
        return all(hmac.compare_digest(p.encode(), expected) for p in presented)

    async def _handle(self, channel: JobChannel, request: web.Request) -> web.StreamResponse:
        if request.path in PROBE_PATHS and request.method in ("HEAD", "GET"):
            return web.Response(status=200)
        if not self._authorized(channel, request):
            channel.usage.rejected += 1
            log.warning("model gateway: job %s: rejected %s %s (bad or revoked token)",
                        channel.job_id, request.method, request.path)
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if (request.method, request.path) not in ALLOWED_ROUTES:
            channel.usage.rejected += 1
            log.warning("model gateway: job %s: refused %s %s (not on the allow-list)",
                        channel.job_id, request.method, request.path)
            return anthropic_error(404, "not_found_error", f"{request.method} {request.path} is not available")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            channel.usage.rejected += 1
            return anthropic_error(413, "request_too_large", "Request exceeds the maximum allowed size")
        refusal = channel.policy.check(request.rel_url.raw_query_string, request.headers.get("anthropic-beta"),
                                       body, channel.usage)
        if refusal is not None:
            channel.usage.rejected += 1
            channel.usage.refused_budget += refusal.budget
            channel.usage.refused_policy += not refusal.budget
            log.warning("model gateway: job %s: refused %s: %s", channel.job_id, request.path, refusal.message)
            return anthropic_error(refusal.status, refusal.error_type, refusal.message)
        if channel._in_flight >= channel.policy.max_in_flight:
            channel.usage.rejected += 1
            return anthropic_error(429, "rate_limit_error", "too many requests at once for this job")
        channel._in_flight += 1
        try:
            return await self._forward(channel, request, body)
        finally:
            channel._in_flight -= 1

    async def _forward(self, channel: JobChannel, request: web.Request, body: bytes) -> web.StreamResponse:
        url, headers = self._upstream_url(request), self._upstream_headers(request)
        channel.usage.requests += 1
        started = time.monotonic()
        try:
            upstream = await self._client().request(
                request.method, url, data=body, headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            channel.usage.upstream_errors += 1
            log.error("model gateway: job %s: upstream unreachable: %s", channel.job_id, type(exc).__name__)
            return anthropic_error(502, "api_error", "The model gateway could not reach the model API")
        try:
            if upstream.status >= 400:
                channel.usage.upstream_errors += 1
            elif request.path == "/v1/messages":
                channel.usage.turns += 1
            response = await self._relay(channel, request, upstream)
            upstream.release()
            return response
        except ConnectionResetError:
            log.info("model gateway: job %s: client went away mid-stream", channel.job_id)
            upstream.close()
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # Headers are out; all we can do is cut the connection so the client sees a broken stream.
            log.error("model gateway: job %s: upstream stream broke: %s", channel.job_id, type(exc).__name__)
            upstream.close()
            if request.transport is not None:
                request.transport.close()
            raise
        except BaseException:
            upstream.close()
            raise
        finally:
            channel.usage.model_seconds += time.monotonic() - started
            spent = channel.usage.cost_usd  # no await in between: requests in flight together count once each
            channel.usage.cost_usd = channel.policy.cost(channel.usage)
            metrics.model_cost(channel.policy.model, channel.usage.cost_usd - spent)

    def _upstream_url(self, request: web.Request) -> URL:
        # request.path is one of the allow-listed constants; the query (`beta=true`) goes as sent.
        raw = self.upstream_url + request.path
        if request.rel_url.raw_query_string:
            raw += "?" + request.rel_url.raw_query_string
        return URL(raw, encoded=True)

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST_HEADERS}
        headers["x-api-key"] = self._api_key
        headers["accept-encoding"] = "identity"  # pass SSE through as it comes, uncompressed
        return headers

    async def _relay(
        self, channel: JobChannel, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """Stream upstream's answer back as it comes: allowed headers, body redacted, usage counted."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            lname = name.lower()
            if lname in FORWARD_RESPONSE_HEADERS or lname.startswith(RATELIMIT_PREFIX):
                if self._api_key not in value:
                    response.headers.add(name, value)
        await response.prepare(request)
        tap = UsageTap(
            channel.usage,
            upstream.headers.get("content-type", ""),
            count_json=request.path == "/v1/messages",
            model=channel.policy.model,
        )
        redactor = _Redactor(self._key_bytes)
        async for chunk in upstream.content.iter_any():
            tap.feed(chunk)
            out = redactor.feed(chunk)
            if out:
                await response.write(out)
        tail = redactor.flush()
        if tail:
            await response.write(tail)
        tap.finish()
        await response.write_eof()
        return response
