"""A repository's `egress` keys on GitHub: a malformed entry, or one beyond the operator's list, is a
clear config error on the issue and in the check run, and nothing runs; a good one is what the job
runs with."""

from __future__ import annotations

from app.domain.job import JobState
from tests.pipeline.test_acknowledge import bot_comments, failed_with_config
from tests.support.harness import REPO, running_agentvine


async def test_a_malformed_egress_entry_is_reported_on_github(bot, github):
    _, comment = await failed_with_config(bot, github, "egress:\n  allow: ['https://pypi.org/simple']\n")
    line = "- `egress.allow.0`: 'https://pypi.org/simple' is not an allow-list entry: write a host name such as pypi.org"
    assert line in comment["body"]
    (run,) = github.check_runs_for(REPO)
    assert run["conclusion"] == "failure" and "`egress.allow.0`" in run["output"]["summary"]


async def test_a_host_beyond_the_operators_list_is_reported_on_github(bot, github):
    _, comment = await failed_with_config(bot, github, "egress: {allow: [pypi.org], during: run}\n")
    assert ("- `egress.allow.0`: pypi.org is not covered by the operator's egress allow-list "
            "(empty; AGENTVINE_EGRESS_ALLOW)") in comment["body"]


async def test_a_bad_egress_phase_is_reported_on_github(bot, github):
    _, comment = await failed_with_config(bot, github, "egress: {during: always}\n")
    assert "- `egress.during`: Input should be 'setup' or 'run'" in comment["body"]


async def test_the_job_runs_with_the_allow_list_the_operator_covers(github, tmp_path):
    github.push_files(REPO, "main", {".github/agentvine.yml": "egress: {allow: [PyPI.org, files.pythonhosted.org]}\n"})
    issue = github.add_issue(REPO, title="x", user="alice")
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0,
                                 egress_allow="pypi.org,*.pythonhosted.org") as bot:
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle()
        job = bot.job(answer["jobs"][0])
    assert job.state is JobState.ACKNOWLEDGED, job.reason
    assert (job.run.egress_allow, job.run.egress_during) == (["pypi.org", "files.pythonhosted.org"], "setup")
    assert bot_comments(github, issue["number"])  # the tracking comment, and no config error
