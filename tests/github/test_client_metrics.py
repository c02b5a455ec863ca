"""Every request to GitHub is counted by operation (the route template) and status, its answer's rate limit
by installation: against the GitHub fake, and against an address where nothing answers."""

from __future__ import annotations

import pytest

from app.github.client import GitHubClients, operation
from app.github.ops import RepoOps
from app.pipeline.context import STEP_PERMISSIONS
from tests.support.harness import INSTALLATION, REPO
from tests.support.metrics import here

COMMENTS = "GET /repos/{owner}/{repo}/issues/{issue_number}/comments"
TOKENS = "POST /app/installations/{installation_id}/access_tokens"


@pytest.fixture
async def clients(github):
    clients = GitHubClients(app_id=github.app_id, private_key_pem=github.private_key_pem, base_url=github.url)
    yield clients
    await clients.close()


def test_an_operation_is_its_method_and_template_without_the_query():
    assert operation("GET", "/repos/{owner}/{repo}/contents/{+path}{?ref}") == "GET /repos/{owner}/{repo}/contents/{+path}"
    assert operation("GET", "https://api.github.com/repositories/1/issues?page=2") == "GET other"


async def test_the_pages_of_a_listing_count_under_its_template(github, clients):
    issue = github.add_issue(REPO, title="Busy", user="alice")
    for i in range(31):  # GitHub's pages hold 30 by default: two pages
        github.add_comment(REPO, issue["number"], body=f"comment {i}", user="alice")
    ops = RepoOps(clients.for_repository(INSTALLATION, "hello", STEP_PERMISSIONS["acknowledge"]), "octo-org", "hello")
    before = here()
    assert len([c async for c in ops.comments(issue["number"])]) == 31
    after = here()
    assert after.since(before, "agentvine_github_requests_total", operation=COMMENTS, status="200") == 2
    assert after.since(before, "agentvine_github_requests_total", operation="GET other", status="200") == 0
    assert after.since(before, "agentvine_github_requests_total", operation=TOKENS, status="201") == 1
    remaining = github.calls[-1].response_headers["X-RateLimit-Remaining"]
    assert after.value("agentvine_github_rate_limit_remaining", installation=str(INSTALLATION)) == int(remaining)
    token_call = next(c for c in github.calls if c.operation_id == "apps/create-installation-access-token")
    assert int(token_call.response_headers["X-RateLimit-Remaining"]) == after.value(
        "agentvine_github_rate_limit_remaining", installation="app")


async def test_a_request_that_gets_no_answer_counts_as_an_error(app_private_key):
    clients = GitHubClients(app_id=1, private_key_pem=app_private_key, base_url="http://127.0.0.1:9")
    clients.api.max_attempts = 2

    async def no_wait(_seconds: float) -> None:
        return None

    clients.api.sleep = no_wait
    before = here()
    try:
        with pytest.raises(OSError):
            await clients.for_installation(7).getitem("/repos/{owner}/{repo}", {"owner": "o", "repo": "r"})
    finally:
        await clients.close()
    assert here().since(before, "agentvine_github_requests_total", operation=TOKENS, status="error") == 2
