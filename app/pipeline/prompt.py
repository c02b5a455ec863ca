"""The prompt for Claude Code: the worker's template filled with the issue and what authorized
people said on it. Comments from people without the trigger permission, and from bots, are
left out: anyone can comment on a public issue, and the agent acts on what it reads. A comment
that holds an instruction (`/agentvine …`, written while the job was queued) reads as one."""

from __future__ import annotations

import re

from app.domain.config import permission_at_least
from app.domain.job import Job
from app.intake.slash import parse_command
from app.pipeline.context import JobContext
from app.pipeline.present import texts

MAX_BODY_CHARS = 20_000
MAX_COMMENTS = 30
MAX_AUTHORS_CHECKED = 10  # permission look-ups per job, at most
_PLACEHOLDER = re.compile(r"\{(issue_number|issue_title|issue_body|comments|instruction)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Replace the known placeholders only; a template cannot reach anything else (unlike str.format)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n…(truncated)"


async def authorized_comments(ctx: JobContext) -> list[dict]:
    """The latest comments whose authors have the trigger permission. Authors are looked up newest first, so
    the look-ups' bound never drops the comment written last (an instruction read into a queued job)."""
    job = ctx.job
    assert job.run is not None
    latest: list[dict] = []
    async for comment in ctx.github.comments(job.issue_number):
        user = comment.get("user") or {}
        if user.get("type") != "Bot" and comment.get("id") != job.trigger.comment_id:
            latest = [*latest[-(MAX_COMMENTS - 1):], comment]
    allowed: dict[str, bool] = {job.requester: True}
    for comment in reversed(latest):
        login = (comment.get("user") or {}).get("login", "")
        if login not in allowed and len(allowed) <= MAX_AUTHORS_CHECKED:
            allowed[login] = permission_at_least(await ctx.github.permission(login), job.run.trigger_permission)
    return [c for c in latest if allowed.get((c.get("user") or {}).get("login", ""), False)]


def _comment(comment: dict, prefix: str) -> str:
    author, body = comment["user"]["login"], comment.get("body") or ""
    command = parse_command(body, prefix)
    if command is not None and command.name == "instruction":
        return texts.LATER_INSTRUCTION.format(author=author, text=clip(command.text, 5_000))
    return f"\nComment by @{author}:\n{clip(body, 5_000)}\n"


def _instruction(job: Job) -> str:
    """The instruction, with who wrote it and, for a retry, who asked for it again."""
    if not job.trigger.instruction:
        return ""
    author = job.trigger.instruction_by or job.requester
    again = f" (asked for again by @{job.requester})" if author != job.requester else ""
    follows = ""
    if job.follows and job.branch and job.base_branch == job.branch and not job.is_pull_request:
        follows = texts.FOLLOW_UP_NOTE.format(branch=job.branch)
    return f"{follows}\nInstruction from @{author}{again}:\n{job.trigger.instruction}\n"


async def build_prompt(ctx: JobContext) -> str:
    job = ctx.job
    assert job.run is not None
    issue = await ctx.github.issue(job.issue_number)
    comments = await authorized_comments(ctx)
    rendered = "".join(_comment(c, ctx.service_config.command_prefix) for c in comments)
    return fill(
        job.run.prompt_template,
        {
            "issue_number": str(job.issue_number),
            "issue_title": issue.get("title") or job.issue_title,
            "issue_body": clip(issue.get("body") or "(no description)", MAX_BODY_CHARS),
            "comments": rendered,
            "instruction": _instruction(job),
        },
    )
