"""agentvine_sandboxes_running counts a container from its creation to its removal, whichever way it ends."""

from __future__ import annotations

import asyncio

import pytest

from app.agent.sandbox import run_sandbox
from tests.support.metrics import here

from .test_container import spec_for

pytestmark = pytest.mark.docker

RUNNING = "agentvine_sandboxes_running"


async def test_a_running_sandbox_is_counted_until_it_is_removed(sandbox_image, job_id, job_dirs):
    before = here().value(RUNNING)
    seen: list[float] = []
    result = await run_sandbox(spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo one; echo two"]),
                               lambda _line: seen.append(here().value(RUNNING)))
    assert result.exit_code == 0
    assert seen == [before + 1, before + 1]
    assert here().value(RUNNING) == before


async def test_a_cancelled_sandbox_is_no_longer_counted(sandbox_image, job_id, job_dirs):
    before = here().value(RUNNING)
    started, cancel = asyncio.Event(), asyncio.Event()
    spec = spec_for(sandbox_image, job_id, job_dirs, ["sh", "-c", "echo started; sleep 300"])
    task = asyncio.create_task(run_sandbox(spec, lambda _line: started.set(), cancel=cancel))
    await asyncio.wait_for(started.wait(), 60)
    assert here().value(RUNNING) == before + 1
    cancel.set()
    assert (await task).cancelled
    assert here().value(RUNNING) == before
