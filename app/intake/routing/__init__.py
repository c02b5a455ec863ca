"""All webhook routing: one router per concern, merged here."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.domain.intents import Intent
from app.intake.routing import checks, comments, installation, issues, pushes
from app.intake.routing.checks import MACHINE_EVENTS
from app.intake.routing.context import RouteContext

router = routing.Router(issues.router, pushes.router, comments.router, checks.router, installation.router)


def sent_by_bot(event: sansio.Event) -> bool:
    """Bots, AgentVine itself included, never trigger work (CI's results aside: checks.MACHINE_EVENTS)."""
    sender = event.data.get("sender") if isinstance(event.data, dict) else None
    return isinstance(sender, dict) and (sender.get("type") == "Bot" or str(sender.get("login", "")).endswith("[bot]"))


async def route(event: sansio.Event, ctx: RouteContext) -> list[Intent]:
    """The intents `event` asks for. Pure: no I/O happens in the handlers."""
    action = event.data.get("action") if isinstance(event.data, dict) else None
    if sent_by_bot(event) and (event.event, action) not in MACHINE_EVENTS:
        ctx.note("ignored: sent by a bot")
        return []
    await router.dispatch(event, ctx)
    return ctx.intents


__all__ = ["RouteContext", "route", "router", "sent_by_bot"]
