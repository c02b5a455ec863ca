"""The fake's Checks API for a repository's CI: other Apps' check runs in suites of their own, listing a
ref's runs (checks/list-for-ref) and a run's annotations (checks/list-annotations), each request and
answer validated against GitHub's OpenAPI description, and the check suite a webhook carries."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from gidgethub import BadRequest
from gidgethub import apps as gh_apps
from gidgethub.aiohttp import GitHubAPI

from app.fakes.github import FakeGitHub
from app.fakes.github.testing import running_fake

REPO = "octo-org/hello"
INSTALLATION = 77
BRANCH = "agentvine/bugfix-1-x"
ANNOTATION = {"path": "src/app.py", "start_line": 2, "end_line": 2, "annotation_level": "failure",
              "message": "assert 1 == 2"}


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    async with running_fake(tmp_path) as fake:
        fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
        fake.add_repo(REPO, installation_id=INSTALLATION, files={"README.md": "# hello\n", "src/app.py": "x = 1\n"})
        yield fake
        fake.assert_no_violations()


@pytest.fixture
async def gh(fake: FakeGitHub) -> AsyncIterator[GitHubAPI]:
    async with aiohttp.ClientSession() as session:
        app_client = GitHubAPI(session, "agentvine-test", base_url=fake.url)
        token = await gh_apps.get_installation_access_token(
            app_client, installation_id=str(INSTALLATION), app_id=str(fake.app_id), private_key=fake.private_key_pem)
        yield GitHubAPI(session, "agentvine-test", oauth_token=token["token"], base_url=fake.url)


async def test_a_refs_runs_are_every_apps_latest_run_of_each_name(fake: FakeGitHub, gh: GitHubAPI) -> None:
    sha = fake.push_files(REPO, BRANCH, {"src/app.py": "x = 2\n"})
    first = fake.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    again = fake.add_ci_check_run(REPO, sha, "tests", status="in_progress")  # a re-run: the same name again
    lint = fake.add_ci_check_run(REPO, sha, "lint", conclusion="success", app="circleci")
    ours = await gh.post(f"/repos/{REPO}/check-runs", data={"name": "AgentVine · bugfix", "head_sha": sha})
    assert first["check_suite"]["id"] == again["check_suite"]["id"] != lint["check_suite"]["id"] != ours["check_suite"]["id"]
    assert first["app"]["slug"] == "github-actions" and first["app"]["id"] == 15368

    latest = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs")
    assert latest["total_count"] == 3
    assert {r["id"] for r in latest["check_runs"]} == {again["id"], lint["id"], ours["id"]}
    everything = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs?filter=all")
    assert everything["total_count"] == 4
    # A branch names its tip, with or without heads/; filters narrow it as GitHub's do.
    for ref in (BRANCH, f"heads/{BRANCH}"):
        assert (await gh.getitem(f"/repos/{REPO}/commits/{ref}/check-runs"))["total_count"] == 3
    completed = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs?status=completed")
    assert [r["name"] for r in completed["check_runs"]] == ["lint"]
    named = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs?check_name=tests&filter=all")
    assert named["total_count"] == 2
    by_app = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs?app_id={fake.app_id}")
    assert [r["id"] for r in by_app["check_runs"]] == [ours["id"]]


async def test_the_listing_pages_as_github_does(fake: FakeGitHub, gh: GitHubAPI) -> None:
    sha = fake.head_sha(REPO, "main")
    for n in range(5):
        fake.add_ci_check_run(REPO, sha, f"job-{n}", conclusion="success")
    page = await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs?per_page=2")
    assert page["total_count"] == 5 and len(page["check_runs"]) == 2
    every = [r["name"] async for r in gh.getiter(f"/repos/{REPO}/commits/{sha}/check-runs?per_page=2",
                                                   iterable_key="check_runs")]
    assert every == [f"job-{n}" for n in range(5)]


async def test_an_unknown_ref_is_refused(fake: FakeGitHub, gh: GitHubAPI) -> None:
    with pytest.raises(BadRequest) as raised:
        await gh.getitem(f"/repos/{REPO}/commits/{'0' * 40}/check-runs")
    assert raised.value.status_code == 422 and "No commit found for SHA" in str(raised.value)


async def test_a_runs_annotations_are_what_its_app_sent_across_updates(fake: FakeGitHub, gh: GitHubAPI) -> None:
    sha = fake.push_files(REPO, BRANCH, {"src/app.py": "x = 2\n"})
    run = fake.add_ci_check_run(REPO, sha, "tests", output={"title": "1 failed", "summary": "tests failed",
                                                             "annotations": [ANNOTATION]})
    more = {**ANNOTATION, "start_line": 1, "end_line": 1, "annotation_level": "warning", "title": "style",
            "message": "line too long", "raw_details": "E501", "start_column": 1, "end_column": 4}
    fake.finish_ci_check_run(run["id"], "failure", output={"title": "1 failed", "summary": "s", "text": "log",
                                                            "annotations": [more]})
    found = await gh.getitem(f"/repos/{REPO}/check-runs/{run['id']}/annotations")
    assert [a["message"] for a in found] == ["assert 1 == 2", "line too long"]
    assert found[0]["blob_href"].endswith(f"/{REPO}/blob/{sha}/src/app.py")
    assert found[0]["raw_details"] is None and found[1]["start_column"] == 1
    (listed,) = (await gh.getitem(f"/repos/{REPO}/commits/{sha}/check-runs"))["check_runs"]
    assert listed["conclusion"] == "failure" and listed["output"]["annotations_count"] == 2
    assert listed["output"]["text"] == "log"
    paged = [a["message"] async for a in gh.getiter(f"/repos/{REPO}/check-runs/{run['id']}/annotations?per_page=1")]
    assert paged == ["assert 1 == 2", "line too long"]
    with pytest.raises(BadRequest) as raised:
        await gh.getitem(f"/repos/{REPO}/check-runs/999/annotations")
    assert raised.value.status_code == 404


async def test_github_refuses_what_it_would_refuse_of_a_ci_app(fake: FakeGitHub) -> None:
    sha = fake.head_sha(REPO, "main")
    with pytest.raises(ValueError, match="No commit found"):
        fake.add_ci_check_run(REPO, "1" * 40, "tests", conclusion="failure")
    with pytest.raises(ValueError, match="stale"):
        fake.add_ci_check_run(REPO, sha, "tests", conclusion="stale")


async def test_a_check_suite_follows_its_runs_and_names_the_pull_request(fake: FakeGitHub) -> None:
    sha = fake.push_files(REPO, BRANCH, {"src/app.py": "x = 2\n"})
    pull = fake.add_pull(REPO, head=BRANCH, base="main", title="X", user="agentvine[bot]")
    assert fake.check_suite(REPO, sha)["status"] == "queued"
    tests = fake.add_ci_check_run(REPO, sha, "tests")
    fake.add_ci_check_run(REPO, sha, "lint", conclusion="success")
    suite = fake.check_suite(REPO, sha)
    assert (suite["status"], suite["conclusion"]) == ("in_progress", None)
    fake.finish_ci_check_run(tests["id"], "failure")
    suite = fake.check_suite(REPO, sha)
    assert (suite["status"], suite["conclusion"]) == ("completed", "failure")
    assert suite["head_branch"] == BRANCH and suite["app"]["slug"] == "github-actions"
    assert [p["number"] for p in suite["pull_requests"]] == [pull["number"]]
    assert suite["id"] == tests["check_suite"]["id"]
