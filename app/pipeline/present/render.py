"""Pure rendering of what a job shows on GitHub: the tracking comment and the check run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.pipeline.present import texts
from app.pipeline.present.steps import steps_section, verify_line
from app.pipeline.present.egress import check_run_section, pull_request_note
from app.pipeline.present.waiting import wait_line, wait_title
from app.domain.intents import Command
from app.domain.job import Figures, Job, JobState, Outcome, external_id
from app.domain.queue import Wait
from app.domain.untrusted import (MAX_CHECK_TEXT, MAX_CHECK_TITLE, MAX_COMMENT, block_quote, cap, code_span, defuse,
                                  markdown_block, one_line, table_cell)


@dataclass
class Progress:
    """What the pipeline has done so far; the steps tick as it goes."""

    steps: tuple[str, ...] = texts.DEFAULT_STEPS
    done: int = 0
    activity: list[str] = field(default_factory=list)


CUT = "…(cut here: GitHub takes no more; {where})"
ON_THE_JOB_PAGE = "the full text is on the job's details page"


def _clip(text: str, limit: int = MAX_CHECK_TEXT, where: str = ON_THE_JOB_PAGE) -> str:
    """A body within GitHub's limit (app/domain/untrusted.py cites them), saying where the rest is."""
    return cap(text, limit, CUT.format(where=where))


def _promise(job: Job, prefix: str) -> str:
    return texts.LEVEL_PROMISE.get(job.level or "", "").format(prefix=prefix)


def details_url(public_url: str, job: Job) -> str:
    return f"{public_url.rstrip('/')}/jobs/{job.id}"


ACTIVITY_LINES = 8


def _checklist(progress: Progress) -> str:
    return "\n".join(f"- [{'x' if i < progress.done else ' '}] {step}" for i, step in enumerate(progress.steps))


def _activity(progress: Progress) -> str:
    if not progress.activity:
        return ""
    lines = "\n".join(f"- {defuse(one_line(line, 1_000))}" for line in progress.activity[-ACTIVITY_LINES:])
    return f"\n\n**Latest activity**\n\n{lines}\n"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def figures_line(figures: Figures) -> str:
    parts = [f"{figures.turns} turns" if figures.turns is not None else None,
             f"{figures.input_tokens + figures.output_tokens:,} tokens",
             f"${figures.cost_usd:.2f}" if figures.cost_usd is not None else None,
             format_duration(figures.duration_s)]
    return " · ".join(p for p in parts if p)


def _outcome_block(outcome: Outcome) -> str:
    lines = [f"**Result: {outcome.title}**"]
    if outcome.pr_url:
        lines.append(f"Pull request: {outcome.pr_url}")
    if outcome.detail:
        lines.append(outcome.detail)
    if verify_line(outcome.steps):
        lines.append(verify_line(outcome.steps))
    lines.append(figures_line(outcome.figures))
    return "\n\n".join(lines)


def tracking_comment(job: Job, *, prefix: str, public_url: str, progress: Progress | None = None,
                     wait: Wait | None = None) -> str:
    """`wait`: why a queued job has not started (its place in line, or the job it follows)."""
    progress = progress or Progress()
    steps = _checklist(progress) + _activity(progress)
    if job.outcome is not None:
        steps += "\n" + _outcome_block(job.outcome)
    return _BLANK_RUNS.sub("\n\n", _tracking_comment(job, prefix, public_url, steps, wait_line(wait)))


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tracking_comment(job: Job, prefix: str, public_url: str, steps: str, waiting: str | None) -> str:
    where = f"the full text is on the job's page: {details_url(public_url, job)}"
    reasons = [line for line in (job.interruption, job.reason if job.outcome is None else None, waiting) if line]
    return _clip(where=where, limit=MAX_COMMENT, text=texts.TRACKING_COMMENT.format(
        marker=texts.TRACKING_MARKER.format(job_id=job.id),
        worker=job.worker,
        headline=texts.STATE_HEADLINE[job.state.value],
        requester=job.requester,
        level=job.level,
        model=job.model,
        reason="".join(f"\n{line}\n" for line in reasons),
        steps=steps,
        promise="" if job.terminal else _promise(job, prefix),
        next_step=texts.FOOTER_DONE.format(prefix=prefix) if job.terminal else texts.FOOTER_ACTIVE.format(prefix=prefix),
        job_id=job.id,
        details_url=details_url(public_url, job),
        prefix=prefix,
    ))


def buttons(job: Job) -> list[dict[str, str]]:
    """The check run's requested actions for the job's state."""
    if job.state is JobState.WAITING_FOR_APPROVAL:
        names = [Command.APPROVE, Command.CANCEL]
    elif job.terminal:
        names = [Command.RETRY] if job.conclusion != "success" else []
        if job.ci_held_back:
            names.append(Command.RUN_CI)
    else:
        names = [Command.CANCEL]
    return [{**texts.BUTTONS[name], "identifier": name.value} for name in names]


def check_run_name(job: Job) -> str:
    return texts.CHECK_RUN_NAME.format(worker=job.worker or "job")


def check_run_config_invalid(job: Job, body: str, *, public_url: str) -> dict[str, Any]:
    """The body of POST .../check-runs for a job whose repository config is invalid: concluded at once."""
    return {
        "name": check_run_name(job),
        "head_sha": job.head_sha,
        "external_id": external_id(job.id),
        "details_url": details_url(public_url, job),
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": texts.CONFIG_INVALID_TITLE, "summary": body},
    }


def check_run_create(job: Job, *, prefix: str, public_url: str, wait: Wait | None = None) -> dict[str, Any]:
    """The body of POST /repos/{owner}/{repo}/check-runs for a freshly acknowledged job."""
    fields = {"worker": job.worker, "issue_number": job.issue_number}
    if job.state is JobState.WAITING_FOR_APPROVAL:
        title = texts.CHECK_RUN_TITLE["waiting_for_approval"].format(**fields)
    else:
        title = wait_title(job, wait)
    waiting = wait_line(wait)
    return {
        "name": check_run_name(job),
        "head_sha": job.head_sha,
        "external_id": external_id(job.id),
        "details_url": details_url(public_url, job),
        "status": "queued",
        "actions": buttons(job),
        "output": {
            "title": title,
            "summary": _clip((f"{waiting}\n\n" if waiting else "") +
                texts.CHECK_RUN_SUMMARY.format(
                    requester=job.requester,
                    worker=job.worker,
                    issue_number=job.issue_number,
                    level=job.level,
                    model=job.model,
                    promise=_promise(job, prefix),
                )
            ),
        },
    }


def config_problems(problems: list[str]) -> str:
    """The problems in a repository's config (its keys and values are the repository's: untrusted), one
    list item each: the key in a code span, the message on one line."""
    def item(problem: str) -> str:
        where, _, what = problem.partition(": ")
        return f"- {code_span(where)}: {defuse(one_line(what, 1_000))}" if what else f"- {defuse(one_line(where, 1_000))}"
    return "\n".join(item(p) for p in problems[:50])


def check_run_progress(job: Job, progress: Progress) -> dict[str, Any]:
    """PATCH body for a check run while the agent works."""
    return {
        "status": "in_progress",
        "actions": buttons(job),
        "output": {
            "title": texts.CHECK_RUN_PROGRESS_TITLE.format(worker=job.worker, issue_number=job.issue_number),
            "summary": _clip(_interruption(job) + _checklist(progress) + "\n" + _activity(progress)),
        },
    }


def _interruption(job: Job) -> str:
    """What interrupted an earlier run of the job (its worker stopped), above the rest of a check run's summary."""
    return f"{job.interruption}\n\n" if job.interruption else ""


def check_run_final(job: Job, progress: Progress) -> dict[str, Any]:
    outcome = job.outcome
    assert outcome is not None
    summary = (_interruption(job) + _outcome_block(outcome) + "\n\n" + check_run_section(job.egress) + _checklist(progress) + "\n"
               + _activity(progress))
    if outcome.summary:
        summary += "\n**Claude Code's summary**\n\n" + markdown_block(outcome.summary)
    if outcome.steps:
        summary += "\n\n" + steps_section(outcome.steps)
    return {
        "status": "completed",
        "conclusion": outcome.conclusion,
        "actions": buttons(job),
        "output": {"title": one_line(outcome.title, MAX_CHECK_TITLE), "summary": _clip(summary),
                   **annotations_batch(outcome, 0)},
    }


ANNOTATIONS_PER_REQUEST = 50  # GitHub's limit for one check-run request


def annotations_batch(outcome: Outcome, batch: int) -> dict[str, Any]:
    chunk = outcome.annotations[batch * ANNOTATIONS_PER_REQUEST : (batch + 1) * ANNOTATIONS_PER_REQUEST]
    return {"annotations": chunk} if chunk else {}


def check_run_waiting(job: Job, progress: Progress, wait: Wait | None = None) -> dict[str, Any]:
    """The check run while the job waits: for approval, a free place or the job before it (queued), or for an
    answer (action_required)."""
    if job.state is JobState.WAITING_FOR_ANSWER:
        return {
            "status": "completed",
            "conclusion": "action_required",
            "actions": buttons(job),
            "output": {
                "title": texts.QUESTION_TITLE,
                "summary": _clip(f"**Question**\n\n{quote(job.question or '')}\n\n" + _checklist(progress) + _activity(progress)),
            },
        }
    if job.state is JobState.WAITING_FOR_APPROVAL:
        title = texts.CHECK_RUN_TITLE["waiting_for_approval"].format(worker=job.worker, issue_number=job.issue_number)
    else:
        title = wait_title(job, wait)
    lines = [line for line in (job.reason, wait_line(wait)) if line]
    return {
        "status": "queued",
        "actions": buttons(job),
        "output": {"title": title, "summary": _clip("\n\n".join([*lines, _checklist(progress)]))},
    }


def quote(text: str) -> str:
    return block_quote(text)


def help_text(config: Any) -> str:
    labels = ", ".join(f"{code_span(label)} ({rule.worker}, {rule.level})" for label, rule in config.labels.items())
    return texts.HELP.format(prefix=config.command_prefix, approve=config.permissions.approve,
                             trigger=config.permissions.trigger, labels=labels)


def pull_request_body(job: Job, outcome: Outcome, check_url: str) -> str:
    files = "\n".join(f"- {code_span(path)}" for path in outcome.files[:100]) or "- (none)"
    if len(outcome.files) > 100:
        files += f"\n- … and {len(outcome.files) - 100} more"
    f = outcome.figures
    closes = f"Closes #{job.issue_number}" if not job.is_pull_request else f"For #{job.issue_number}"
    return _clip(limit=MAX_COMMENT, where=f"the check run has the rest: {check_url}", text=texts.PR_BODY.format(
        closes=closes,
        summary=markdown_block(outcome.summary) if outcome.summary else "(Claude Code gave no summary.)",
        files=files,
        egress=pull_request_note(job.egress, check_url),
        worker=table_cell(str(job.worker)),
        level=table_cell(str(job.level)),
        requester=job.requester,
        model=table_cell(code_span(str(job.model or ""))),
        turns=f.turns if f.turns is not None else "–",
        input_tokens=f"{f.input_tokens:,}",
        output_tokens=f"{f.output_tokens:,}",
        cost=f"${f.cost_usd:.2f}" if f.cost_usd is not None else "–",
        duration=format_duration(f.duration_s),
        draft_note=(texts.PR_DRAFT_NOTE.format(level=job.level) + texts.CI_SKIPPED_NOTE.format(level=job.level) + "\n\n"
                    if job.level != "autonomous" else ""),
        verify_note=verify_line(outcome.steps) + "\n\n" if outcome.steps else "",
        check_url=check_url,
    ))
