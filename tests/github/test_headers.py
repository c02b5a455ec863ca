"""Every REST call AgentVine makes names the API version it is written for, and GitHub's media type."""

import aiohttp
import pytest

from tests.support.harness import REPO


async def test_every_rest_call_sends_the_api_version_and_accept(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    calls = github.calls
    assert {c.operation_id for c in calls} >= {"apps/create-installation-access-token", "issues/create-comment",
                                               "checks/create", "repos/get-collaborator-permission-level"}
    sent = [{k.lower(): v for k, v in c.request_headers.items()} for c in calls]
    assert {(h.get("x-github-api-version"), h.get("accept")) for h in sent} == {("2022-11-28", "application/vnd.github+json")}


@pytest.mark.parametrize("version, status", [("2022-11-28", 200), ("2019-01-01", 400), (None, 200)])
async def test_the_fake_refuses_an_api_version_github_does_not_support(github, version, status):
    headers = {"Accept": "application/vnd.github+json", **({"X-GitHub-Api-Version": version} if version else {})}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{github.url}/repos/{REPO}", headers=headers) as response:
            pass
    if status == 200:  # GitHub's own defaults: a missing header is 2022-11-28
        assert response.status != 400
    else:
        assert response.status == 400
        assert any("X-GitHub-Api-Version" in v for v in github.violations)
        github.violations.clear()  # the one this test asked for
