"""The prompt for Claude Code: the worker's template filled with the issue and what authorized
people said on it. Comments from people without the trigger permission, and from bots, are
left out: anyone can comment on a public issue, and the agent acts on what it reads."""

from __future__ import annotations

import re

from app.domain.config import permission_at_least
from app.domain.job import Job
from app.pipeline.context import JobContext

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
    job = ctx.job
    assert job.run is not None
    allowed: dict[str, bool] = {job.requester: True}
    kept: list[dict] = []
    async for comment in ctx.github.comments(job.issue_number):
        user = comment.get("user") or {}
        login = user.get("login", "")
        if user.get("type") == "Bot" or comment.get("id") == job.trigger.comment_id:
            continue
        if login not in allowed:
            if len(allowed) > MAX_AUTHORS_CHECKED:
                continue
            role = await ctx.github.permission(login)
            allowed[login] = permission_at_least(role, job.run.trigger_permission)
        if allowed[login]:
            kept.append(comment)
    return kept[-MAX_COMMENTS:]


def _instruction(job: Job) -> str:
    """The instruction, with who wrote it and, for a retry, who asked for it again."""
    if not job.trigger.instruction:
        return ""
    author = job.trigger.instruction_by or job.requester
    again = f" (asked for again by @{job.requester})" if author != job.requester else ""
    return f"\nInstruction from @{author}{again}:\n{job.trigger.instruction}\n"


async def build_prompt(ctx: JobContext) -> str:
    job = ctx.job
    assert job.run is not None
    issue = await ctx.github.issue(job.issue_number)
    comments = await authorized_comments(ctx)
    rendered = "".join(
        f"\nComment by @{c['user']['login']}:\n{clip(c.get('body') or '', 5_000)}\n" for c in comments
    )
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
