"""Each step's installation token reaches one repository, with only the permissions the step needs,
against the GitHub fake (which narrows tokens as GitHub does)."""

from __future__ import annotations

import gidgethub
import pytest

from app.domain.job import Job, RunSettings, Trigger
from app.github.client import GitHubClients
from app.github.ops import RepoOps
from app.pipeline.context import STEP_PERMISSIONS, step_permissions
from tests.support.harness import INSTALLATION, REPO

OTHER = "octo-org/other"


@pytest.fixture
async def clients(github):
    github.add_repo(OTHER, installation_id=INSTALLATION, files={"README.md": "other\n"})
    clients = GitHubClients(app_id=github.app_id, private_key_pem=github.private_key_pem, base_url=github.url)
    yield clients
    await clients.close()


async def test_a_steps_token_reaches_only_the_jobs_repository(github, clients):
    api = clients.for_repository(INSTALLATION, "hello", STEP_PERMISSIONS["acknowledge"])
    assert (await RepoOps(api, "octo-org", "hello").issue(github.add_issue(REPO, title="x", user="alice")["number"]))
    with pytest.raises(gidgethub.BadRequest) as refused:
        await RepoOps(api, "octo-org", "other").branch_head("main")  # another repository of the installation
    assert refused.value.status_code == 404  # GitHub hides what a token cannot see
    (request,) = [c for c in github.calls if c.operation_id == "apps/create-installation-access-token"]
    assert request.request_json == {"repositories": ["hello"], "permissions": STEP_PERMISSIONS["acknowledge"]}


async def test_a_steps_token_cannot_do_what_the_step_does_not(github, clients):
    issue = github.add_issue(REPO, title="x", user="alice")
    acknowledging = RepoOps(clients.for_repository(INSTALLATION, "hello", STEP_PERMISSIONS["acknowledge"]), "octo-org", "hello")
    with pytest.raises(gidgethub.BadRequest) as refused:
        await acknowledging.create_pull(title="x", head="main", base="main", body="", draft=False)  # pull_requests: read
    assert refused.value.status_code == 403
    await acknowledging.comment(issue["number"], "allowed: issues write")
    github.violations.clear()  # the 403 is the fake's answer, not a violation of the description


def test_only_a_run_that_may_change_workflows_asks_for_them():
    job = Job(delivery_id="d", installation_id=1, repo=REPO, issue_number=1, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"))
    run = RunSettings(prompt_template="", max_turns=1, timeout_minutes=1, max_cost_usd=1, allowed_tools=[],
                      allowed_paths=["**"], allow_workflow_changes=True, trigger_permission="write", memory="1g",
                      cpus=1, pids=10)
    assert "workflows" not in step_permissions(job, "run")
    assert step_permissions(job.model_copy(update={"run": run}), "run")["workflows"] == "write"
    assert "workflows" not in step_permissions(job.model_copy(update={"run": run}), "acknowledge")
