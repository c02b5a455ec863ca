"""The job's egress channel around its run (app/agent/egress/): opened with the job's allow-list
bounded by the operator's, switched on for the phases `egress.during` names, closed with its
log stored as one `egress` job event and its totals kept on the job (the check run and the pull
request list what was blocked).

Phases: `setup` (the repository's setup steps), `agent` (Claude Code), `verify`. With
`egress.during: setup` only the setup phase has egress; with `run`, every phase has."""

from __future__ import annotations

import logging
from typing import Literal

from app.agent.egress import EgressChannel, EgressPolicy, EgressProxy
from app.domain.egress import EgressReport
from app.pipeline.context import JobContext

log = logging.getLogger(__name__)

Phase = Literal["setup", "agent", "verify"]
OFF_DURING = ("egress is off while {phase} runs: this repository allows it during the setup steps only "
              "(egress.during: setup in .github/agentvine.yml)")
PHASE_NAMES = {"setup": "the setup steps", "agent": "the agent", "verify": "the verify steps"}


def policy_for(ctx: JobContext) -> EgressPolicy:
    run = ctx.job.run
    assert run is not None
    return EgressPolicy(run.egress_allow, ctx.settings.egress_allow)


def egress_on(during: str, phase: Phase) -> bool:
    return during == "run" or phase == "setup"


def switch(channel: EgressChannel | None, ctx: JobContext, phase: Phase) -> None:
    """Turn the channel on or off for `phase` (call it before each phase starts)."""
    if channel is None:
        return
    assert ctx.job.run is not None
    if egress_on(ctx.job.run.egress_during, phase):
        channel.enable()
    else:
        channel.disable(OFF_DURING.format(phase=PHASE_NAMES[phase]))


async def open_channel(ctx: JobContext, proxy: EgressProxy | None, phase: Phase) -> EgressChannel | None:
    """The job's channel, switched for `phase`; None when this service runs no egress proxy."""
    if proxy is None:
        return None
    channel = await proxy.open_job(ctx.job.id, policy_for(ctx))
    switch(channel, ctx, phase)
    return channel


async def close_channel(ctx: JobContext, proxy: EgressProxy | None, channel: EgressChannel | None) -> EgressReport | None:
    """Close the channel; store its requests as an `egress` event; its totals, merged with the job's
    earlier runs' (a session resumed after a question)."""
    if proxy is None or channel is None:
        return ctx.job.egress
    requests = await proxy.close_job(channel.job_id)
    if requests.requests:
        ctx.store.add_event(ctx.job.id, "egress", **requests.event_data())
    report = requests.report()
    return ctx.job.egress.merged(report) if ctx.job.egress is not None else report
