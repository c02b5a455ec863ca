"""Slash commands in new issue and PR comments. Edited or deleted comments trigger nothing."""

from __future__ import annotations

from gidgethub import routing, sansio

from app.intake.slash import parse_command
from app.domain.intents import Command, JobCommand
from app.domain.job import Trigger
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, repo_fields, sender_login, start_job

router = routing.Router()


def _review_scope(text: str) -> tuple[bool, str]:
    """`review full ...`: the whole pull request again (else only what is new since the last review);
    what follows is an instruction for the reviewer."""
    word, *rest = text.split(None, 1) or [""]
    return (True, "".join(rest)) if word.lower() == "full" else (False, text)


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, ctx: RouteContext) -> None:
    comment, issue = event.data["comment"], event.data["issue"]
    command = parse_command(comment.get("body"), ctx.command_prefix)
    inst = installation_id(event.data)
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    repo, _ = repo_fields(event.data)
    sender = sender_login(event.data)
    is_pull = "pull_request" in issue
    if command is None:
        # Any other comment may answer a question the agent asked here; the worker decides.
        ctx.add(JobCommand(name=Command.ANSWER, installation_id=inst, repo=repo, sender=sender,
                           issue_number=issue["number"], comment_id=comment["id"], text=comment.get("body") or ""))
        return
    if command.name == "instruction" or (command.name == "review" and is_pull):
        review = command.name == "review"
        full, text = _review_scope(command.text) if review else (False, command.text)
        trigger = Trigger(kind="command", worker="review" if review else None, instruction=text or None,
                          comment_id=comment["id"], full=full)
        ctx.add(start_job(event.data, issue, installation=inst, trigger=trigger, is_pull=is_pull))
    else:
        ctx.add(
            JobCommand(
                name=Command(command.name),
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
    ctx.add(JobCommand(name=Command.REVIEW_COMMENT, installation_id=inst, repo=repo, sender=sender_login(event.data),
                       issue_number=pull["number"], comment_id=comment["id"], text=where + (comment.get("body") or "")))
