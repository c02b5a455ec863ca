"""A stage that fails: the job ends `failed`, and what people see says so without the internal text."""

from __future__ import annotations

from app.domain.job import JobState
from app.pipeline.failure import fail_job
from app.pipeline.present import texts
from tests.support.harness import REPO

SECRET_TEXT = "token ghs_0123456789 in /srv/agentvine/jobs/x/git"


async def test_an_internal_error_is_named_but_its_text_stays_in_the_log(bot, github):
    issue = github.add_issue(REPO, title="Restructure the parser", user="alice")
    answer = await bot.label(issue["number"], "agentvine:refactor")  # waits for approval, with a check run
    await bot.settle()
    job = bot.job(answer["jobs"][0])

    failed = await fail_job(bot.service.worker.context(job), RuntimeError(SECRET_TEXT))
    assert failed.state is JobState.FAILED
    assert failed.reason == texts.INTERNAL_ERROR.format(kind="RuntimeError", job_id=job.id)
    run = next(r for r in github.check_runs if r["id"] == job.check_run_id)
    assert run["conclusion"] == "failure" and "RuntimeError" in run["output"]["summary"]
    page = await (await bot.client.get(f"/jobs/{job.id}")).text()
    for shown in (str(run), page, str(bot.service.store.events(job.id))):
        assert "ghs_0123456789" not in shown and "/srv/agentvine" not in shown
