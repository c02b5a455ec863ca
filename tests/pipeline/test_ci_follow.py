"""CI failing on AgentVine's own pull request: GitHub's real check_suite / check_run payloads, retargeted,
against the GitHub fake (every call validated against GitHub's OpenAPI description). No agent runs here
(max_concurrent_jobs=0): follow-ups are acknowledged on the pull request; tests/e2e/test_ci_follow_up.py
runs them with the real CLI."""

from __future__ import annotations

import sqlite3

import pytest

from app.domain.job import Job, JobState, Outcome, Trigger, new_job_id
from app.pipeline.ci_follow import STOPPED, _busy
from app.pipeline.present import ci as present, texts
from tests.support import payloads
from tests.support.env import ROOT
from tests.support.harness import INSTALLATION, REPO

FAILED_TEST = {"path": "hello.py", "start_line": 1, "end_line": 1, "annotation_level": "failure",
               "title": "test_hello", "message": "AssertionError: 'hi' != 'hello'"}
OUTPUT = {"title": "1 test failed", "summary": "`pytest -q`: 1 failed, 3 passed",
          "text": "FAILED tests/test_hello.py::test_hello - AssertionError", "annotations": [FAILED_TEST]}


def bot_comments(github, number):
    return [c["body"] for c in github.comments_on(REPO, number) if c["user"]["type"] == "Bot"]


def follow_ups(bot):
    return [j for j in bot.service.store.list_jobs() if j.trigger.ci is not None]


def command_outcomes(bot) -> list[str]:
    with sqlite3.connect(bot.service.settings.database_path) as db:
        return [row[0] for row in db.execute("SELECT outcome FROM commands WHERE doc LIKE '%ci_completed%' ORDER BY seq")]


async def agentvines_pull(bot, github, *, level: str = "autonomous", config: str | None = None):
    """A job that opened a pull request from its branch, as the run stage leaves it, and the PR's head."""
    if config is not None:
        github.push_files(REPO, "main", {".github/agentvine.yml": config})
    issue = github.add_issue(REPO, title="Greet properly", user="alice")
    answer = await bot.label(issue["number"], "agentvine:feature")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    sha = github.push_files(REPO, job.branch, {"hello.py": "print('hello')\n"})
    pull = github.add_pull(REPO, head=job.branch, base="main", title="Greet properly", user="agentvine[bot]")
    done = job.model_copy(update={"level": level, "outcome": Outcome(conclusion="success", title="Opened",
                                                                     pr_number=pull["number"])})
    bot.service.store.save_job(done.moved_to(JobState.RUNNING).moved_to(JobState.SUCCEEDED, conclusion="success"), "finished")
    return job, pull, sha


def finish_round(bot, github, job, files: dict[str, str]) -> str:
    """The follow-up `job` did its work: a commit on the branch, the job done (as its run leaves it)."""
    sha = github.push_files(REPO, job.branch, files)
    job = bot.job(job.id)
    bot.service.store.save_job(job.moved_to(JobState.RUNNING).moved_to(JobState.SUCCEEDED, conclusion="success"), "finished")
    return sha


async def test_a_failing_ci_check_starts_one_follow_up_on_the_pull_request(bot, github):
    opener, pull, sha = await agentvines_pull(bot, github)
    tests = github.add_ci_check_run(REPO, sha, "tests", conclusion="failure", output=OUTPUT)
    github.add_ci_check_run(REPO, sha, "lint", conclusion="success")
    # GitHub sends both the failing run and, once all its runs are done, the suite; either may come first.
    await bot.ci_finished(sha, run=tests)
    await bot.ci_finished(sha)
    await bot.settle()

    (job,) = follow_ups(bot)
    failure = job.trigger.ci
    assert (job.trigger.kind, job.worker, job.level) == ("ci", "feature", "autonomous")
    assert job.is_pull_request and job.issue_number == pull["number"] and job.branch == opener.branch
    assert job.head_sha == sha and job.requester == "alice" and job.state is JobState.ACKNOWLEDGED
    assert (failure.sha, failure.round, failure.max_rounds, failure.follows) == (sha, 1, 2, opener.id)
    (check,) = failure.checks  # lint passed: only the failing check is carried
    assert (check.name, check.conclusion, check.app) == ("tests", "failure", "github-actions")
    assert (check.title, check.summary, check.text) == (OUTPUT["title"], OUTPUT["summary"], OUTPUT["text"])
    assert [(a.path, a.start_line, a.level, a.message) for a in check.annotations] == [
        ("hello.py", 1, "failure", FAILED_TEST["message"])]
    said = bot_comments(github, pull["number"])
    assert said[0] == texts.CI_FOLLOW_UP.format(sha=present.short_sha(sha), checks="`tests`", round=1, max_rounds=2)
    assert any(texts.TRACKING_MARKER.format(job_id=job.id) in body for body in said[1:])  # the follow-up's own report
    assert command_outcomes(bot)[1] == f"ignored: CI on {sha[:12]} was followed up already"
    # Its check run is on the failing commit. The second event cost no call: the store knew the commit.
    assert github.check_runs_for(REPO, sha)[-1]["name"] == "AgentVine · feature"
    listed = [c.operation_id for c in github.calls if c.operation_id and c.operation_id.startswith("checks/list")]
    assert listed == ["checks/list-for-ref", "checks/list-annotations"]


async def test_ci_still_running_waits_and_the_last_suite_to_finish_decides(bot, github):
    _, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure", output=OUTPUT)
    slow = github.add_ci_check_run(REPO, sha, "e2e", app="circleci")
    await bot.ci_finished(sha)  # the Actions suite failed; CircleCI still runs
    await bot.settle()
    assert follow_ups(bot) == [] and bot_comments(github, pull["number"]) == []
    assert command_outcomes(bot) == [f"waiting: 1 CI check(s) still running on {sha[:12]}"]
    github.finish_ci_check_run(slow["id"], "success")
    await bot.ci_finished(sha, app="circleci")  # a suite that passed: the commit's CI is done now
    await bot.settle()
    (job,) = follow_ups(bot)
    assert [c.name for c in job.trigger.ci.checks] == ["tests"]


async def test_passing_ci_costs_one_call_and_starts_nothing(bot, github):
    _, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="success")
    before = len(github.calls)
    await bot.ci_finished(sha)
    await bot.settle()
    assert follow_ups(bot) == [] and bot_comments(github, pull["number"]) == []
    spent = [c.operation_id for c in github.calls[before:] if c.operation_id != "apps/create-installation-access-token"]
    assert spent == ["checks/list-for-ref"]


async def test_nothing_for_a_commit_that_is_no_longer_the_head(bot, github):
    opener, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    suite = github.check_suite(REPO, sha)  # as GitHub made the delivery, before…
    github.push_files(REPO, opener.branch, {"hello.py": "print('hello!')\n"})  # …someone pushed
    await bot.ci_finished(sha, suite=suite)
    await bot.settle()
    assert follow_ups(bot) == [] and bot_comments(github, pull["number"]) == []
    assert command_outcomes(bot) == [f"ignored: {sha[:12]} is not the head of #{pull['number']} any more"]


async def test_agentvines_own_checks_never_start_a_follow_up(bot, github):
    opener, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "AgentVine · review", conclusion="failure")  # our name, another App: ours too
    await bot.ci_finished(sha, app="agentvine")  # AgentVine's own suite
    await bot.ci_finished(sha)  # the other App's suite: only a check named as ours failed
    await bot.settle()
    assert follow_ups(bot) == [] and bot_comments(github, pull["number"]) == []
    assert command_outcomes(bot) == ["ignored: AgentVine's own checks", f"ignored: no CI check failed on {sha[:12]}"]
    ours = github.finish_ci_check_run(opener.check_run_id, "failure")  # as a failed job's check run ends
    routed = await bot.ci_finished(sha, run=ours)
    assert routed["outcome"] == "ignored: AgentVine's own check run"


@pytest.mark.parametrize(("level", "config", "follows"), [
    ("supervised", None, False),
    ("supervised", "follow_ci: true\n", True),
    ("autonomous", "follow_ci: false\n", False),
    ("human-required", "follow_ci: {when: always, max_rounds: 1}\n", True),
])
async def test_follow_ci_decides_which_levels_are_followed(bot, github, level, config, follows):
    _, pull, sha = await agentvines_pull(bot, github, level=level, config=config)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    found = follow_ups(bot)
    if not follows:
        assert found == [] and bot_comments(github, pull["number"]) == []
        assert command_outcomes(bot)[0].startswith("ignored: follow_ci (")
        return
    (job,) = found
    assert job.level == level  # the level of the job that opened the pull request
    assert job.state is (JobState.WAITING_FOR_APPROVAL if level == "human-required" else JobState.ACKNOWLEDGED)


async def test_the_rounds_are_bounded_and_the_stop_is_said_once(bot, github):
    opener, pull, sha = await agentvines_pull(bot, github)
    for round_number in (1, 2):
        github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
        await bot.ci_finished(sha)
        await bot.settle()
        job = follow_ups(bot)[-1]
        assert job.trigger.ci.round == round_number and job.trigger.ci.sha == sha
        sha = finish_round(bot, github, job, {"hello.py": f"print('hello {round_number}')\n"})
    third = github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.ci_finished(sha, run=third)  # the same failure again, by the other event
    await bot.settle()
    assert len(follow_ups(bot)) == 2
    stops = [b for b in bot_comments(github, pull["number"]) if b.startswith("**CI failed again**")]
    assert stops == [texts.CI_STOPPED.format(sha=present.short_sha(sha), checks="`tests`", max_rounds=2,
                                             prefix="/agentvine")]
    assert [e.data["sha"] for e in bot.service.store.events(opener.id) if e.kind == STOPPED] == [sha]
    # A person pushes, CI fails again: AgentVine has said it stopped, and says nothing more.
    sha = github.push_files(REPO, opener.branch, {"hello.py": "print('hello, world')\n"})
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    assert len(follow_ups(bot)) == 2
    assert len([b for b in bot_comments(github, pull["number"]) if b.startswith("**CI failed again**")]) == 1


async def test_a_redelivery_starts_nothing_twice(bot, github):
    _, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    payload = payloads.check_suite_completed(github.check_suite(REPO, sha), repo=bot.repo, installation_id=INSTALLATION,
                                             sender="agentvine[bot]", sender_type="Bot")
    first = await bot.outcome(await bot.deliver("check_suite", payload))
    await bot.settle()
    again = await bot.deliver("check_suite", payload, delivery_id=first["delivery"])  # GitHub's Redeliver
    assert (await again.json())["status"] == "duplicate"
    replayed = await bot.outcome(await bot.deliver("check_suite", payload))  # the same bytes under a new id
    await bot.settle()
    assert replayed["outcome"].startswith("ignored: the same signed body") and len(follow_ups(bot)) == 1
    assert len([b for b in bot_comments(github, pull["number"]) if b.startswith("**CI failed**")]) == 1


async def test_no_second_follow_up_while_one_is_about_to_push(bot, github):
    opener, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    (job,) = follow_ups(bot)  # acknowledged: it has not pushed yet
    sha = github.push_files(REPO, opener.branch, {"hello.py": "print('hello?')\n"})  # a person's push
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    assert follow_ups(bot) == [job]
    assert command_outcomes(bot)[-1] == f"ignored: job {job.id} is about to push to #{pull['number']}"


async def test_a_follow_up_whose_commit_moved_on_before_it_started_does_not_run(bot, github):
    """Acknowledged only after the head moved on: it says so and stands down (the new head's CI decides)."""
    _, pull, sha = await agentvines_pull(bot, github)
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    (job,) = follow_ups(bot)
    finish_round(bot, github, job, {"hello.py": "print('hello.')\n"})
    # The same follow-up as the worker made it, reaching its acknowledgement late.
    late = job.model_copy(update={"id": new_job_id(), "state": JobState.QUEUED, "head_sha": None, "branch": None,
                                  "check_run_id": None, "check_run_url": None, "tracking_comment_id": None})
    bot.service.store.save_job(late, "created")
    await bot.settle()
    late = bot.job(late.id)
    assert late.state is JobState.REJECTED and late.check_run_id is None
    assert bot_comments(github, pull["number"])[-1] == texts.CI_MOVED_ON.format(sha=present.short_sha(sha))


async def test_an_invalid_config_starts_nothing(bot, github):
    _, pull, sha = await agentvines_pull(bot, github)
    github.push_files(REPO, "main", {".github/agentvine.yml": "follow_ci: sometimes\n"})
    github.add_ci_check_run(REPO, sha, "tests", conclusion="failure")
    await bot.ci_finished(sha)
    await bot.settle()
    assert follow_ups(bot) == [] and command_outcomes(bot) == ["ignored: .github/agentvine.yml is invalid"]


def test_a_job_that_pushed_the_commit_ci_ran_on_holds_nothing_back():
    def job(state: JobState, **fields) -> Job:
        fields = {"issue_number": 1, "branch": "agentvine/x", **fields}
        return Job(delivery_id="d", installation_id=1, repo=REPO, requester="alice",
                   trigger=Trigger(kind="label", label="agentvine:feature"), state=state, **fields)

    opener = job(JobState.SUCCEEDED)
    pushed = {"finishing": {"abc"}}
    finishing = job(JobState.RUNNING, id="finishing")
    assert _busy([finishing], opener, 2, lambda j: pushed.get(j.id, set()), "abc") is None
    working = job(JobState.RUNNING, id="working")  # has not pushed yet
    queued = job(JobState.ACKNOWLEDGED, id="queued", branch=None, is_pull_request=True, issue_number=2)
    for busy in (working, queued):
        assert _busy([finishing, busy], opener, 2, lambda j: pushed.get(j.id, set()), "abc") is busy
    elsewhere = job(JobState.RUNNING, id="elsewhere", branch="agentvine/y", issue_number=3)
    assert _busy([elsewhere], opener, 2, lambda j: set(), "abc") is None


def test_the_usage_docs_show_the_texts_as_agentvine_writes_them():
    usage = (ROOT / "docs" / "usage.md").read_text()
    assert texts.CI_FOLLOW_UP.format(sha="`3f2a9c81d0e4`", checks="`tests`", round=1, max_rounds=2) in usage
    assert texts.CI_STOPPED.format(sha="`9b1d77e2a6c0`", checks="`tests`", max_rounds=2, prefix="/agentvine") in usage
