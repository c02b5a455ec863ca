"""Git's smart HTTP protocol, served by `git http-backend` as a CGI program.

Clone, fetch and push reach the same bare repositories the REST API reads, at
`{fake.url}/{owner}/{repo}.git/...`, with GitHub's authentication: HTTP Basic with the user
`x-access-token` and an installation token as the password.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .gitrepo import git_env

if TYPE_CHECKING:
    from .state import FakeGitHub

GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+?)\.git(?P<rest>/.*)?$")
_CHUNK = 64 * 1024


def is_git_path(path: str) -> bool:
    return GIT_PATH.match(path) is not None


def _unauthorized(message: str = "Invalid username or token. Password authentication is not supported for Git operations.") -> web.Response:
    # The challenge makes git ask its credential helper and retry with credentials.
    return web.Response(status=401, text=message + "\n", headers={"WWW-Authenticate": 'Basic realm="GitHub"'})


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


async def handle(fake: "FakeGitHub", request: web.Request) -> web.StreamResponse:
    from .state import RecordedCall

    started = time.perf_counter()
    m = GIT_PATH.match(request.path)
    assert m is not None
    repo = fake.find_repo(m["owner"], m["name"])
    creds = _basic_credentials(request.headers.get("Authorization"))
    token = fake.tokens.lookup(creds[1]) if creds and creds[0] == "x-access-token" else None
    if token is None:
        response: web.StreamResponse = _unauthorized()
    elif repo is None or repo.installation_id != token.installation_id or not token.covers(repo.full_name):
        response = web.Response(status=404, text="Repository not found.\n")
    elif _service(request) == "git/receive-pack" and token.permissions.get("contents") != "write":
        response = web.Response(status=403, text="Permission to push denied: the token has no contents: write.\n")
    else:
        response = await _run_backend(fake, request, f"/{repo.owner}/{repo.name}.git{m['rest'] or ''}")
    fake.git_calls.append(RecordedCall(
        method=request.method, path=request.path, query=dict(request.query), status=response.status,
        request_json=None, response_json=None, operation_id=_service(request), duration=time.perf_counter() - started,
        request_headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
    ))
    return response


def _service(request: web.Request) -> str:
    service = request.query.get("service") or request.path.rsplit("/", 1)[-1]
    return f"git/{service.removeprefix('git-')}"


async def _run_backend(fake: "FakeGitHub", request: web.Request, path_info: str) -> web.StreamResponse:
    env = git_env()
    env.update({
        "GIT_PROJECT_ROOT": str(fake.git_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query_string,
        "REQUEST_METHOD": request.method,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "REMOTE_USER": "x-access-token",
        "REMOTE_ADDR": request.remote or "127.0.0.1",
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "GATEWAY_INTERFACE": "CGI/1.1",
    })
    if "Git-Protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
    # aiohttp has already undone any Content-Encoding, so only a plain body has a known length;
    # otherwise http-backend reads stdin to EOF.
    if request.content_length is not None and "Content-Encoding" not in request.headers:
        env["CONTENT_LENGTH"] = str(request.content_length)
    proc = await asyncio.create_subprocess_exec(
        "git", "http-backend",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdin and proc.stdout and proc.stderr

    async def feed() -> None:
        try:
            async for chunk in request.content.iter_chunked(_CHUNK):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            proc.stdin.close()

    feeder = asyncio.create_task(feed())
    status, headers = await _read_cgi_headers(proc.stdout)
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    while chunk := await proc.stdout.read(_CHUNK):
        await response.write(chunk)
    await feeder
    stderr = await proc.stderr.read()
    await proc.wait()
    if proc.returncode and stderr:
        fake.git_errors.append(f"git http-backend {request.method} {request.path}: {stderr.decode(errors='replace').strip()}")
    await response.write_eof()
    return response


async def _read_cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status, headers = 200, {}
    while True:
        line = (await stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()
