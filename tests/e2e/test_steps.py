"""Setup and verify commands, end to end: real Docker, the real CLI, the GitHub fake. The scripted agent
first writes a wrong fix, the verify command fails, the resumed session fixes it, verify passes and the
pull request says so; a failing, endless or very talkative setup ends clearly, nothing left running."""

from __future__ import annotations

import pytest

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from app.pipeline.present import texts
from tests.support.harness import REPO, end_to_end

pytestmark = [pytest.mark.docker, pytest.mark.claude]

CHECK = "test \"$(cat answer.txt)\" = 42 || { echo \"expected 42, got $(cat answer.txt)\"; exit 1; }"
WRONG = ScriptedTurn(text="Writing the answer.",
                     tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/answer.txt", "content": "41\n"})])
FIXED = ScriptedTurn(text="The check said 42: fixing.",
                     tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/answer.txt", "content": "42\n"})])


def repo_files(config: str) -> dict[str, str]:
    return {"README.md": "# hello\n", "check.sh": CHECK + "\n", ".github/agentvine.yml": config}


def leftovers(docker_client, job) -> list:
    """Every container of the job, its steps' included (named agentvine-<job id>-<phase>-…)."""
    return [c for c in docker_client.containers.list(all=True, filters={"label": "agentvine=1"})
            if c.name.startswith(f"agentvine-{job.id}")]


async def run_one(bot):
    issue = bot.github.add_issue(REPO, title="The answer is wrong", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle(timeout=240)
    job = bot.job(answer["jobs"][0])
    (run,) = bot.github.check_runs_for(REPO)
    return issue, job, run


async def test_a_failed_verify_resumes_the_session_and_the_fix_is_verified(tmp_path, sandbox_image, docker_client):
    config = "setup: ['echo setting up; echo ready > /tmp/x']\nverify: ['sh check.sh']\n"
    script = [WRONG, ScriptedTurn(text="Done: answer.txt says 41."), FIXED, ScriptedTurn(text="Now it says 42.")]
    async with end_to_end(tmp_path, sandbox_image, script, files=repo_files(config)) as (bot, model):
        issue, job, run = await run_one(bot)
        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
        assert [(s.phase, s.attempt, s.exit_code) for s in job.outcome.steps] == [
            ("setup", 1, 0), ("verify", 1, 1), ("verify", 2, 0)]
        assert "expected 42, got 41" in job.outcome.steps[1].output_tail(1000)
        # The resumed session was told which command failed and how.
        resumed = str(model.main_requests[2]["messages"])
        assert "sh check.sh" in resumed and "expected 42, got 41" in resumed
        (pull,) = bot.github.pulls
        assert "**Verified:** `sh check.sh` passed (after 2 attempts)." in pull["body"]
        assert bot.github.read_file(REPO, job.branch, "answer.txt") == "42\n"
        summary = run["output"]["summary"]
        assert texts.STEPS_HEADING in summary and "| verify, attempt 1 | `sh check.sh` | 1 |" in summary
        assert "<details><summary>Output of <code>sh check.sh</code> (verify, attempt 1) — exited with 1</summary>" in summary
        (comment,) = [c for c in bot.github.comments_on(REPO, issue["number"]) if c["user"]["type"] == "Bot"]
        assert "Verify, attempt 1 of 2: `sh check.sh` exited with 1" in comment["body"]
    assert leftovers(docker_client, job) == []


async def test_verify_still_failing_opens_a_draft_that_says_so(tmp_path, sandbox_image, docker_client):
    config = ("labels: {'agentvine:bugfix': {worker: bugfix, level: autonomous}}\n"
              "verify: {commands: ['sh check.sh'], max_attempts: 1}\n")
    async with end_to_end(tmp_path, sandbox_image, [WRONG, ScriptedTurn(text="Done.")], files=repo_files(config)) as (bot, _):
        _, job, run = await run_one(bot)
        (pull,) = bot.github.pulls
        assert pull["draft"] is True  # autonomous, but its verify failed
        assert "**Verify failed:** `sh check.sh` exited with 1 after 1 attempt(s)" in pull["body"]
    assert leftovers(docker_client, job) == []


async def test_verify_on_failure_fail_opens_no_pull_request(tmp_path, sandbox_image, docker_client):
    config = "verify: {commands: ['sh check.sh'], max_attempts: 1, on_failure: fail}\n"
    async with end_to_end(tmp_path, sandbox_image, [WRONG, ScriptedTurn(text="Done.")], files=repo_files(config)) as (bot, _):
        _, job, run = await run_one(bot)
        assert (job.state, run["output"]["title"]) == (JobState.FAILED, texts.OUTCOME["verify_failed"])
        assert bot.github.pulls == []
        assert "expected 42, got 41" in run["output"]["summary"]


@pytest.mark.parametrize("setup, shown", [
    ("['echo it broke; exit 3']", "exited with 3"),
    ("[{run: 'sleep 600', timeout_minutes: 0.05}]", "timed out"),
])
async def test_a_failed_setup_ends_the_job_with_its_output(tmp_path, sandbox_image, docker_client, setup, shown):
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text="never asked")],
                          files=repo_files(f"setup: {setup}\n")) as (bot, model):
        _, job, run = await run_one(bot)
        assert (job.state, run["output"]["title"]) == (JobState.FAILED, texts.OUTCOME["setup_failed"])
        assert shown in run["output"]["summary"] and shown in job.outcome.detail
        assert model.main_requests == []  # Claude Code never ran
        assert job.outcome.figures.duration_s < 60
    assert leftovers(docker_client, job) == []


async def test_a_setup_that_prints_50_mb_is_kept_bounded(tmp_path, sandbox_image, docker_client):
    config = "setup: ['head -c 50000000 /dev/zero | tr \"\\\\0\" x | fold -w 100; echo the-end']\nsteps: {output_kb: 16}\n"
    async with end_to_end(tmp_path, sandbox_image, [FIXED, ScriptedTurn(text="Done.")], files=repo_files(config)) as (bot, _):
        _, job, run = await run_one(bot)
        assert job.state is JobState.SUCCEEDED, job.reason
        (step,) = job.outcome.steps
        assert step.ok and len(step.head) + len(step.tail) <= 16 * 1024
        assert step.omitted_bytes > 49_000_000 and step.output_tail(100).endswith("the-end\n")
        assert len(run["output"]["summary"]) <= 65_535
