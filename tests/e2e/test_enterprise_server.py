"""GitHub Enterprise Server: its REST API under https://HOST/api/v3, git and the web pages at the
host's root. A whole job runs against the fake mounted that way, and nothing it writes points at
github.com."""

from __future__ import annotations

import json

import pytest

from app.domain.job import JobState
from tests.e2e.test_pull_request import NEW_FILE, SCRIPT
from tests.support.harness import REPO, end_to_end

pytestmark = [pytest.mark.docker, pytest.mark.claude]


async def test_a_job_on_github_enterprise_server_links_to_its_own_host(tmp_path, sandbox_image):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT, api_prefix="/api/v3") as (bot, _model):
        github = bot.github
        assert bot.service.settings.github_api_url == f"{github.url}/api/v3"
        issue = github.add_issue(REPO, title="Parser rejects tabs", body="Splitting fails.", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])

        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
        (pull,) = github.pulls
        assert pull["html_url"].startswith(f"{github.url}/{REPO}/pull/")
        assert github.read_file(REPO, job.branch, "fields.py") == NEW_FILE  # pushed to the host's root
        # Every REST call went under /api/v3 (the fake records a violation for one that did not, and
        # end_to_end asserts there is none); these are the calls it answered.
        assert {"issues/create-comment", "checks/create", "pulls/create"} <= {c.operation_id for c in github.calls}
        # What AgentVine wrote on the server: links to its pull request, never to github.com.
        comments = [c["body"] for c in github.comments_on(REPO, issue["number"]) if c["user"]["type"] == "Bot"]
        (run,) = github.check_runs_for(REPO)
        written = json.dumps([comments, pull["body"], run["output"], run["details_url"]])
        assert pull["html_url"] in comments[0]
        assert "github.com" not in written
        commit = github.repo(REPO).git.git("log", "-1", "--format=%B", job.branch).decode()
        assert "Co-authored-by: alice <" in commit and "@users.noreply.127.0.0.1>" in commit
