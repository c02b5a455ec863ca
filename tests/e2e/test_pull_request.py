"""A labelled issue becomes a pull request: the scripted model makes the real Claude Code CLI
write a file in the sandbox; AgentVine commits, pushes over git smart HTTP, opens the PR."""

from __future__ import annotations

import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

NEW_FILE = "def split_fields(line):\n    return line.split()  # any whitespace, tabs included\n"
SCRIPT = [
    ScriptedTurn(text="I'll add a helper that splits on any whitespace.",
                 tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/fields.py", "content": NEW_FILE})]),
    ScriptedTurn(text="Added `fields.py` with `split_fields`, which splits on tabs and spaces alike. cc @mona"),
]


async def test_labelled_issue_becomes_a_pull_request(tmp_path, sandbox_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT) as (bot, model):
        github = bot.github
        issue = github.add_issue(REPO, title="Parser rejects tabs", body="Splitting `a\\tb` fails.", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])

        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
        # The pull request: on the job's branch, draft (bugfix is supervised), closing the issue.
        (pull,) = github.pulls
        assert pull["head"]["ref"] == job.branch == f"agentvine/bugfix-{issue['number']}-parser-rejects-tabs"
        assert pull["base"]["ref"] == "main" and pull["draft"] is True
        assert f"Closes #{issue['number']}" in pull["body"]
        assert "`fields.py`" in pull["body"] and "splits on tabs" in pull["body"]
        assert "cc @\u200bmona" in pull["body"] and "@mona" not in pull["body"]  # the agent's text pings no one
        assert job.outcome.pr_number == pull["number"] and job.outcome.files == ["fields.py"]
        # The file the model wrote, pushed for real.
        assert github.read_file(REPO, job.branch, "fields.py") == NEW_FILE
        commit = github.repo(REPO).git.git("log", "-1", "--format=%an%n%B", job.branch).decode()
        assert commit.startswith("agentvine[bot]\n")
        assert "Co-authored-by: alice <" in commit
        # The check run ends `success` with the figures.
        (run,) = github.check_runs_for(REPO)
        assert (run["status"], run["conclusion"]) == ("completed", "success")
        assert run["output"]["title"] == texts.OUTCOME["pr_opened"].format(pr_number=pull["number"])
        assert "2 turns" in run["output"]["summary"] and "tokens" in run["output"]["summary"]
        # The tracking comment shows the result.
        (comment,) = [c for c in github.comments_on(REPO, issue["number"]) if c["user"]["type"] == "Bot"]
        assert "**Done**" in comment["body"] and pull["html_url"] in comment["body"]
        assert "- [x] Open a pull request" in comment["body"]
        assert "Wrote `fields.py`" in comment["body"]
        # The model saw the issue, and the tool result of its Write.
        first = model.main_requests[0]
        assert "Parser rejects tabs" in str(first["messages"][0])
        assert len(model.tool_results()) == 1
        assert job.session_id
    assert job_containers(docker_client, job) == []


QUICK = ".github/agentvine.yml", "labels:\n  'agentvine:quick': {worker: feature, level: autonomous}\n"


async def test_autonomous_job_opens_a_ready_pull_request_and_a_second_job_reuses_it(tmp_path, sandbox_image):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT + SCRIPT, files={"README.md": "# hello\n", QUICK[0]: QUICK[1]}) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Split fields", user="alice")
        first = await bot.label(issue["number"], "agentvine:quick")
        await bot.settle(timeout=180)
        (pull,) = bot.github.pulls
        assert pull["draft"] is False  # autonomous: ready for review
        second = await bot.label(issue["number"], "agentvine:quick")
        await bot.settle(timeout=180)
        assert len(bot.github.pulls) == 1  # the branch's PR is reused, never duplicated
        job1, job2 = bot.job(first["jobs"][0]), bot.job(second["jobs"][0])
        assert job1.outcome.title == f"Opened #{pull['number']}"
        assert job2.outcome.title == f"Updated #{pull['number']}"
        assert job2.branch == job1.branch


async def test_changes_outside_the_allowed_paths_are_refused(tmp_path, sandbox_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Document fields", user="alice")
        answer = await bot.label(issue["number"], "agentvine:docs")  # docs may change *.md only
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])
        assert (job.state, job.conclusion) == (JobState.FAILED, "failure")
        assert "`fields.py`: outside the worker's allowed paths" in job.outcome.detail
        assert job.branch not in bot.github.branches(REPO) and bot.github.pulls == []
    assert job_containers(docker_client, job) == []
