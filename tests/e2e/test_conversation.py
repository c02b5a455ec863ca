"""The conversation with the real Claude Code CLI in the real container: a question that is
answered and resumes the same session, cancelling a running job, approval, the review worker,
and a follow-up pushed to AgentVine's own pull request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from app.store.base import StageClaim
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

QUESTION = "Should a run of several tabs count as one separator, or as several?"
FIELDS = "def split_fields(line):\n    return line.split()\n"


def write(path: str, content: str) -> ToolUse:
    return ToolUse(name="Write", input={"file_path": f"/workspace/{path}", "content": content})


async def wait_for(predicate, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


def bot_comments(github, number):
    return [c["body"] for c in github.comments_on(REPO, number) if c["user"]["type"] == "Bot"]


async def test_question_answer_resumes_the_session_and_opens_the_pull_request(tmp_path, sandbox_image, docker_client):
    script = [
        ScriptedTurn(text=f"QUESTION: {QUESTION}"),
        ScriptedTurn(tool_uses=[write("fields.py", FIELDS)]),
        ScriptedTurn(text="Runs of tabs now count as one separator, as answered."),
    ]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, model):
        github = bot.github
        issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])

        # The agent asked: the job waits with no container, the check run wants action.
        assert job.state is JobState.WAITING_FOR_ANSWER and job.question == QUESTION and job.session_id
        assert job_containers(docker_client, job) == []
        asked = bot_comments(github, issue["number"])[-1]
        assert asked.startswith("@alice AgentVine needs an answer") and f"> {QUESTION}" in asked
        first_run = next(r for r in github.check_runs if r["id"] == job.check_run_id)
        assert (first_run["conclusion"], first_run["output"]["title"]) == ("action_required", texts.QUESTION_TITLE)
        assert QUESTION in first_run["output"]["summary"]

        # Someone without write access cannot answer; mona can.
        await bot.comment(issue["number"], "Several!", sender="bob")
        await bot.settle(timeout=30)
        assert bot.job(job.id).state is JobState.WAITING_FOR_ANSWER
        await bot.comment(issue["number"], "One separator, please.", sender="mona")
        await bot.settle(timeout=180)
        done = bot.job(job.id)

        assert (done.state, done.conclusion) == (JobState.SUCCEEDED, "success"), done.reason
        assert github.read_file(REPO, done.branch, "fields.py") == FIELDS
        (pull,) = github.pulls
        assert done.outcome.pr_number == pull["number"]
        # The same session resumed: the model got the earlier turns and the answer.
        resumed = json.dumps(model.main_requests[1]["messages"])
        assert QUESTION in resumed and "One separator, please." in resumed and "@mona answered" in resumed
        assert "Several!" not in resumed
        assert len(github.check_runs_for(REPO)) == 2  # the question's, and the resumed work's
    assert job_containers(docker_client, job) == []


@contextlib.asynccontextmanager
async def unanswered(tmp_path, sandbox_image):
    """A job that asked its question and waits: it expires after 1.8 s, looked for every 0.2 s.
    Yields the bot, the issue's number and the job's id."""
    files = {"README.md": "# hello\n", ".github/agentvine.yml": "questions: {expire_hours: 0.0005}\n"}
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text=f"QUESTION: {QUESTION}")], files=files,
                          expiry_check_interval=0.2) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        yield bot, issue["number"], answer["jobs"][0]


async def test_unanswered_question_expires(tmp_path, sandbox_image):
    async with unanswered(tmp_path, sandbox_image) as (bot, number, job_id):
        await wait_for(lambda: bot.job(job_id).state is JobState.FAILED, timeout=30)
        job = bot.job(job_id)
        assert job.conclusion == "timed_out"
        assert "No answer came within" in bot_comments(bot.github, number)[-1]


async def test_an_expiry_is_said_once_though_its_tracking_comment_is_gone(tmp_path, sandbox_image, monkeypatch):
    """Someone deleted the tracking comment: the redraw after the expiry fails, and the job must still
    end, with "No answer came" said once, not again with every later look (here every 0.2 s)."""
    monkeypatch.setattr("app.pipeline.questions.EXPIRY_RETRY_S", 0.2)
    async with unanswered(tmp_path, sandbox_image) as (bot, number, job_id):
        assert bot.job(job_id).state is JobState.WAITING_FOR_ANSWER
        bot.github.delete_comment(REPO, bot.job(job_id).tracking_comment_id)
        await wait_for(lambda: bot.job(job_id).state is JobState.FAILED, timeout=30)
        await asyncio.sleep(1.5)  # several more looks
        said = [body for body in bot_comments(bot.github, number) if "No answer came within" in body]
        assert len(said) == 1 and bot.job(job_id).conclusion == "timed_out"


async def test_cancel_while_running_kills_the_container(tmp_path, sandbox_image, docker_client):
    script = [ScriptedTurn(text="Thinking for a long time…", delay_seconds=120)]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        job_id = answer["jobs"][0]
        await wait_for(lambda: bot.job(job_id).state is JobState.RUNNING and job_containers(docker_client, job_id))
        await bot.comment(issue["number"], "/agentvine cancel")
        await bot.settle(timeout=60)
        job = bot.job(job_id)
        assert (job.state, job.conclusion) == (JobState.CANCELLED, "cancelled")
        run = next(r for r in bot.github.check_runs if r["id"] == job.check_run_id)
        assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
        assert job.outcome.figures.duration_s < 60
    assert job_containers(docker_client, job_id) == []


async def test_human_required_runs_only_after_approval(tmp_path, sandbox_image):
    script = [ScriptedTurn(tool_uses=[write("fields.py", FIELDS)]), ScriptedTurn(text="Restructured.")]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, model):
        issue = bot.github.add_issue(REPO, title="Restructure the parser", user="alice")
        answer = await bot.label(issue["number"], "agentvine:refactor")
        await bot.settle(timeout=60)
        job_id = answer["jobs"][0]
        assert bot.job(job_id).state is JobState.WAITING_FOR_APPROVAL
        assert model.requests == []  # no container, no model call before the approval
        await bot.press(job_id, "approve", sender="mona")
        await bot.settle(timeout=180)
        job = bot.job(job_id)
        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success")
        (pull,) = bot.github.pulls
        assert pull["draft"] is True  # human-required, then like supervised


async def test_a_cancel_asked_before_the_run_began_ends_it_before_anything_runs(tmp_path, sandbox_image, docker_client):
    """Asked for while another stage or a dead worker held the job: the run that takes the job next
    stops as it begins, with no container and no model call."""
    script = [ScriptedTurn(text="Restructured.")]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, model):
        issue = bot.github.add_issue(REPO, title="Restructure the parser", user="alice")
        answer = await bot.label(issue["number"], "agentvine:refactor")  # human-required: it waits
        await bot.settle(timeout=60)
        job_id = answer["jobs"][0]
        store = bot.service.store
        # Another worker's stage held the job when the cancel came, and then that worker died.
        store.claim_jobs(StageClaim("acknowledge", JobState.WAITING_FOR_APPROVAL), "machine-b:1:ab", "machine-b",
                         limit=1, lease_s=0.2)
        assert store.request_cancel(job_id)
        await asyncio.sleep(0.4)
        await bot.press(job_id, "approve", sender="mona")
        await bot.settle(timeout=60)
        job = bot.job(job_id)
        assert (job.state, job.conclusion) == (JobState.CANCELLED, "cancelled")
        run = next(r for r in bot.github.check_runs if r["id"] == job.check_run_id)
        assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
        assert model.requests == [] and bot.github.pulls == []
    assert job_containers(docker_client, job_id) == []


REVIEWED = "def parse(line):\n    fields = line.split(' ')\n    return [f for f in fields if f]\n\n\ndef unused():\n    pass\n"


async def test_review_publishes_inline_comments_on_the_right_lines(tmp_path, sandbox_image, docker_client):
    report = {"summary": "Splitting on ' ' misses tabs.", "findings": [
        {"path": "parser.py", "line": 2, "severity": "failure", "message": "`split(' ')` does not split on tabs."},
        {"path": "parser.py", "line": 6, "severity": "warning", "message": "`unused` is never called."},
        {"path": "README.md", "line": 1, "severity": "warning", "message": "Mention the parser."},  # not in the diff
    ]}
    script = [
        ScriptedTurn(tool_uses=[ToolUse(name="Read", input={"file_path": "/workspace/parser.py"})]),
        ScriptedTurn(text="Review done.\n\n```json\n" + json.dumps(report) + "\n```"),
    ]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, model):
        github = bot.github
        github.push_files(REPO, "parser", {"parser.py": REVIEWED})
        pull = github.add_pull(REPO, head="parser", base="main", title="Add a parser", user="alice")
        _, answer = await bot.comment(pull["number"], "/agentvine review")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])

        # The review is out (the job succeeded); its failure-level finding fails the check run.
        assert (job.state, job.conclusion, job.worker) == (JobState.SUCCEEDED, "failure", "review"), job.reason
        (review,) = github.reviews
        inline = sorted((c["path"], c["line"]) for c in github.review_comments)
        assert inline == [("parser.py", 2), ("parser.py", 6)]
        assert "README.md" in review["body"] and "Mention the parser." in review["body"]
        run = next(r for r in github.check_runs if r["id"] == job.check_run_id)
        assert run["conclusion"] == "failure" and run["output"]["title"] == f"Reviewed #{pull['number']}: 3 findings"
        levels = sorted((a["path"], a["start_line"], a["annotation_level"]) for a in github.check_run_annotations(run["id"]))
        assert levels == [("README.md", 1, "warning"), ("parser.py", 2, "failure"), ("parser.py", 6, "warning")]
        # Nothing pushed; the model saw the diff.
        assert github.branches(REPO)["parser"] == pull["head"]["sha"]
        assert "split(' ')" in json.dumps(model.main_requests[0]["messages"])
    assert job_containers(docker_client, job) == []


async def test_follow_up_on_agentvines_own_pull_request_pushes_to_its_branch(tmp_path, sandbox_image):
    script = [
        ScriptedTurn(tool_uses=[write("fields.py", FIELDS)]), ScriptedTurn(text="Added fields.py."),
        ScriptedTurn(tool_uses=[write("test_fields.py", "from fields import split_fields\n")]), ScriptedTurn(text="Added a test."),
    ]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, _):
        github = bot.github
        issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        first = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        (pull,) = github.pulls
        branch = bot.job(first["jobs"][0]).branch
        tip = github.branches(REPO)[branch]

        _, answer = await bot.comment(pull["number"], "/agentvine add a test for split_fields")
        await bot.settle(timeout=180)
        job = bot.job(answer["jobs"][0])
        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
        assert job.outcome.title == f"Pushed to #{pull['number']}" and job.branch == branch
        assert len(github.pulls) == 1  # the same pull request, one more commit on its branch
        assert github.read_file(REPO, branch, "test_fields.py") and github.read_file(REPO, branch, "fields.py") == FIELDS
        assert github.repo(REPO).git.is_ancestor(tip, github.branches(REPO)[branch])


async def test_cancel_while_waiting_for_an_answer_ends_the_job_and_drops_its_workspace(tmp_path, sandbox_image):
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text=f"QUESTION: {QUESTION}")]) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        job_id = answer["jobs"][0]
        files = bot.service.settings.jobs_dir / job_id
        # Kept for the answer: the job's filesystem (unmounted while nobody runs) and the host repository.
        assert bot.job(job_id).state is JobState.WAITING_FOR_ANSWER
        assert (files / "disk.img").is_file() and (files / "git").is_dir() and not os.path.ismount(files / "mnt")
        await bot.comment(issue["number"], "/agentvine cancel")
        await bot.settle(timeout=30)
        job = bot.job(job_id)
        assert (job.state, job.conclusion) == (JobState.CANCELLED, "cancelled")
        assert not files.exists()
        # A later comment is no answer any more: nothing resumes.
        await bot.comment(issue["number"], "One separator.", sender="mona")
        await bot.settle(timeout=30)
        assert bot.job(job_id).state is JobState.CANCELLED
