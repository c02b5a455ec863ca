"""Buttons on AgentVine's check runs: requested actions and Re-run."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.intents import BUTTONS, Command, JobCommand
from app.domain.job import job_id_from_external
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, sender_login

router = routing.Router()


def _our_job_id(event: sansio.Event, ctx: RouteContext) -> str | None:
    check_run = event.data["check_run"]
    app = check_run.get("app") or {}
    job_id = job_id_from_external(check_run.get("external_id") or "")
    if job_id is None:
        ctx.note(f"ignored: check run of another app ({app.get('slug')})")
    return job_id


def _command(event: sansio.Event, ctx: RouteContext, name: Command) -> None:
    job_id = _our_job_id(event, ctx)
    inst = installation_id(event.data)
    if job_id is None or inst is None:
        return
    ctx.add(
        JobCommand(
            name=name,
            installation_id=inst,
            repo=event.data["repository"]["full_name"],
            sender=sender_login(event.data),
            job_id=job_id,
        )
    )


@router.register("check_run", action="requested_action")
async def requested_action(event: sansio.Event, ctx: RouteContext) -> None:
    identifier = (event.data.get("requested_action") or {}).get("identifier", "")
    if identifier not in BUTTONS:
        ctx.note(f"ignored: unknown button {identifier!r}")
        return
    _command(event, ctx, Command(identifier))


@router.register("check_run", action="rerequested")
async def rerequested(event: sansio.Event, ctx: RouteContext) -> None:
    _command(event, ctx, Command.RETRY)
