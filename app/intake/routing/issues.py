"""Labels on issues and pull requests start jobs."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.job import Trigger
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, start_job

router = routing.Router()


def _start_from_label(event: sansio.Event, ctx: RouteContext, item: dict, *, is_pull: bool) -> None:
    label = (event.data.get("label") or {}).get("name", "")
    if not label.startswith(ctx.label_prefix):
        ctx.note(f"ignored: label {label!r} is not ours")
        return
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    head_sha = (item.get("head") or {}).get("sha") if is_pull else None
    trigger = Trigger(kind="label", label=label)
    ctx.add(start_job(event.data, item, installation=inst, trigger=trigger, is_pull=is_pull, head_sha=head_sha))


@router.register("issues", action="labeled")
async def issue_labeled(event: sansio.Event, ctx: RouteContext) -> None:
    _start_from_label(event, ctx, event.data["issue"], is_pull=False)


@router.register("pull_request", action="labeled")
async def pull_request_labeled(event: sansio.Event, ctx: RouteContext) -> None:
    _start_from_label(event, ctx, event.data["pull_request"], is_pull=True)
