"""Labels on issues and pull requests start jobs."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.intents import StartJob
from app.jobs import Trigger
from app.routing.context import RouteContext
from app.routing.payload import installation_id, repo_fields, sender_login

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
    repo, default_branch = repo_fields(event.data)
    head_sha = (item.get("head") or {}).get("sha") if is_pull else None
    ctx.add(
        StartJob(
            installation_id=inst,
            repo=repo,
            default_branch=default_branch,
            issue_number=item["number"],
            is_pull_request=is_pull,
            issue_title=item.get("title") or "",
            requester=sender_login(event.data),
            requester_id=(event.data.get("sender") or {}).get("id"),
            trigger=Trigger(kind="label", label=label),
            labels=[lbl.get("name", "") for lbl in item.get("labels") or []],
            head_sha=head_sha,
        )
    )


@router.register("issues", action="labeled")
async def issue_labeled(event: sansio.Event, ctx: RouteContext) -> None:
    _start_from_label(event, ctx, event.data["issue"], is_pull=False)


@router.register("pull_request", action="labeled")
async def pull_request_labeled(event: sansio.Event, ctx: RouteContext) -> None:
    _start_from_label(event, ctx, event.data["pull_request"], is_pull=True)
