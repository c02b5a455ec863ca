"""A labelled issue is acknowledged on GitHub (👀, tracking comment, check run) — or, when it
must not start, nothing happens. Checked in the GitHub fake's state, which validates every
request and response against GitHub's OpenAPI description."""

from __future__ import annotations


import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from tests.support.harness import REPO, running_agentvine


def writes(github) -> list:
    return [c for c in github.calls if c.method != "GET" and "access_tokens" not in c.path]


def bot_comments(github, number: int) -> list[dict]:
    return [c for c in github.comments_on(REPO, number) if c["user"]["login"] == "agentvine[bot]"]


async def test_labelled_issue_is_acknowledged(bot, github):
    issue = github.add_issue(REPO, title="Parser rejects tabs", body="Tabs break it.", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()

    (job_id,) = answer["jobs"]
    job = bot.job(job_id)
    assert job.state is JobState.ACKNOWLEDGED
    assert (job.worker, job.level, job.requester) == ("bugfix", "supervised", "alice")

    (reaction,) = github.reactions_on_issue(REPO, issue["number"])
    assert reaction["content"] == "eyes" and reaction["user"]["login"] == "agentvine[bot]"

    (comment,) = bot_comments(github, issue["number"])
    assert texts.TRACKING_MARKER.format(job_id=job_id) in comment["body"]
    assert "**Queued**" in comment["body"] and "@alice" in comment["body"]
    assert "**bugfix**" in comment["body"] and "supervised" in comment["body"]
    assert job.tracking_comment_id == comment["id"]

    (run,) = github.check_runs_for(REPO)
    assert run["name"] == "AgentVine · bugfix"
    assert run["status"] == "queued"
    assert run["head_sha"] == github.head_sha(REPO, "main")
    assert run["external_id"] == f"agentvine:{job_id}"
    assert run["details_url"].endswith(f"/jobs/{job_id}")
    assert job.check_run_id == run["id"]

    # A bounded number of calls: config, permission, reaction, ref, comment, check run (+ token).
    assert len([c for c in github.calls if "access_tokens" not in c.path]) == 6


async def test_slash_command_is_acknowledged_on_the_comment(bot, github):
    issue = github.add_issue(REPO, title="Add --json", user="alice")
    comment, answer = await bot.comment(issue["number"], "/agentvine add a --json flag")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.ACKNOWLEDGED and job.worker == "feature"
    assert job.trigger.instruction == "add a --json flag"
    assert [r["content"] for r in github.reactions_on_comment(comment["id"])] == ["eyes"]
    assert len(bot_comments(github, issue["number"])) == 1


async def test_sender_without_permission_starts_nothing(bot, github):
    issue = github.add_issue(REPO, title="x", user="bob")
    answer = await bot.label(issue["number"], "agentvine:bugfix", sender="bob")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.REJECTED and "read" in job.reason
    assert github.reactions_on_issue(REPO, issue["number"]) == []
    assert github.check_runs_for(REPO) == []
    (comment,) = bot_comments(github, issue["number"])
    assert comment["body"] == texts.UNAUTHORIZED.format(sender="bob", required="write", actual="read")


async def test_the_unauthorized_notice_is_sent_once_per_person_and_issue(bot, github):
    """docs/usage.md promises one short reply: not one for every label or instruction."""
    github.add_user("carol")
    github.set_permission(REPO, "carol", "read")
    issue, other = (github.add_issue(REPO, title=t, user="bob") for t in ("x", "y"))
    await bot.label(issue["number"], "agentvine:bugfix", sender="bob")
    await bot.settle()
    await bot.label(issue["number"], "agentvine:feature", sender="bob")
    await bot.comment(issue["number"], "/agentvine please do it anyway", sender="bob")
    await bot.settle()
    assert [c["body"] for c in bot_comments(github, issue["number"])] == [
        texts.UNAUTHORIZED.format(sender="bob", required="write", actual="read")]
    await bot.label(issue["number"], "agentvine:bugfix", sender="carol")  # someone else: their own reply
    await bot.label(other["number"], "agentvine:bugfix", sender="bob")  # another issue: a reply there
    await bot.settle()
    assert len(bot_comments(github, issue["number"])) == 2 and len(bot_comments(github, other["number"])) == 1
    assert all(j.state is JobState.REJECTED for j in bot.service.store.list_jobs())


async def test_unauthorized_notice_can_be_turned_off(bot, github):
    github.push_files(REPO, "main", {".github/agentvine.yml": "notify_unauthorized: false\n"})
    issue = github.add_issue(REPO, title="x", user="bob")
    await bot.label(issue["number"], "agentvine:bugfix", sender="bob")
    await bot.settle()
    assert writes(github) == []


@pytest.mark.parametrize("base, admitted", [("write", True), ("maintain", True), ("triage", False), ("read", False)])
async def test_a_custom_role_counts_as_its_base(bot, github, base, admitted):
    """Organizations give people custom repository roles (role_name `release-manager`); what they
    may do is the built-in role the custom one is based on."""
    github.set_permission(REPO, "rita", "release-manager", base=base)
    issue = github.add_issue(REPO, title="x", user="rita")
    answer = await bot.label(issue["number"], "agentvine:bugfix", sender="rita")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert (job.state is not JobState.REJECTED) is admitted, job.reason


async def test_a_custom_role_based_on_maintain_may_approve(bot, github):
    github.set_permission(REPO, "rita", "release-manager", base="maintain")
    issue = github.add_issue(REPO, title="Restructure", user="alice")
    answer = await bot.label(issue["number"], "agentvine:refactor")
    await bot.settle()
    await bot.comment(issue["number"], "/agentvine approve", sender="rita")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).state is JobState.ACKNOWLEDGED


async def test_unknown_user_is_treated_as_no_permission(bot, github):
    github.add_user("stranger")
    issue = github.add_issue(REPO, title="x", user="stranger")
    answer = await bot.label(issue["number"], "agentvine:bugfix", sender="stranger")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).state is JobState.REJECTED
    assert github.check_runs_for(REPO) == []


async def test_bot_sender_starts_nothing(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix", sender="agentvine[bot]", sender_type="Bot")
    await bot.settle()
    assert answer["jobs"] == [] and bot.service.store.list_jobs() == []
    assert github.calls == []


async def test_unmapped_label_starts_nothing(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    for label in ("bug", "agentvine:principal", "agentvine:nonsense"):
        await bot.label(issue["number"], label)
    await bot.settle()
    assert writes(github) == []
    assert all(job.state is JobState.REJECTED for job in bot.service.store.list_jobs())


async def test_repository_config_maps_its_own_labels_and_roles(bot, github):
    github.push_files(REPO, "main", {".github/agentvine.yml": (
        "permissions: {trigger: maintain}\n"
        "labels: {'agentvine:hotfix': {worker: bugfix, level: autonomous}}\n")})
    issue = github.add_issue(REPO, title="x", user="alice")
    alice = await bot.label(issue["number"], "agentvine:hotfix")  # write < maintain
    mona = await bot.label(issue["number"], "agentvine:hotfix", sender="mona")
    await bot.settle()
    assert bot.job(alice["jobs"][0]).state is JobState.REJECTED
    job = bot.job(mona["jobs"][0])
    assert (job.state, job.worker, job.level) == (JobState.ACKNOWLEDGED, "bugfix", "autonomous")


async def test_seniority_label_picks_the_larger_model(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice", labels=["agentvine:principal"])
    answer = await bot.label(issue["number"], "agentvine:feature")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).model == bot.service.config.seniority["agentvine:principal"].model


async def test_human_required_waits_for_approval(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:refactor")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.WAITING_FOR_APPROVAL
    (run,) = github.check_runs_for(REPO)
    assert run["output"]["title"].startswith("Waiting for approval")


async def failed_with_config(bot, github, text: str):
    """A bugfix label on a repository whose .github/agentvine.yml is `text`: the failed job, the comment."""
    github.push_files(REPO, "main", {".github/agentvine.yml": text})
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.FAILED and job.conclusion == "failure"
    (comment,) = bot_comments(github, issue["number"])
    return job, comment


async def test_invalid_repository_config_is_reported_and_nothing_runs(bot, github):
    _, comment = await failed_with_config(bot, github, "workers:\n  bugfix:\n    max_turns: lots\n")
    assert "`workers.bugfix.max_turns`: Input should be a valid integer" in comment["body"]
    (run,) = github.check_runs_for(REPO)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert "`workers.bugfix.max_turns`" in run["output"]["summary"]
    assert run["output"]["title"] == texts.CONFIG_INVALID_TITLE


async def test_same_delivery_twice_acknowledges_once(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    await bot.label(issue["number"], "agentvine:bugfix", delivery_id="9a4b1c2e-0f6d-11f1-8e2a-0242ac120002")
    await bot.label(issue["number"], "agentvine:bugfix", delivery_id="9a4b1c2e-0f6d-11f1-8e2a-0242ac120002")
    await bot.settle()
    assert len(bot.service.store.list_jobs()) == 1
    assert len(bot_comments(github, issue["number"])) == 1 and len(github.check_runs_for(REPO)) == 1


async def test_acknowledged_despite_502s_and_a_secondary_rate_limit(bot, github):
    github.inject_fault("POST", r"/issues/\d+/comments$", status=502, times=2)
    github.inject_fault("POST", r"/check-runs$", status=403, headers={"Retry-After": "1"},
                        body={"message": "You have exceeded a secondary rate limit."})
    github.inject_fault("POST", r"/reactions$", status=429, headers={"Retry-After": "0"})
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).state is JobState.ACKNOWLEDGED
    assert len(bot_comments(github, issue["number"])) == 1
    assert len(github.check_runs_for(REPO)) == 1
    assert [c.status for c in github.calls if c.path.endswith("/check-runs")] == [403, 201]
    assert bot.service.clients.api.retries == 4


async def test_primary_rate_limit_waits_for_the_reset(bot, github):
    import time
    github.inject_fault("GET", r"/permission$", status=403, headers={
        "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()))},
        body={"message": "API rate limit exceeded"})
    issue = github.add_issue(REPO, title="x", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).state is JobState.ACKNOWLEDGED


async def test_expired_installation_token_is_refreshed_once(bot, github):
    first = github.add_issue(REPO, title="x", user="alice")
    await bot.label(first["number"], "agentvine:bugfix")
    await bot.settle()
    github.expire_tokens()
    second = github.add_issue(REPO, title="y", user="alice")
    answer = await bot.label(second["number"], "agentvine:bugfix")
    await bot.settle()
    assert bot.job(answer["jobs"][0]).state is JobState.ACKNOWLEDGED
    assert [c.status for c in github.calls if "access_tokens" in c.path] == [201, 201]
    assert 401 in [c.status for c in github.calls]


async def test_github_down_fails_the_job_with_a_reason(bot, github):
    github.inject_fault("*", r"/repos/", status=503, times=1000)
    issue = github.add_issue(REPO, title="x", user="alice")
    bot.service.clients.api.sleep = _no_sleep  # type: ignore[method-assign]
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.FAILED and "503" in job.reason


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_job_survives_a_restart_and_is_acknowledged_after_it(github, tmp_path):
    issue = github.add_issue(REPO, title="x", user="alice")
    # GitHub is slow: the first service stops before it could acknowledge.
    github.inject_fault("GET", r"/contents/", status=None, delay=5)
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0) as first:
        answer = await first.label(issue["number"], "agentvine:bugfix")
    job_id = answer["jobs"][0]
    github.faults.clear()
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0) as second:
        assert second.job(job_id).state is JobState.QUEUED  # stored durably, picked up again
        await second.settle()
        assert second.job(job_id).state is JobState.ACKNOWLEDGED
    assert len(github.check_runs_for(REPO)) == 1


async def test_repository_config_cannot_widen_the_operators_limits(bot, github):
    # A public repository's own file, pushed by someone with write access, must not let readers start runs.
    github.push_files(REPO, "main", {".github/agentvine.yml": (
        "permissions: {trigger: read}\nsandbox: {memory: 64g}\nworkers: {bugfix: {timeout_minutes: 360}}\n")})
    issue = github.add_issue(REPO, title="x", user="alice")
    bob = await bot.label(issue["number"], "agentvine:bugfix", sender="bob")  # read access
    alice = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    assert bot.job(bob["jobs"][0]).state is JobState.REJECTED  # the shipped `write` still holds
    job = bot.job(alice["jobs"][0])
    assert job.state is JobState.FAILED and job.conclusion == "failure"
    # Bob's refusal and Alice's failure are two jobs: their comments may come in either order.
    (comment,) = [c["body"] for c in bot_comments(github, issue["number"]) if "AGENTVINE_MAX_MEMORY" in c["body"]]
    for line in ("- `permissions.trigger`: read is below the operator's floor of write (AGENTVINE_MIN_TRIGGER_PERMISSION)",
                 "- `sandbox.memory`: 64g is above the operator's ceiling of 4g (AGENTVINE_MAX_MEMORY)",
                 "- `workers.bugfix.timeout_minutes`: 360 is above the operator's ceiling of 60 (AGENTVINE_MAX_MINUTES)"):
        assert line in comment
    (run,) = github.check_runs_for(REPO)
    assert run["conclusion"] == "failure" and "AGENTVINE_MAX_MEMORY" in run["output"]["summary"]


async def test_the_operator_may_raise_a_ceiling(github, tmp_path):
    github.push_files(REPO, "main", {".github/agentvine.yml": "sandbox: {memory: 16g, cpus: 4}\n"})
    issue = github.add_issue(REPO, title="x", user="alice")
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0, max_memory="16g", max_cpus=4) as bot:
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle()
        job = bot.job(answer["jobs"][0])
    assert job.state is JobState.ACKNOWLEDGED
    assert (job.run.memory, job.run.cpus) == ("16g", 4)


async def test_deeply_nested_repository_config_is_reported_as_invalid(bot, github):
    _, comment = await failed_with_config(bot, github, "[" * 10_000 + "]" * 10_000)
    assert "invalid YAML: nested more than 32 levels deep" in comment["body"]
