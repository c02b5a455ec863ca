"""Buttons on AgentVine's check runs: requested actions and Re-run."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.intents import JobCommand
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, sender_login

router = routing.Router()

# The `identifier` of each button we put on a check run (GitHub allows 20 characters).
BUTTONS = {"retry": "retry", "cancel": "cancel", "approve": "approve"}


def _our_job_id(event: sansio.Event, ctx: RouteContext) -> str | None:
    check_run = event.data["check_run"]
    app = check_run.get("app") or {}
    external_id = check_run.get("external_id") or ""
    if not external_id.startswith("agentvine:"):
        ctx.note(f"ignored: check run of another app ({app.get('slug')})")
        return None
    return external_id.removeprefix("agentvine:")


def _command(event: sansio.Event, ctx: RouteContext, name: str) -> None:
    job_id = _our_job_id(event, ctx)
    inst = installation_id(event.data)
    if job_id is None or inst is None:
        return
    ctx.add(
        JobCommand(
            name=name,  # type: ignore[arg-type]
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
    _command(event, ctx, BUTTONS[identifier])


@router.register("check_run", action="rerequested")
async def rerequested(event: sansio.Event, ctx: RouteContext) -> None:
    _command(event, ctx, "retry")
