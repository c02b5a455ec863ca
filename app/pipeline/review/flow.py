"""The review flow of the run stage: the agent is given the pull request's diff and changes nothing;
its report becomes one PR review and the check run's annotations."""

from __future__ import annotations

from app.domain.job import Outcome
from app.domain.untrusted import defuse
from app.pipeline.context import JobContext
from app.pipeline.outcome import AgentRun, ended, finish
from app.pipeline.present import render, texts
from app.pipeline.prompt import build_prompt
from app.pipeline.review.prompt import REVIEW_INSTRUCTIONS, fetch_pull_files, render_diff_for_prompt
from app.pipeline.review.publish import check_annotations, publish_review, review_conclusion
from app.pipeline.review.report import parse_report

class ReviewFlow:
    steps = texts.REVIEW_STEPS

    def __init__(self) -> None:
        self.files: list[dict] = []  # the pull request's changed files, fetched for the prompt

    async def prompt(self, ctx: JobContext) -> str:
        self.files = await fetch_pull_files(ctx.github, ctx.job.issue_number)
        diff = render_diff_for_prompt(self.files)
        return await build_prompt(ctx) + "\n\n## The pull request's changes\n\n" + diff + "\n\n" + REVIEW_INSTRUCTIONS

    async def conclude(self, ctx: JobContext, run: AgentRun) -> None:
        """The report is parsed (untrusted), published as a review, and its findings annotate the check run."""
        job = ctx.job
        report, error = parse_report(run.text)
        if report is None:
            outcome = ended(ctx, "review_unreadable", error=error)
            await finish(ctx, run.reporter, outcome.model_copy(update={"figures": run.stats}))
            return
        assert job.head_sha is not None
        published = await publish_review(ctx.github, pull_number=job.issue_number, commit_sha=job.head_sha,
                                         report=report, files=self.files)
        run.reporter.step_done(texts.STEP_PUBLISH)
        count = len(report.findings)
        findings = "no findings" if not count else f"{count} finding{'s' if count != 1 else ''}"
        outcome = Outcome(
            conclusion=review_conclusion(report),
            title=texts.OUTCOME["reviewed"].format(pr_number=job.issue_number, findings=findings),
            summary=defuse(report.summary), files=sorted({f.path for f in report.findings}),
            figures=run.stats, pr_number=job.issue_number, pr_url=published.html_url,
            annotations=check_annotations(report),
        )
        await finish(ctx, run.reporter, outcome, published=True)
        await _remaining_annotations(ctx, outcome)


async def _remaining_annotations(ctx: JobContext, outcome: Outcome) -> None:
    """GitHub takes 50 annotations per request; the final report sent the first batch, and
    annotations add up across updates of the check run."""
    assert ctx.job.check_run_id is not None
    for batch in range(1, -(-len(outcome.annotations) // render.ANNOTATIONS_PER_REQUEST)):
        await ctx.github.update_check_run(ctx.job.check_run_id, {
            "output": {"title": outcome.title, "summary": outcome.summary or outcome.title,
                       **render.annotations_batch(outcome, batch)},
        })
