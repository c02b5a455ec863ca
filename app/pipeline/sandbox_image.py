"""The job's sandbox image: which one (the repository's `sandbox.image`, through the settings), how it
runs (app/agent/sandbox/plan.py: as built, or with AgentVine's runtime mounted), and what people are
told when it cannot run the agent."""

from __future__ import annotations

import asyncio

from app.agent.sandbox import SandboxResult
from app.agent.sandbox.container import ImageUnusable, connect_docker
from app.agent.sandbox.plan import ImagePlan, plan_image
from app.agent.sandbox.runtime import GLIBC_LOADERS, RUNTIME_EXITS, machine_arch
from app.domain.job import Outcome
from app.domain.untrusted import code_span, one_line
from app.pipeline.context import JobContext
from app.pipeline.outcome import ended
from app.pipeline.present import texts


async def job_image(ctx: JobContext, docker_client=None) -> ImagePlan:
    """How the job's image runs; ImageUnusable when it cannot (before anything of the job started)."""
    assert ctx.job.run is not None
    image = ctx.settings.image_for(ctx.job.run.image)
    if docker_client is not None:
        return await asyncio.to_thread(plan_image, docker_client, image)
    client = await asyncio.to_thread(connect_docker)
    try:
        return await asyncio.to_thread(plan_image, client, image)
    finally:
        client.close()


def image_outcome(ctx: JobContext, problem: ImageUnusable, image: str) -> Outcome:
    """The job's end when its image cannot run the agent, saying why in words people can act on."""
    fields = {key: code_span(one_line(str(value), 200)) for key, value in problem.fields.items()}
    fields.setdefault("image", code_span(one_line(image, 200)))
    fields.setdefault("loader", GLIBC_LOADERS.get(machine_arch(), ""))
    key = "missing_profile" if problem.problem == "missing" and problem.fields.get("profile") else problem.problem
    why = texts.IMAGE_PROBLEM[key].format(**fields)
    return ended(ctx, "image_unusable", why=why)


def runtime_failure(ctx: JobContext, plan: ImagePlan, sandbox: SandboxResult, lines: int) -> Outcome | None:
    """What the runtime's entrypoint found missing in the image (its own exit codes, when it printed
    nothing: nothing of the agent's had run), or None."""
    if plan.runtime_volume is None or lines or sandbox.exit_code not in RUNTIME_EXITS:
        return None
    return image_outcome(ctx, ImageUnusable(RUNTIME_EXITS[sandbox.exit_code]), plan.image)
