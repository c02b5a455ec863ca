"""`agentvine jobs` as an operator runs it: a process of its own, talking to a service over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from aiohttp import web

from app.domain.job import JobState
from app.fakes.github.testing import free_port
from app.operator import jobs as command
from app.store import SQLiteJobStore
from app.web.job_views import JobSummary
from app.web.server import make_web_app
from tests.support.env import ROOT, make_settings
from tests.support.jobs import OPERATOR_TOKEN, add_job


async def agentvine_jobs(*args: str, token: str | None = OPERATOR_TOKEN) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENTVINE_OPERATOR_TOKEN"}
    if token is not None:
        env["AGENTVINE_OPERATOR_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "jobs", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def service(aiohttp_client, tmp_path, private_key, **settings):
    settings = make_settings(tmp_path, private_key=private_key, **settings)
    store = SQLiteJobStore(settings.database_path)
    client = await aiohttp_client(make_web_app(settings, store))
    client.store = store
    client.url = str(client.make_url("")).rstrip("/")
    return client


@pytest.fixture
async def running(aiohttp_client, tmp_path, app_private_key):
    client = await service(aiohttp_client, tmp_path, app_private_key, operator_token=OPERATOR_TOKEN)
    yield client
    client.store.close()


async def test_a_table_of_jobs_with_filters(running):
    add_job(running.store, 1)
    add_job(running.store, 2, repo="octo-org/other", worker="review", state=JobState.FAILED)
    add_job(running.store, 3, state=JobState.RUNNING)
    code, out, err = await agentvine_jobs("--url", running.url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == list(command.COLUMNS)
    assert [line.split()[4] for line in lines[1:]] == ["#3", "#2", "#1"]  # newest first
    code, out, _ = await agentvine_jobs("--url", running.url, "--state", "failed", "--state", "running",
                                        "--repo", "octo-org/hello")
    assert code == 0 and [line.split()[4] for line in out.splitlines()[1:]] == ["#3"]
    code, out, _ = await agentvine_jobs("--url", running.url, "--worker", "docs")
    assert (code, out.strip()) == (0, "No job matches.")


async def test_json_follows_the_pages_up_to_the_limit(running):
    jobs = [add_job(running.store, n) for n in range(command.PER_PAGE + 5)]
    code, out, err = await agentvine_jobs("--url", running.url, "--json", "--limit", str(command.PER_PAGE + 3))
    assert (code, err) == (0, "")
    listed = [JobSummary.model_validate(j) for j in json.loads(out)]
    assert [j.id for j in listed] == [j.id for j in reversed(jobs)][: command.PER_PAGE + 3]


async def test_a_refused_token_is_a_clear_error(running):
    code, out, err = await agentvine_jobs("--url", running.url, token="not-the-token-0123456789")
    assert (code, out) == (1, "")
    assert err.strip() == "agentvine jobs: " + command.REFUSED.format(url=running.url)


async def test_a_service_without_the_token_setting_says_so(aiohttp_client, tmp_path, app_private_key):
    client = await service(aiohttp_client, tmp_path, app_private_key)
    code, _, err = await agentvine_jobs("--url", client.url)
    assert code == 1 and "does not list jobs: Listing jobs is turned off: set AGENTVINE_OPERATOR_TOKEN" in err
    client.store.close()


async def test_an_unreachable_service_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await agentvine_jobs("--url", url)
    assert code == 1 and err.startswith(f"agentvine jobs: cannot reach the service at {url}: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("args,token,expected", [
    ((), None, command.NO_TOKEN),
    (("--url", "ftp://host"), OPERATOR_TOKEN, "must be http(s)://host"),
    (("--url", "http://127.0.0.1:9", "--limit", "0"), OPERATOR_TOKEN, "--limit must be from 1"),
])
async def test_local_mistakes_exit_2(args, token, expected):
    code, _, err = await agentvine_jobs(*args, token=token)
    assert code == 2 and expected in err and "Traceback" not in err


async def not_agentvine(aiohttp_client, answer) -> str:
    async def jobs(request: web.Request) -> web.Response:
        return web.json_response(answer(request))

    app = web.Application()
    app.router.add_get("/jobs", jobs)
    return str((await aiohttp_client(app)).make_url("")).rstrip("/")


async def test_an_answer_that_is_not_a_job_list_is_refused(aiohttp_client):
    url = await not_agentvine(aiohttp_client, lambda request: {"hello": "world"})
    code, _, err = await agentvine_jobs("--url", url)
    assert code == 1 and command.NOT_A_LIST.format(url=url) in err


async def test_the_token_never_follows_a_next_link_elsewhere(aiohttp_client):
    seen = []

    def answer(request):
        seen.append(request.headers.get("Authorization"))
        return {"jobs": [], "next": "http://elsewhere.example/jobs?cursor=x"}

    url = await not_agentvine(aiohttp_client, answer)
    code, _, err = await agentvine_jobs("--url", url)
    assert code == 1 and "on another host" in err and len(seen) == 1


async def test_what_the_service_sends_cannot_drive_the_terminal(aiohttp_client):
    job = {"id": "a" * 32, "state": "queued", "created_at": 1.0, "updated_at": 1.0, "repo": "o/\x1b[2J\x1b]0;pwned\x07r",
           "issue_number": 1, "requester": "x", "worker": "\x1b[31mred"}
    url = await not_agentvine(aiohttp_client, lambda request: {"jobs": [job], "next": None})
    code, out, _ = await agentvine_jobs("--url", url)
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "?[31mred" in out
