"""`agentvine doctor`: is this installation ready to serve? Each check prints one line (ok, warn,
failed or skipped, and how to fix it); the exit code is 0 only when none failed or was skipped.
`--json` gives the same report to machines. The checks themselves are in app/operator/checks/."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from app.operator.checks.engine import check_docker, check_sandbox_image, check_engine_paths
from app.operator.checks.host import check_database, check_disk
from app.operator.checks.remote import check_github, check_model_key
from app.operator.checks.result import DEFAULT_TIMEOUT_S, CheckResult, Context, Status, failed
from app.operator.checks.settings import (
    check_bot_config,
    check_private_key,
    check_required,
    check_settings,
    check_webhook_secret,
)

Check = Callable[[Context], CheckResult | Awaitable[CheckResult]]
# In this order: each may use what the ones before it found (the settings, the key, the engine).
CHECKS: tuple[Check, ...] = (
    check_settings, check_required, check_private_key, check_github, check_webhook_secret, check_bot_config,
    check_docker, check_sandbox_image, check_engine_paths, check_model_key, check_disk, check_database,
)
ALL_PASSED = "All {count} checks passed."
SOME_FAILED = "{failed} of {count} checks did not pass: {names}."


class Report(BaseModel):
    ok: bool
    checks: list[CheckResult]


async def _run_one(check: Check, ctx: Context) -> CheckResult:
    name = check.__name__.removeprefix("check_").replace("_", "-")
    try:
        outcome = check(ctx)
        if inspect.isawaitable(outcome):
            # The HTTP checks have their own timeouts; this one is the last resort.
            outcome = await asyncio.wait_for(outcome, ctx.timeout + 5)
        return outcome
    except asyncio.TimeoutError:
        return failed(name, f"no result within {ctx.timeout + 5:g} s")
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        return failed(name, f"the check itself failed: {type(exc).__name__}: {exc}")


async def run_checks(ctx: Context) -> Report:
    results = []
    try:
        for check in CHECKS:
            results.append(await _run_one(check, ctx))
    finally:
        ctx.close()
    return Report(ok=all(r.passed for r in results), checks=results)


def format_line(result: CheckResult) -> str:
    line = f"{result.status.value:<8}{result.name:<16}{result.detail}"
    return line + (f" — fix: {result.fix}" if result.fix and result.status != Status.OK else "")


def format_report(report: Report) -> str:
    lines = [format_line(r) for r in report.checks]
    not_passed = [r.name for r in report.checks if not r.passed]
    if not_passed:
        lines.append(SOME_FAILED.format(failed=len(not_passed), count=len(report.checks), names=", ".join(not_passed)))
    else:
        lines.append(ALL_PASSED.format(count=len(report.checks)))
    return "\n".join(lines)


def _doctor(args: argparse.Namespace) -> int:
    report = asyncio.run(run_checks(Context(environ=dict(os.environ), timeout=args.timeout)))
    print(report.model_dump_json(indent=2) if args.json else format_report(report))
    sys.stdout.flush()
    return 0 if report.ok else 1


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"{text}: give seconds between 0 and 300")
    return value


def add_parser(subparsers) -> None:
    doctor = subparsers.add_parser("doctor", help="check that the settings, GitHub, the model API, Docker and "
                                                  "the data directory are ready for `serve`")
    doctor.add_argument("--json", action="store_true", help="the report as JSON")
    doctor.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, help="seconds each check may take")
    doctor.set_defaults(func=_doctor)
