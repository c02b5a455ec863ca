"""The job views over HTTP: the operator's list (token, filters, pages, JSON and HTML) and a job's page,
which shows no issue text to anyone."""

from __future__ import annotations

import re

import pytest

from app.domain.job import JobState
from app.store import SQLiteJobStore
from app.web import job_pages, operator_access
from app.web.live import LiveOptions
from app.web.server import make_web_app
from tests.support.env import make_settings
from tests.support.jobs import MARKER, OPERATOR_TOKEN, add_job, add_job_full_of_issue_text, events_only, read_frames

HTML = {"Accept": "text/html"}
BEARER = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
FAST = LiveOptions(poll_s=0.05, heartbeat_s=0.3, check_s=0.05)


async def start(aiohttp_client, tmp_path, private_key, **settings):
    settings = make_settings(tmp_path, private_key=private_key, **settings)
    store = SQLiteJobStore(settings.database_path)
    client = await aiohttp_client(make_web_app(settings, store, live=FAST))
    client.store = store
    return client


@pytest.fixture
async def client(aiohttp_client, tmp_path, app_private_key):
    client = await start(aiohttp_client, tmp_path, app_private_key, operator_token=OPERATOR_TOKEN)
    yield client
    client.store.close()


async def test_without_the_token_setting_the_list_is_refused_never_open(aiohttp_client, tmp_path, app_private_key):
    client = await start(aiohttp_client, tmp_path, app_private_key)
    for headers in ({}, BEARER, HTML):
        response = await client.get("/jobs", headers=headers)
        assert response.status == 403
        assert operator_access.NOT_CONFIGURED in await response.text()
    response = await client.get(f"/jobs?token={OPERATOR_TOKEN}", headers=HTML, allow_redirects=False)
    assert response.status == 403 and "Set-Cookie" not in response.headers
    client.store.close()


async def test_a_short_token_setting_turns_the_list_off(aiohttp_client, tmp_path, app_private_key):
    client = await start(aiohttp_client, tmp_path, app_private_key, operator_token="short")
    response = await client.get("/jobs", headers={"Authorization": "Bearer short"})
    assert response.status == 403 and (await response.json())["error"] == operator_access.TOO_SHORT
    client.store.close()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789abc", f"Basic {OPERATOR_TOKEN}",
                                           f"Bearer {OPERATOR_TOKEN}x", "Bearer "])
async def test_a_missing_or_wrong_token_is_refused(client, authorization):
    response = await client.get("/jobs", headers={"Authorization": authorization} if authorization else {})
    assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert (await response.json())["error"] == operator_access.REFUSED


async def test_the_token_lists_jobs_newest_first(client):
    older, newer = add_job(client.store, 1), add_job(client.store, 2)
    response = await client.get("/jobs", headers=BEARER)
    assert response.status == 200
    body = await response.json()
    assert [j["id"] for j in body["jobs"]] == [newer.id, older.id] and body["next"] is None
    assert body["jobs"][0] | {"repo": "octo-org/hello", "issue_number": 2, "state": "queued"} == body["jobs"][0]
    assert "Link" not in response.headers


async def test_pages_follow_the_next_link_to_the_end(client):
    jobs = [add_job(client.store, n) for n in range(7)]
    seen, url = [], "/jobs?per_page=3"
    while url:
        response = await client.get(url, headers=BEARER)
        body = await response.json()
        assert len(body["jobs"]) <= 3
        seen += [j["id"] for j in body["jobs"]]
        if body["next"]:
            assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        url = body["next"]
    assert seen == [j.id for j in reversed(jobs)]


async def test_filters_by_repository_state_and_worker(client):
    store = client.store
    add_job(store, 1)
    add_job(store, 2, repo="octo-org/other")
    add_job(store, 3, worker="review", state=JobState.RUNNING)
    add_job(store, 4, state=JobState.FAILED)

    async def numbers(query: str) -> list[int]:
        response = await client.get(f"/jobs?{query}", headers=BEARER)
        assert response.status == 200, await response.text()
        return [j["issue_number"] for j in (await response.json())["jobs"]]

    assert await numbers("repo=octo-org/other") == [2]
    assert await numbers("worker=review") == [3]
    assert await numbers("state=failed,running") == [4, 3]
    assert await numbers("state=failed&state=queued&repo=octo-org/hello") == [4, 1]
    assert await numbers("repo=&state=&worker=") == [4, 3, 2, 1]  # an HTML form's empty fields


@pytest.mark.parametrize("query", ["per_page=0", "per_page=101", "per_page=ten", "state=nope", "repo=no-slash",
                                   "repo=a/b/c", "worker=%3Cscript%3E", "cursor=garbage", "cursor=" + "A" * 300])
async def test_a_bad_query_is_a_400_that_names_it(client, query):
    response = await client.get(f"/jobs?{query}", headers=BEARER)
    assert response.status == 400
    assert query.split("=")[0] in (await response.json())["error"]


async def test_the_browser_signs_in_once_and_the_token_leaves_the_address(client):
    job = add_job(client.store, 1)
    response = await client.get(f"/jobs?repo=octo-org/hello&token={OPERATOR_TOKEN}", headers=HTML, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/jobs?repo=octo-org/hello"
    cookie = response.headers["Set-Cookie"]
    assert all(part in cookie for part in ("HttpOnly", "SameSite=Strict", "Path=/jobs", "Max-Age=43200"))
    assert OPERATOR_TOKEN not in cookie and "Secure" not in cookie  # the service here is plain http
    page = await client.get("/jobs?repo=octo-org/hello", headers=HTML)  # the client kept the cookie
    assert page.status == 200 and f"/jobs/{job.id}" in await page.text()
    client.session.cookie_jar.clear()
    assert (await client.get("/jobs", headers=HTML)).status == 401
    assert (await client.get("/jobs", headers=HTML, cookies={"agentvine_operator": OPERATOR_TOKEN})).status == 401
    wrong = await client.get("/jobs?token=wrong", headers=HTML, allow_redirects=False)
    assert wrong.status == 401 and "Set-Cookie" not in wrong.headers


async def test_the_cookie_is_secure_behind_https(aiohttp_client, tmp_path, app_private_key):
    client = await start(aiohttp_client, tmp_path, app_private_key, operator_token=OPERATOR_TOKEN,
                         public_url="https://agentvine.example")
    response = await client.get(f"/jobs?token={OPERATOR_TOKEN}", headers=HTML, allow_redirects=False)
    assert "Secure" in response.headers["Set-Cookie"]
    client.store.close()


async def test_the_html_list_has_filters_rows_and_an_older_link(client):
    for n in range(3):
        add_job(client.store, n, state=JobState.FAILED if n == 1 else JobState.QUEUED)
    page = await client.get("/jobs?per_page=2&state=failed&state=queued", headers={**HTML, **BEARER})
    text = await page.text()
    assert page.headers["Content-Security-Policy"] == job_pages.CONTENT_SECURITY_POLICY
    assert text.count("<tr><td>") == 2 and "issue #2" in text and "issue #0" not in text
    assert "<option value='failed' selected>" in text and "<option value='queued' selected>" in text
    older = re.search(r"<a href='([^']+)' rel='next'>", text).group(1).replace("&amp;", "&")
    rest = await (await client.get(older, headers={**HTML, **BEARER})).text()
    assert "issue #0" in rest and job_pages.OLDER not in rest


async def test_the_list_links_only_http_urls(client):
    from app.domain.job import Outcome

    add_job(client.store, 1, outcome=Outcome(conclusion="success", title="t", pr_url="javascript:alert(1)"))
    add_job(client.store, 2, outcome=Outcome(conclusion="success", title="t", pr_url="https://gh.example/o/r/pull/2"))
    text = await (await client.get("/jobs", headers={**HTML, **BEARER})).text()
    assert "javascript:" not in text and "href='https://gh.example/o/r/pull/2'" in text


async def test_no_job_view_shows_issue_text(client):
    job = add_job_full_of_issue_text(client.store, 5)
    assert MARKER in job.model_dump_json() and MARKER in str(client.store.events(job.id))  # it is there to leak
    shown = []
    for headers in ({}, HTML):
        shown.append(await (await client.get(f"/jobs/{job.id}", headers=headers)).text())
        shown.append(await (await client.get("/jobs", headers={**headers, **BEARER})).text())
    stream = await client.get(f"/jobs/{job.id}/events")
    frames = await read_frames(stream)
    assert frames[-1].event == "end"
    shown.append(str(frames))
    for text in shown:
        assert MARKER.lower() not in text.lower()
    assert "octo-org/hello" in shown[1] and "octo-org/hello" not in shown[0]  # the repository: on the list only


async def test_a_job_page_needs_only_its_id(client):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    client.store.add_event(job.id, "progress")
    body = await (await client.get(f"/jobs/{job.id}")).json()
    assert body["job"]["id"] == job.id and [e["kind"] for e in body["events"]] == ["created", "progress"]
    assert body["events"][1]["seq"] > 0 and "repo" not in body["job"] and "issue_number" not in body["job"]
    page = await client.get(f"/jobs/{job.id}", headers=HTML)
    text = await page.text()
    assert f"AgentVine job <code>{job.id}</code>" in text and f"data-stream='/jobs/{job.id}/events?after=" in text
    for name, value in job_pages.SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert "src=" not in text and "http" not in text  # nothing from elsewhere
    for missing in ("/jobs/nope", "/jobs/nope/events", "/jobs/..%2Fetc"):
        assert (await client.get(missing)).status == 404


async def test_the_page_of_an_ended_job_opens_no_stream(client):
    job = add_job(client.store, 1, state=JobState.FAILED)
    text = await (await client.get(f"/jobs/{job.id}", headers=HTML)).text()
    assert "data-stream" not in text and "<script>" not in text and "The job has ended." in text


def test_the_policy_allows_exactly_the_page_s_own_script_and_style():
    import base64
    import hashlib

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    policy = job_pages.CONTENT_SECURITY_POLICY
    assert f"script-src 'sha256-{digest(job_pages.LIVE_SCRIPT)}';" in policy
    assert f"style-src 'sha256-{digest(job_pages.STYLE)}';" in policy
    assert policy.startswith("default-src 'none';") and "unsafe" not in policy


async def test_stream_frames_carry_only_shown_data(client):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    client.store.add_event(job.id, "agent_finished", exit_code=0, lines=10, branch="b")
    client.store.save_job(job.moved_to(JobState.FAILED, "x", conclusion="failure"), "failed", error="boom")
    frames = events_only(await read_frames(await client.get(f"/jobs/{job.id}/events")))
    assert [f.json["data"] for f in frames if f.event == "message"][1:] == [{"exit_code": 0}, {"state": "failed"}]
