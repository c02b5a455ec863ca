"""Opening the job's pull request (app/pipeline/change.py), against the GitHub fake."""

from __future__ import annotations

import pytest

from app.domain.job import Job, Outcome, Trigger
from app.pipeline.change import open_or_update_pull
from tests.support.harness import INSTALLATION, REPO


def supervised_job(bot, github, *, draft_pulls: bool) -> Job:
    github.repo(REPO).draft_pulls = draft_pulls
    issue = github.add_issue(REPO, title="Tabs", user="alice")
    github.push_files(REPO, "agentvine/bugfix-1", {"hello.py": "print('tabs')\n"})
    job = Job(delivery_id="d", installation_id=INSTALLATION, repo=REPO, issue_number=issue["number"], requester="alice",
              issue_title="Tabs", trigger=Trigger(kind="label", label="agentvine:bugfix"), worker="bugfix",
              level="supervised", branch="agentvine/bugfix-1")
    return job


@pytest.mark.parametrize("draft_pulls", [True, False])
async def test_a_supervised_pull_is_a_draft_where_the_repository_has_drafts(bot, github, draft_pulls):
    """Without draft pull requests (GitHub Free private repositories) GitHub answers 422 "Draft pull
    requests are not supported": the pull request is opened as a normal one, not taken for one that exists."""
    ctx = bot.service.worker.context(supervised_job(bot, github, draft_pulls=draft_pulls), "run")
    pull, created = await open_or_update_pull(ctx, Outcome(conclusion="success", title="", summary="Fixed."))
    assert created and github.pull(REPO, pull["number"])["draft"] is draft_pulls
    assert [c.status for c in github.calls if c.method == "POST" and c.path.endswith("/pulls")] == (
        [201] if draft_pulls else [422, 201])
    github.assert_no_violations()


async def test_the_fake_answers_a_draft_where_drafts_are_unsupported_as_github_does(bot, github):
    job = supervised_job(bot, github, draft_pulls=False)
    with pytest.raises(Exception) as info:
        await bot.service.worker.context(job, "run").github.create_pull(title="t", head=job.branch, base="main", body="", draft=True)
    assert info.value.status_code == 422 and "Draft pull requests are not supported in this repository." in str(info.value)
