"""Stage 2: run Claude Code in the sandbox on a fresh branch, then publish what it did.

workspace (host git) → model gateway channel → sandbox (Docker) → outcome → commit + push +
pull request (host) → final report. Every path ends in a terminal state with a reason, and the
container and the gateway channel are gone at the end whatever happened."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field

from app import texts, workspace
from app.claude.command import build_command
from app.claude.events import Result, SystemInit, describe_activity, parse_line
from app.gateway import ModelGateway, Usage
from app.jobs import Figures, JobState, Outcome
from app.pipeline.context import JobContext
from app.pipeline.prompt import build_prompt
from app.pipeline.publish import commit_and_push, open_or_update_pull
from app.render import Progress
from app.reporter import ProgressReporter
from app.sandbox import SandboxResult, SandboxSpec, run_sandbox

log = logging.getLogger(__name__)

# Built-in tools a worker may be given; anything else in its config is ignored (docs/configuration.md).
KNOWN_TOOLS = ("Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "Write")
STEP_WORKSPACE, STEP_AGENT, STEP_PUBLISH = 1, 2, 3


@dataclass
class Transcript:
    """What the run printed, as far as the pipeline cares."""

    reporter: ProgressReporter
    result: Result | None = None
    session_id: str | None = None
    lines: int = 0
    unparsed: list[str] = field(default_factory=list)

    def on_line(self, line: str) -> None:
        self.lines += 1
        event = parse_line(line)
        if event is None:
            return
        if isinstance(event, SystemInit) and self.session_id is None:
            self.session_id = event.session_id
        if isinstance(event, Result):
            self.result = event  # the last one counts (a background subagent may print a second)
            return
        activity = describe_activity(event, cwd="/workspace")
        if activity:
            self.reporter.activity(activity)


def _next(key: str, ctx: JobContext, **fields: object) -> str:
    job = ctx.job
    assert job.run is not None
    return texts.OUTCOME[key].format(
        prefix=ctx.service_config.command_prefix, worker=job.worker, max_turns=job.run.max_turns,
        max_cost_usd=job.run.max_cost_usd, minutes=job.run.timeout_minutes, memory=job.run.memory, **fields,
    )


def classify(ctx: JobContext, sandbox: SandboxResult, result: Result | None) -> Outcome | None:
    """The outcome of a run that cannot be published, or None when the agent finished its work."""
    if sandbox.cancelled:
        return Outcome(conclusion="cancelled", title=texts.OUTCOME["cancelled"], detail=_next("cancelled_next", ctx))
    if sandbox.timed_out:
        return Outcome(conclusion="timed_out", title=texts.OUTCOME["timed_out"], detail=_next("timed_out_next", ctx))
    if sandbox.oom_killed:
        return Outcome(conclusion="failure", title=texts.OUTCOME["oom"], detail=_next("oom_next", ctx))
    if result is None:
        detail = f"exit code {sandbox.exit_code}, no result; {sandbox.stderr_tail.strip()[-300:] or 'nothing on stderr'}"
        return Outcome(conclusion="failure", title=texts.OUTCOME["agent_error"], detail=_next("agent_error_next", ctx, detail=detail))
    if result.ok:
        return None
    subtype = result.subtype or ""
    summary = result.result or ""
    if subtype == "error_max_turns":
        return Outcome(conclusion="failure", title=texts.OUTCOME["max_turns"], detail=_next("max_turns_next", ctx), summary=summary)
    if "budget" in subtype:
        return Outcome(conclusion="failure", title=texts.OUTCOME["budget"], detail=_next("budget_next", ctx), summary=summary)
    if result.api_error_status:
        detail = f"HTTP {result.api_error_status}"
        return Outcome(conclusion="failure", title=texts.OUTCOME["model_error"], detail=_next("model_error_next", ctx, detail=detail), summary=summary)
    detail = subtype or "is_error"
    return Outcome(conclusion="failure", title=texts.OUTCOME["agent_error"], detail=_next("agent_error_next", ctx, detail=detail), summary=summary)


def figures(result: Result | None, usage: Usage | None, started: float) -> Figures:
    return Figures(
        turns=result.num_turns if result else None,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cost_usd=result.total_cost_usd if result else None,
        duration_s=time.time() - started,
        model_s=(result.duration_api_ms / 1000) if result and result.duration_api_ms is not None else None,
    )


@dataclass
class RunDeps:
    gateway: ModelGateway | None
    cancels: dict[str, asyncio.Event] = field(default_factory=dict)
    progress_interval: float = 3.0
    docker_client: object | None = None


async def run_job(ctx: JobContext, deps: RunDeps) -> None:
    job = ctx.job
    assert job.run is not None and job.branch is not None
    started = time.time()
    ctx.save(job.moved_to(JobState.RUNNING), "started")
    reporter = ProgressReporter(
        ctx, Progress(), prefix=ctx.service_config.command_prefix, interval=deps.progress_interval
    )
    cancel = deps.cancels.setdefault(job.id, asyncio.Event())
    root = ctx.settings.data_dir / "jobs" / job.id
    ws: workspace.Workspace | None = None
    try:
        await reporter.send()
        if deps.gateway is None:
            await _finish(ctx, reporter, Outcome(conclusion="failure", title=texts.OUTCOME["no_model_key"],
                                                detail=_next("no_model_key_next", ctx)))
            return
        token = await ctx.api.token()
        clone_url = f"{ctx.settings.git_url.rstrip('/')}/{job.repo}.git"
        ws, remote_sha = await workspace.prepare(root, clone_url, job.default_branch, job.branch, token)
        reporter.step_done(STEP_WORKSPACE)
        prompt = await build_prompt(ctx)

        transcript = Transcript(reporter)
        channel = await deps.gateway.open_job(job.id)
        usage: Usage | None = None
        try:
            command = build_command(
                prompt,
                model=job.model or "sonnet",
                max_turns=job.run.max_turns,
                permission_mode="bypassPermissions",  # the container is the boundary
                allowed_tools=None,
                tools=[t for t in job.run.allowed_tools if t in KNOWN_TOOLS],
                max_budget_usd=job.run.max_cost_usd or None,
            )
            spec = SandboxSpec(
                job_id=job.id, image=ctx.settings.sandbox_image, command=command, workspace=ws.path, home=ws.home,
                gateway_socket=channel.socket_path,
                env={"ANTHROPIC_API_KEY": channel.token, "CLAUDE_CODE_MAX_RETRIES": str(ctx.settings.model_max_retries)},
                memory=job.run.memory, cpus=job.run.cpus, pids=job.run.pids, timeout_s=job.run.timeout_minutes * 60,
            )
            sandbox = await run_sandbox(spec, transcript.on_line, cancel=cancel, client=deps.docker_client)
        finally:
            usage = await deps.gateway.close_job(job.id)
        if transcript.session_id:
            ctx.save(ctx.job.model_copy(update={"session_id": transcript.session_id}), "agent_finished",
                     exit_code=sandbox.exit_code, lines=transcript.lines)
        reporter.step_done(STEP_AGENT)
        stats = figures(transcript.result, usage, started)

        failed = classify(ctx, sandbox, transcript.result)
        if failed is not None:
            await _finish(ctx, reporter, failed.model_copy(update={"figures": stats}))
            return
        summary = (transcript.result.result if transcript.result else "") or ""
        changed = await workspace.changes(ws)
        paths = sorted({c.path for c in changed})
        if not paths:
            await _finish(ctx, reporter, Outcome(conclusion="neutral", title=texts.OUTCOME["no_changes"],
                                                detail=_next("no_changes_next", ctx), summary=summary, figures=stats))
            return
        refused = workspace.refused_paths(paths, job.run.allowed_paths, allow_workflows=job.run.allow_workflow_changes)
        if refused:
            listed = "\n".join(f"- `{path}`: {why}" for path, why in refused)
            await _finish(ctx, reporter, Outcome(conclusion="failure", title=texts.OUTCOME["refused_paths"],
                                                detail=_next("refused_paths_next", ctx, paths=listed), summary=summary,
                                                files=paths, figures=stats))
            return
        outcome = Outcome(conclusion="success", title="", summary=summary, files=paths, figures=stats)
        await commit_and_push(ctx, ws, outcome, remote_sha)
        pull, created = await open_or_update_pull(ctx, outcome)
        reporter.step_done(STEP_PUBLISH)
        key = "pr_opened" if created else "pr_updated"
        outcome = outcome.model_copy(update={
            "title": texts.OUTCOME[key].format(pr_number=pull["number"]), "pr_number": pull["number"],
            "pr_url": pull["html_url"], "figures": figures(transcript.result, usage, started),
        })
        await _finish(ctx, reporter, outcome)
    finally:
        deps.cancels.pop(job.id, None)
        if ws is not None and ctx.job.terminal:
            shutil.rmtree(ws.path, ignore_errors=True)  # the home (Claude's session) is kept


async def _finish(ctx: JobContext, reporter: ProgressReporter, outcome: Outcome) -> None:
    state = {"success": JobState.SUCCEEDED, "neutral": JobState.SUCCEEDED, "cancelled": JobState.CANCELLED}.get(
        outcome.conclusion, JobState.FAILED
    )
    if state is JobState.SUCCEEDED:
        reporter.step_done(len(reporter.progress.steps))
    job = ctx.job.model_copy(update={"outcome": outcome}).moved_to(state, outcome.title, conclusion=outcome.conclusion)
    ctx.job = job
    await reporter.final()
    ctx.save(job, "finished", conclusion=outcome.conclusion, title=outcome.title)
