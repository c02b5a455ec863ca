"""The queue with real runs (real Docker, the real Claude Code CLI, the scripted model API, the GitHub fake):
three jobs on one repository with AGENTVINE_MAX_JOBS_PER_REPO=1 show their places and move up as the jobs
ahead end; an instruction written while a job runs follows it on its branch, and runs after it."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from app.domain.job import JobState
from app.domain.queue import After, Place
from app.fakes.model_api import ScriptedTurn, ToolUse
from app.pipeline.present import texts
from app.pipeline.present.waiting import wait_line
from tests.support.harness import REPO, end_to_end

pytestmark = [pytest.mark.docker, pytest.mark.claude]


async def wait_for(predicate, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def shown(github, job) -> list[tuple[str, str]]:
    """Every body the job's tracking comment had and every title its check run had, in the order sent."""
    seen = []
    for call in github.calls:
        if call.status >= 300 or not isinstance(call.request_json, dict):
            continue
        if call.method == "POST" and call.path.endswith("/comments") and (call.response_json or {}).get("id") == job.tracking_comment_id:
            seen.append(("comment", call.request_json["body"]))
        elif call.method == "PATCH" and call.path.endswith(f"/issues/comments/{job.tracking_comment_id}"):
            seen.append(("comment", call.request_json["body"]))
        elif call.path.endswith("/check-runs") and (call.response_json or {}).get("id") == job.check_run_id:
            seen.append(("check", call.request_json["output"]["title"]))
        elif call.method == "PATCH" and call.path.endswith(f"/check-runs/{job.check_run_id}") and "output" in call.request_json:
            seen.append(("check", call.request_json["output"]["title"]))
    return seen


def places_shown(github, job) -> list[str]:
    """The places the job's tracking comment showed, in order ("Working" once it started)."""
    found = []
    for kind, text in shown(github, job):
        if kind != "comment":
            continue
        place = re.search(r"⏳ \*\*(#\d+) in line\*\*", text)
        value = place.group(1) if place else ("Working" if "**Working**" in text else None)
        if value and (not found or found[-1] != value):
            found.append(value)
    return found


def in_line(position: int) -> str:
    return wait_line(Place(position=position, scope="repository", limit=1))


async def test_three_jobs_on_one_repository_show_their_places_as_the_queue_moves(tmp_path, sandbox_image):
    script = [ScriptedTurn(text="Nothing to change here.", delay_seconds=6),  # A holds the repository's place
              ScriptedTurn(text="Nothing to change here either.", delay_seconds=1),
              ScriptedTurn(text="Nor here.")]
    async with end_to_end(tmp_path, sandbox_image, script, max_jobs_per_repo=1) as (bot, _):
        github = bot.github
        issues = [github.add_issue(REPO, title=f"Task {n}", user="alice") for n in (1, 2, 3)]
        a = (await bot.label(issues[0]["number"], "agentvine:bugfix"))["jobs"][0]
        await wait_for(lambda: bot.job(a).state is JobState.RUNNING)
        b = (await bot.label(issues[1]["number"], "agentvine:bugfix"))["jobs"][0]
        await wait_for(lambda: bot.job(b).state is JobState.ACKNOWLEDGED)
        c = (await bot.label(issues[2]["number"], "agentvine:bugfix"))["jobs"][0]
        await wait_for(lambda: bot.job(c).state is JobState.ACKNOWLEDGED)
        assert bot.job(a).state is JobState.RUNNING  # still: what follows is measured against it

        # From the acknowledgement on: the place and the limit that holds it, by its setting's name.
        comment = lambda job_id: next(x for x in github.comments_on(REPO, bot.job(job_id).issue_number)  # noqa: E731
                                      if x["id"] == bot.job(job_id).tracking_comment_id)["body"]
        assert in_line(1) in comment(b) and in_line(2) in comment(c)
        assert "`AGENTVINE_MAX_JOBS_PER_REPO`" in comment(c)
        run_c = next(r for r in github.check_runs if r["id"] == bot.job(c).check_run_id)
        assert run_c["status"] == "queued" and run_c["output"]["title"] == "Queued, #2 in line: bugfix for #3"

        await bot.settle(timeout=180)
        jobs = [bot.job(job_id) for job_id in (a, b, c)]
        assert all(j.state is JobState.SUCCEEDED for j in jobs), [j.reason for j in jobs]
        started = [next(e.at for e in bot.service.store.events(j.id) if e.kind == "started") for j in jobs]
        assert started == sorted(started)  # one at a time, in the order asked

        assert places_shown(github, jobs[0]) == ["Working"]  # it never waited
        assert places_shown(github, jobs[1]) == ["#1", "Working"]
        assert places_shown(github, jobs[2]) == ["#2", "#1", "Working"]  # moved up once, when A ended
        titles = [text for kind, text in shown(github, jobs[2]) if kind == "check"]
        assert titles[:2] == ["Queued, #2 in line: bugfix for #3", "Queued, #1 in line: bugfix for #3"]
        # One edit per move: C's comment was edited once while it waited (#2 → #1), not at every pass.
        waiting_edits = [t for kind, t in shown(github, jobs[2]) if kind == "comment" and "in line**" in t]
        assert len(waiting_edits) == 2  # the acknowledgement's, and the one move


FIELDS = "def split_fields(line):\n    return line.split()\n"
TEST = "from fields import split_fields\n\n\ndef test_tabs():\n    assert split_fields('a\\tb') == ['a', 'b']\n"


def write(path: str, content: str) -> ToolUse:
    return ToolUse(name="Write", input={"file_path": f"/workspace/{path}", "content": content})


async def test_an_instruction_written_while_a_job_runs_follows_it_on_its_branch(tmp_path, sandbox_image):
    script = [
        ScriptedTurn(tool_uses=[write("fields.py", FIELDS)], delay_seconds=4),
        ScriptedTurn(text="Fields now split on any whitespace."),
        ScriptedTurn(tool_uses=[write("test_fields.py", TEST)]),
        ScriptedTurn(text="Added a test for tabs."),
    ]
    async with end_to_end(tmp_path, sandbox_image, script) as (bot, model):
        github = bot.github
        issue = github.add_issue(REPO, title="Parser rejects tabs", user="alice")
        first_id = (await bot.label(issue["number"], "agentvine:bugfix"))["jobs"][0]
        await wait_for(lambda: bot.job(first_id).state is JobState.RUNNING)
        comment, outcome = await bot.comment(issue["number"], "/agentvine add a test for tabs")
        follow_id = outcome["jobs"][0]
        await wait_for(lambda: bot.job(follow_id).state is JobState.WAITING_FOR_JOB)
        follow_up = bot.job(follow_id)
        tracking = next(x for x in github.comments_on(REPO, issue["number"]) if x["id"] == follow_up.tracking_comment_id)
        assert wait_line(After(job_id=first_id, worker="bugfix", state=JobState.RUNNING)) in tracking["body"]
        assert [r["content"] for r in github.reactions_on_comment(comment["id"])] == ["eyes"]

        await bot.settle(timeout=180)
        first, follow_up = bot.job(first_id), bot.job(follow_id)
        assert (first.state, follow_up.state) == (JobState.SUCCEEDED, JobState.SUCCEEDED), follow_up.reason
        ended = next(e.at for e in bot.service.store.events(first.id) if e.data.get("state") == "succeeded")
        assert next(e.at for e in bot.service.store.events(follow_up.id) if e.kind == "started") > ended

        # The same branch, one commit after the other; one pull request, its description the first job's.
        assert follow_up.branch == first.branch and follow_up.base_branch == first.branch
        assert github.read_file(REPO, first.branch, "fields.py") == FIELDS
        assert github.read_file(REPO, first.branch, "test_fields.py") == TEST
        log = github.repo(REPO).git.git("log", "--format=%s", f"main..{first.branch}").decode().splitlines()
        assert len(log) == 2
        (pull,) = github.pulls
        assert first.outcome.pr_number == pull["number"]
        assert follow_up.outcome.title == texts.OUTCOME["pr_updated"].format(pr_number=pull["number"])
        assert "Fields now split on any whitespace." in pull["body"] and "Added a test" not in pull["body"]
        # The follow-up's agent was told where it starts, and got the instruction.
        prompt = json.dumps(model.main_requests[2]["messages"][0])
        assert "This follows earlier work on this issue" in prompt and "add a test for tabs" in prompt
