"""CI failing on AgentVine's own pull request starts a follow-up job on its branch.

Routing hands over every completed check suite, and every failing check run, on a branch of AgentVine's
(app/intake/routing/checks.py). The decision is taken here from the Checks API's view of the commit, not
from the event, so it does not matter which of GitHub's events comes first, or how often one comes:
- only for a pull request a job of AgentVine's opened, still open, on its current head;
- never for AgentVine's own checks (its App id, its check runs' external id and name);
- only once every CI check on the commit has finished and one of them failed;
- only where `follow_ci` covers the level of the job that opened the pull request, and at most
  `follow_ci.max_rounds` times per pull request; past that it says once that it stops;
- never twice for one commit, and not while another job is about to push to the branch.

The follow-up starts a fresh session with the failure in its prompt (app/pipeline/ci_prompt.py) rather
than resuming the first job's: docs/design.md says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.domain.ci import (FAILING, MAX_ANNOTATIONS, MAX_CHECKS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_OUTPUT_CHARS,
                           Annotation, CIFailure, CISignal, FailedCheck)
from app.domain.config import REPO_CONFIG_PATH, BotConfig, ConfigError
from app.domain.intents import JobCommand
from app.domain.job import EXTERNAL_ID_PREFIX, Job, JobState, Trigger
from app.pipeline.admit import load_repo_config
from app.pipeline.context import JobContext
from app.pipeline.present import ci as present, texts
from app.store.base import JobStore

ACTIVE = (JobState.QUEUED, JobState.ACKNOWLEDGED, JobState.WAITING_FOR_APPROVAL, JobState.RUNNING,
          JobState.WAITING_FOR_ANSWER)
MAX_RUNS_LISTED = 100  # check runs read per commit
STOPPED = "ci_follow_stopped"  # the event, on the job that opened the pull request, that says it was said
OUR_CHECK_NAME = texts.CHECK_RUN_NAME.split("{", 1)[0]  # "AgentVine · "


def _text(value: Any, limit: int) -> str | None:
    """A text field of GitHub's answer (another App wrote it), cut to `limit`; None if it is no text."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= limit else value[:limit] + "\n…(cut)"


def ours(run: dict, app_id: int | None) -> bool:
    """A check run AgentVine made: by its App, or bearing its external id or name."""
    return ((run.get("app") or {}).get("id") == app_id or str(run.get("external_id") or "").startswith(EXTERNAL_ID_PREFIX)
            or str(run.get("name") or "").startswith(OUR_CHECK_NAME))


def opener_of(jobs: list[Job], signal: CISignal) -> Job | None:
    """The job that opened a pull request from the signal's branch (not a follow-up, not a review)."""
    return next((j for j in jobs if not j.is_pull_request and j.worker != "review" and j.branch == signal.branch
                 and j.outcome is not None and j.outcome.pr_number in signal.pulls), None)


def _annotation(raw: Any) -> Annotation | None:
    try:
        return Annotation(path=_text(raw["path"], MAX_NAME_CHARS), start_line=raw["start_line"], end_line=raw["end_line"],
                          level=_text(raw.get("annotation_level"), 20), title=_text(raw.get("title"), MAX_NAME_CHARS),
                          message=_text(raw.get("message"), MAX_MESSAGE_CHARS))
    except (KeyError, TypeError, ValidationError):
        return None  # one malformed annotation does not hide the others


async def failed_check(ctx: JobContext, run: dict) -> FailedCheck:
    """What the prompt shows of one failing run: its output, and its annotations (one more request)."""
    output = run.get("output") if isinstance(run.get("output"), dict) else {}
    count = output.get("annotations_count") if isinstance(output.get("annotations_count"), int) else 0
    found = await ctx.github.check_run_annotations(run["id"], limit=MAX_ANNOTATIONS) if count else []
    annotations = [a for a in map(_annotation, found) if a is not None]
    return FailedCheck(
        name=_text(run.get("name"), MAX_NAME_CHARS) or "(no name)", conclusion=str(run.get("conclusion")),
        app=_text((run.get("app") or {}).get("slug"), MAX_NAME_CHARS), url=_text(run.get("html_url"), 500),
        title=_text(output.get("title"), MAX_NAME_CHARS), summary=_text(output.get("summary"), MAX_OUTPUT_CHARS),
        text=_text(output.get("text"), MAX_OUTPUT_CHARS), annotations=annotations,
        annotations_left_out=max(count - len(annotations), 0))


def _busy(jobs: list[Job], opener: Job, pr: int, pushed: Callable[[Job], set[str]], sha: str) -> Job | None:
    """A job about to push to the pull request's branch: the follow-up would work on what it replaces.
    One that already pushed the commit CI ran on is only finishing its reports."""
    for job in jobs:
        on_branch = job.branch == opener.branch or (job.is_pull_request and job.issue_number == pr)
        if job.state in ACTIVE and on_branch and sha not in pushed(job):
            return job
    return None


def _not_current(pull: dict, opener: Job, sha: str) -> str | None:
    head = pull.get("head") or {}
    if pull.get("state") != "open":
        return f"#{pull.get('number')} is {pull.get('state')}"
    if (head.get("repo") or {}).get("full_name") != opener.repo or head.get("ref") != opener.branch:
        return f"#{pull.get('number')} is no longer on AgentVine's branch"
    if head.get("sha") != sha:
        return f"{sha[:12]} is not the head of #{pull.get('number')} any more"
    return None


@dataclass
class _Case:
    """One CI result being looked at: about the pull request `opener` opened."""

    ctx: JobContext  # the opener's context: its repository, its token
    command: JobCommand
    signal: CISignal
    opener: Job
    pr: int
    rounds: list[Job]  # the follow-ups CI on this pull request started so far (not those refused)


class CIFollower:
    """Carries out `ci_completed` commands (the command handler hands them over)."""

    def __init__(self, make_context: Callable[[Job], JobContext], store: JobStore, config: BotConfig) -> None:
        self._context = make_context
        self._store = store
        self._config = config

    def _pushed(self, job: Job) -> set[str]:
        return {str(e.data.get("commit")) for e in self._store.events(job.id) if e.kind == "pushed"}

    async def handle(self, command: JobCommand) -> str:
        signal = command.ci
        if signal is None:
            return "ignored: no CI result"
        jobs = self._store.list_jobs(repo=command.repo)
        opener = opener_of(jobs, signal)
        if opener is None or opener.outcome is None or opener.outcome.pr_number is None:
            return f"ignored: no pull request of AgentVine's on {signal.branch}"
        ctx = self._context(opener)
        if signal.app_id is not None and signal.app_id == ctx.settings.app_id:
            return "ignored: AgentVine's own checks"
        pr = opener.outcome.pr_number
        rounds = [j for j in jobs if j.trigger.ci is not None and j.trigger.ci.pr_number == pr]
        if any(j.trigger.ci is not None and j.trigger.ci.sha == signal.sha for j in rounds):
            return f"ignored: CI on {signal.sha[:12]} was followed up already"
        counted = [j for j in rounds if j.state is not JobState.REJECTED]
        return await self._look(_Case(ctx, command, signal, opener, pr, counted))

    async def _look(self, case: _Case) -> str:
        """The checks on the commit, the pull request and the repository's config: the API calls, in the
        order that spends the fewest on CI that passed."""
        ctx, sha, opener, pr = case.ctx, case.signal.sha, case.opener, case.pr
        runs = [r for r in await ctx.github.check_runs_on(sha, limit=MAX_RUNS_LISTED) if not ours(r, ctx.settings.app_id)]
        failing = [r for r in runs if r.get("conclusion") in FAILING]
        waiting = [r for r in runs if r.get("status") != "completed"]
        if not failing:
            return f"ignored: no CI check failed on {sha[:12]}"
        if waiting:
            return f"waiting: {len(waiting)} CI check(s) still running on {sha[:12]}"
        pull = await ctx.github.pull(pr)
        stale = _not_current(pull, opener, sha)
        if stale:
            return f"ignored: {stale}"
        busy = _busy(self._store.list_jobs(ACTIVE, repo=opener.repo), opener, pr, self._pushed, sha)
        if busy is not None:
            return f"ignored: job {busy.id} is about to push to #{pr}"
        try:
            follow_ci = (await load_repo_config(ctx.github, opener, self._config, ctx.settings.ceilings)).follow_ci
        except ConfigError:
            return f"ignored: {REPO_CONFIG_PATH} is invalid"
        if not follow_ci.covers(opener.level):
            return f"ignored: follow_ci ({follow_ci.when}) does not cover {opener.level} jobs"
        if len(case.rounds) >= follow_ci.max_rounds:
            return await self._stop(case, failing, follow_ci.max_rounds)
        failure = CIFailure(sha=sha, pr_number=pr, issue_number=opener.issue_number, follows=opener.id,
                            level=opener.level or "autonomous", round=len(case.rounds) + 1,
                            max_rounds=follow_ci.max_rounds,
                            checks=[await failed_check(ctx, run) for run in failing[:MAX_CHECKS]],
                            checks_left_out=max(len(failing) - MAX_CHECKS, 0))
        return await self._start(case, pull, failure)

    async def _start(self, case: _Case, pull: dict, failure: CIFailure) -> str:
        opener = case.opener
        job = Job(delivery_id=case.command.delivery_id or opener.delivery_id, installation_id=opener.installation_id,
                  repo=opener.repo, default_branch=opener.default_branch, issue_number=failure.pr_number,
                  is_pull_request=True, issue_title=str(pull.get("title") or opener.issue_title),
                  requester=opener.requester, requester_id=opener.requester_id,
                  trigger=Trigger(kind="ci", worker=opener.worker, label=opener.trigger.label, ci=failure),
                  labels=opener.labels, reacted=True)  # nothing to react to: the comment below says it was seen
        self._store.save_job(job, "created", follow_up_of=opener.id, ci_sha=failure.sha, round=failure.round)
        await case.ctx.github.comment(failure.pr_number, texts.CI_FOLLOW_UP.format(
            sha=present.short_sha(failure.sha), checks=present.check_names([c.name for c in failure.checks]),
            round=failure.round, max_rounds=failure.max_rounds))
        return f"CI follow-up {job.id} (round {failure.round} of {failure.max_rounds})"

    async def _stop(self, case: _Case, failing: list[dict], max_rounds: int) -> str:
        """The rounds are used up: said on the pull request once, never again for it."""
        if any(e.kind == STOPPED for e in self._store.events(case.opener.id)):
            return f"ignored: the {max_rounds} CI follow-up(s) on #{case.pr} are used up (said so already)"
        names = [_text(r.get("name"), MAX_NAME_CHARS) or "(no name)" for r in failing]
        await case.ctx.github.comment(case.pr, texts.CI_STOPPED.format(
            sha=present.short_sha(case.signal.sha), checks=present.check_names(names), max_rounds=max_rounds,
            prefix=case.ctx.service_config.command_prefix))
        self._store.add_event(case.opener.id, STOPPED, pr=case.pr, sha=case.signal.sha)
        return f"stopped: the {max_rounds} CI follow-up(s) on #{case.pr} are used up"
