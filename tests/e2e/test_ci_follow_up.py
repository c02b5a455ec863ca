"""CI failing on AgentVine's own pull request, end to end: the real Claude Code CLI in the real sandbox
makes each follow-up's fix, AgentVine pushes it as one commit to the same branch (the pull request is
updated, never a second one opened), and after `follow_ci.max_rounds` (2) a third failure starts
nothing and is said once. CI itself is another App's check runs in the GitHub fake, announced by
GitHub's real check_suite / check_run payloads."""

from __future__ import annotations

import pytest

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from app.pipeline.present import ci as present, texts
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

AUTONOMOUS = ".github/agentvine.yml", "labels:\n  'agentvine:quick': {worker: feature, level: autonomous}\n"
FILES = {"README.md": "# hello\n", AUTONOMOUS[0]: AUTONOMOUS[1]}


GREET = {"file_path": "/workspace/greet.py"}


def writes(content: str, summary: str, *, read_first: bool = True) -> list[ScriptedTurn]:
    """The agent's turns: (Claude Code writes over a file only after reading it) the file, a summary."""
    read = [ScriptedTurn(text="Reading greet.py.", tool_uses=[ToolUse(name="Read", input=GREET)])] if read_first else []
    return [*read, ScriptedTurn(text="Writing greet.py.", tool_uses=[ToolUse(name="Write", input={**GREET, "content": content})]),
            ScriptedTurn(text=summary)]


SCRIPT = (writes("def greet():\n    return 'hi'\n", "Added greet().", read_first=False)
          + writes("def greet():\n    return 'hello'\n", "test_greet expects 'hello': greet() returns it now.")
          + writes("def greet(name='world'):\n    return f'hello {name}'\n", "greet() takes a name, as test_name expects."))


def failing_output(round_number: int) -> dict:
    return {"title": f"{round_number} test failed", "summary": f"pytest: round {round_number}, 1 failed",
            "text": f"FAILED tests/test_greet.py::test_case_{round_number}",
            "annotations": [{"path": "greet.py", "start_line": 2, "end_line": 2, "annotation_level": "failure",
                             "message": f"AssertionError in case {round_number}"}]}


def git(github, *args: str) -> str:
    return github.repo(REPO).git.git(*args).decode().strip()


def stops(github, number: int) -> list[str]:
    return [c["body"] for c in github.comments_on(REPO, number) if c["body"].startswith("**CI failed again**")]


async def test_ci_failures_get_one_follow_up_commit_per_round_then_agentvine_stops(tmp_path, sandbox_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT, files=FILES) as (bot, model):
        github = bot.github
        issue = github.add_issue(REPO, title="Greet people", user="alice")
        await bot.label(issue["number"], "agentvine:quick")
        await bot.settle(timeout=180)
        (pull,) = github.pulls
        branch = pull["head"]["ref"]

        follow_ups = []
        for round_number in (1, 2):
            sha = github.head_sha(REPO, branch)
            commits = int(git(github, "rev-list", "--count", branch))
            github.add_ci_check_run(REPO, sha, "tests", conclusion="failure", output=failing_output(round_number))
            github.add_ci_check_run(REPO, sha, "lint", conclusion="success")
            await bot.ci_finished(sha)
            await bot.settle(timeout=180)

            (job,) = [j for j in bot.service.store.list_jobs() if j.trigger.ci and j.trigger.ci.round == round_number]
            follow_ups.append(job)
            assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
            assert job.outcome.title == texts.OUTCOME["pushed"].format(pr_number=pull["number"])
            # Exactly one commit, on the same branch, on top of the commit CI failed on; the same PR.
            head = github.head_sha(REPO, branch)
            assert int(git(github, "rev-list", "--count", branch)) == commits + 1
            assert git(github, "rev-parse", f"{head}^") == sha
            assert [p["number"] for p in github.pulls] == [pull["number"]]
            assert git(github, "log", "-1", "--format=%s", head) == "feature: make CI pass (tests)"
            assert texts.CI_FOLLOW_UP.format(sha=present.short_sha(sha), checks="`tests`", round=round_number,
                                             max_rounds=2) in [c["body"] for c in github.comments_on(REPO, pull["number"])]

        assert github.read_file(REPO, branch, "greet.py") == "def greet(name='world'):\n    return f'hello {name}'\n"
        # Each follow-up's session began with the failure CI reported on its round, fresh (no resume).
        first_prompts = [str(r["messages"][0]) for r in model.main_requests if len(r["messages"]) == 1]
        assert len(first_prompts) == 3 and "Greet people" in first_prompts[0]
        for round_number, prompt in ((1, first_prompts[1]), (2, first_prompts[2])):
            assert f"pytest: round {round_number}, 1 failed" in prompt and f"test_case_{round_number}" in prompt
            assert f"greet.py:2 (failure): AssertionError in case {round_number}" in prompt
            assert f"This is follow-up {round_number} of at most 2" in prompt and "lint" not in prompt

        # A third failure: the rounds are used up. Nothing starts, and it is said once, whichever event comes.
        sha = github.head_sha(REPO, branch)
        third = github.add_ci_check_run(REPO, sha, "tests", conclusion="failure", output=failing_output(3))
        await bot.ci_finished(sha, run=third)
        await bot.ci_finished(sha)
        await bot.settle(timeout=60)
        assert len([j for j in bot.service.store.list_jobs() if j.trigger.ci]) == 2
        assert github.head_sha(REPO, branch) == sha and len(model.main_requests) == 8
        assert stops(github, pull["number"]) == [texts.CI_STOPPED.format(
            sha=present.short_sha(sha), checks="`tests`", max_rounds=2, prefix="/agentvine")]
    for job in follow_ups:
        assert job_containers(docker_client, job) == []
