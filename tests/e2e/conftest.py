"""End to end: AgentVine with the GitHub fake, the scripted model API, real Docker and the real
Claude Code CLI in the sandbox image."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from app.fakes.github.testing import running_fake
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse, serve_fake_model_api
from app.domain.job import Job
from tests.agentvine_harness import REPO, Harness, arrange_github, running_agentvine

__all__ = ["ScriptedTurn", "ToolUse", "REPO", "end_to_end", "our_containers"]


def our_containers(docker_client, job: Job | str) -> list:
    job_id = job if isinstance(job, str) else job.id
    return docker_client.containers.list(all=True, filters={"label": f"agentvine.job={job_id}"})


@contextlib.asynccontextmanager
async def end_to_end(tmp_path, image: str, script: list[ScriptedTurn], *, files: dict[str, str] | None = None,
                     **settings) -> AsyncIterator[tuple[Harness, FakeModelAPI]]:
    model = FakeModelAPI(script)
    async with running_fake(tmp_path) as github, serve_fake_model_api(model) as running_model:
        arrange_github(github, files=files)
        async with running_agentvine(
            github, tmp_path, sandbox_image=image, model_api_url=running_model.url,
            ANTHROPIC_API_KEY=model.api_key, progress_interval=0.3, **settings,
        ) as bot:
            yield bot, model
        github.assert_no_violations()


@pytest.fixture(autouse=True)
def _needs_the_sandbox(sandbox_image):
    """Every test here runs the real CLI in the real image (built once if missing)."""
    return sandbox_image
