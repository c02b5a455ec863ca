"""Reviews that follow a pull request's pushes, against the GitHub fake with GitHub's real
`pull_request.synchronize` payload: a push is reviewed only where the repository asks for it, a review
of a push looks at the new commits alone, and no finding open on the pull request is posted twice.

The agent's part is its report (the review flow around it runs for real: the workspace from git over
HTTP, the host repository the anchors are read from, every GitHub call validated against GitHub's
OpenAPI description); tests/e2e/test_review.py runs the same with the real CLI in the sandbox."""

from __future__ import annotations

import json
import time
from http import HTTPStatus

import gidgethub
import pytest

from app.agent.boundary import workspace
from app.domain.findings import ReviewLedger
from app.domain.job import Job, JobState, Trigger
from app.pipeline.outcome import AgentRun
from app.pipeline.present import texts
from app.pipeline.present.render import Progress
from app.pipeline.progress import ProgressReporter
from app.pipeline.review.flow import ReviewFlow
from app.pipeline.review.incremental import choose_scope
from tests.support import payloads
from tests.support.harness import INSTALLATION, REPO

BASE = "".join(f"value_{i} = {i}\n" for i in range(1, 41))
ON_PUSH = "review:\n  on_push: true\n  request_changes_on: major\n"


def with_lines(text: str, changes: dict[int, str], top: str = "") -> str:
    lines = text.splitlines(keepends=True)
    for number, line in changes.items():
        lines[number - 1] = line + "\n"
    return top + "".join(lines)


def finding(path: str, line: int, severity: str, message: str, **more) -> dict:
    return {"path": path, "line": line, "severity": severity, "message": message, **more}


async def push(bot, pull: dict, files: dict[str, str], *, labels: tuple[str, ...] = (), sender: str = "alice") -> dict:
    """A commit on the pull request's branch and GitHub's delivery about it."""
    before = bot.github.head_sha(REPO, pull["head"]["ref"])
    after = bot.github.push_files(REPO, pull["head"]["ref"], files, message="More work")
    payload = payloads.synchronize(pull=pull, before=before, after=after, labels=labels, repo=bot.repo,
                                   installation_id=INSTALLATION, sender=sender)
    response = await bot.deliver("pull_request", payload)
    assert response.status == 202, await response.text()
    answer = await bot.outcome(response)
    await bot.settle()
    return answer


async def review(bot, job_id: str, report: dict) -> tuple[object, str]:
    """Run the acknowledged review job with `report` as the agent's final message: the flow's prompt,
    then its conclusion, as the run stage calls them around the sandbox."""
    ctx = bot.service.worker.context(bot.job(job_id), "run")
    ctx.update("started", to=JobState.RUNNING)
    ws = ctx.workspace()
    await workspace.prepare(ws, ctx.settings.clone_url(REPO), ctx.job.base_branch, await ctx.api.token())
    flow = ReviewFlow()
    prompt = await flow.prompt(ctx)
    reporter = ProgressReporter(ctx, Progress(steps=flow.steps), prefix="/agentvine", interval=0)
    text = "Reviewed.\n\n```json\n" + json.dumps(report) + "\n```"
    try:
        await flow.conclude(ctx, AgentRun(reporter, ws, text, None, None, time.time()))
    finally:
        reporter.close()
        ctx.discard_files()
    return bot.job(job_id), prompt


def comments_of(github, review_id: int) -> list[tuple[str, int, str]]:
    return sorted((c["path"], c["line"], c["body"].split(" · ", 1)[1].split("\n")[0])
                  for c in github.review_comments if c["pull_request_review_id"] == review_id)


@pytest.fixture
def pull(github):
    github.push_files(REPO, "main", {"calc.py": BASE, ".github/agentvine.yml": ON_PUSH})
    github.push_files(REPO, "topic", {"calc.py": with_lines(BASE, {5: "value_5 = five", 12: "value_12 = 12 / 0"})})
    return github.add_pull(REPO, head="topic", base="main", title="Rework the values", user="alice")


A = finding("calc.py", 12, "major", "Division by zero: `12 / 0` raises.", suggestion="value_12 = 12")
B = finding("calc.py", 5, "minor", "Spell the number: `five` is not an int.")


async def test_incremental_review_across_two_pushes_posts_only_new_findings(bot, github, pull):
    _, answer = await bot.comment(pull["number"], "/agentvine review")
    await bot.settle()
    first, _ = await review(bot, answer["jobs"][0], {"summary": "Reworks the values.", "findings": [A, B],
                                                     "event": "APPROVE"})  # the model asks to approve
    review1 = first.review
    assert (first.state, first.conclusion) == (JobState.SUCCEEDED, "failure") and review1.scope == "full"
    assert comments_of(github, review1.review_id) == [("calc.py", 5, B["message"]), ("calc.py", 12, A["message"])]
    (published,) = [e.data for e in bot.service.store.events(first.id) if e.kind == "review_published"]
    assert (published["model_asked_for"], published["review_event"]) == ("APPROVE", "REQUEST_CHANGES")

    # Push 1: three lines on top (every finding moves down by three) and a new problem at the end.
    top = "import math\nimport os\n\n"
    second_push = with_lines(BASE, {5: "value_5 = five", 12: "value_12 = 12 / 0", 40: "value_40 = math.sqrt(-1)"}, top)
    calls = len(github.calls)
    answer = await push(bot, pull, {"calc.py": second_push})
    job = bot.job(answer["jobs"][0])
    assert (job.state, job.trigger.kind, job.worker) == (JobState.ACKNOWLEDGED, "push", "review")
    assert job.tracking_comment_id == first.tracking_comment_id  # the review's comment follows the pushes
    c = finding("calc.py", 43, "major", "`math.sqrt(-1)` raises ValueError.")
    again_a = {**A, "line": 15, "message": "Division by zero: 12 / 0 raises!"}  # worded a little differently
    again_b = {**B, "line": 8}
    second, prompt = await review(bot, job.id, {"summary": "Adds imports and a root.", "findings": [again_a, c, again_b]})
    review2 = second.review
    # A bounded number of calls for the push's review, one compare among them (docs/performance.md).
    operations = [c.operation_id for c in github.calls[calls:] if "access_tokens" not in c.path]
    assert len(operations) <= 13 and operations.count("repos/compare-commits-with-basehead") == 1
    # Only what is new since the last review was shown, and the open findings at their new lines.
    assert review2.scope == "incremental" and review2.since == review1.head and review2.head == github.head_sha(REPO, "topic")
    assert "What is new since AgentVine's last review" in prompt and "+value_40 = math.sqrt(-1)" in prompt
    assert "+value_12 = 12 / 0" not in prompt and "-value_12 = 12" not in prompt
    assert "- calc.py:15 (major): Division by zero" in prompt and "- calc.py:8 (minor): Spell" in prompt
    # Posted: the new finding alone; the two repeated ones stay where they are.
    assert comments_of(github, review2.review_id) == [("calc.py", 43, c["message"])]
    body = next(r["body"] for r in github.reviews if r["id"] == review2.review_id)
    assert "review of the changes since the last review" in body and "**Still open** from earlier reviews" in body
    assert "`calc.py:8`" in body and "`calc.py:15`" in body and "**Findings:** 🟠 1 major" in body
    assert second.outcome.title == f"Reviewed #{pull['number']}: 1 new finding, 2 still open"
    assert {(a["start_line"], a["annotation_level"]) for a in second.outcome.annotations} == {
        (43, "failure"), (15, "failure"), (8, "warning")}

    # Push 2: the division is fixed (its finding is outdated) and a nit appears; the model repeats B.
    third_push = second_push.replace("value_12 = 12 / 0", "value_12 = 12").replace("value_40 = math.sqrt(-1)",
                                                                                   "value_40 = math.sqrt(1)")
    third_push = third_push.replace("value_39 = 39", "value_39 =  39")
    answer = await push(bot, pull, {"calc.py": third_push})
    d = finding("calc.py", 42, "nit", "Two spaces after `=`.")
    third, _ = await review(bot, answer["jobs"][0], {"summary": "Fixes.", "findings": [again_b, d]})
    review3 = third.review
    assert comments_of(github, review3.review_id) == [("calc.py", 42, d["message"])]
    assert {f.message: f.status for f in review3.findings} == {
        B["message"]: "open", d["message"]: "open", c["message"]: "outdated", "Division by zero: `12 / 0` raises.": "outdated"}
    body = next(r["body"] for r in github.reviews if r["id"] == review3.review_id)
    assert "2 earlier finding(s) no longer apply" in body and "`calc.py:8`" in body

    # The events: changes requested while a major finding stood, lifted once none does. Never an approval.
    states = [r["state"] for r in github.reviews]
    assert states == ["DISMISSED", "DISMISSED", "COMMENTED"] and review3.changes_requested == []
    assert [review1.event, review2.event, review3.event] == ["REQUEST_CHANGES", "REQUEST_CHANGES", "COMMENT"]
    assert set(github.review_dismissals) == {review1.review_id, review2.review_id}
    assert not any(c.request_json and c.request_json.get("event") == "APPROVE" for c in github.calls)
    assert (third.conclusion, third.outcome.title) == ("neutral", f"Reviewed #{pull['number']}: 1 new finding, 1 still open")


async def test_review_full_looks_at_everything_again_and_resolves_what_it_no_longer_finds(bot, github, pull):
    _, answer = await bot.comment(pull["number"], "/agentvine review")
    await bot.settle()
    first, _ = await review(bot, answer["jobs"][0], {"summary": "s", "findings": [A, B]})
    github.push_files(REPO, "topic", {"notes.md": "# Notes\n"})
    _, answer = await bot.comment(pull["number"], "/agentvine review full")
    await bot.settle()
    e = finding("notes.md", 1, "nit", "Say what the notes are for.")
    again, prompt = await review(bot, answer["jobs"][0], {"summary": "s", "findings": [A, e]})
    assert again.trigger.full and again.review.scope == "full"
    assert "## The pull request's changes" in prompt and "+value_12 = 12 / 0" in prompt  # the whole diff again
    assert comments_of(github, again.review.review_id) == [("notes.md", 1, e["message"])]  # A is open: not again
    assert {f.message: f.status for f in again.review.findings} == {
        A["message"]: "open", e["message"]: "open", B["message"]: "resolved"}
    body = next(r["body"] for r in github.reviews if r["id"] == again.review.review_id)
    assert "review of the whole pull request, as asked" in body and "taken as resolved" in body
    assert first.review.review_id != again.review.review_id


async def test_a_push_is_reviewed_only_where_the_repository_asks_for_it(bot, github, pull):
    github.push_files(REPO, "main", {".github/agentvine.yml": "review:\n  on_push: false\n"})
    before = len(github.calls)
    answer = await push(bot, pull, {"calc.py": BASE + "more = 1\n"})
    job = bot.job(answer["jobs"][0])
    assert (job.state, job.reason) == (JobState.REJECTED, texts.PUSH_NOT_REVIEWED)
    # Not a word on GitHub: no comment, no reaction, no check run (the config is all it read).
    assert [c.operation_id for c in github.calls[before:] if "access_tokens" not in c.path] == ["repos/get-content"]

    # The review label on the pull request asks for it, even with on_push off.
    answer = await push(bot, pull, {"calc.py": BASE + "more = 2\n"}, labels=("agentvine:review", "bug"))
    job = bot.job(answer["jobs"][0])
    assert (job.state, job.worker, job.level) == (JobState.ACKNOWLEDGED, "review", "autonomous")
    (run,) = [r for r in github.check_runs if r["id"] == job.check_run_id]
    assert run["head_sha"] == github.head_sha(REPO, "topic") and run["name"] == "AgentVine · review"
    assert github.reactions_on_issue(REPO, pull["number"]) == []  # a push is nothing to put 👀 on


async def test_a_push_review_reuses_the_last_reviews_comment_and_posts_one_when_it_was_deleted(bot, github, pull):
    _, answer = await bot.comment(pull["number"], "/agentvine review")
    await bot.settle()
    first, _ = await review(bot, answer["jobs"][0], {"summary": "s", "findings": []})
    answer = await push(bot, pull, {"calc.py": BASE + "more = 1\n"})
    assert bot.job(answer["jobs"][0]).tracking_comment_id == first.tracking_comment_id
    github.delete_comment(REPO, first.tracking_comment_id)
    answer = await push(bot, pull, {"calc.py": BASE + "more = 2\n"})
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.ACKNOWLEDGED and job.tracking_comment_id not in (None, first.tracking_comment_id)
    (comment,) = [c for c in github.comments_on(REPO, pull["number"]) if c["user"]["type"] == "Bot"]
    assert comment["id"] == job.tracking_comment_id and texts.TRACKING_MARKER.format(job_id=job.id) in comment["body"]


async def test_a_push_by_someone_without_the_trigger_permission_is_not_reviewed_nor_answered(bot, github, pull):
    github.set_permission(REPO, "bob", "read")
    answer = await push(bot, pull, {"calc.py": BASE + "more = 1\n"}, sender="bob")
    job = bot.job(answer["jobs"][0])
    assert job.state is JobState.REJECTED and "read access" in job.reason
    assert [c for c in github.comments_on(REPO, pull["number"])] == [] and github.check_runs == []


class Compare:
    """RepoOps.compare as GitHub may answer it: a comparison, or an error."""

    def __init__(self, answer):
        self.answer, self.asked = answer, []

    async def compare(self, base, head):
        self.asked.append((base, head))
        if isinstance(answer := self.answer, Exception):
            raise answer
        return answer


PULL_FILES = [{"filename": "a.py", "patch": "@@ -1 +1 @@\n-a\n+b"}, {"filename": "b.py", "patch": "@@ -1 +1 @@\n-c\n+d"}]


def gh_error(status: int):
    return (gidgethub.GitHubBroken if status >= 500 else gidgethub.BadRequest)(HTTPStatus(status))


@pytest.mark.parametrize("answer, kind, reason", [
    ({"status": "ahead", "files": [{"filename": "b.py", "patch": "x"}, {"filename": "main-only.py"}]}, "incremental", "new_commits"),
    ({"status": "diverged", "files": []}, "full", "rewritten"),
    (gh_error(404), "full", "rewritten"),
    (gh_error(502), "full", "unknown"),
    (gh_error(403), "full", "unknown"),
    (["not", "a", "comparison"], "full", "unknown"),
], ids=["ahead", "force-pushed", "old-head-gone", "github-down", "refused", "garbage"])
async def test_what_a_review_looks_at(answer, kind, reason):
    job = Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=3, requester="alice",
              trigger=Trigger(kind="push", worker="review"))
    github = Compare(answer)
    scope = await choose_scope(github, job, ReviewLedger(head="old"), "new", PULL_FILES)
    assert (scope.kind, scope.reason, scope.since, github.asked) == (kind, reason, "old", [("old", "new")])
    # Only the pull request's own files: a merge of the base branch brings others.
    assert [f["filename"] for f in scope.files] == (["b.py"] if kind == "incremental" else ["a.py", "b.py"])
    for first, trigger in ((None, job.trigger), (ReviewLedger(head="old"), Trigger(kind="command", full=True)),
                           (ReviewLedger(head="new"), job.trigger)):
        again = await choose_scope(Compare(answer), job.model_copy(update={"trigger": trigger}), first, "new", PULL_FILES)
        assert again.kind == "full" and again.reason in ("first", "asked", "same_head")
