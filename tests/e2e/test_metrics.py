"""A job that runs the real CLI in the sandbox leaves its figures in GET /metrics: how it ended, how long
it took, the bot's overhead around the model, the tokens and their cost, and no sandbox still counted."""

from __future__ import annotations

import pytest

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end
from tests.support.metrics import scrape

pytestmark = [pytest.mark.docker, pytest.mark.claude]

SCRIPT = [
    ScriptedTurn(text="Adding it.", tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/x.py", "content": "X = 1\n"})]),
    ScriptedTurn(text="Added `x.py`."),
]


async def test_a_finished_run_shows_its_end_its_durations_and_its_tokens(tmp_path, sandbox_image):
    async with end_to_end(tmp_path, sandbox_image, SCRIPT) as (bot, _model):
        before = await scrape(bot.client)
        issue = bot.github.add_issue(REPO, title="Add x", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=180)
        after = await scrape(bot.client)
        job = bot.job(answer["jobs"][0])

    assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
    assert after.since(before, "agentvine_jobs_finished_total", worker="bugfix", state="succeeded", conclusion="success") == 1
    for state in ("acknowledged", "running", "succeeded"):
        assert after.since(before, "agentvine_job_transitions_total", worker="bugfix", state=state) == 1, state
    # Delivery to the final report; the run's wall time without the model's, which is less.
    assert after.since(before, "agentvine_job_duration_seconds_count", worker="bugfix", state="succeeded") == 1
    lived = after.since(before, "agentvine_job_duration_seconds_sum", worker="bugfix", state="succeeded")
    assert lived == pytest.approx(job.updated_at - job.created_at)
    assert after.since(before, "agentvine_run_overhead_seconds_count", worker="bugfix") == 1
    overhead = after.since(before, "agentvine_run_overhead_seconds_sum", worker="bugfix")
    assert 0 < overhead < lived - job.outcome.figures.model_s
    # The gateway's own count, as the check run shows it.
    figures, model = job.outcome.figures, job.model
    assert after.since(before, "agentvine_model_tokens_total", model=model, kind="input") == figures.input_tokens > 0
    assert after.since(before, "agentvine_model_tokens_total", model=model, kind="output") == figures.output_tokens > 0
    assert after.since(before, "agentvine_model_cost_usd_total", model=model) == pytest.approx(figures.cost_usd)
    assert after.value("agentvine_sandboxes_running") == 0
