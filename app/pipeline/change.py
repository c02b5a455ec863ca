"""The change flow of the run stage (every worker but `review`): the agent edits the checkout; its
tree is read back as data, validated and committed on the host, pushed to the job's branch, and a
pull request is opened or reused. A final message that is a question makes the job wait instead."""

from __future__ import annotations

import asyncio
import logging

import gidgethub

from app.agent.boundary import changeset, workspace
from app.domain.job import Outcome
from app.domain.steps import last_verify
from app.domain.untrusted import defuse, one_line
from app.pipeline.ci_prompt import build_ci_prompt
from app.pipeline.context import JobContext
from app.pipeline.outcome import AgentRun, ended, finish
from app.pipeline.present import render, texts
from app.pipeline.present import steps as steps_text
from app.pipeline.prompt import build_prompt
from app.pipeline.questions import ask, asked, parse_question

log = logging.getLogger(__name__)

# GitHub's 422 for `draft: true` where the plan has no drafts (GitHub Free/Pro private repositories).
DRAFTS_UNSUPPORTED = "draft pull requests are not supported"


class ChangeFlow:
    steps = texts.DEFAULT_STEPS

    async def prompt(self, ctx: JobContext) -> str:
        job = ctx.job
        if job.resumes_session:  # it knows the task, it gets the answer
            return texts.ANSWER_RESUME.format(answered_by=job.answered_by, answer=job.answer)
        if job.answer is not None:  # the session was lost with its machine: the task again, and the answer
            return await build_prompt(ctx) + texts.ANSWER_FRESH.format(
                question=asked(ctx), answered_by=job.answered_by, answer=job.answer) + texts.QUESTION_CONVENTION
        if job.trigger.ci is not None:  # CI failed on AgentVine's pull request: the failure is the task
            return await build_ci_prompt(ctx) + texts.QUESTION_CONVENTION
        return await build_prompt(ctx) + texts.QUESTION_CONVENTION

    async def conclude(self, ctx: JobContext, run: AgentRun) -> None:
        """The agent finished: ask its question, or publish what it changed."""
        summary = defuse(run.text)  # goes into the PR, the commit, the check run, a question
        question = parse_question(summary)
        if question is not None:
            await ask(ctx, run.reporter, question)  # the workspace and the session stay for the answer
            return
        run.reporter.step_done(texts.STEP_AGENT)
        await publish_changes(ctx, run, summary)


async def publish_changes(ctx: JobContext, run: AgentRun, summary: str) -> None:
    job, limits = ctx.job, ctx.job.run
    assert limits is not None
    rules = changeset.Rules(allowed_paths=limits.allowed_paths, allow_workflows=limits.allow_workflow_changes,
                            max_file_mb=limits.max_file_mb, max_changed_files=limits.max_changed_files)
    changes = await asyncio.to_thread(changeset.read_changes, run.ws, rules)
    paths, stats = changes.paths, run.stats
    if changes.refused:
        outcome = ended(ctx, "refused_paths", summary=summary, paths=changes.refusals_text())
        await finish(ctx, run.reporter, outcome.model_copy(update={"files": paths, "figures": stats, "steps": run.steps}))
        return
    if not paths:
        outcome = ended(ctx, "no_changes", conclusion="neutral", summary=summary)
        await finish(ctx, run.reporter, outcome.model_copy(update={"figures": stats, "steps": run.steps}))
        return
    _, failed = last_verify(run.steps)
    if failed is not None and limits.verify_on_failure == "fail":
        outcome = ended(ctx, "verify_failed", summary=summary, command=steps_text.command(failed),
                        how=steps_text.how(failed), attempts=failed.attempt)
        await finish(ctx, run.reporter, outcome.model_copy(update={"files": paths, "figures": stats, "steps": run.steps}))
        return
    outcome = Outcome(conclusion="success", title="", summary=summary, files=paths, figures=stats, steps=run.steps)
    await commit_and_push(ctx, run.ws, changes, outcome, job.remote_sha)
    if job.is_pull_request:
        # A follow-up on a pull request: its own branch got the commits; the PR is already there.
        url = job.pull_url or (await ctx.github.pull(job.issue_number))["html_url"]  # (jobs saved before pull_url)
        number, key = job.issue_number, "pushed"
    else:
        pull, created = await open_or_update_pull(ctx, outcome)
        number, url, key = pull["number"], pull["html_url"], "pr_opened" if created else "pr_updated"
    run.reporter.step_done(texts.STEP_PUBLISH)
    await finish(ctx, run.reporter, outcome.model_copy(update={
        "title": texts.OUTCOME[key].format(pr_number=number), "pr_number": number, "pr_url": url,
        "figures": run.figures(),
    }))


SKIP_CI_TRAILER = "skip-checks: true"


def commit_message(ctx: JobContext, outcome: Outcome) -> str:
    job = ctx.job
    first = f"{job.worker}: {job.issue_title}"[:72]
    if job.trigger.ci is not None:
        names = ", ".join(check.name for check in job.trigger.ci.checks)
        first = defuse(one_line(f"{job.worker}: make CI pass ({names})", 72))
    summary = (outcome.summary or "").strip()
    if len(summary) > 2_000:
        summary = summary[:2_000] + "…"
    trailer = f"Co-authored-by: {job.requester} <{ctx.settings.noreply_email(job.requester_id, job.requester)}>"
    refs = f"Closes #{job.issue_number}" if not job.is_pull_request else f"For #{job.issue_number}"
    if not job.commits_skip_ci:
        return f"{first}\n\n{summary}\n\n{refs}\n\n{trailer}\n"
    # CI runs the changed code with the repository's secrets: not before a maintainer has read it
    # (the check run's Run CI button). GitHub wants the trailer last, after two empty lines.
    return f"{first}\n\n{summary}\n\n{refs}\n\n\n{trailer}\n{SKIP_CI_TRAILER}\n"


async def commit_and_push(ctx: JobContext, ws: workspace.Workspace, changes: changeset.ChangeSet, outcome: Outcome,
                          expected_remote: str | None) -> str:
    """The commit is built in the host's repository from the validated change set (app/agent/boundary/changeset.py)."""
    bot = f"{ctx.settings.app_slug}[bot]"
    sha = await asyncio.to_thread(
        changeset.commit, ws, changes, commit_message(ctx, outcome),
        author_name=bot, author_email=ctx.settings.noreply_email(ctx.settings.app_bot_user_id, bot),
    )
    await workspace.push(ws, sha, await ctx.api.token(), expected_remote=expected_remote)
    # What CI will run on: a CI result for this commit finds the job done pushing (app/pipeline/ci_follow.py).
    ctx.store.add_event(ctx.job.id, "pushed", commit=sha, branch=ctx.job.branch)
    return sha


async def open_or_update_pull(ctx: JobContext, outcome: Outcome) -> tuple[dict, bool]:
    """(pull request, created): a PR that already exists for the branch is reused, never duplicated."""
    job, github = ctx.job, ctx.github
    assert job.branch is not None
    check_url = job.check_run_url
    if check_url is None and job.check_run_id is not None:  # a job saved before check_run_url existed
        check_url = (await github.check_run(job.check_run_id)).get("html_url")
    check_url = check_url or render.details_url(ctx.settings.public_url, job)
    body = render.pull_request_body(job, outcome, check_url)
    title = texts.PR_TITLE.format(issue_title=job.issue_title)[:256]
    existing = await github.open_pull_for(job.branch)
    if existing is not None and job.follows:
        return existing, False  # a follow-up adds commits: the description stays the one its work began with
    if existing is None:
        try:
            pull = await _create_pull(ctx, title=title, head=job.branch, base=job.default_branch, body=body,
                                      draft=job.level != "autonomous" or last_verify(outcome.steps)[1] is not None)
            return pull, True
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            existing = await github.open_pull_for(job.branch)  # created meanwhile (a retried job)
            if existing is None:
                raise
    return await github.update_pull(existing["number"], title=title, body=body), False


async def _create_pull(ctx: JobContext, *, draft: bool, **fields: str) -> dict:
    """A draft where asked for and the repository has drafts; a normal pull request where it has none."""
    try:
        return await ctx.github.create_pull(draft=draft, **fields)
    except gidgethub.BadRequest as exc:
        if not (draft and exc.status_code == 422 and DRAFTS_UNSUPPORTED in str(exc).lower()):
            raise
    log.info("job %s: %s has no draft pull requests; opening a normal one", ctx.job.id, ctx.job.repo)
    return await ctx.github.create_pull(draft=False, **fields)
