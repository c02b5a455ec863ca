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
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    repo, default_branch = repo_fields(event.data)
    sender = sender_login(event.data)
    is_pull = "pull_request" in issue
    if command is None:
        # Any other comment may answer a question the agent asked here; the worker decides.
        ctx.add(JobCommand(name="answer", installation_id=inst, repo=repo, sender=sender,
                           issue_number=issue["number"], comment_id=comment["id"], text=comment.get("body") or ""))
        return
    if command.name == "instruction" or (command.name == "review" and is_pull):
        ctx.add(
            StartJob(
                installation_id=inst,
                repo=repo,
                default_branch=default_branch,
                issue_number=issue["number"],
                is_pull_request=is_pull,
                issue_title=issue.get("title") or "",
                requester=sender,
                requester_id=(event.data.get("sender") or {}).get("id"),
                trigger=Trigger(
                    kind="command",
                    worker="review" if command.name == "review" else None,
                    instruction=command.text or None,
                    comment_id=comment["id"],
                ),
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


@router.register("pull_request_review_comment", action="created")
async def review_comment_created(event: sansio.Event, ctx: RouteContext) -> None:
    """A review comment may start a follow-up on AgentVine's own PR (the worker decides)."""
    comment, pull = event.data["comment"], event.data["pull_request"]
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    repo, _ = repo_fields(event.data)
    where = f"On `{comment.get('path')}` line {comment.get('line') or comment.get('original_line')}:\n"
    ctx.add(JobCommand(name="review_comment", installation_id=inst, repo=repo, sender=sender_login(event.data),
                       issue_number=pull["number"], comment_id=comment["id"], text=where + (comment.get("body") or "")))
