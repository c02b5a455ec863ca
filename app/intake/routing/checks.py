"""Checks: the buttons on AgentVine's check runs (requested actions and Re-run), and the repository's CI
finishing on one of AgentVine's branches, which may start a follow-up (the worker decides)."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from app.domain.ci import BRANCH_PREFIX, FAILING, CISignal
from app.domain.intents import BUTTONS, Command, JobCommand
from app.domain.job import job_id_from_external
from app.intake.routing.context import RouteContext
from app.intake.routing.payload import installation_id, sender_login

router = routing.Router()


def _our_job_id(event: sansio.Event, ctx: RouteContext) -> str | None:
    check_run = event.data["check_run"]
    app = check_run.get("app") or {}
    job_id = job_id_from_external(check_run.get("external_id") or "")
    if job_id is None:
        ctx.note(f"ignored: check run of another app ({app.get('slug')})")
    return job_id


def _command(event: sansio.Event, ctx: RouteContext, name: Command) -> None:
    job_id = _our_job_id(event, ctx)
    inst = installation_id(event.data)
    if job_id is None or inst is None:
        return
    ctx.add(
        JobCommand(
            name=name,
            installation_id=inst,
            repo=event.data["repository"]["full_name"],
            sender=sender_login(event.data),
            job_id=job_id,
        )
    )


@router.register("check_run", action="requested_action")
async def requested_action(event: sansio.Event, ctx: RouteContext) -> None:
    identifier = (event.data.get("requested_action") or {}).get("identifier", "")
    if identifier not in BUTTONS:
        ctx.note(f"ignored: unknown button {identifier!r}")
        return
    _command(event, ctx, Command(identifier))


@router.register("check_run", action="rerequested")
async def rerequested(event: sansio.Event, ctx: RouteContext) -> None:
    _command(event, ctx, Command.RETRY)


# Events no person sends: CI's results. Their sender (often the bot that pushed) asks for nothing; the
# job that opened the pull request vouches for a follow-up, and the worker checks it still may.
MACHINE_EVENTS = frozenset({("check_suite", "completed"), ("check_run", "completed")})


def _ci_finished(event: sansio.Event, ctx: RouteContext, suite: dict[str, Any], app: dict[str, Any] | None,
                 conclusion: str | None) -> None:
    """Only a branch of AgentVine's with an open pull request gets as far as the worker: CI on every
    other branch costs one dictionary lookup here."""
    branch = suite.get("head_branch") or ""
    pulls = [p["number"] for p in suite.get("pull_requests") or [] if isinstance(p, dict) and "number" in p]
    inst = installation_id(event.data)
    if not branch.startswith(BRANCH_PREFIX) or not pulls:
        ctx.note("ignored: not a pull request branch of AgentVine's")
        return
    if inst is None:
        ctx.note("ignored: no installation in payload")
        return
    signal = CISignal(event=event.event, sha=suite["head_sha"], branch=branch, pulls=pulls,
                      app_id=(app or {}).get("id"), conclusion=conclusion)
    ctx.add(JobCommand(name=Command.CI_COMPLETED, installation_id=inst, repo=event.data["repository"]["full_name"],
                       sender=sender_login(event.data), issue_number=pulls[0], ci=signal))


@router.register("check_suite", action="completed")
async def suite_completed(event: sansio.Event, ctx: RouteContext) -> None:
    """Whatever its conclusion: the last suite to finish on a commit may pass while an earlier one failed."""
    suite = event.data["check_suite"]
    _ci_finished(event, ctx, suite, suite.get("app"), suite.get("conclusion"))


@router.register("check_run", action="completed")
async def run_completed(event: sansio.Event, ctx: RouteContext) -> None:
    run = event.data["check_run"]
    if run.get("conclusion") not in FAILING:
        ctx.note(f"ignored: check run concluded {run.get('conclusion')}")
        return
    if job_id_from_external(run.get("external_id") or "") is not None:
        ctx.note("ignored: AgentVine's own check run")
        return
    suite = {**(run.get("check_suite") or {}), "head_sha": run["head_sha"]}
    suite["pull_requests"] = run.get("pull_requests") or suite.get("pull_requests")
    _ci_finished(event, ctx, suite, run.get("app"), run.get("conclusion"))
