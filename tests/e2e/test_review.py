"""A review with the real Claude Code CLI in the real sandbox, twice on one pull request: the first
posts findings with a suggested change GitHub can commit (and never an approval, though the model asks
for one); someone commits the suggestion and pushes, and the push's review (`review.on_push`, GitHub's
`pull_request.synchronize` payload) looks at the new commits only and posts only what is new."""

from __future__ import annotations

import json

import pytest

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support import payloads
from tests.support.harness import INSTALLATION, REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

BASE = "def area(width, height):\n    return width * height\n\n\ndef ratio(a, b):\n    return a / b\n"
CHANGED = BASE.replace("return a / b", "return a / 0").replace("return width * height", "return width * width")
FILES = {"README.md": "# calc\n", "calc.py": BASE, ".github/agentvine.yml": "review:\n  on_push: true\n"}

FIRST = {"summary": "Reworks `area` and `ratio`.", "event": "APPROVE", "findings": [
    {"path": "calc.py", "line": 2, "severity": "critical", "message": "`area` ignores `height`.",
     "suggestion": "    return width * height"},
    {"path": "calc.py", "line": 6, "severity": "major", "message": "`ratio` divides by zero every time."},
]}
C = {"path": "notes.md", "line": 1, "severity": "nit", "message": "Say what the notes are for."}
SECOND = {"summary": "Adds notes.", "findings": [FIRST["findings"][1], C]}  # the division again: not reposted
SCRIPT = [
    ScriptedTurn(tool_uses=[ToolUse(name="Read", input={"file_path": "/workspace/calc.py"})]),
    ScriptedTurn(text="Reviewed.\n\n```json\n" + json.dumps(FIRST) + "\n```"),
    ScriptedTurn(text="Reviewed the push.\n\n```json\n" + json.dumps(SECOND) + "\n```"),
]


async def test_a_review_with_a_suggestion_then_an_incremental_review_of_a_push(tmp_path, sandbox_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT, files=FILES) as (bot, model):
        github = bot.github
        github.push_files(REPO, "calc", {"calc.py": CHANGED})
        pull = github.add_pull(REPO, head="calc", base="main", title="Rework calc", user="alice")
        _, answer = await bot.comment(pull["number"], "/agentvine review")
        await bot.settle(timeout=180)
        first = bot.job(answer["jobs"][0])

        assert (first.state, first.conclusion) == (JobState.SUCCEEDED, "failure"), first.reason
        (review,) = github.reviews
        assert review["state"] == "COMMENTED"  # the model asked for APPROVE; AgentVine never sends it
        comments = {c["line"]: c for c in github.review_comments}
        assert comments[2]["body"] == ("**🔴 Critical** · `area` ignores `height`.\n\n"
                                       "```suggestion\n    return width * height\n```")
        assert "`ratio` divides by zero" in comments[6]["body"] and "suggestion" not in comments[6]["body"]
        assert "**Findings:** 🔴 1 critical · 🟠 1 major" in review["body"] and "2 turns" in review["body"]
        run = next(r for r in github.check_runs if r["id"] == first.check_run_id)
        assert [a["annotation_level"] for a in github.check_run_annotations(run["id"])] == ["failure", "failure"]

        # Someone commits the suggestion, then pushes notes; the push is reviewed (review.on_push).
        before = github.head_sha(REPO, "calc")
        github.apply_suggestion(REPO, comments[2]["id"], user="alice")
        assert github.read_file(REPO, "calc", "calc.py") == BASE.replace("return a / b", "return a / 0")
        after = github.push_files(REPO, "calc", {"notes.md": "# Notes\n"})
        payload = payloads.synchronize(pull=pull, before=before, after=after, repo=bot.repo,
                                       installation_id=INSTALLATION, sender="alice")
        answer = await bot.outcome(await bot.deliver("pull_request", payload))
        await bot.settle(timeout=180)
        second = bot.job(answer["jobs"][0])

        assert (second.state, second.trigger.kind, second.conclusion) == (JobState.SUCCEEDED, "push", "failure"), second.reason
        assert second.review.scope == "incremental" and second.review.since == first.review.head
        prompt = json.dumps(model.main_requests[-1]["messages"])
        assert "What is new since AgentVine's last review" in prompt and "+# Notes" in prompt
        assert "calc.py:6 (major)" in prompt and "calc.py:2 (critical)" not in prompt  # the fixed one is outdated
        new = [c for c in github.review_comments if c["pull_request_review_id"] == second.review.review_id]
        assert [(c["path"], c["line"]) for c in new] == [("notes.md", 1)]  # the division is not posted again
        assert {f.message: f.status for f in second.review.findings} == {
            "`ratio` divides by zero every time.": "open", C["message"]: "open", "`area` ignores `height`.": "outdated"}
        assert [r["state"] for r in github.reviews] == ["COMMENTED", "COMMENTED"]
        assert second.tracking_comment_id == first.tracking_comment_id
    assert job_containers(docker_client, first) == [] and job_containers(docker_client, second) == []
