"""The repository's setup and verify commands in the job's sandbox (`setup`, `verify` in
.github/agentvine.yml; app/domain/steps.py): each in a container of its own on the job's workspace and
home, with the job's image, limits and package caches, and no model access (no gateway socket).

Egress: the job's one egress channel (app/pipeline/egress.py) is mounted into every step's container as
into the agent's, and switched for each phase before it runs: on for the setup steps, on for verify
only with `egress.during: run`. Without a channel (no proxy) steps have no network at all, like the agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.agent.egress import EgressChannel
from app.agent.sandbox import SandboxSpec
from app.agent.sandbox.caches import RepoCaches
from app.agent.sandbox.steps import StepRun, run_step
from app.domain.steps import Step, StepResult
from app.domain.untrusted import defuse
from app.pipeline import egress
from app.pipeline.context import JobContext
from app.pipeline.present import texts
from app.pipeline.present.steps import command, how
from app.pipeline.progress import ProgressReporter

log = logging.getLogger(__name__)


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
    channel: EgressChannel | None = None  # the job's egress channel; `base` mounts its socket
    results: list[StepResult] = field(default_factory=list)

    async def phase(self, phase: str, steps: list[Step], attempt: int = 1) -> StepResult | None:
        """Run `steps` in order; the first that fails (the rest do not run), or None when all passed."""
        if not steps:
            return None
        egress.switch(self.channel, self.ctx, phase)  # type: ignore[arg-type] - "setup" or "verify"
        for index, step in enumerate(steps):
            result = await self._one(phase, step, attempt, index)
            if not result.ok:
                return result
        return None

    async def _one(self, phase: str, step: Step, attempt: int, index: int) -> StepResult:
        limits = self.ctx.job.run
        assert limits is not None
        minutes = step.timeout_minutes or limits.step_timeout_minutes
        run = StepRun(phase, step.run, minutes * 60, limits.step_output_kb * 1024, attempt, index)
        result = await run_step(self.base, run, client=self.client, cancel=self.cancel, guard=self.guard)
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
