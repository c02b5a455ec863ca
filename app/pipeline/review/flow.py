"""The review flow of the run stage: the agent is given the pull request's diff (or what is new since
AgentVine's last review of it) and changes nothing; its report becomes one PR review, with no finding
that is already open on the pull request, and the check run's annotations. The findings as the review
leaves them are saved on the job (`Job.review`), where the next review of the pull request starts."""

from __future__ import annotations

import logging
import time

import gidgethub

from app.domain.findings import ReviewLedger, TrackedFinding, at_least, keep_most_severe
from app.domain.job import Outcome
from app.domain.untrusted import defuse
from app.pipeline.context import JobContext
from app.pipeline.outcome import AgentRun, ended, finish
from app.pipeline.present import render, texts
from app.pipeline.prompt import build_prompt
from app.pipeline.review.anchors import follow, read_files, tracked
from app.pipeline.review.incremental import Scope, Sorted, choose_scope, previous_review, sort_findings
from app.pipeline.review.prompt import REVIEW_INSTRUCTIONS, earlier_section, fetch_pull_files, scope_section
from app.pipeline.review.publish import (PublishedReview, ReviewRequest, check_annotations, publish_review,
                                         review_conclusion, review_event)
from app.pipeline.review.report import ReviewReport, parse_report
from app.pipeline.review.summary import Summary, review_body

log = logging.getLogger(__name__)


class ReviewFlow:
    steps = texts.REVIEW_STEPS

    def __init__(self) -> None:
        self.files: list[dict] = []  # the pull request's changed files, fetched for the prompt
        self.head = ""  # the commit the agent reads (the workspace's)
        self.previous: ReviewLedger | None = None
        self.scope = Scope("full", "first", [])

    async def prompt(self, ctx: JobContext) -> str:
        self.files = await fetch_pull_files(ctx.github, ctx.job.issue_number)
        ws = ctx.workspace()
        self.head = ws.base()[0]
        earlier_job = previous_review(ctx.store, ctx.job)
        self.previous = earlier_job.review if earlier_job else None
        self.scope = await choose_scope(ctx.github, ctx.job, self.previous, self.head, self.files)
        if self.previous is not None:
            earlier = self.previous.open
            self.scope.earlier = follow(earlier, await read_files(ws, self.head, {f.path for f in earlier}))
        return "\n\n".join(part for part in (
            await build_prompt(ctx), scope_section(self.scope, self.head), earlier_section(self.scope.earlier),
            REVIEW_INSTRUCTIONS) if part)

    async def conclude(self, ctx: JobContext, run: AgentRun) -> None:
        """The report is parsed (untrusted), sorted against the open findings, published as a review, and
        the open findings annotate the check run."""
        job = ctx.job
        report, error = parse_report(run.text)
        if report is None:
            outcome = ended(ctx, "review_unreadable", error=error)
            await finish(ctx, run.reporter, outcome.model_copy(update={"figures": run.stats}))
            return
        found = await self._sorted(run, report)
        open_now = found.new + found.still_open
        threshold = job.run.request_changes_on if job.run else "never"
        event = review_event(open_now, threshold, own_pull=await self._own(ctx, open_now))
        summary = Summary(report.summary, self.scope, self.head, found, run.stats, job.model)
        published = await publish_review(ctx.github, ReviewRequest(
            pull_number=job.issue_number, commit_sha=self.head, event=event, findings=found.new, files=self.files,
            body=lambda outside: review_body(summary, outside)))
        run.reporter.step_done(texts.STEP_PUBLISH)
        ctx.update("review_published", review=await self._ledger(ctx, published, found),
                   log={"review_id": published.review_id, "review_event": event, "scope": self.scope.kind,
                        "new": len(found.new), "repeated": len(found.repeated), "outdated": len(found.outdated),
                        "model_asked_for": report.event})  # an event the model asked for is recorded, not obeyed
        outcome = Outcome(
            conclusion=review_conclusion(open_now), title=texts.OUTCOME["reviewed"].format(
                pr_number=job.issue_number, findings=findings_phrase(found)),
            summary=defuse(report.summary), files=sorted({f.path for f in open_now}), figures=run.stats,
            pr_number=job.issue_number, pr_url=published.html_url,
            annotations=check_annotations(found.new, found.still_open),
        )
        await finish(ctx, run.reporter, outcome, published=True)
        await _remaining_annotations(ctx, outcome)

    async def _sorted(self, run: AgentRun, report: ReviewReport) -> Sorted:
        files = await read_files(run.ws, self.head, {f.path for f in report.findings})
        return sort_findings([tracked(f, files, self.head) for f in report.findings], self.scope)

    async def _own(self, ctx: JobContext, open_now: list[TrackedFinding]) -> bool:
        """Whether the pull request is the App's own (GitHub refuses REQUEST_CHANGES there); asked only
        when the review would request changes."""
        job = ctx.job
        threshold = job.run.request_changes_on if job.run else "never"
        if not any(at_least(f.severity, threshold) for f in open_now):
            return False
        pull = await ctx.github.pull(job.issue_number)
        return (pull.get("user") or {}).get("login") == f"{ctx.settings.app_slug}[bot]"

    async def _ledger(self, ctx: JobContext, published: PublishedReview, found: Sorted) -> ReviewLedger:
        posted = [f.model_copy(update={"review_id": published.review_id}) for f in found.new]
        in_force = list(self.previous.changes_requested) if self.previous else []
        if published.event == "REQUEST_CHANGES":
            in_force.append(published.review_id)
        else:
            in_force = await _dismiss(ctx, in_force)
        return ReviewLedger(
            head=self.head, scope=self.scope.kind, since=self.scope.since, review_id=published.review_id,
            event=published.event, published_at=time.time(), changes_requested=in_force,
            findings=keep_most_severe(posted + found.still_open) + found.outdated + found.resolved,
        )


def findings_phrase(found: Sorted) -> str:
    """"no findings", "3 findings", or "1 new finding, 2 still open"."""
    def many(n: int, word: str) -> str:
        return f"{n} {word}{'s' if n != 1 else ''}"
    if not found.still_open:
        return many(len(found.new), "finding") if found.new else "no findings"
    return f"{many(len(found.new), 'new finding')}, {len(found.still_open)} still open"


async def _dismiss(ctx: JobContext, review_ids: list[int]) -> list[int]:
    """Dismiss AgentVine's REQUEST_CHANGES reviews nothing asks for any more (a later COMMENT does not
    lift them on GitHub, and AgentVine never approves). One GitHub refuses (gone, already dismissed) is
    dropped; one it could not take now (5xx) stays listed for the next review. The review is out either way."""
    kept = []
    for review_id in review_ids:
        try:
            await ctx.github.dismiss_review(ctx.job.issue_number, review_id, texts.REVIEW_DISMISSED)
        except gidgethub.BadRequest as exc:
            log.warning("review %s of job %s not dismissed: %s", review_id, ctx.job.id, exc.status_code)
        except gidgethub.GitHubException:
            kept.append(review_id)
    return kept


async def _remaining_annotations(ctx: JobContext, outcome: Outcome) -> None:
    """GitHub takes 50 annotations per request; the final report sent the first batch, and
    annotations add up across updates of the check run."""
    assert ctx.job.check_run_id is not None
    for batch in range(1, -(-len(outcome.annotations) // render.ANNOTATIONS_PER_REQUEST)):
        await ctx.github.update_check_run(ctx.job.check_run_id, {
            "output": {"title": outcome.title, "summary": outcome.summary or outcome.title,
                       **render.annotations_batch(outcome, batch)},
        })
