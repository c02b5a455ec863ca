"""The prompt of a CI follow-up: the issue the pull request is for, what authorized people said on the
pull request, and the failing checks (app/pipeline/present/ci.py), in texts.CI_FOLLOW_UP_PROMPT.

A fresh session, not `claude --resume` of the job that opened the pull request: that session is gone
with its job's files (docs/design.md, "A CI follow-up starts a fresh session")."""

from __future__ import annotations

from app.pipeline.context import JobContext
from app.pipeline.present import ci as present, texts
from app.pipeline.prompt import MAX_BODY_CHARS, authorized_comments, clip


async def build_ci_prompt(ctx: JobContext) -> str:
    job = ctx.job
    failure = job.trigger.ci
    assert failure is not None and job.run is not None
    issue = await ctx.github.issue(failure.issue_number)
    comments = await authorized_comments(ctx)  # on the pull request: the job's issue_number is its number
    rendered = "".join(f"\nComment by @{c['user']['login']} on the pull request:\n{clip(c.get('body') or '', 5_000)}\n"
                       for c in comments)
    return texts.CI_FOLLOW_UP_PROMPT.format(
        pr_number=failure.pr_number, worker=job.worker, issue_number=failure.issue_number, sha=failure.sha,
        round=failure.round, max_rounds=failure.max_rounds, issue_title=issue.get("title") or "",
        issue_body=clip(issue.get("body") or "(no description)", MAX_BODY_CHARS), comments=rendered,
        failures=present.failures(failure),
    )
