"""Installation changes: when AgentVine loses access, its pending work there is cancelled."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.intents import Command, JobCommand
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, sender_login

router = routing.Router()


@router.register("installation", action="deleted")
async def installation_deleted(event: sansio.Event, ctx: RouteContext) -> None:
    inst = installation_id(event.data)
    for repo in event.data.get("repositories") or []:
        ctx.add(JobCommand(name=Command.REMOVE_INSTALLATION, installation_id=inst, repo=repo["full_name"], sender=sender_login(event.data)))


@router.register("installation_repositories", action="removed")
async def repositories_removed(event: sansio.Event, ctx: RouteContext) -> None:
    inst = installation_id(event.data)
    for repo in event.data.get("repositories_removed") or []:
        ctx.add(JobCommand(name=Command.REMOVE_INSTALLATION, installation_id=inst, repo=repo["full_name"], sender=sender_login(event.data)))
