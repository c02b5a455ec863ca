"""A second trigger where AgentVine is already working (app/pipeline/followups.py), against the GitHub fake
with GitHub's example payloads: never a second job, never a silent cancel; answered once, read into the job
that has not started, or queued as a follow-up on its branch. No agent runs here (max_concurrent_jobs=0): a
job "under way" is one the store says is running; tests/e2e/test_queue.py runs them for real."""

from __future__ import annotations

from app.domain.job import JobState, Outcome
from app.pipeline.present import texts
from app.pipeline.present.waiting import wait_line
from app.pipeline.prompt import build_prompt
from tests.support import payloads
from tests.support.harness import INSTALLATION, REPO


def bot_comments(github, number: int) -> list[dict]:
    return [c for c in github.comments_on(REPO, number) if c["user"]["login"] == "agentvine[bot]"]


def writes(github) -> list:
    return [c for c in github.calls if c.method != "GET" and "access_tokens" not in c.path]


def eyes(github, comment) -> list[str]:
    return [r["content"] for r in github.reactions_on_comment(comment["id"])]


async def acknowledged(bot, github, label: str = "agentvine:bugfix"):
    issue = github.add_issue(REPO, title="Parser rejects tabs", body="Tabs break it.", user="alice")
    answer = await bot.label(issue["number"], label)
    await bot.settle()
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.ACKNOWLEDGED
    return issue, job


def under_way(bot, job):
    """The job as the run stage leaves it once the agent started (no agent runs in these tests)."""
    running = job.moved_to(JobState.RUNNING)
    bot.service.store.save_job(running, "started")
    return running


def finished(bot, job, *, pr_number: int | None):
    done = bot.job(job.id).moved_to(JobState.SUCCEEDED, "Opened a pull request", conclusion="success")
    done = done.model_copy(update={"outcome": Outcome(conclusion="success", title="Opened", pr_number=pr_number)})
    bot.service.store.save_job(done, "finished")
    bot.service.dispatcher.wake()
    return done


async def test_a_label_again_is_answered_once_and_a_redelivery_says_nothing(bot, github):
    issue, first = await acknowledged(bot, github)
    delivery = "5b7c3d2e-0f6d-11f1-8e2a-0242ac120002"
    again = await bot.label(issue["number"], "agentvine:feature", delivery_id=delivery)
    await bot.settle()
    (second_id,) = again["jobs"]
    second = bot.job(second_id)
    assert second.state is JobState.REJECTED and first.id in second.reason  # recorded, never started
    assert bot.job(first.id).state is JobState.ACKNOWLEDGED  # and the first one goes on, not cancelled
    (_, reply) = [c["body"] for c in bot_comments(github, issue["number"])]
    assert reply == texts.ALREADY_WORKING.format(
        sender="alice", worker="bugfix", job_id=first.id, state="Queued", what="the label `agentvine:feature`",
        prefix="/agentvine")
    assert len(github.check_runs_for(REPO)) == 1

    before = len(writes(github))
    redelivered = await bot.label(issue["number"], "agentvine:feature", delivery_id=delivery)  # GitHub's redelivery
    await bot.label(issue["number"], "agentvine:bugfix")  # a third time, a new delivery: no second reply
    await bot.settle()
    assert redelivered["jobs"] == [second_id]  # the delivery as stored the first time: nothing new
    assert len(writes(github)) == before
    assert len(bot_comments(github, issue["number"])) == 2
    assert [j.state for j in bot.service.store.list_jobs()] == [JobState.ACKNOWLEDGED, JobState.REJECTED,
                                                                  JobState.REJECTED]

    await bot.label(issue["number"], "agentvine:feature", sender="mona")  # someone else is told too, once
    await bot.settle()
    assert bot_comments(github, issue["number"])[-1]["body"].startswith("@mona AgentVine is already working on this")


async def two_labels_at_once(bot, github, first: str, second: str):
    """Two labels on one issue that reach the worker together, the first sender's admission slow: both
    acknowledgements run side by side and the second one's admission is done first."""
    issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
    github.inject_fault("GET", rf"/collaborators/{first}/permission$", status=None, delay=0.5)
    for sender in (first, second):
        payload = payloads.labeled_issue(label="agentvine:bugfix", issue=github.issue(REPO, issue["number"]),
                                         repo=bot.repo, installation_id=INSTALLATION, sender=sender)
        payload["issue"]["updated_at"] = f"2026-12-01T00:00:0{len(sender)}Z"  # two events, two bodies
        assert (await bot.deliver("issues", payload)).status == 202
    await bot.service.worker.importer.import_new()
    await bot.settle()
    return [(j.requester, j.state) for j in bot.service.store.list_jobs()]


async def test_a_second_label_admitted_first_still_waits_for_the_first_one(bot, github):
    assert await two_labels_at_once(bot, github, "alice", "mona") == [
        ("alice", JobState.ACKNOWLEDGED), ("mona", JobState.REJECTED)]  # one job, and mona is answered
    assert len(github.check_runs_for(REPO)) == 1


async def test_a_refused_first_label_does_not_swallow_the_one_after_it(bot, github):
    assert await two_labels_at_once(bot, github, "bob", "alice") == [
        ("bob", JobState.REJECTED), ("alice", JobState.ACKNOWLEDGED)]


async def test_a_review_asked_again_on_a_pull_request_is_answered(bot, github):
    github.push_files(REPO, "feature", {"x.py": "x = 1\n"})
    pull = github.add_pull(REPO, head="feature", base="main", title="Feature", user="alice")
    first, _ = await bot.comment(pull["number"], "/agentvine review")
    await bot.settle()
    again, outcome = await bot.comment(pull["number"], "/agentvine review")
    await bot.settle()
    assert bot.job(outcome["jobs"][0]).state is JobState.REJECTED
    assert eyes(github, again) == ["eyes"]
    assert bot_comments(github, pull["number"])[-1]["body"].endswith(
        "so this comment starts no second job. `/agentvine <instruction>` adds to that work; `/agentvine cancel` stops it.")


async def test_an_instruction_before_the_job_starts_is_read_into_it(bot, github):
    issue, first = await acknowledged(bot, github)
    comment, outcome = await bot.comment(issue["number"], "/agentvine also accept semicolons")
    await bot.settle()
    assert bot.job(outcome["jobs"][0]).state is JobState.REJECTED
    assert eyes(github, comment) == ["eyes"]
    reply = bot_comments(github, issue["number"])[-1]["body"]
    assert reply == texts.FOLDED.format(sender="alice", worker="bugfix", job_id=first.id, state="Queued",
                                        permission="write")
    prompt = await build_prompt(bot.service.worker.context(bot.job(first.id)))
    assert "Instruction from @alice, in a comment:\nalso accept semicolons" in prompt

    more, _ = await bot.comment(issue["number"], "/agentvine and colons")  # seen (👀), not answered again
    await bot.settle()
    assert eyes(github, more) == ["eyes"] and len(bot_comments(github, issue["number"])) == 2
    assert len(github.check_runs_for(REPO)) == 1


async def test_an_instruction_while_the_job_runs_follows_it_on_its_branch(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    comment, outcome = await bot.comment(issue["number"], "/agentvine add a test for tabs too")
    await bot.settle()
    follow_up = bot.job(outcome["jobs"][0])
    assert follow_up.state is JobState.WAITING_FOR_JOB and follow_up.follows == first.id
    assert follow_up.branch == first.branch
    assert eyes(github, comment) == ["eyes"]
    # Its answer is its own tracking comment, which says what it waits for; and its check run.
    tracking = next(c for c in bot_comments(github, issue["number"]) if c["id"] == follow_up.tracking_comment_id)
    assert "**Queued as a follow-up**" in tracking["body"]
    assert texts.WAIT_AFTER.format(worker="bugfix", job_id=first.id, state="Working") in tracking["body"]
    run = next(r for r in github.check_runs if r["id"] == follow_up.check_run_id)
    assert run["status"] == "queued" and run["output"]["title"] == "Queued as a follow-up: feature for #1"
    assert bot.job(first.id).state is JobState.RUNNING  # nothing cancelled

    finished(bot, first, pr_number=7)  # the first job pushed its branch and opened a pull request
    await bot.settle()
    released = bot.job(follow_up.id)
    assert released.state is JobState.ACKNOWLEDGED
    assert (released.branch, released.base_branch) == (first.branch, first.branch)
    assert released.reason == texts.FOLLOW_UP_RELEASED.format(
        job_id=first.id, conclusion="success", where=f"its branch `{first.branch}`")
    prompt = await build_prompt(bot.service.worker.context(released))
    assert texts.FOLLOW_UP_NOTE.format(branch=first.branch) in prompt
    assert "Instruction from @alice:\nadd a test for tabs too" in prompt

    await bot.service.worker.queue.flush()  # now it waits for a free place, and says so
    body = github.comments_on(REPO, issue["number"])
    tracking = next(c for c in body if c["id"] == follow_up.tracking_comment_id)["body"]
    assert texts.WAIT_PAUSED in tracking and "already working on this" not in tracking


async def test_a_follow_up_of_work_that_pushed_nothing_starts_from_the_default_branch(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    _, outcome = await bot.comment(issue["number"], "/agentvine then also tabs in headers")
    await bot.settle()
    finished(bot, first, pr_number=None)
    await bot.settle()
    released = bot.job(outcome["jobs"][0])
    assert released.state is JobState.ACKNOWLEDGED and released.base_branch is None  # the default branch
    assert "(that job pushed nothing)" in released.reason


async def test_a_second_follow_up_is_read_into_the_first_which_has_not_started(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    _, one = await bot.comment(issue["number"], "/agentvine add a test")
    await bot.settle()
    _, two = await bot.comment(issue["number"], "/agentvine and a changelog line")
    await bot.settle()
    follow_up, folded = bot.job(one["jobs"][0]), bot.job(two["jobs"][0])
    assert follow_up.state is JobState.WAITING_FOR_JOB
    assert folded.state is JobState.REJECTED and follow_up.id in folded.reason
    prompt = await build_prompt(bot.service.worker.context(follow_up))
    assert "Instruction from @alice, in a comment:\nand a changelog line" in prompt


async def test_cancel_stops_the_work_and_the_follow_ups_behind_it(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    _, outcome = await bot.comment(issue["number"], "/agentvine add a test")
    await bot.settle()
    follow_up = bot.job(outcome["jobs"][0])
    await bot.comment(issue["number"], "/agentvine cancel")  # about the work under way, not the follow-up
    await bot.settle()
    assert bot.job(first.id).state is JobState.CANCELLED
    cancelled = bot.job(follow_up.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == texts.CANCELLED_WITH.format(
        sender="alice", job_id=first.id)
    run = next(r for r in github.check_runs if r["id"] == follow_up.check_run_id)
    assert (run["status"], run["conclusion"]) == ("completed", "cancelled")


async def test_status_is_about_the_work_under_way(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    await bot.comment(issue["number"], "/agentvine add a test")
    await bot.comment(issue["number"], "/agentvine status")
    await bot.settle()
    (status,) = [c["body"] for c in bot_comments(github, issue["number"]) if c["body"].startswith("Job `")]
    assert status.startswith(f"Job `{first.id}` (bugfix, supervised): **Working**")


async def edit(bot, issue: dict, comment: dict, body: str, *, before: str) -> None:
    """GitHub's issue_comment.edited: the comment's new body (in the fake too), and what it was."""
    (stored,) = [c for c in bot.github.comments_on(REPO, issue["number"]) if c["id"] == comment["id"]]
    stored["body"] = body
    payload = payloads.issue_comment(body=body, action="edited", issue=bot.github.issue(REPO, issue["number"]),
                                     repo=bot.repo, installation_id=INSTALLATION, sender="alice")
    payload["comment"] = {**payload["comment"], "id": comment["id"]}
    payload["changes"] = {"body": {"from": before}}
    assert (await bot.deliver("issue_comment", payload)).status == 202
    await bot.settle()


async def test_a_comment_edited_to_hold_an_instruction_adds_to_the_work_under_way(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    comment, _ = await bot.comment(issue["number"], "Looks good.")
    await edit(bot, issue, comment, "Looks good.\n/agentvine also handle CRLF", before="Looks good.")
    (follow_up,) = [j for j in bot.service.store.list_jobs() if j.trigger.edited]
    assert follow_up.state is JobState.WAITING_FOR_JOB and follow_up.follows == first.id
    assert follow_up.trigger.instruction == "also handle CRLF" and follow_up.trigger.comment_id == comment["id"]


async def test_an_edit_of_the_jobs_own_command_follows_it_even_before_it_starts(bot, github):
    """The job's instruction is the comment as it was when asked: an edit of it is not read into the job."""
    issue = github.add_issue(REPO, title="Add --json", user="alice")
    comment, answer = await bot.comment(issue["number"], "/agentvine add a --json flag")
    await bot.settle()
    first = bot.job(answer["jobs"][0])
    await edit(bot, issue, comment, "/agentvine add a --json and a --yaml flag", before="/agentvine add a --json flag")
    (follow_up,) = [j for j in bot.service.store.list_jobs() if j.trigger.edited]
    assert follow_up.state is JobState.WAITING_FOR_JOB and follow_up.follows == first.id


async def test_an_edit_where_nothing_is_under_way_starts_nothing_and_costs_no_call(bot, github):
    issue = github.add_issue(REPO, title="x", user="alice")
    comment, _ = await bot.comment(issue["number"], "Hm.")
    before = len(github.calls)
    await edit(bot, issue, comment, "/agentvine do it", before="Hm.")
    assert bot.service.store.list_jobs() == [] and len(github.calls) == before


async def test_a_wait_line_names_the_limit():
    from app.domain.queue import After, Place

    assert wait_line(Place(position=2, scope="repository", limit=1)) == texts.WAIT_PLACE.format(
        place="#2", limit=texts.WAIT_LIMIT["repository"].format(limit=1, jobs="job"))
    assert "AGENTVINE_MAX_JOBS_PER_INSTALLATION" in wait_line(Place(position=1, scope="installation", limit=3))
    assert "`AGENTVINE_MAX_CONCURRENT_JOBS`" in wait_line(Place(position=12, scope="service", limit=4))
    assert wait_line(Place(position=12, scope="service", limit=4)).startswith("⏳ **More than 10 jobs ahead**")
    assert wait_line(Place(position=3, scope="service", limit=0)) == texts.WAIT_PAUSED
    assert "job `abc`" in wait_line(After(job_id="abc", worker="bugfix", state=JobState.RUNNING))
    assert wait_line(None) is None


def test_how_a_second_trigger_is_answered():
    from app.domain.job import Job, Trigger
    from app.pipeline.followups import how_to_answer

    def make(trigger: Trigger, state: JobState = JobState.ACKNOWLEDGED) -> Job:
        return Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=1, requester="alice",
                   trigger=trigger, state=state)

    ahead = make(Trigger(kind="command", instruction="do it", comment_id=10))
    running = ahead.model_copy(update={"state": JobState.RUNNING})
    instruction = Trigger(kind="command", instruction="also this", comment_id=11)
    assert how_to_answer(make(Trigger(kind="label", label="agentvine:feature")), running) == "answer"
    assert how_to_answer(make(Trigger(kind="command", worker="review", comment_id=11)), ahead) == "answer"
    assert how_to_answer(make(instruction), ahead) == "fold"
    assert how_to_answer(make(instruction), running) == "follow"
    assert how_to_answer(make(instruction), ahead.model_copy(update={"answer": "yes"})) == "follow"  # resumes: no new prompt
    own_edit = Trigger(kind="command", instruction="do it better", comment_id=10, edited=True)
    assert how_to_answer(make(own_edit), ahead) == "follow"
    other_edit = Trigger(kind="command", instruction="and this", comment_id=12, edited=True)
    assert how_to_answer(make(other_edit), ahead) == "fold"
    # The job ahead reads only comments of people its own rule admits (a rule made stricter since, say).
    from app.pipeline.acknowledge import run_settings
    from app.domain.config import load_default
    strict = ahead.model_copy(update={"run": run_settings(load_default(), "bugfix").model_copy(
        update={"trigger_permission": "maintain"})})
    assert how_to_answer(make(instruction), strict, "write") == "follow"
    assert how_to_answer(make(instruction), strict, "maintain") == "fold"
    review = ahead.model_copy(update={"worker": "review"})
    assert how_to_answer(make(instruction), review) == "follow"  # a review cannot do what it asks


async def test_a_retry_of_an_edited_follow_up_runs_as_any_job(bot, github):
    issue, first = await acknowledged(bot, github)
    under_way(bot, first)
    comment, _ = await bot.comment(issue["number"], "Looks good.")
    await edit(bot, issue, comment, "Looks good.\n/agentvine also handle CRLF", before="Looks good.")
    (follow_up,) = [j for j in bot.service.store.list_jobs() if j.trigger.edited]
    await bot.press(follow_up.id, "cancel")
    await bot.settle()
    assert bot.job(follow_up.id).state is JobState.CANCELLED and bot.job(first.id).state is JobState.RUNNING
    finished(bot, first, pr_number=None)
    await bot.press(follow_up.id, None)  # Re-run in the Checks tab
    await bot.settle()
    again = bot.service.store.list_jobs()[-1]
    assert again.trigger.instruction == "also handle CRLF" and not again.trigger.edited
    assert again.state is JobState.ACKNOWLEDGED


def test_the_replies_docs_usage_shows_are_the_ones_sent():
    from pathlib import Path

    from app.domain.queue import Place

    usage = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text()
    fields = {"sender": "alice", "worker": "bugfix", "job_id": "4f1c2a9e0b7d4e21"}
    assert texts.ALREADY_WORKING.format(state="Working", what="the label `agentvine:feature`", prefix="/agentvine",
                                        **fields) in usage
    assert texts.FOLDED.format(state="Queued", permission="write", **fields) in usage
    assert wait_line(Place(position=2, scope="repository", limit=1)) in usage
