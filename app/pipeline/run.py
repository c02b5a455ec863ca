"""Stage 2: run Claude Code in the sandbox on a fresh branch, then publish what it did.

workspace (host git) → model gateway channel → sandbox (Docker) → outcome → commit + push +
pull request (host) → final report. Every path ends in a terminal state with a reason, and the
container and the gateway channel are gone at the end whatever happened."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from app.agent import changeset, workspace
from app.pipeline.present import render, texts
from app.agent.claude.command import ClaudeOptions, build_command
from app.agent.claude.events import Result, SystemInit, describe_activity, parse_line
from app.agent.gateway import ModelGateway, Usage
from app.domain.job import Figures, JobState, Outcome
from app.pipeline.context import JobContext
from app.pipeline import review
from app.pipeline.prompt import build_prompt
from app.pipeline.publish import commit_and_push, open_or_update_pull
from app.pipeline.questions import ask, parse_question
from app.pipeline.present.render import Progress
from app.pipeline.present.reporter import ProgressReporter
from app.agent.sandbox import SandboxResult, SandboxSpec, run_sandbox
from app.domain.untrusted import defuse_mentions

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
            self.reporter.activity(defuse_mentions(activity))


def _next(key: str, ctx: JobContext, **fields: object) -> str:
    job = ctx.job
    assert job.run is not None
    return texts.OUTCOME[key].format(
        prefix=ctx.service_config.command_prefix, worker=job.worker, max_turns=job.run.max_turns,
        max_cost_usd=job.run.max_cost_usd, minutes=job.run.timeout_minutes, memory=job.run.memory, **fields,
    )


def classify(ctx: JobContext, sandbox: SandboxResult, result: Result | None, over_quota: str | None = None) -> Outcome | None:
    """The outcome of a run that cannot be published, or None when the agent finished its work."""
    if sandbox.cancelled:
        return Outcome(conclusion="cancelled", title=texts.OUTCOME["cancelled"], detail=_next("cancelled_next", ctx))
    if sandbox.timed_out:
        return Outcome(conclusion="timed_out", title=texts.OUTCOME["timed_out"], detail=_next("timed_out_next", ctx))
    if sandbox.oom_killed:
        return Outcome(conclusion="failure", title=texts.OUTCOME["oom"], detail=_next("oom_next", ctx))
    if over_quota:
        return Outcome(conclusion="failure", title=texts.OUTCOME["workspace_quota"],
                       detail=_next("workspace_quota_next", ctx, why=over_quota))
    if result is None:
        stderr = defuse_mentions(sandbox.stderr_tail.strip()[-300:]) or "nothing on stderr"
        detail = f"exit code {sandbox.exit_code}, no result; {stderr}"
        return Outcome(conclusion="failure", title=texts.OUTCOME["agent_error"], detail=_next("agent_error_next", ctx, detail=detail))
    if result.ok:
        return None
    subtype = result.subtype or ""
    summary = defuse_mentions(result.result or "")
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


async def _workspace(ctx: JobContext) -> workspace.Workspace:
    """A fresh checkout for a new run; the kept one when a session resumes after an answer."""
    job = ctx.job
    assert job.branch is not None
    ws = ctx.workspace()
    if job.answer is not None:
        if not ws.exists():
            raise RuntimeError("the workspace kept for the answer is gone; `retry` starts again")
        await asyncio.to_thread(ws.disk.mount)
        return ws
    token = await ctx.api.token()
    clone_url = f"{ctx.settings.git_url.rstrip('/')}/{job.repo}.git"
    remote_sha = await workspace.prepare(ws, clone_url, job.base_branch or job.default_branch, token)
    ctx.save(ctx.job.model_copy(update={"remote_sha": remote_sha}), "workspace", branch=job.branch)
    return ws


async def _prompt(ctx: JobContext, pull_files: list[dict] | None) -> str:
    job = ctx.job
    if job.answer is not None:
        return texts.ANSWER_RESUME.format(answered_by=job.answered_by, answer=job.answer)
    if pull_files is not None:  # a review: the diff, and how to report findings
        diff = review.render_diff_for_prompt(pull_files)
        return await build_prompt(ctx) + "\n\n## The pull request's changes\n\n" + diff + "\n\n" + review.REVIEW_INSTRUCTIONS
    return await build_prompt(ctx) + texts.QUESTION_CONVENTION


async def _run_agent(ctx: JobContext, deps: RunDeps, ws: workspace.Workspace, prompt: str, transcript: Transcript,
                     cancel: asyncio.Event) -> tuple[SandboxResult, Usage]:
    job = ctx.job
    assert job.run is not None and deps.gateway is not None
    channel = await deps.gateway.open_job(job.id)
    try:
        command = build_command(prompt, ClaudeOptions(
            model=job.model or "sonnet",
            max_turns=job.run.max_turns,
            permission_mode="bypassPermissions",  # the container is the boundary
            allowed_tools=None,
            tools=[t for t in job.run.allowed_tools if t in KNOWN_TOOLS],
            max_budget_usd=job.run.max_cost_usd or None,
            resume_session=job.session_id if job.answer is not None else None,
        ))
        spec = SandboxSpec(
            job_id=job.id, image=ctx.settings.sandbox_image, command=command, workspace=ws.path, home=ws.home,
            gateway_socket=channel.socket_path,
            env={"ANTHROPIC_API_KEY": channel.token, "CLAUDE_CODE_MAX_RETRIES": str(ctx.settings.model_max_retries)},
            memory=job.run.memory, cpus=job.run.cpus, pids=job.run.pids, timeout_s=job.run.timeout_minutes * 60,
        )
        sandbox = await run_sandbox(spec, transcript.on_line, cancel=cancel, client=deps.docker_client,
                                    guard=ws.disk.over_quota)
    finally:
        usage = await deps.gateway.close_job(job.id)
    return sandbox, usage


async def _resumed_check_run(ctx: JobContext) -> None:
    """The question concluded the job's check run (action_required); the resumed work gets a new one."""
    job = ctx.job
    body = render.check_run_create(job, prefix=ctx.service_config.command_prefix, public_url=ctx.settings.public_url)
    run = await ctx.api.post("/repos/{owner}/{repo}/check-runs", {"owner": job.owner, "repo": job.name}, data=body)
    ctx.save(ctx.job.model_copy(update={"check_run_id": run["id"]}), "check_run", check_run_id=run["id"])


async def run_job(ctx: JobContext, deps: RunDeps) -> None:
    job = ctx.job
    assert job.run is not None and job.branch is not None
    started = time.time()
    ctx.save(job.moved_to(JobState.RUNNING), "started", resumed=job.answer is not None)
    steps = texts.REVIEW_STEPS if job.worker == "review" else texts.DEFAULT_STEPS
    reporter = ProgressReporter(
        ctx, Progress(steps=steps), prefix=ctx.service_config.command_prefix, interval=deps.progress_interval
    )
    cancel = deps.cancels.setdefault(job.id, asyncio.Event())
    ws: workspace.Workspace | None = None
    try:
        if job.answer is not None:
            await _resumed_check_run(ctx)
        await reporter.send()
        if deps.gateway is None:
            await _finish(ctx, reporter, Outcome(conclusion="failure", title=texts.OUTCOME["no_model_key"],
                                                detail=_next("no_model_key_next", ctx)))
            return
        ws = await _workspace(ctx)
        reporter.step_done(STEP_WORKSPACE)
        is_review = job.worker == "review"
        pull_files = await review.fetch_pull_files(ctx.api, job.owner, job.name, job.issue_number) if is_review else None
        prompt = await _prompt(ctx, pull_files)
        transcript = Transcript(reporter)
        sandbox, usage = await _run_agent(ctx, deps, ws, prompt, transcript, cancel)
        ctx.save(ctx.job.model_copy(update={"session_id": transcript.session_id or ctx.job.session_id, "answer": None}),
                 "agent_finished", exit_code=sandbox.exit_code, lines=transcript.lines)
        stats = figures(transcript.result, usage, started)

        failed = classify(ctx, sandbox, transcript.result, sandbox.stopped or ws.disk.over_quota())
        if failed is not None:
            await _finish(ctx, reporter, failed.model_copy(update={"figures": stats}))
            return
        text = (transcript.result.result if transcript.result else "") or ""
        if pull_files is not None:
            await _publish_review(ctx, reporter, text, pull_files, stats)  # parses it, defuses what it publishes
            return
        summary = defuse_mentions(text)  # goes into the PR, the commit, the check run, a question
        question = parse_question(summary)
        if question is not None:
            await ask(ctx, reporter, question)  # the workspace and the session stay for the answer
            return
        reporter.step_done(STEP_AGENT)
        await _publish_changes(ctx, reporter, ws, summary, stats, transcript, usage, started)
    finally:
        reporter.close()
        deps.cancels.pop(job.id, None)
        try:
            if ctx.job.terminal:
                await asyncio.to_thread(ctx.discard_files)
            elif ws is not None:  # a question waits: the files stay, unmounted, for the answer
                await asyncio.to_thread(ws.disk.unmount)
        except Exception:  # the job's outcome stands; the worker's start-up tidying tries again
            log.exception("could not remove or unmount the files of job %s", job.id)


async def _publish_review(ctx: JobContext, reporter: ProgressReporter, text: str, files: list[dict], stats: Figures) -> None:
    """A review changes nothing: its findings become a PR review and check-run annotations."""
    job = ctx.job
    report, error = review.parse_report(text)
    if report is None:
        await _finish(ctx, reporter, Outcome(conclusion="failure", title=texts.OUTCOME["review_unreadable"],
                                            detail=_next("review_unreadable_next", ctx, error=error), figures=stats))
        return
    assert job.head_sha is not None
    published = await review.publish_review(ctx.api, owner=job.owner, repo=job.name, pull_number=job.issue_number,
                                            commit_sha=job.head_sha, report=report, files=files)
    reporter.step_done(STEP_PUBLISH)
    count = len(report.findings)
    findings = "no findings" if not count else f"{count} finding{'s' if count != 1 else ''}"
    outcome = Outcome(
        conclusion=review.review_conclusion(report), title=texts.OUTCOME["reviewed"].format(pr_number=job.issue_number, findings=findings),
        summary=defuse_mentions(report.summary), files=sorted({f.path for f in report.findings}), figures=stats,
        pr_number=job.issue_number, pr_url=published.html_url, annotations=review.check_annotations(report),
    )
    await _finish(ctx, reporter, outcome, published=True)
    for batch in range(1, -(-len(outcome.annotations) // render.ANNOTATIONS_PER_REQUEST)):
        await ctx.api.patch(  # annotations add up across updates of the check run
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {"owner": job.owner, "repo": job.name, "check_run_id": ctx.job.check_run_id},
            data={"output": {"title": outcome.title, "summary": outcome.summary or outcome.title,
                             **render.annotations_batch(outcome, batch)}},
        )


async def _publish_changes(ctx: JobContext, reporter: ProgressReporter, ws: workspace.Workspace, summary: str,
                           stats: Figures, transcript: Transcript, usage: Usage, started: float) -> None:
    job = ctx.job
    run = job.run
    assert run is not None
    rules = changeset.Rules(allowed_paths=run.allowed_paths, allow_workflows=run.allow_workflow_changes,
                            max_file_mb=run.max_file_mb, max_changed_files=run.max_changed_files)
    changes = await asyncio.to_thread(changeset.read_changes, ws, rules)
    paths = changes.paths
    if changes.refused:
        await _finish(ctx, reporter, Outcome(conclusion="failure", title=texts.OUTCOME["refused_paths"],
                                            detail=_next("refused_paths_next", ctx, paths=changes.refusals_text()),
                                            summary=summary, files=paths, figures=stats))
        return
    if not paths:
        await _finish(ctx, reporter, Outcome(conclusion="neutral", title=texts.OUTCOME["no_changes"],
                                            detail=_next("no_changes_next", ctx), summary=summary, figures=stats))
        return
    outcome = Outcome(conclusion="success", title="", summary=summary, files=paths, figures=stats)
    await commit_and_push(ctx, ws, changes, outcome, job.remote_sha)
    if job.is_pull_request:
        # A follow-up on a pull request: its own branch got the commits; the PR is already there.
        number, url, key = job.issue_number, f"https://github.com/{job.repo}/pull/{job.issue_number}", "pushed"
    else:
        pull, created = await open_or_update_pull(ctx, outcome)
        number, url, key = pull["number"], pull["html_url"], "pr_opened" if created else "pr_updated"
    reporter.step_done(STEP_PUBLISH)
    outcome = outcome.model_copy(update={
        "title": texts.OUTCOME[key].format(pr_number=number), "pr_number": number, "pr_url": url,
        "figures": figures(transcript.result, usage, started),
    })
    await _finish(ctx, reporter, outcome)


async def _finish(ctx: JobContext, reporter: ProgressReporter, outcome: Outcome, *, published: bool = False) -> None:
    """`published`: the job did its work even if the check run concludes `failure` (a review's findings)."""
    state = {"success": JobState.SUCCEEDED, "neutral": JobState.SUCCEEDED, "cancelled": JobState.CANCELLED}.get(
        outcome.conclusion, JobState.SUCCEEDED if published else JobState.FAILED
    )
    if state is JobState.SUCCEEDED:
        reporter.step_done(len(reporter.progress.steps))
    job = ctx.job.model_copy(update={"outcome": outcome}).moved_to(state, outcome.title, conclusion=outcome.conclusion)
    ctx.job = job
    await reporter.final()
    ctx.save(job, "finished", conclusion=outcome.conclusion, title=outcome.title)
