"""`agentvine jobs`: the running service's job list in the terminal. It asks the service (GET /jobs with
the operator token, following its `next` links) rather than opening the database, so it works from any
machine that reaches the service, and the same filters mean the same thing here and in the browser."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

import aiohttp
from pydantic import ValidationError

from app.domain.job import JobState
from app.settings import SettingsFileError, load_settings
from app.web.job_views import JobList, JobSummary

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
PER_PAGE = 100  # the service's largest page
TIMEOUT_S = 15

NO_TOKEN = ("AGENTVINE_OPERATOR_TOKEN is not set here: set it (in the environment or the settings file) "
            "to the service's operator token")
BAD_URL = "the service's address must be http(s)://host[:port], not {url!r} (--url or AGENTVINE_PUBLIC_URL)"
UNREACHABLE = "cannot reach the service at {url}: {reason}. Is `agentvine serve` running there? (--url or AGENTVINE_PUBLIC_URL)"
REFUSED = "the service at {url} refused the token: AGENTVINE_OPERATOR_TOKEN here is not the one it runs with"
TURNED_OFF = "the service at {url} does not list jobs: {message}"
ANSWERED = "the service at {url} answered {status}: {message}"
NOT_A_LIST = "the answer from {url} is not AgentVine's job list (is that address AgentVine?)"
ELSEWHERE = "the service's next page is on another host ({next}); not sending the token there"
COLUMNS = ("ID", "CREATED", "REPOSITORY", "ISSUE", "WORKER", "STATE", "CONCLUSION", "COST")


class ServiceError(Exception):
    pass


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list the service's jobs, newest first (needs AGENTVINE_OPERATOR_TOKEN)")
    parser.add_argument("--url", help="the service's address (default: AGENTVINE_PUBLIC_URL)")
    parser.add_argument("--repo", help="only this repository (owner/name)")
    parser.add_argument("--state", action="append", choices=[s.value for s in JobState],
                        help="only jobs in this state (repeat for several)")
    parser.add_argument("--worker", help="only this worker type (bugfix, review, ...)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most this many jobs (default {DEFAULT_LIMIT})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=main)


def _error(message: str, code: int) -> int:
    print(f"agentvine jobs: {message}", file=sys.stderr)
    return code


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsFileError as exc:
        return _error(f"the settings file cannot be used: {exc}", 2)
    if settings.operator_token is None or not settings.operator_token.get_secret_value():
        return _error(NO_TOKEN, 2)
    url = (args.url or settings.public_url).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _error(BAD_URL.format(url=url), 2)
    if not 1 <= args.limit <= MAX_LIMIT:
        return _error(f"--limit must be from 1 to {MAX_LIMIT}", 2)
    query = {"repo": args.repo, "state": ",".join(args.state or []), "worker": args.worker}
    try:
        jobs = asyncio.run(fetch(url, settings.operator_token.get_secret_value(), query, args.limit))
    except ServiceError as exc:
        return _error(str(exc), 1)
    print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2) if args.json else table(jobs))
    return 0


async def fetch(url: str, token: str, query: dict[str, str | None], limit: int) -> list[JobSummary]:
    """Up to `limit` jobs, following the service's pages; ServiceError says what went wrong."""
    params = {k: v for k, v in query.items() if v} | {"per_page": str(min(limit, PER_PAGE))}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    jobs: list[JobSummary] = []
    address: str | None = f"{url}/jobs"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
        while address is not None and len(jobs) < limit:
            page = await _page(http, address, params, headers, url)
            jobs += page.jobs
            address, params = (_same_origin(url, page.next) if page.next else None), {}
    return jobs[:limit]


async def _page(http: aiohttp.ClientSession, address: str, params: dict, headers: dict, url: str) -> JobList:
    try:
        async with http.get(address, params=params, headers=headers, allow_redirects=False) as response:
            status, body = response.status, await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ServiceError(UNREACHABLE.format(url=url, reason=str(exc) or type(exc).__name__)) from None
    if status == 401:
        raise ServiceError(REFUSED.format(url=url))
    if status != 200:
        template = TURNED_OFF if status == 403 else ANSWERED
        raise ServiceError(template.format(url=url, status=status, message=_message(body)))
    try:
        return JobList.model_validate_json(body)
    except ValidationError:
        raise ServiceError(NOT_A_LIST.format(url=url)) from None


def _message(body: bytes) -> str:
    """The service's own error text, made safe for a terminal."""
    try:
        text = str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        text = body.decode(errors="replace")
    return printable(text[:300]) or "(no message)"


def _same_origin(url: str, next_url: str) -> str:
    """The next page, resolved against the service's address; never another host (it would get the token)."""
    absolute = urljoin(url + "/", next_url)
    if urlsplit(absolute)[:2] != urlsplit(url)[:2]:
        raise ServiceError(ELSEWHERE.format(next=printable(next_url[:200])))
    return absolute


def printable(text: object) -> str:
    """A cell for the terminal: what the service sent must not move the cursor or set colours."""
    return "".join(c if c.isprintable() else "?" for c in ("" if text is None else str(text)))


def table(jobs: list[JobSummary]) -> str:
    if not jobs:
        return "No job matches."
    rows = [COLUMNS] + [tuple(printable(cell) for cell in (
        job.id[:12], datetime.fromtimestamp(job.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M"), job.repo,
        f"PR {job.issue_number}" if job.is_pull_request else f"#{job.issue_number}",
        job.worker or "-", job.state.value, job.conclusion or "-",
        f"${job.cost_usd:.2f}" if job.cost_usd is not None else "-",
    )) for job in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
