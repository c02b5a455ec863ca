"""The repository's setup and verify commands in the job's sandbox (`setup`, `verify` in
.github/agentvine.yml; app/domain/steps.py): each in a container of its own on the job's workspace and
home, with the job's image, limits and package caches, and no model access (no gateway socket).

Egress: a phase asks `egress.open(job_id, phase)` for the environment that routes it through the
host's allow-listed proxy (HTTP_PROXY, ...) and closes it after; without an egress (none configured)
steps have no network at all, like the agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from app.agent.sandbox import SandboxSpec
from app.agent.sandbox.caches import RepoCaches
from app.agent.sandbox.steps import StepRun, run_step
from app.domain.steps import Step, StepResult
from app.domain.untrusted import defuse
from app.pipeline.context import JobContext
from app.pipeline.present import texts
from app.pipeline.present.steps import command, how
from app.pipeline.progress import ProgressReporter

log = logging.getLogger(__name__)


class Egress(Protocol):
    """The seam to the egress proxy (allow-listed HTTP(S) out of the sandbox)."""

    async def open(self, job_id: str, phase: str) -> dict[str, str]: ...  # the sandbox's proxy variables
    async def close(self, job_id: str, phase: str) -> None: ...


def caches_for(ctx: JobContext) -> RepoCaches:
    """The job's repository's package caches (never another repository's: the folder is its name's)."""
    settings = ctx.settings
    return RepoCaches(Path(settings.data_dir).resolve() / "caches", ctx.job.repo, settings.cache_max_mb * 1024 * 1024)


@dataclass
class StepsRunner:
    """Runs the phases of one job and keeps every result (for the check run and the pull request)."""

    ctx: JobContext
    base: SandboxSpec  # the job's sandbox; each step replaces its command, name and timeout
    reporter: ProgressReporter
    client: object | None = None
    cancel: asyncio.Event | None = None
    guard: Callable[[], str | None] | None = None
    egress: Egress | None = None
    results: list[StepResult] = field(default_factory=list)

    async def phase(self, phase: str, steps: list[Step], attempt: int = 1) -> StepResult | None:
        """Run `steps` in order; the first that fails (the rest do not run), or None when all passed."""
        if not steps:
            return None
        env = await self.egress.open(self.ctx.job.id, phase) if self.egress is not None else {}
        try:
            for index, step in enumerate(steps):
                result = await self._one(phase, step, attempt, index, env)
                if not result.ok:
                    return result
        finally:
            if self.egress is not None:
                await self.egress.close(self.ctx.job.id, phase)
        return None

    async def _one(self, phase: str, step: Step, attempt: int, index: int, env: dict[str, str]) -> StepResult:
        limits = self.ctx.job.run
        assert limits is not None
        minutes = step.timeout_minutes or limits.step_timeout_minutes
        spec = replace(self.base, env={**self.base.env, **env})
        run = StepRun(phase, step.run, minutes * 60, limits.step_output_kb * 1024, attempt, index)
        result = await run_step(spec, run, client=self.client, cancel=self.cancel, guard=self.guard)
        self.results.append(result)
        self.ctx.store.add_event(self.ctx.job.id, "step", phase=phase, attempt=attempt, index=index,
                                 exit_code=result.exit_code, timed_out=result.timed_out,
                                 duration_s=result.duration_s, omitted_bytes=result.omitted_bytes)
        if phase == "setup":
            line = texts.SETUP_ACTIVITY.format(command=command(result), how=how(result))
        else:
            line = texts.VERIFY_ACTIVITY.format(attempt=attempt, max_attempts=limits.verify_max_attempts,
                                                command=command(result), how=how(result))
        self.reporter.activity(defuse(line))
        return result
