"""Publishing the agent's work: commit on the host, push the job's branch, open or reuse the PR."""

from __future__ import annotations

import gidgethub

import asyncio

from app.agent import changeset, workspace
from app.pipeline.present import render, texts
from app.domain.job import Outcome
from app.pipeline.context import JobContext


def _noreply(user_id: int | None, login: str) -> str:
    return f"{user_id}+{login}@users.noreply.github.com" if user_id else f"{login}@users.noreply.github.com"


def commit_message(ctx: JobContext, outcome: Outcome) -> str:
    job = ctx.job
    first = f"{job.worker}: {job.issue_title}"[:72]
    summary = (outcome.summary or "").strip()
    if len(summary) > 2_000:
        summary = summary[:2_000] + "…"
    trailer = f"Co-authored-by: {job.requester} <{_noreply(job.requester_id, job.requester)}>"
    refs = f"Closes #{job.issue_number}" if not job.is_pull_request else f"For #{job.issue_number}"
    return f"{first}\n\n{summary}\n\n{refs}\n\n{trailer}\n"


async def commit_and_push(ctx: JobContext, ws: workspace.Workspace, changes: changeset.ChangeSet, outcome: Outcome,
                          expected_remote: str | None) -> str:
    """The commit is built in the host's repository from the validated change set (app/changeset.py)."""
    bot = f"{ctx.settings.app_slug}[bot]"
    sha = await asyncio.to_thread(
        changeset.commit, ws, changes, commit_message(ctx, outcome),
        author_name=bot, author_email=_noreply(ctx.settings.app_bot_user_id, bot),
    )
    await workspace.push(ws, sha, await ctx.api.token(), expected_remote=expected_remote)
    return sha


async def _open_pull(ctx: JobContext) -> dict | None:
    job = ctx.job
    async for pull in ctx.api.getiter(
        "/repos/{owner}/{repo}/pulls{?state,head}",
        {"owner": job.owner, "repo": job.name, "state": "open", "head": f"{job.owner}:{job.branch}"},
    ):
        return pull
    return None


async def open_or_update_pull(ctx: JobContext, outcome: Outcome) -> tuple[dict, bool]:
    """(pull request, created): a PR that already exists for the branch is reused, never duplicated."""
    job = ctx.job
    check_url = f"https://github.com/{job.repo}/runs/{job.check_run_id}"
    body = render.pull_request_body(job, outcome, check_url)
    title = texts.PR_TITLE.format(issue_title=job.issue_title)[:256]
    url_vars = {"owner": job.owner, "repo": job.name}
    existing = await _open_pull(ctx)
    if existing is None:
        try:
            pull = await ctx.api.post(
                "/repos/{owner}/{repo}/pulls",
                url_vars,
                data={"title": title, "head": job.branch, "base": job.default_branch, "body": body,
                      "draft": job.level != "autonomous"},
            )
            return pull, True
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            existing = await _open_pull(ctx)  # created meanwhile (a retried job)
            if existing is None:
                raise
    pull = await ctx.api.patch(
        "/repos/{owner}/{repo}/pulls/{pull_number}", {**url_vars, "pull_number": existing["number"]},
        data={"title": title, "body": body},
    )
    return pull, False
