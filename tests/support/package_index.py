"""Local package indexes for the tests and benchmarks, served on the host's loopback by aiohttp: a PEP 503
simple index over a wheel built here (zip + dist-info, hashes in RECORD), and an npm registry stand-in
(the package document and a tarball, as `npm install` asks for them). The sandbox reaches them only
through AgentVine's egress proxy, with the allow-list naming 127.0.0.1:<port>.

They answer with the caching fields PyPI and npm's registry send (an ETag, `Cache-Control`; a 304 to
a matching If-None-Match), because pip's HTTP cache (cachecontrol) stores only what such fields make
cacheable: without them a second job's `pip install` downloads the wheel again, whatever
/cache/pip holds."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(name: str, version: str, files: dict[str, str]) -> tuple[str, bytes]:
    """A pure-Python wheel (py3-none-any) holding `files`: its file name and bytes."""
    dist = f"{name}-{version}.dist-info"
    entries = {path: text.encode() for path, text in files.items()}
    entries[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    entries[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: agentvine-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items())
    entries[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in entries.items():
            wheel.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", out.getvalue()


def build_npm_tarball(name: str, version: str, files: dict[str, str]) -> bytes:
    """An npm package tarball: package/package.json and `files` under package/."""
    entries = {"package.json": json.dumps({"name": name, "version": version, "main": "index.js"}), **files}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, text in entries.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class LocalIndex:
    port: int
    requests: list[str] = field(default_factory=list)
    revalidated: list[str] = field(default_factory=list)  # the requests answered 304

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _cache_control(kind: str) -> str:
    """As files.pythonhosted.org (an archive never changes) and pypi.org/simple (a page may) answer."""
    return "max-age=365000000, immutable, public" if kind == "application/octet-stream" else "max-age=600, public"


@asynccontextmanager
async def _serve(routes: dict[str, tuple[str, bytes]]) -> AsyncIterator[LocalIndex]:
    """`routes`: path -> (content type, body); paths may hold {base} (the index's own URL)."""
    index = LocalIndex(0)

    async def answer(request: web.Request) -> web.Response:
        index.requests.append(request.path)
        found = routes.get(request.path.rstrip("/") or "/")
        if found is None:
            return web.Response(status=404, text="not here\n")
        kind, body = found
        if kind != "application/octet-stream":  # documents name the index's own URL; archives are as built
            body = body.replace(b"{base}", index.url.encode())
        headers = {"ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"', "Cache-Control": _cache_control(kind)}
        if request.headers.get("If-None-Match") == headers["ETag"]:
            index.revalidated.append(request.path)
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=kind, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    index.port = site._server.sockets[0].getsockname()[1]
    try:
        yield index
    finally:
        await runner.cleanup()


@asynccontextmanager
async def local_pypi(name: str, version: str, files: dict[str, str]) -> AsyncIterator[LocalIndex]:
    """A PEP 503 simple index serving one wheel (`pip install --index-url <url>/simple/ name`)."""
    wheel_name, wheel = build_wheel(name, version, files)
    digest = hashlib.sha256(wheel).hexdigest()
    page = f'<!DOCTYPE html><html><body><a href="{{base}}/files/{wheel_name}#sha256={digest}">{wheel_name}</a></body></html>'
    routes = {"/simple": ("text/html", f'<a href="{name}/">{name}</a>'.encode()),
              f"/simple/{name}": ("text/html", page.encode()),
              f"/files/{wheel_name}": ("application/octet-stream", wheel)}
    async with _serve(routes) as index:
        yield index


@asynccontextmanager
async def local_npm(name: str, version: str, files: dict[str, str]) -> AsyncIterator[LocalIndex]:
    """An npm registry stand-in for one package (`npm install --registry <url>/ name`)."""
    tarball = build_npm_tarball(name, version, files)
    tgz = f"/{name}/-/{name}-{version}.tgz"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    dist = {"tarball": "{base}" + tgz, "shasum": hashlib.sha1(tarball).hexdigest(), "integrity": integrity}
    document = {"name": name, "dist-tags": {"latest": version},
                "versions": {version: {"name": name, "version": version, "main": "index.js", "dist": dist}}}
    routes = {f"/{name}": ("application/json", json.dumps(document).encode()),
              tgz: ("application/octet-stream", tarball)}
    async with _serve(routes) as index:
        yield index
