"""Every way a run can go wrong ends in a clear terminal state, with a reason on GitHub and no
container left behind."""

from __future__ import annotations

import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]


async def run_one(bot, label="agentvine:bugfix"):
    issue = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice")
    answer = await bot.label(issue["number"], label)
    await bot.settle(timeout=180)
    job = bot.job(answer["jobs"][0])
    (run,) = bot.github.check_runs_for(REPO)
    return job, run


def config(text: str) -> dict[str, str]:
    return {"README.md": "# hello\n", ".github/agentvine.yml": text}


async def test_model_api_errors_fail_the_job(tmp_path, sandbox_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text="never sent")]) as (bot, model):
        model.inject_error(500, times=50)
        job, run = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.FAILED, "failure")
    assert job.outcome.title == texts.OUTCOME["model_error"] and "HTTP 500" in job.outcome.detail
    assert (run["conclusion"], run["output"]["title"]) == ("failure", texts.OUTCOME["model_error"])
    assert bot.github.pulls == []
    assert job_containers(docker_client, job) == []


async def test_max_turns_fails_the_job(tmp_path, sandbox_image, docker_client):
    script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": f"echo step {i}"})]) for i in range(5)]
    async with end_to_end(tmp_path, sandbox_image, script, files=config("workers: {bugfix: {max_turns: 2}}\n")) as (bot, _):
        job, run = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.FAILED, "failure")
    assert job.outcome.title == texts.OUTCOME["max_turns"] and "all 2 turns" in job.outcome.detail
    assert run["conclusion"] == "failure"
    assert job_containers(docker_client, job) == []


async def test_wall_clock_timeout_kills_the_container(tmp_path, sandbox_image, docker_client):
    script = [ScriptedTurn(text="thinking hard", delay_seconds=120)]
    async with end_to_end(tmp_path, sandbox_image, script, files=config("workers: {bugfix: {timeout_minutes: 0.05}}\n")) as (bot, _):
        job, run = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.FAILED, "timed_out")
    assert "3 minutes" not in job.outcome.detail and "0.05 minutes" in job.outcome.detail
    assert (run["conclusion"], run["output"]["title"]) == ("timed_out", texts.OUTCOME["timed_out"])
    assert job.outcome.figures.duration_s < 60
    assert job_containers(docker_client, job) == []


async def test_no_change_ends_neutral_without_a_pull_request(tmp_path, sandbox_image, docker_client):
    script = [ScriptedTurn(text="The parser already accepts tabs; nothing to change.")]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, _):
        job, run = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "neutral")
    assert (run["conclusion"], run["output"]["title"]) == ("neutral", texts.OUTCOME["no_changes"])
    assert "already accepts tabs" in run["output"]["summary"]
    assert bot.github.pulls == [] and job.branch not in bot.github.branches(REPO)
    assert job_containers(docker_client, job) == []


async def test_writing_a_workflow_is_refused(tmp_path, sandbox_image, docker_client):
    evil = ToolUse(name="Write", input={"file_path": "/workspace/.github/workflows/steal.yml", "content": "on: push\n"})
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(tool_uses=[evil]), ScriptedTurn(text="Done.")]) as (bot, _):
        job, run = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.FAILED, "failure")
    assert ".github/workflows/steal.yml" in job.outcome.detail and "not allowed" in job.outcome.detail
    assert (run["conclusion"], run["output"]["title"]) == ("failure", texts.OUTCOME["refused_paths"])
    assert job.branch not in bot.github.branches(REPO) and bot.github.pulls == []
    assert job_containers(docker_client, job) == []
