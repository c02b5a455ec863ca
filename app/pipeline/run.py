"""Stage 2: run Claude Code in the sandbox on a fresh branch, then let the job's flow conclude.

workspace (host git) → model gateway channel → sandbox (Docker) → outcome → the flow: change.py
(commit, push, pull request, or a question) or review/flow.py (a PR review). Every path ends in a
terminal state with a reason, and the container and the gateway channel are gone at the end
whatever happened."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from app import metrics
from app.agent.boundary import workspace
from app.agent.claude.command import ClaudeOptions, build_command
from app.agent.claude.events import Result, SystemInit, describe_activity, parse_line
from app.agent.egress import EgressChannel, EgressProxy
from app.agent.gateway import ModelGateway, Usage
from app.agent.policy import ModelPolicy
from app.agent.sandbox import SandboxResult, SandboxSpec, run_sandbox
from app.agent.sandbox.container import ImageUnusable
from app.agent.sandbox.caches import RepoCaches
from app.agent.sandbox.plan import ImagePlan
from app.agent.sandbox.runtime import NEEDS_BASH
from app.domain.job import JobState, Outcome
from app.domain.lease import current_lease
from app.domain.untrusted import defuse
from app.pipeline.acknowledge import create_check_run
from app.pipeline.change import ChangeFlow
from app.pipeline import egress
from app.pipeline.context import JobContext
from app.pipeline.outcome import AgentRun, classify, ended, finish, figures
from app.pipeline.present import texts
from app.pipeline.present.render import Progress
from app.pipeline.progress import ProgressReporter
from app.pipeline.review.flow import ReviewFlow
from app.pipeline.sandbox_image import image_outcome, job_image, runtime_failure
from app.pipeline.steps import StepsRunner, caches_for
from app.pipeline.verify import Resume, Round, Verdict, verify_and_fix
from app.pipeline.present.steps import command, how

log = logging.getLogger(__name__)

# Built-in tools a worker may be given; anything else in its config is ignored (docs/configuration.md).
KNOWN_TOOLS = ("Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "Write")


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
            self.reporter.activity(defuse(activity))


class Flow(Protocol):
    """What a worker does around the agent: the prompt it gets, and what becomes of its work."""

    steps: list[str]

    async def prompt(self, ctx: JobContext) -> str: ...
    async def conclude(self, ctx: JobContext, run: AgentRun) -> None: ...


def flow_for(worker: str | None) -> Flow:
    return ReviewFlow() if worker == "review" else ChangeFlow()


@dataclass
class RunDeps:
    gateway: ModelGateway | None
    progress_interval: float = 3.0
    docker_client: object | None = None
    egress: EgressProxy | None = None  # None: the sandbox gets no egress proxy at all


async def _workspace(ctx: JobContext) -> workspace.Workspace:
    """A fresh checkout for a new run; the kept one when a session resumes after an answer."""
    job = ctx.job
    assert job.branch is not None
    ws = ctx.workspace()
    if job.resumes_session:
        if ws.exists():
            await asyncio.to_thread(ws.disk.mount)
            return ws
        # Kept on a machine that is gone (another worker took the job over): the run starts again from
        # the beginning, with the question and its answer in the instructions (ChangeFlow.prompt).
        ctx.update("session_lost", session_id=None, interruption=texts.SESSION_LOST)
    token = await ctx.api.token()
    remote_sha = await workspace.prepare(ws, ctx.settings.clone_url(job.repo), job.base_branch or job.default_branch, token)
    ctx.update("workspace", log={"branch": job.branch}, remote_sha=remote_sha)
    return ws


@dataclass
class Launch:
    """Where the agent runs: the job's workspace, and its image with how it runs."""

    ws: workspace.Workspace
    plan: ImagePlan
    prompt: str
    caches: tuple[dict, dict] = ({}, {})  # (mounts, environment) of the repository's package caches
    resume: str | None = None  # a session to continue (the fix-up loop)
    spent_usd: float = 0.0  # by earlier rounds of this run: the budget left is what remains
    #: the job's one egress channel, open from the setup steps to the last verify (None: no egress)
    outbound: EgressChannel | None = None

    @property
    def egress_socket(self):
        return self.outbound.socket_path if self.outbound is not None else None


async def _run_agent(ctx: JobContext, deps: RunDeps, launch: Launch, transcript: Transcript,
                     cancel: asyncio.Event) -> tuple[SandboxResult, Usage]:
    job, ws, plan = ctx.job, launch.ws, launch.plan
    assert job.run is not None and deps.gateway is not None
    model = job.model or "sonnet"
    # The gateway enforces the model and the budget itself: the agent can call it directly.
    budget = max(job.run.max_cost_usd - launch.spent_usd, 0.0001) if job.run.max_cost_usd else 0.0
    channel = await deps.gateway.open_job(job.id, ModelPolicy.for_job(model, budget_usd=budget))
    tools = [t for t in job.run.allowed_tools if t in KNOWN_TOOLS]
    egress.switch(launch.outbound, ctx, "agent")
    try:
        command = build_command(launch.prompt, ClaudeOptions(
            model=model,
            max_turns=job.run.max_turns,
            permission_mode="bypassPermissions",  # the container is the boundary
            allowed_tools=None,
            tools=tools,
            resume_session=launch.resume or (job.session_id if job.resumes_session else None),
        ))
        spec = SandboxSpec(
            job_id=job.id, image=plan.image, command=command, workspace=ws.path, home=ws.home,
            gateway_socket=channel.socket_path, runtime_volume=plan.runtime_volume, image_volumes=plan.image_volumes,
            env={**launch.caches[1], **_environment(ctx, channel.token, tools)}, mounts=launch.caches[0],
            memory=job.run.memory, cpus=job.run.cpus, pids=job.run.pids, timeout_s=job.run.timeout_minutes * 60,
            egress_socket=launch.egress_socket,
        )
        sandbox = await run_sandbox(spec, transcript.on_line, cancel=cancel, client=deps.docker_client,
                                    guard=ws.disk.over_quota)
    finally:
        usage = await deps.gateway.close_job(job.id)
    return sandbox, usage


def _environment(ctx: JobContext, token: str, tools: list[str]) -> dict[str, str]:
    env = {"ANTHROPIC_API_KEY": token, "CLAUDE_CODE_MAX_RETRIES": str(ctx.settings.model_max_retries)}
    if "Bash" in tools:  # in an image that is not AgentVine's, the runtime then insists on bash
        env[NEEDS_BASH] = "1"
    return env


async def _resumed_check_run(ctx: JobContext) -> None:
    """The question concluded the job's check run (action_required); the resumed work gets a new one."""
    await create_check_run(ctx, ctx.job)


async def run_job(ctx: JobContext, deps: RunDeps, cancel: asyncio.Event) -> None:
    """`cancel` is set by the dispatcher when someone cancels the running job."""
    job = ctx.job
    assert job.run is not None and job.branch is not None
    started = time.time()
    lease = current_lease.get()  # which worker runs it, on the job's page (several may share the store)
    ctx.update("started", to=JobState.RUNNING, log={"resumed": job.resumes_session,
                                                    **({"holder": lease.holder} if lease else {})})
    flow = flow_for(job.worker)
    reporter = ProgressReporter(
        ctx, Progress(steps=flow.steps), prefix=ctx.service_config.command_prefix, interval=deps.progress_interval
    )
    ws: workspace.Workspace | None = None
    run = _Job(reporter, cancel, started)
    caches = caches_for(ctx)
    try:
        if job.answer is not None:
            await _resumed_check_run(ctx)
        await reporter.send()
        if cancel.is_set():  # asked for before the run began (while another stage or a dead worker held the job)
            await finish(ctx, reporter, ended(ctx, "cancelled", conclusion="cancelled"))
            return
        if deps.gateway is None:
            await finish(ctx, reporter, ended(ctx, "no_model_key"))
            return
        try:
            plan = await job_image(ctx, deps.docker_client)  # before anything of the job's is made
            ws = await _workspace(ctx)
            reporter.step_done(texts.STEP_WORKSPACE)
            launch = Launch(ws, plan, await flow.prompt(ctx), await asyncio.to_thread(caches.prepare))
            await _with_egress(ctx, deps, launch, flow, run)
        except ImageUnusable as problem:
            await finish(ctx, reporter, image_outcome(ctx, problem, ctx.settings.image_for(job.run.image)))
            return
    finally:
        reporter.close()
        metrics.agent_run(job.worker, time.time() - started, run.usage.model_seconds if run.usage else None)
        await _keep_or_discard(ctx, ws)
        await asyncio.to_thread(_trim, caches)


@dataclass
class _Job:
    """What every part of one run shares."""

    reporter: ProgressReporter
    cancel: asyncio.Event
    started: float
    usage: Usage | None = None  # the agent's, once it ran (the fix-up rounds' included)


async def _with_egress(ctx: JobContext, deps: RunDeps, launch: Launch, flow: Flow, run: _Job) -> None:
    """One egress channel for the job's setup, agent and verify phases (each switches it on or off, by
    `egress.during`); it is closed, and what it reached kept on the job, before the outcome is shown
    (the check run and the pull request list the hosts)."""
    launch.outbound = await egress.open_channel(ctx, deps.egress, "setup")
    try:
        end = await _setup_agent_verify(ctx, deps, launch, flow, run)
    finally:
        reached = await egress.close_channel(ctx, deps.egress, launch.outbound)
        launch.outbound = None
        ctx.update("egress_closed", egress=reached)
    if isinstance(end, AgentRun):
        await flow.conclude(ctx, end)
    else:
        await finish(ctx, run.reporter, end)


async def _setup_agent_verify(ctx: JobContext, deps: RunDeps, launch: Launch, flow: Flow,
                              run: _Job) -> Outcome | AgentRun:
    """The outcome the job failed with, or the agent's run for the flow to conclude."""
    job, ws = ctx.job, launch.ws
    assert job.run is not None
    steps = StepsRunner(ctx, _step_spec(ctx, launch), run.reporter, deps.docker_client, run.cancel,
                        ws.disk.over_quota, launch.outbound)
    if not job.resumes_session:  # a resumed session's workspace was set up before its question
        failed = await steps.phase("setup", job.run.setup)
        if failed is not None:
            outcome = ended(ctx, "setup_failed", command=command(failed), how=how(failed))
            return outcome.model_copy(update={"steps": steps.results, "figures": figures(None, run.started)})
    transcript = Transcript(run.reporter)
    sandbox, usage = await _run_agent(ctx, deps, launch, transcript, run.cancel)
    run.usage = usage
    ctx.update("agent_finished", log={"exit_code": sandbox.exit_code, "lines": transcript.lines},
               session_id=transcript.session_id or ctx.job.session_id, answer=None)
    failed_run = _failure(ctx, launch, sandbox, transcript, usage)
    if failed_run is not None:
        return failed_run.model_copy(update={"figures": figures(usage, run.started), "steps": steps.results})
    text = (transcript.result.result if transcript.result else "") or ""
    verdict = Verdict(None, text, usage)
    if isinstance(flow, ChangeFlow):
        verdict = await verify_and_fix(ctx, steps, _resumer(ctx, deps, launch, run), text, usage)
        run.usage = verdict.usage
    if verdict.failed is not None:
        return verdict.failed.model_copy(update={"figures": figures(verdict.usage, run.started),
                                                 "steps": steps.results})
    return AgentRun(run.reporter, ws, verdict.text, transcript.result, verdict.usage, run.started,
                    steps=steps.results, verified=verdict.passed)


def _failure(ctx: JobContext, launch: Launch, sandbox: SandboxResult, transcript: Transcript,
             usage: Usage) -> Outcome | None:
    return runtime_failure(ctx, launch.plan, sandbox, transcript.lines) or classify(
        ctx, sandbox, transcript.result, sandbox.stopped or launch.ws.disk.over_quota(),
        budget_reached=usage.refused_budget > 0)


def _resumer(ctx: JobContext, deps: RunDeps, launch: Launch, run: _Job) -> Resume:
    """Runs the agent again in its session with a prompt (the fix-up loop), within the budget left."""
    spent = [0.0]

    async def resume(prompt: str) -> Round:
        session = ctx.job.session_id
        transcript = Transcript(run.reporter)
        again = replace(launch, prompt=prompt, resume=session, spent_usd=spent[0])
        sandbox, usage = await _run_agent(ctx, deps, again, transcript, run.cancel)
        spent[0] += usage.cost_usd
        ctx.update("agent_resumed", log={"exit_code": sandbox.exit_code, "lines": transcript.lines},
                   session_id=transcript.session_id or session)
        text = (transcript.result.result if transcript.result else "") or ""
        return Round(text, usage, _failure(ctx, again, sandbox, transcript, usage))

    return resume


def _step_spec(ctx: JobContext, launch: Launch) -> SandboxSpec:
    """The job's sandbox for its setup and verify commands: the agent's, without the model's socket."""
    job = ctx.job
    assert job.run is not None
    mounts, env = launch.caches
    return SandboxSpec(
        job_id=job.id, image=launch.plan.image, command=["true"], workspace=launch.ws.path, home=launch.ws.home,
        runtime_volume=launch.plan.runtime_volume, image_volumes=launch.plan.image_volumes, env=dict(env),
        mounts=mounts, memory=job.run.memory, cpus=job.run.cpus, pids=job.run.pids,
        egress_socket=launch.egress_socket,  # the channel is switched per phase (StepsRunner.phase)
    )


def _trim(caches: RepoCaches) -> None:
    try:
        caches.trim()
    except Exception:  # noqa: BLE001 - the job's outcome stands; the next job's start trims again
        log.exception("could not trim the package caches of %s", caches.repo)


async def _keep_or_discard(ctx: JobContext, ws: workspace.Workspace | None) -> None:
    try:
        if ctx.job.terminal:
            await asyncio.to_thread(ctx.discard_files)
        elif ws is not None:  # a question waits: the files stay, unmounted, for the answer
            await asyncio.to_thread(ws.disk.unmount)
    except Exception:  # the job's outcome stands; the worker's start-up tidying tries again
        log.exception("could not remove or unmount the files of job %s", ctx.job.id)
