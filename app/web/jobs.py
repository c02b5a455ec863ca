"""The job views: GET /jobs (the operator's list), GET /jobs/{id} (a job's page, linked from its check
run) and GET /jobs/{id}/events (its activity, live). JSON, or HTML for a browser (Accept: text/html).

A job's page and stream need only its id, which is 128 random bits (app/domain/job.py), and show no
issue text (app/web/job_views.py). The list needs the operator token (app/web/operator_access.py)."""

from __future__ import annotations

import re

from aiohttp import web

from app.domain.job import JobState
from app.settings import Settings
from app.store.base import MAX_PAGE, JobCursor, JobQuery, JobStore
from app.web import job_pages
from app.web.job_views import JobList, public_event, public_job, summary
from app.web.live import EventHub, LiveOptions, TooManyStreams, stream_events
from app.web.operator_access import OperatorAccess, Refusal

DEFAULT_PAGE = 50
JOB_ID = r"[A-Za-z0-9_-]{1,64}"
REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}", re.ASCII)
WORKER = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
MAX_SEQ = 2**63 - 1

NO_SUCH_JOB = "no such job"
BUSY = "too many live streams open on this service; try again shortly"


EVENT_HUB = web.AppKey("job_event_hub", EventHub)  # the app's live streams (tests look at them)


class BadQuery(Exception):
    pass


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _answer(request: web.Request, status: int, message: str, **headers: str) -> web.Response:
    all_headers = {**job_pages.SECURITY_HEADERS, **headers}
    if wants_html(request):
        return web.Response(status=status, text=job_pages.message_page(f"{status}: AgentVine", message),
                            content_type="text/html", headers=all_headers)
    return web.json_response({"error": message}, status=status, headers=all_headers)


def _one(request: web.Request, name: str, pattern: re.Pattern[str]) -> str | None:
    value = request.query.get(name, "").strip()
    if value and not pattern.fullmatch(value):
        raise BadQuery(f"{name}: not a valid value")
    return value or None


def _states(request: web.Request) -> tuple[JobState, ...]:
    names = [n.strip() for value in request.query.getall("state", []) for n in value.split(",") if n.strip()]
    try:
        return tuple(dict.fromkeys(JobState(name) for name in names))
    except ValueError:
        raise BadQuery("state: one of " + ", ".join(s.value for s in JobState)) from None


def _per_page(request: web.Request) -> int:
    text = request.query.get("per_page", "").strip() or str(DEFAULT_PAGE)
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadQuery(f"per_page: a whole number from 1 to {MAX_PAGE}")
    return int(text)


def parse_query(request: web.Request) -> JobQuery:
    """The list's filters and page from the query string; BadQuery says which one is wrong."""
    cursor = request.query.get("cursor", "").strip()
    try:
        after = JobCursor.decode(cursor) if cursor else None
    except ValueError:
        raise BadQuery("cursor: not one this service made (follow the `next` link)") from None
    return JobQuery(repo=_one(request, "repo", REPO), states=_states(request), worker=_one(request, "worker", WORKER),
                    after=after, limit=_per_page(request))


def _after(request: web.Request) -> int:
    """Where a stream resumes: the browser's Last-Event-ID on a reconnect, else ?after= (-1: from the start)."""
    text = request.headers.get("Last-Event-ID") or request.query.get("after") or "-1"
    if not re.fullmatch(r"-1|[0-9]{1,19}", text, re.ASCII) or int(text) > MAX_SEQ:
        raise BadQuery("Last-Event-ID (or after): an event id from this stream")
    return int(text)


class JobViews:
    def __init__(self, settings: Settings, store: JobStore, hub: EventHub) -> None:
        token = settings.operator_token.get_secret_value() if settings.operator_token else None
        self._access = OperatorAccess(token, secure=settings.public_url.startswith("https://"))
        self._store, self._hub = store, hub

    async def list_jobs(self, request: web.Request) -> web.StreamResponse:
        try:
            signed_in = self._access.sign_in(request) if wants_html(request) else None
            if signed_in is not None:
                return signed_in
            self._access.check(request)
            query = parse_query(request)
        except Refusal as refusal:
            extra = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
            return _answer(request, refusal.status, refusal.message, **extra)
        except BadQuery as exc:
            return _answer(request, 400, str(exc))
        page = self._store.find_jobs(query)
        next_url = str(request.rel_url.update_query(cursor=page.next.encode())) if page.next else None
        jobs = [summary(job) for job in page.jobs]
        headers = {**job_pages.SECURITY_HEADERS, **({"Link": f'<{next_url}>; rel="next"'} if next_url else {})}
        if wants_html(request):
            page_html = job_pages.list_page(jobs, next_url, (query.repo, query.states, query.worker))
            return web.Response(text=page_html, content_type="text/html", headers=headers)
        return web.json_response(JobList(jobs=jobs, next=next_url).model_dump(mode="json"), headers=headers)

    async def job_page(self, request: web.Request) -> web.Response:
        # Linked from check runs, so anyone who can see the check run may follow it: it shows the
        # job's progress, not the text.
        job = self._store.get_job(request.match_info["job_id"])
        if job is None:
            return _answer(request, 404, NO_SUCH_JOB)
        public = public_job(job)
        events = [public_event(e) for e in self._store.events(job.id)]
        if wants_html(request):
            page = job_pages.job_page(public, events, f"/jobs/{job.id}/events")
            return web.Response(text=page, content_type="text/html", headers=job_pages.SECURITY_HEADERS)
        body = {"job": public.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]}
        return web.json_response(body, headers=job_pages.SECURITY_HEADERS)

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job_id"]
        try:
            after = _after(request)
        except BadQuery as exc:
            return _answer(request, 400, str(exc))
        if self._store.get_job(job_id) is None:
            return _answer(request, 404, NO_SUCH_JOB)
        try:
            return await stream_events(request, self._hub, self._store, job_id, after)
        except TooManyStreams:
            return _answer(request, 503, BUSY, **{"Retry-After": "5"})


def add_job_routes(app: web.Application, settings: Settings, store: JobStore, live: LiveOptions | None = None) -> EventHub:
    hub = EventHub(store, live or LiveOptions())
    views = JobViews(settings, store, hub)
    app.router.add_get("/jobs", views.list_jobs)
    app.router.add_get(f"/jobs/{{job_id:{JOB_ID}}}", views.job_page)
    app.router.add_get(f"/jobs/{{job_id:{JOB_ID}}}/events", views.job_events)
    app.on_shutdown.append(hub.close)
    app[EVENT_HUB] = hub
    return hub
