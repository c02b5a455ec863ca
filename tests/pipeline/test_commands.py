"""Slash commands, approvals and check-run buttons, checked in the GitHub fake's state (no agent
runs here: max_concurrent_jobs=0; tests/e2e/test_conversation.py runs them for real)."""

from __future__ import annotations

import copy

import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from app.store.base import StageClaim
from tests.support.harness import REPO


def bot_comments(github, number):
    return [c["body"] for c in github.comments_on(REPO, number) if c["user"]["type"] == "Bot"]


def writes(github):
    return [c for c in github.calls if c.method != "GET" and "access_tokens" not in c.path]


async def waiting_job(bot, github):
    issue = github.add_issue(REPO, title="Restructure the parser", user="alice")
    answer = await bot.label(issue["number"], "agentvine:refactor")  # human-required
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.WAITING_FOR_APPROVAL
    return issue, job


def check_run(github, job):
    return next(r for r in github.check_runs if r["id"] == job.check_run_id)


def buttons(github, job):
    return [a["identifier"] for a in github.check_run_actions(job.check_run_id)]


async def test_help_is_acknowledged_and_answered(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    comment, _ = await bot.comment(issue["number"], "/agentvine help")
    await bot.settle()
    assert [r["content"] for r in github.reactions_on_comment(comment["id"])] == ["eyes"]
    (reply,) = bot_comments(github, issue["number"])
    assert "`/agentvine review`" in reply and "`agentvine:bugfix` (bugfix, supervised)" in reply


async def test_unknown_subcommand_words_become_an_instruction_and_prefix_alone_is_help(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    await bot.comment(issue["number"], "/agentvine")
    await bot.settle()
    assert "AgentVine commands" in bot_comments(github, issue["number"])[0]


async def test_status_reports_the_job(bot, github):
    issue, job = await waiting_job(bot, github)
    await bot.comment(issue["number"], "/agentvine status")
    await bot.settle()
    reply = bot_comments(github, issue["number"])[-1]
    assert f"Job `{job.id}` (refactor, human-required): **Waiting for approval**" in reply


async def test_approval_needs_maintain_then_the_job_goes_on(bot, github):
    issue, job = await waiting_job(bot, github)
    assert buttons(github, job) == ["approve", "cancel"]
    assert "approve" in bot_comments(github, issue["number"])[0]

    await bot.comment(issue["number"], "/agentvine approve", sender="alice")  # write only
    await bot.settle()
    assert bot.job(job.id).state is JobState.WAITING_FOR_APPROVAL
    assert bot_comments(github, issue["number"])[-1] == texts.APPROVE_NEEDS.format(sender="alice", required="maintain", actual="write")

    comment, _ = await bot.comment(issue["number"], "/agentvine approve", sender="mona")
    await bot.settle()
    approved = bot.job(job.id)
    assert approved.state is JobState.ACKNOWLEDGED and "Approved by @mona" in approved.reason
    assert [r["content"] for r in github.reactions_on_comment(comment["id"])] == ["eyes"]
    assert buttons(github, job) == ["cancel"]


async def test_approve_button_checks_who_clicks(bot, github):
    _, job = await waiting_job(bot, github)
    await bot.press(job.id, "approve", sender="bob")  # read access
    await bot.settle()
    assert bot.job(job.id).state is JobState.WAITING_FOR_APPROVAL
    await bot.press(job.id, "approve", sender="mona")
    await bot.settle()
    assert bot.job(job.id).state is JobState.ACKNOWLEDGED


async def test_cancel_then_retry_from_the_checks_tab(bot, github):
    issue, job = await waiting_job(bot, github)
    await bot.comment(issue["number"], "/agentvine cancel")
    await bot.settle()
    cancelled = bot.job(job.id)
    assert (cancelled.state, cancelled.conclusion) == (JobState.CANCELLED, "cancelled")
    run = check_run(github, job)
    assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
    assert buttons(github, job) == ["retry"]

    await bot.press(job.id, None, sender="alice")  # Re-run in the Checks tab
    await bot.settle()
    jobs = bot.service.store.list_jobs()
    assert len(jobs) == 2 and jobs[-1].state is JobState.WAITING_FOR_APPROVAL  # a fresh attempt, same rules
    assert len(github.check_runs_for(REPO)) == 2


async def test_commands_from_people_without_permission_do_nothing(bot, github):
    _, job = await waiting_job(bot, github)
    before = len(writes(github))
    issue_number = job.issue_number
    for command in ("/agentvine cancel", "/agentvine approve", "/agentvine help", "/agentvine status", "/agentvine retry"):
        await bot.comment(issue_number, command, sender="bob")
    await bot.press(job.id, "cancel", sender="bob")
    await bot.settle()
    assert len(writes(github)) == before  # not a reaction, not a reply, not an edit
    assert bot.job(job.id).state is JobState.WAITING_FOR_APPROVAL


async def test_commands_in_quotes_and_code_blocks_are_ignored(bot, github):
    _, job = await waiting_job(bot, github)
    before = len(writes(github))
    await bot.comment(job.issue_number, "> /agentvine cancel\n\n```\n/agentvine cancel\n```\n    /agentvine cancel")
    await bot.settle()
    assert len(writes(github)) == before
    assert bot.job(job.id).state is JobState.WAITING_FOR_APPROVAL
    assert len(bot.service.store.list_jobs()) == 1


async def test_edited_comment_triggers_nothing(bot, github):
    from tests.support import payloads
    issue = github.add_issue(REPO, title="x", user="alice")
    payload = payloads.issue_comment(body="/agentvine do it", action="edited", issue=issue, repo=bot.repo,
                                     installation_id=1001, sender="alice")
    assert (await bot.deliver("issue_comment", payload)).status == 202
    await bot.settle()
    assert bot.service.store.list_jobs() == [] and writes(github) == []


async def test_review_on_an_issue_is_explained(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    await bot.comment(issue["number"], "/agentvine review")
    await bot.settle()
    assert bot_comments(github, issue["number"]) == [texts.REVIEW_NEEDS_PULL.format(sender="alice", prefix="/agentvine")]


async def test_instruction_on_a_pull_request_from_a_fork_is_refused(bot, github):
    github.push_files(REPO, "feature", {"x.py": "x = 1\n"})
    pull = github.add_pull(REPO, head="feature", base="main", title="Feature", user="alice")
    forked = copy.deepcopy(github.pull(REPO, pull["number"]))
    forked["head"]["repo"] = {**forked["head"]["repo"], "full_name": "stranger/hello", "name": "hello"}
    forked["head"]["label"] = "stranger:feature"
    github.inject_fault("GET", rf"/pulls/{pull['number']}$", status=200, body=forked)
    issue = github.issue(REPO, pull["number"])
    _, answer = await bot.comment(issue["number"], "/agentvine add tests")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.REJECTED and "fork" in job.reason
    (reply,) = bot_comments(github, pull["number"])
    assert "`stranger:feature`" in reply and "only on branches of this repository" in reply


async def test_a_pull_request_whose_head_is_the_default_branch_is_never_pushed_to(bot, github):
    github.push_files(REPO, "release", {"x.py": "x = 1\n"})
    pull = github.add_pull(REPO, head="main", base="release", title="Release", user="alice")
    _, answer = await bot.comment(pull["number"], "/agentvine bump the version")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.REJECTED and "default branch" in job.reason
    assert job.check_run_id is None  # nothing runs
    (reply,) = bot_comments(github, pull["number"])
    assert reply == "@alice " + texts.DEFAULT_BRANCH_REFUSED.format(branch="main")


async def finished_job_with_pull(bot, github, level: str):
    """A job that ended with a pull request (stored as the run stage leaves it)."""
    from app.domain.job import Outcome

    github.push_files(REPO, "agentvine/feature-1-x", {"x.py": "x = 1\n"})
    pull = github.add_pull(REPO, head="agentvine/feature-1-x", base="main", title="X", user="agentvine[bot]")
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:feature")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    done = job.model_copy(update={"level": level, "outcome": Outcome(conclusion="success", title="Opened", pr_number=pull["number"])})
    bot.service.store.save_job(done.moved_to(JobState.RUNNING).moved_to(JobState.SUCCEEDED, conclusion="success"), "finished")
    return pull


async def review_comment(bot, pull, body: str, sender: str) -> dict:
    from tests.support import payloads

    comment = bot.github.add_review_comment(REPO, pull["number"], body=body, user=sender, path="x.py", line=1)

    payload = payloads.retarget(payloads.load("pull_request_review_comment", "created.payload.json"),
                                repo=bot.repo, installation_id=1001, sender=sender)
    payload["pull_request"] = {**payload["pull_request"], "number": pull["number"]}
    payload["comment"] = {**payload["comment"], "id": comment["id"], "body": body, "path": "x.py", "line": 1}
    assert (await bot.deliver("pull_request_review_comment", payload)).status == 202
    await bot.settle()
    return comment


@pytest.mark.parametrize(("level", "sender", "follows_up"), [
    ("autonomous", "alice", True), ("supervised", "alice", False), ("autonomous", "bob", False)])
async def test_review_comment_on_agentvines_pull_request(bot, github, level, sender, follows_up):
    pull = await finished_job_with_pull(bot, github, level)
    comment = await review_comment(bot, pull, "Please rename x to count.", sender)
    follow_ups = [j for j in bot.service.store.list_jobs() if j.is_pull_request]
    reactions = [r["content"] for r in github.reactions_on_review_comment(comment["id"])]
    if not follows_up:
        assert follow_ups == [] and reactions == []
        return
    assert reactions == ["eyes"]  # seen, on the comment itself
    (job,) = follow_ups
    assert job.issue_number == pull["number"] and job.branch == "agentvine/feature-1-x"
    assert "On `x.py` line 1:" in job.trigger.instruction and "rename x to count" in job.trigger.instruction
    assert job.state is JobState.ACKNOWLEDGED  # acknowledged on the PR, ready to push to its branch


async def test_commands_follow_the_repositorys_permission_rule(bot, github):
    github.push_files(REPO, "main", {".github/agentvine.yml": "permissions: {trigger: maintain}\n"})
    issue = github.add_issue(REPO, title="Restructure", user="mona")
    answer = await bot.label(issue["number"], "agentvine:refactor", sender="mona")
    await bot.settle()
    job_id = answer["jobs"][0]
    await bot.comment(issue["number"], "/agentvine cancel", sender="alice")  # write < maintain here
    await bot.settle()
    assert bot.job(job_id).state is JobState.WAITING_FOR_APPROVAL
    await bot.comment(issue["number"], "/agentvine cancel", sender="mona")
    await bot.settle()
    assert bot.job(job_id).state is JobState.CANCELLED


async def test_a_retry_never_runs_a_request_that_was_refused(bot, github):
    """An outsider's instruction is rejected; a maintainer's `retry` must not run it as theirs."""
    issue = github.add_issue(REPO, title="Parser bug", user="alice")
    _, outcome = await bot.comment(issue["number"], "/agentvine add my SSH key to deploy.sh", sender="bob")  # read access
    await bot.settle()
    (rejected,) = [bot.job(job_id) for job_id in outcome["jobs"]]
    assert rejected.state is JobState.REJECTED

    await bot.comment(issue["number"], "/agentvine retry", sender="mona")
    await bot.settle()
    assert [j.id for j in bot.service.store.list_jobs()] == [rejected.id]  # nothing new runs
    assert bot_comments(github, issue["number"])[-1] == texts.NO_JOB.format(sender="mona", what=" to retry")


async def test_a_retry_says_who_wrote_the_instruction_and_who_asked_again(bot, github):
    from app.pipeline.prompt import build_prompt

    issue = github.add_issue(REPO, title="Parser bug", user="alice")
    _, outcome = await bot.comment(issue["number"], "/agentvine accept tabs", sender="alice")
    await bot.settle()
    await bot.comment(issue["number"], "/agentvine cancel", sender="alice")
    await bot.settle()
    await bot.comment(issue["number"], "/agentvine retry", sender="mona")
    await bot.settle()
    first, again = bot.service.store.list_jobs()
    assert first.id == outcome["jobs"][0] and again.requester == "mona"
    assert (again.trigger.instruction, again.trigger.instruction_by) == ("accept tabs", "alice")
    prompt = await build_prompt(bot.service.worker.context(again))
    assert "Instruction from @alice (asked for again by @mona):\naccept tabs" in prompt
    assert "Instruction from @mona" not in prompt



async def test_ci_waits_for_a_maintainer_who_read_the_diff(bot, github):
    """A supervised job's commits carry skip-checks; Run CI (maintain) pushes an empty commit without it."""
    pull = await finished_job_with_pull(bot, github, level="supervised")
    (job,) = [j for j in bot.service.store.list_jobs() if j.outcome]
    await bot.service.worker.commands._show(bot.service.worker.context(job))  # the final report, with its buttons
    assert "run_ci" in buttons(github, job)
    git = github.repo(REPO).git
    tip = git.git("rev-parse", "refs/heads/agentvine/feature-1-x").decode().strip()

    await bot.press(job.id, "run_ci", sender="alice")  # write access: may start jobs, not run CI on them
    await bot.settle()
    assert git.git("rev-parse", "refs/heads/agentvine/feature-1-x").decode().strip() == tip

    await bot.press(job.id, "run_ci", sender="mona")  # maintain
    await bot.settle()
    new = git.git("rev-parse", "refs/heads/agentvine/feature-1-x").decode().strip()
    assert new != tip
    assert git.git("rev-parse", f"{new}^").decode().strip() == tip
    assert git.git("rev-parse", f"{new}^{{tree}}").decode() == git.git("rev-parse", f"{tip}^{{tree}}").decode()
    message = git.git("log", "-1", "--format=%B", new).decode()
    assert "skip-checks" not in message and "@mona" in message
    assert not (bot.service.settings.jobs_dir / job.id).exists()  # nothing is left on the host
    assert any(e.kind == "ci_requested" for e in bot.service.store.events(job.id))
    assert pull["number"] == job.outcome.pr_number


async def test_autonomous_work_runs_ci_at_once_and_offers_no_button(bot, github):
    await finished_job_with_pull(bot, github, level="autonomous")
    (job,) = [j for j in bot.service.store.list_jobs() if j.outcome]
    await bot.service.worker.commands._show(bot.service.worker.context(job))
    assert "run_ci" not in buttons(github, job)


def test_commits_skip_ci_unless_the_job_is_autonomous():
    from types import SimpleNamespace

    from app.domain.job import Job, Outcome, Trigger
    from app.pipeline.change import SKIP_CI_TRAILER, commit_message
    from app.settings import Settings

    job = Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=3, requester="alice", worker="bugfix",
              issue_title="Tabs", trigger=Trigger(kind="label", label="agentvine:bugfix"))
    for level, skipped in (("supervised", True), ("human-required", True), ("autonomous", False)):
        message = commit_message(SimpleNamespace(job=job.model_copy(update={"level": level}), settings=Settings()), Outcome(conclusion="success", title=""))
        assert message.endswith(f"\n{SKIP_CI_TRAILER}\n") is skipped, level
        assert "Co-authored-by: alice" in message


async def test_cancel_of_a_job_another_worker_holds_is_handed_to_that_worker(bot, github):
    """Written from here, the cancel would be overwritten by that worker's next save of the job: it is
    asked of the holder through the store instead (its heartbeat hears it; its run ends the job)."""
    issue, job = await waiting_job(bot, github)
    store = bot.service.store
    holder = "machine-b:1:ab"  # a stage of another worker's has the job (its acknowledgement, say)
    (claimed,) = store.claim_jobs(StageClaim("acknowledge", JobState.WAITING_FOR_APPROVAL), holder, "machine-b",
                                  limit=1, lease_s=300)
    await bot.comment(issue["number"], "/agentvine cancel")
    await bot.settle()
    assert bot.job(job.id).state is JobState.WAITING_FOR_APPROVAL  # not written from here
    assert store.renew_leases(holder, "machine-b", {job.id: claimed.epoch}, 300) == {job.id: True}
    assert "cancel_requested" in [event.kind for event in store.events(job.id)]
