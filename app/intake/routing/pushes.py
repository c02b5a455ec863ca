"""Pushes to a pull request (`pull_request.synchronize`) may ask for a review of what is new.

Routing cannot read the repository's config, so every push by a person becomes a review job that
admission keeps only where `review.on_push` is on or the pull request carries the review label
(app/pipeline/admit.py); anywhere else it ends at once, rejected without a word on GitHub."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.job import Trigger
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, start_job

router = routing.Router()


@router.register("pull_request", action="synchronize")
async def pull_request_synchronized(event: sansio.Event, ctx: RouteContext) -> None:
    pull = event.data["pull_request"]
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    if pull.get("state") != "open":
        ctx.note("ignored: the pull request is not open")
        return
    head_sha = (pull.get("head") or {}).get("sha") or event.data.get("after")
    trigger = Trigger(kind="push", worker="review")
    ctx.add(start_job(event.data, pull, installation=inst, trigger=trigger, is_pull=True, head_sha=head_sha))
