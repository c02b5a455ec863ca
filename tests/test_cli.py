"""`agentvine serve` as it runs in production: the web process and a worker process of its own,
sharing nothing but the store. Started as a real subprocess against the GitHub fake."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from app.fakes.github.testing import free_port, running_fake
from tests.support import payloads
from tests.support.harness import INSTALLATION, REPO, arrange_github
from app.fakes.github.webhooks import delivery_headers
from tests.support.env import ROOT, SECRET, as_bytes


async def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def start_serve(tmp_path, github, *, stderr):
    """`agentvine serve` as a process of its own against the fake, acknowledging but running no agent."""
    key = tmp_path / "app.pem"
    key.write_text(github.private_key_pem)
    port = free_port()
    env = {**os.environ, "AGENTVINE_APP_ID": str(github.app_id), "AGENTVINE_PRIVATE_KEY_PATH": str(key),
           "AGENTVINE_WEBHOOK_SECRET": SECRET, "AGENTVINE_GITHUB_API_URL": github.url,
           "AGENTVINE_DATA_DIR": str(tmp_path / "data"), "AGENTVINE_MAX_CONCURRENT_JOBS": "0"}
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    return serve, f"http://127.0.0.1:{port}"


async def test_serve_runs_web_and_worker_processes_and_stops_cleanly(tmp_path):
    async with running_fake(tmp_path) as github:
        arrange_github(github)
        serve, url = await start_serve(tmp_path, github, stderr=asyncio.subprocess.PIPE)
        try:
            async with aiohttp.ClientSession() as http:
                health: dict = {}

                async def healthy() -> bool:
                    nonlocal health
                    try:
                        async with http.get(url + "/health") as response:
                            health = await response.json()
                            return response.status == 200
                    except aiohttp.ClientError:
                        return False

                await wait_for(healthy)
                worker_pid = health["worker_pid"]
                assert worker_pid and worker_pid != serve.pid and process_exists(worker_pid)

                issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
                body = as_bytes(payloads.labeled_issue(
                    label="agentvine:bugfix", issue=github.issue(REPO, issue["number"]),
                    repo=github.render_repository(github.repo(REPO)), installation_id=INSTALLATION, sender="alice"))
                async with http.post(url + "/webhooks", data=body, headers=delivery_headers("issues", body, SECRET)) as response:
                    assert response.status == 202

                async def acknowledged() -> bool:  # by the worker process: inbox, then store, then GitHub
                    return bool(github.check_runs_for(REPO)) and bool(github.reactions_on_issue(REPO, issue["number"]))

                await wait_for(acknowledged)
        finally:
            serve.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(serve.wait(), 30)
            stderr = (await serve.stderr.read()).decode()
        assert code == 0, stderr
        await wait_for(lambda: asyncio.sleep(0, not process_exists(worker_pid)), timeout=10)
        github.assert_no_violations()


async def test_a_worker_whose_web_process_is_killed_stops(tmp_path):
    """SIGKILL skips the web process's clean-up; its worker must not stay behind to run jobs beside
    the next web process's worker."""
    async with running_fake(tmp_path) as github:
        arrange_github(github)
        serve, url = await start_serve(tmp_path, github, stderr=asyncio.subprocess.DEVNULL)
        worker_pid = None
        try:
            async with aiohttp.ClientSession() as http:
                async def worker_up() -> bool:
                    nonlocal worker_pid
                    try:
                        async with http.get(url + "/health") as response:
                            worker_pid = (await response.json()).get("worker_pid") if response.status == 200 else None
                            return worker_pid is not None
                    except aiohttp.ClientError:
                        return False

                await wait_for(worker_up)
            serve.kill()
            await serve.wait()
            await wait_for(lambda: asyncio.sleep(0, not process_exists(worker_pid)), timeout=15)
        finally:
            if serve.returncode is None:
                serve.kill()
            if worker_pid and process_exists(worker_pid):
                os.kill(worker_pid, signal.SIGKILL)


def test_serve_refuses_to_start_when_the_shipped_defaults_are_above_a_ceiling(monkeypatch, tmp_path, capsys):
    from app.cli import main

    for name, value in {"APP_ID": "1", "PRIVATE_KEY": "pem", "WEBHOOK_SECRET": SECRET, "DATA_DIR": str(tmp_path),
                        "MAX_TURNS": "10", "ALLOWED_MODELS": "claude-sonnet-4-5"}.items():
        monkeypatch.setenv(f"AGENTVINE_{name}", value)

    def never_served(*_args, **_kwargs):
        raise AssertionError("started serving")

    monkeypatch.setattr("app.cli.web.run_app", never_served)
    assert main(["serve", "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert "agentvine serve: cannot start" in err and "default.yml" in err
    assert "workers.feature.max_turns: 40 is above the operator's ceiling of 10 (AGENTVINE_MAX_TURNS)" in err
    assert "workers.docs.model: claude-haiku-4-5 is not one of the operator's allowed models" in err
    assert "seniority.agentvine:principal.model: claude-opus-4-1" in err


def test_a_worker_is_never_built_over_defaults_above_a_ceiling(tmp_path):
    import pytest

    from app.assembly import build_worker
    from app.domain.config import ConfigError
    from app.settings import Settings

    with pytest.raises(ConfigError, match="AGENTVINE_MAX_CPUS"):
        build_worker(Settings(data_dir=tmp_path, max_cpus=0.5))


def test_serve_names_a_setting_that_is_not_valid(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("AGENTVINE_DATABASE_URL", "mysql://db/agentvine")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "AGENTVINE_DATABASE_URL: Value error, must be a postgresql:// URL" in err
    assert "Traceback" not in err
