"""Slash commands in new issue and PR comments. Edited or deleted comments trigger nothing."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.commands import parse_command
from app.intents import JobCommand, StartJob
from app.jobs import Trigger
from app.routing.context import RouteContext
from app.routing.payload import installation_id, repo_fields, sender_login

router = routing.Router()


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, ctx: RouteContext) -> None:
    comment, issue = event.data["comment"], event.data["issue"]
    command = parse_command(comment.get("body"), ctx.command_prefix)
    if command is None:
        ctx.note("ignored: no command")
        return
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    repo, default_branch = repo_fields(event.data)
    sender = sender_login(event.data)
    if command.name == "instruction":
        ctx.add(
            StartJob(
                installation_id=inst,
                repo=repo,
                default_branch=default_branch,
                issue_number=issue["number"],
                is_pull_request="pull_request" in issue,
                issue_title=issue.get("title") or "",
                requester=sender,
                requester_id=(event.data.get("sender") or {}).get("id"),
                trigger=Trigger(kind="command", instruction=command.text, comment_id=comment["id"]),
                labels=[lbl.get("name", "") for lbl in issue.get("labels") or []],
            )
        )
    else:
        ctx.add(
            JobCommand(
                name=command.name,  # type: ignore[arg-type]
                installation_id=inst,
                repo=repo,
                sender=sender,
                issue_number=issue["number"],
                comment_id=comment["id"],
                text=command.text,
            )
        )
