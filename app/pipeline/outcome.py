"""How a run ends: the outcome of a run that cannot be published, the figures people see, and the
final report (tracking comment and check run show the outcome, then the job is saved terminal)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.agent.claude.events import Result
from app.agent.gateway import Usage
from app.agent.sandbox import SandboxResult
from app.agent.boundary.workspace import Workspace
from app.domain.job import Figures, JobState, Outcome
from app.domain.steps import StepResult
from app.domain.untrusted import code_span, defuse, one_line
from app.pipeline.context import JobContext
from app.pipeline.present import texts
from app.pipeline.progress import ProgressReporter


def next_step(key: str, ctx: JobContext, **fields: object) -> str:
    """What people can do next (texts.OUTCOME[key]), filled with the job's limits."""
    job = ctx.job
    assert job.run is not None
    return texts.OUTCOME[key].format(
        prefix=ctx.service_config.command_prefix, worker=job.worker, max_turns=job.run.max_turns,
        max_cost_usd=job.run.max_cost_usd, minutes=job.run.timeout_minutes, memory=job.run.memory, **fields,
    )


def ended(ctx: JobContext, key: str, *, conclusion: str = "failure", summary: str = "", **fields: object) -> Outcome:
    """The outcome `texts.OUTCOME[key]`, with its `<key>_next` advice."""
    return Outcome(conclusion=conclusion, title=texts.OUTCOME[key], detail=next_step(f"{key}_next", ctx, **fields),
                   summary=summary)


def classify(ctx: JobContext, sandbox: SandboxResult, result: Result | None, over_quota: str | None = None,
             *, budget_reached: bool = False) -> Outcome | None:
    """The outcome of a run that cannot be published, or None when the agent finished its work.

    `budget_reached`: the gateway refused a request for the job's budget (its own count, not what
    the agent printed). `result` is the agent's last `result` line: untrusted, it can only make a
    run fail, and gives the final text."""
    if sandbox.cancelled:
        return ended(ctx, "cancelled", conclusion="cancelled")
    if sandbox.timed_out:
        return ended(ctx, "timed_out", conclusion="timed_out")
    if sandbox.oom_killed:
        return ended(ctx, "oom")
    if over_quota:
        return ended(ctx, "workspace_quota", why=over_quota)
    if budget_reached:
        return ended(ctx, "budget", summary=defuse(result.result or "") if result else "")
    if result is None:
        return ended(ctx, "agent_error", detail=stderr_detail(sandbox.exit_code, sandbox.stderr_tail))
    if result.ok:
        return None
    subtype = result.subtype or ""
    summary = defuse(result.result or "")
    if subtype == "error_max_turns":
        return ended(ctx, "max_turns", summary=summary)
    if result.api_error_status:
        return ended(ctx, "model_error", summary=summary, detail=f"HTTP {result.api_error_status}")
    return ended(ctx, "agent_error", summary=summary, detail=code_span(one_line(subtype, 100)) if subtype else "is_error")


def stderr_detail(exit_code: int | None, stderr_tail: str) -> str:
    """The end of what the agent's process printed on stderr (untrusted): one line in one code span."""
    tail = one_line(stderr_tail, 10_000)[-300:]
    return f"exit code {exit_code}, no result; " + (code_span(tail) if tail else "nothing on stderr")


def figures(usage: Usage | None, started: float) -> Figures:
    """The figures people see, all from the gateway's own count (`usage`), none from the agent's
    `result` line, which the agent can print itself."""
    if usage is None:
        return Figures(duration_s=time.time() - started)
    return Figures(
        turns=usage.turns,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        duration_s=time.time() - started,
        model_s=round(usage.model_seconds, 3),
    )


async def finish(ctx: JobContext, reporter: ProgressReporter, outcome: Outcome, *, published: bool = False) -> None:
    """`published`: the job did its work even if the check run concludes `failure` (a review's findings)."""
    state = {"success": JobState.SUCCEEDED, "neutral": JobState.SUCCEEDED, "cancelled": JobState.CANCELLED}.get(
        outcome.conclusion, JobState.SUCCEEDED if published else JobState.FAILED
    )
    if state is JobState.SUCCEEDED:
        reporter.step_done(len(reporter.progress.steps))
    await ctx.update_shown(reporter.final, "finished", to=state, reason=outcome.title, conclusion=outcome.conclusion,
                           log={"conclusion": outcome.conclusion, "title": outcome.title}, outcome=outcome)


@dataclass
class AgentRun:
    """A run the agent finished, handed to its flow to conclude (app/pipeline/change.py, review/flow.py)."""

    reporter: ProgressReporter
    ws: Workspace
    text: str  # the agent's final message: untrusted, defused before it is published
    result: Result | None
    usage: Usage | None
    started: float
    steps: list[StepResult] = field(default_factory=list)  # setup and verify, every attempt
    verified: bool | None = None  # the last verify run passed; None: nothing was verified
    stats: Figures = field(init=False)  # as the agent finished; publishing may take more time

    def __post_init__(self) -> None:
        self.stats = self.figures()

    def figures(self) -> Figures:
        """The figures now (a published change counts the time its publishing took)."""
        return figures(self.usage, self.started)
