"""The job views in a real headless Chromium: a job's page follows its activity without a reload, under
its Content-Security-Policy, and the operator signs in to the list once."""

from __future__ import annotations

from app.domain.job import JobState
from app.store import SQLiteJobStore
from app.web.live import LiveOptions
from app.web.server import make_web_app
from tests.support.browser import chromium_path, headless_page
from tests.support.env import make_settings
from tests.support.jobs import OPERATOR_TOKEN, add_job

HOSTILE_KIND = "<img src=x onerror=document.title='owned'>"  # event data is job data: shown as text


async def test_a_job_page_shows_new_activity_live_and_the_list_signs_in(aiohttp_client, tmp_path, app_private_key):
    chromium_path()  # fails in CI, skips elsewhere, when there is no browser
    settings = make_settings(tmp_path, private_key=app_private_key, operator_token=OPERATOR_TOKEN)
    store = SQLiteJobStore(settings.database_path)
    client = await aiohttp_client(make_web_app(settings, store, live=LiveOptions(poll_s=0.1)))
    job = add_job(store, 1, state=JobState.RUNNING)
    store.add_event(job.id, "workspace")
    try:
        async with headless_page(tmp_path / "chromium") as page:
            await page.open(str(client.make_url(f"/jobs/{job.id}")))
            await page.wait_for("document.getElementById('live').textContent.startsWith('Live')")
            assert await page.evaluate("document.querySelectorAll('#events tr').length") == 2
            await page.evaluate("window.stillTheSamePage = true")

            store.add_event(job.id, HOSTILE_KIND)  # as the worker process would
            await page.wait_for("document.querySelectorAll('#events tr').length === 3")
            assert await page.evaluate("document.querySelector('#events tr:last-child td:nth-child(2)').textContent") \
                == HOSTILE_KIND
            assert await page.evaluate("document.querySelectorAll('#events img').length") == 0

            store.save_job(job.moved_to(JobState.SUCCEEDED, "Opened a pull request", conclusion="success"), "finished")
            await page.wait_for("document.querySelector(\"td[data-field='state']\").textContent === 'succeeded'")
            await page.wait_for("document.getElementById('live').textContent === 'The job has ended.'")
            assert await page.evaluate("document.querySelector(\"td[data-field='conclusion']\").textContent") == "success"
            assert await page.evaluate("window.stillTheSamePage === true && document.title !== 'owned'")
            assert page.problems() == []  # no CSP violation, no script error

            await page.open(str(client.make_url(f"/jobs?token={OPERATOR_TOKEN}")))
            assert await page.evaluate("location.pathname + location.search") == "/jobs"  # the token left the address
            assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
            assert job.id[:12] in await page.evaluate("document.getElementById('jobs').textContent")
            assert page.problems() == []
    finally:
        store.close()
