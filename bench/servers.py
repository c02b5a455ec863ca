"""Servers the benchmarks start in their own processes: the GitHub fake, a bare aiohttp handler that
answers 202 (the ceiling the webhook endpoint is compared with), and AgentVine's web app alone (no
worker) over a store of either backend, settings from the environment as `agentvine serve` reads them."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's app, whatever else is installed

REPO = "octo-org/hello"
INSTALLATION = 1001


async def _bare(port: int) -> None:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/webhooks", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    await asyncio.Event().wait()


async def _fake(port: int, key_file: Path) -> None:
    from app.fakes.github.state import FakeGitHub

    data_dir = Path(tempfile.mkdtemp(prefix="bench-github-"))
    try:
        await _serve_fake(FakeGitHub(data_dir=data_dir), port, key_file)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _serve_fake(fake, port: int, key_file: Path) -> None:  # noqa: ANN001 - the fake's FakeGitHub
    fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
    fake.add_repo(REPO, installation_id=INSTALLATION)
    fake.add_user("alice")
    fake.set_permission(REPO, "alice", "write")
    issue = fake.add_issue(REPO, title="Parser rejects tabs", user="alice")
    key_file.write_text(fake.private_key_pem)
    runner = web.AppRunner(fake.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    print(json.dumps({"url": fake.url, "app_id": fake.app_id, "repository": fake.render_repository(fake.repo(REPO)),
                      "issue": fake.issue(REPO, issue["number"])}), flush=True)
    await asyncio.Event().wait()


async def _web(port: int, database_url: str | None) -> None:
    """A web instance as on PostgreSQL (deliveries into the inbox table) or, without a URL, on SQLite
    (into the file inbox): the webhook's path alone, as `agentvine serve` runs it."""
    from app.assembly import tune_gc
    from app.settings import load_settings
    from app.store import SQLiteJobStore
    from app.web.server import make_web_app

    settings = load_settings()
    if database_url:
        from app.store.postgres import PostgresJobStore

        store = PostgresJobStore(database_url)
    else:
        store = SQLiteJobStore(settings.database_path)
    runner = web.AppRunner(make_web_app(settings, store), access_log=None)
    await runner.setup()
    tune_gc()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "backend": store.backend}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bare", "fake", "web"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--database-url", help="web: the PostgreSQL store's (default: SQLite in the data dir)")
    args = parser.parse_args()
    servers = {"bare": lambda: _bare(args.port), "fake": lambda: _fake(args.port, args.key_file),
               "web": lambda: _web(args.port, args.database_url)}
    try:
        asyncio.run(servers[args.kind]())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
