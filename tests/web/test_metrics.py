"""GET /metrics: what a delivery and the job it starts leave behind, read with Prometheus' own parser; the
token that guards it; and `agentvine serve`, where the web process answers with what the worker counted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import Counter

import aiohttp
import pytest

from app.web.metrics import UNAUTHORIZED
from app.assembly import Service
from app.fakes.github.testing import running_fake
from app.fakes.github.webhooks import delivery_headers
from tests.support import payloads
from tests.support.env import SECRET, as_bytes, make_settings
from tests.support.harness import INSTALLATION, REPO, arrange_github
from tests.support.metrics import Scrape, scrape
from tests.test_cli import process_exists, start_serve, wait_for

OPERATION = re.compile(r"(GET|POST|PATCH|PUT|DELETE) (/[a-z_/{}+-]*|other)")  # a template: no names, no numbers


def github_requests(before: Scrape, after: Scrape) -> Counter:
    """(operation, status) -> requests between the two reads."""
    counts = Counter({(s["operation"], s["status"]): after.since(before, "agentvine_github_requests_total", **s)
                      for s in after.label_sets("agentvine_github_requests_total")})
    return +counts  # without the operations not called in between


async def test_an_acknowledged_job_shows_its_delivery_its_github_calls_and_its_state(bot):
    before, calls_before = await scrape(bot.client), len(bot.github.calls)
    issue = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    after = await scrape(bot.client)

    assert after.since(before, "agentvine_webhook_deliveries_total", event="issues", outcome="accepted") == 1
    assert after.since(before, "agentvine_deliveries_imported_total", event="issues", outcome="job") == 1
    assert after.since(before, "agentvine_job_transitions_total", worker="bugfix", state="acknowledged") == 1
    assert after.value("agentvine_jobs", state="acknowledged") == 1 and after.value("agentvine_jobs", state="queued") == 0
    assert after.value("agentvine_queue_depth", stage="run") == 1  # max_concurrent_jobs=0: it waits for a run
    # Every request GitHub (the fake) saw, by status, and by operation: the route template, never the path.
    calls = bot.github.calls[calls_before:]
    requests = github_requests(before, after)
    by_status: Counter = Counter()
    for (_, status), n in requests.items():
        by_status[status] += n
    assert by_status == Counter(str(c.status) for c in calls)
    assert all(OPERATION.fullmatch(operation) for operation, _ in requests), requests
    assert requests["POST /app/installations/{installation_id}/access_tokens", "201"] >= 1
    assert requests["POST /repos/{owner}/{repo}/issues/{issue_number}/reactions", "201"] == 1
    assert requests["POST /repos/{owner}/{repo}/check-runs", "201"] == 1
    job = bot.job(answer["jobs"][0])
    assert job.id not in after.text and REPO not in after.text
    # What GitHub's last answer said of the installation's rate limit.
    last = [c for c in calls if not c.path.startswith("/app/")][-1]  # made with the installation's token
    assert after.value("agentvine_github_rate_limit_remaining",
                       installation=str(INSTALLATION)) == int(last.response_headers["X-RateLimit-Remaining"])


async def test_each_answer_of_the_webhook_is_counted_and_only_githubs_events_name_a_label(bot):
    before = await scrape(bot.client)
    body = as_bytes(payloads.labeled_issue(label="bug", installation_id=INSTALLATION))
    headers = delivery_headers("issues", body, SECRET)
    assert (await bot.client.post("/webhooks", data=body, headers=headers)).status == 202
    assert (await bot.client.post("/webhooks", data=body, headers=headers)).status == 200  # the same delivery again
    forged = {**delivery_headers("made_up_event", body, "not-the-secret")}
    assert (await bot.client.post("/webhooks", data=body, headers=forged)).status == 401
    broken = b'{"action": '
    assert (await bot.client.post("/webhooks", data=broken, headers=delivery_headers("issues", broken, SECRET))).status == 400
    ping = b'{"zen": "Keep it logically awesome."}'
    assert (await bot.client.post("/webhooks", data=ping, headers=delivery_headers("ping", ping, SECRET))).status == 200
    after = await scrape(bot.client)

    for event, outcome in [("issues", "accepted"), ("issues", "duplicate"), ("none", "bad_signature"),
                           ("issues", "bad_request"), ("ping", "pong")]:
        assert after.since(before, "agentvine_webhook_deliveries_total", event=event, outcome=outcome) == 1, (event, outcome)
    assert not after.has("agentvine_webhook_deliveries_total", event="made_up_event", outcome="bad_signature")


async def test_what_the_worker_made_of_each_delivery_is_counted(bot):
    before = await scrape(bot.client)
    shapeless = payloads.labeled_issue(label="agentvine:bugfix", installation_id=INSTALLATION)
    del shapeless["issue"]
    await bot.deliver("issues", shapeless)
    issue = bot.github.add_issue(REPO, title="Twice", user="alice")
    signed = payloads.labeled_issue(label="agentvine:bugfix", issue=bot.github.issue(REPO, issue["number"]),
                                    repo=bot.repo, installation_id=INSTALLATION, sender="alice")
    await bot.deliver("issues", signed)
    await bot.deliver("issues", signed)  # the same signed body under a new delivery id: a replay
    await bot.deliver("issues", payloads.labeled_issue(label="bug", installation_id=INSTALLATION))
    await bot.service.worker.importer.import_new()
    after = await scrape(bot.client)

    for outcome in ("rejected", "job", "replayed", "ignored"):
        assert after.since(before, "agentvine_deliveries_imported_total", event="issues", outcome=outcome) == 1, outcome


@pytest.fixture
async def guarded(tmp_path, app_private_key, aiohttp_client):
    service = Service(make_settings(tmp_path, private_key=app_private_key, metrics_token="s3cret-metrics"))
    return await aiohttp_client(service.make_app())


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer s3cret-metricsX", "Basic s3cret-metrics",
                                           "s3cret-metrics", "Bearer s3cret-métrics"])
async def test_with_a_token_set_metrics_need_it(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.get("/metrics", headers=headers)
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await response.json() == {"error": UNAUTHORIZED}
    assert "agentvine_" not in await response.text()


async def test_with_the_token_metrics_are_served(guarded):
    page = await scrape(guarded, token="s3cret-metrics")
    assert page.has("agentvine_jobs", state="queued")
    assert (await guarded.get("/metrics", headers={"Authorization": "bearer s3cret-metrics"})).status == 200


async def test_without_a_token_set_metrics_are_reachable(bot):
    assert (await scrape(bot.client)).has("agentvine_jobs", state="succeeded")


async def test_serve_answers_with_what_its_worker_process_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTVINE_METRICS_TOKEN", "serve-token")
    async with running_fake(tmp_path) as github:
        arrange_github(github)
        serve, url = await start_serve(tmp_path, github, stderr=asyncio.subprocess.DEVNULL)
        folder = tmp_path / "data" / "metrics"
        try:
            async with aiohttp.ClientSession(base_url=url) as http:
                worker = await _worker_pid(http)
                issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
                body = as_bytes(payloads.labeled_issue(
                    label="agentvine:bugfix", issue=github.issue(REPO, issue["number"]),
                    repo=github.render_repository(github.repo(REPO)), installation_id=INSTALLATION, sender="alice"))
                async with http.post("/webhooks", data=body, headers=delivery_headers("issues", body, SECRET)) as response:
                    assert response.status == 202
                assert (await http.get("/metrics")).status == 401

                page = await _scrape_until(http, lambda p: p.value(
                    "agentvine_job_transitions_total", worker="bugfix", state="acknowledged") == 1
                    and sum(github_requests(Scrape(""), p).values()) == len(github.calls))
                # The web process counted the delivery; the worker process imported it, called GitHub, moved the job.
                assert page.value("agentvine_webhook_deliveries_total", event="issues", outcome="accepted") == 1
                assert page.value("agentvine_deliveries_imported_total", event="issues", outcome="job") == 1
                requests = github_requests(Scrape(""), page)
                assert sum(requests.values()) == len(github.calls) > 0
                assert requests["POST /repos/{owner}/{repo}/check-runs", "201"] == 1
                assert page.value("agentvine_jobs", state="acknowledged") == 1
                assert page.value("agentvine_queue_depth", stage="run") == 1
                assert (folder / f"gauge_livemostrecent_{worker}.db").exists()

                # A worker that dies is replaced: what it counted stays, its live gauges go.
                os.kill(worker, signal.SIGKILL)
                replaced = await _worker_pid(http, other_than=worker, timeout=30)
                page = await _scrape_until(http, lambda p: p.value("agentvine_worker_restarts_total") == 1)
                assert github_requests(Scrape(""), page) == requests
                assert page.value("agentvine_job_transitions_total", worker="bugfix", state="acknowledged") == 1
                assert not (folder / f"gauge_livemostrecent_{worker}.db").exists()
                await _scrape_until(http, lambda p: (folder / f"gauge_livemostrecent_{replaced}.db").exists()
                                    and p.value("agentvine_queue_depth", stage="run") == 1)
        finally:
            serve.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(serve.wait(), 30) == 0
        github.assert_no_violations()


async def _worker_pid(http: aiohttp.ClientSession, *, other_than: int | None = None, timeout: float = 20) -> int:
    found: list[int] = []

    async def up() -> bool:
        try:
            async with http.get("/health") as response:
                pid = (await response.json()).get("worker_pid") if response.status == 200 else None
        except aiohttp.ClientError:
            return False
        if pid and pid != other_than and process_exists(pid):
            found.append(pid)
        return bool(found)

    await wait_for(up, timeout)
    return found[0]


async def _scrape_until(http: aiohttp.ClientSession, done) -> Scrape:
    pages: list[Scrape] = []

    async def check() -> bool:
        async with http.get("/metrics", headers={"Authorization": "Bearer serve-token"}) as response:
            assert response.status == 200
            pages.append(Scrape(await response.text()))
        return done(pages[-1])

    await wait_for(check)
    return pages[-1]
