"""`agentvine replay` to a running service: the file's bytes signed as GitHub signs them, POSTed to its
/webhooks, then `GET /deliveries/{id}` until the worker has taken the delivery in. What the service
answers is checked before it is believed or printed (it may not be AgentVine at all)."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, Field, ValidationError

from app.intake.ingest import OUTCOME_BAD_SHAPE, OUTCOME_FAILED, OUTCOME_REPLAYED
from app.operator.replay import ReplayError, ReplayRequest
from app.settings import env_file_path
from app.web.signature import delivery_headers

USER_AGENT = "agentvine-replay"
POLL_S = 0.2
HTTP_TIMEOUT_S = 30.0

SENT = "delivered {event} ({size} bytes) to {url}/webhooks as delivery {delivery_id}: {status} {state}"
NO_SECRET = ("AGENTVINE_WEBHOOK_SECRET is not set: a replay is signed with the service's webhook secret "
             "(the environment or the settings file; README.md, 'Settings'). Without a service, use --embedded")
UNREACHABLE = ("cannot reach the service at {url} ({reason}): is `agentvine serve` running there? "
               "The address is AGENTVINE_PUBLIC_URL, or --url")
WRONG_SECRET = ("the service refused the signature ({status}: {error}): AGENTVINE_WEBHOOK_SECRET, from {source}, "
                "is not the service's webhook secret")
TOO_LARGE_THERE = "the service refused the body as too large (413): its AGENTVINE_MAX_BODY_BYTES is below {size} bytes"
REFUSED = "the service refused the delivery ({status}): {error}"
NOT_AGENTVINE = "{url} did not answer as AgentVine does ({status}): {text}"
DUPLICATE = ("the service saw delivery {delivery_id} lately and took nothing in again (a redelivery); leave out "
             "--delivery-id to send the body under a fresh id. What became of it:")
PONG = "the service answered the ping: {zen}"
NOT_FOLLOWED = "not waiting (--wait 0): the outcome will be at {url}/deliveries/{delivery_id}"
NOT_TAKEN_IN = ("the worker did not take delivery {delivery_id} in within {wait:g} s (is it running? {url}/health "
                "says); the outcome will be at {url}/deliveries/{delivery_id}")
OUTCOME = "outcome: {outcome}"
JOB_LINK = "  job {job_id}: {url}/jobs/{job_id}"
REPLAYED = ("This body already started work, as delivery {earlier}: the service starts nothing for the same signed "
            "body again, since a signature proves who made a body, not when. To run the work again, use "
            "`/agentvine retry` on the issue or pull request, or the check run's Retry button (docs/usage.md).")
UNINTERPRETED = "the worker could not interpret the delivery: the service's log has the details"

_REPLAYED = re.compile(re.escape(OUTCOME_REPLAYED).replace(re.escape("{delivery_id}"), "(?P<earlier>[0-9a-fA-F-]+)"))
_UNINTERPRETED = (OUTCOME_BAD_SHAPE.partition("{")[0], OUTCOME_FAILED.partition("{")[0])


def plain(text: str, limit: int = 2000) -> str:
    """Text from elsewhere, safe to print: no control characters (a terminal obeys escape sequences)."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


@dataclass(frozen=True)
class Answer:
    status: int
    data: dict[str, Any]  # the JSON object answered, or {"error": the text}
    delivery_id: str


class DeliveryRecord(BaseModel):
    id: str
    outcome: str


class DeliveryReport(BaseModel):
    """`GET /deliveries/{id}`: what the worker made of a delivery (app/web/server.py)."""

    delivery: DeliveryRecord
    jobs: list[str] = Field(default_factory=list)

    def model_post_init(self, _context: Any) -> None:
        for job_id in self.jobs:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", job_id):
                raise ValueError(f"{job_id!r} is not a job id")


def _reason(exc: BaseException) -> str:
    return plain(str(exc), 300) or type(exc).__name__


async def _fetch(http: aiohttp.ClientSession, method: str, base: str, path: str, **kw: Any) -> tuple[int, str]:
    try:
        async with http.request(method, base + path, allow_redirects=False, **kw) as response:
            return response.status, await response.text(errors="replace")
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ReplayError(UNREACHABLE.format(url=base, reason=_reason(exc)), code=1) from None


async def post(http: aiohttp.ClientSession, request: ReplayRequest, secret: str) -> Answer:
    """The saved body POSTed as GitHub delivers it: signed, under a fresh delivery id unless one was given."""
    saved = request.saved
    headers = delivery_headers(saved.event, saved.body, secret, request.delivery_id, user_agent=USER_AGENT)
    status, text = await _fetch(http, "POST", request.url, "/webhooks", data=saved.body, headers=headers)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    return Answer(status, data if isinstance(data, dict) else {"error": text}, headers["X-GitHub-Delivery"])


def _secret_source() -> str:
    if os.environ.get("AGENTVINE_WEBHOOK_SECRET"):
        return "the environment"
    return f"the settings file {env_file_path()[0]}"


def accepted(answer: Answer, request: ReplayRequest) -> bool:
    """Whether the service took the delivery in (202, or 200 for one it had already); False for a ping it
    answered. ReplayError for a refusal, saying what to change."""
    error = plain(str(answer.data.get("error", "")), 300)
    state = answer.data.get("status")
    if answer.status == 401:
        raise ReplayError(WRONG_SECRET.format(status=answer.status, error=error, source=_secret_source()), code=1)
    if answer.status == 413:
        raise ReplayError(TOO_LARGE_THERE.format(size=len(request.saved.body)), code=1)
    if 400 <= answer.status < 600:
        raise ReplayError(REFUSED.format(status=answer.status, error=error or "(no reason given)"), code=1)
    if (answer.status, state) not in ((202, "accepted"), (200, "duplicate"), (200, "pong")):
        raise ReplayError(NOT_AGENTVINE.format(url=f"{request.url}/webhooks", status=answer.status,
                                               text=plain(orjson.dumps(answer.data).decode(), 300)), code=1)
    print(SENT.format(event=request.saved.event, size=len(request.saved.body), url=request.url,
                      delivery_id=answer.delivery_id, status=answer.status, state=state))
    if state == "pong":
        print(PONG.format(zen=plain(str(answer.data.get("zen")), 300)))
        return False
    if state == "duplicate":
        print(DUPLICATE.format(delivery_id=answer.delivery_id))
    return True


async def follow(http: aiohttp.ClientSession, url: str, delivery_id: str, wait: float) -> DeliveryReport | None:
    """What the worker made of the delivery, once it took it in; None if it did not within `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    where = f"{url}/deliveries/{delivery_id}"
    while True:
        status, text = await _fetch(http, "GET", url, f"/deliveries/{delivery_id}")
        if status == 200:
            try:
                return DeliveryReport.model_validate_json(text)
            except ValidationError as exc:
                raise ReplayError(NOT_AGENTVINE.format(url=where, status=status, text=plain(str(exc), 300)), code=1) from None
        if status != 404:  # 404: not taken in yet
            raise ReplayError(NOT_AGENTVINE.format(url=where, status=status, text=plain(text, 300)), code=1)
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(POLL_S)


def replayed_from(outcome: str) -> str | None:
    """The earlier delivery whose body this one repeats, when the replay guard ignored it."""
    found = _REPLAYED.fullmatch(outcome)
    return found["earlier"] if found else None


def print_report(report: DeliveryReport, url: str | None) -> int:
    """The delivery's outcome and its jobs' links (on the service at `url`); the exit code (1: the worker
    could not interpret it)."""
    outcome = report.delivery.outcome
    print(OUTCOME.format(outcome=plain(outcome)))
    for job_id in report.jobs if url else []:
        print(JOB_LINK.format(job_id=job_id, url=url))
    earlier = replayed_from(outcome)
    if earlier:
        print(REPLAYED.format(earlier=earlier))
    if outcome.startswith(_UNINTERPRETED):
        print(UNINTERPRETED)
        return 1
    return 0


async def send_and_follow(http: aiohttp.ClientSession, request: ReplayRequest) -> DeliveryReport | None:
    """Deliver, then wait for the outcome; None when there is none to wait for (a ping, --wait 0)."""
    secret = request.settings.webhook_secret.get_secret_value() if request.settings.webhook_secret else ""
    if not secret:
        raise ReplayError(NO_SECRET)
    answer = await post(http, request, secret)
    if not accepted(answer, request):
        return None
    if request.wait == 0:
        print(NOT_FOLLOWED.format(url=request.url, delivery_id=answer.delivery_id))
        return None
    report = await follow(http, request.url, answer.delivery_id, request.wait)
    if report is None:
        raise ReplayError(NOT_TAKEN_IN.format(delivery_id=answer.delivery_id, wait=request.wait, url=request.url), code=1)
    return report


async def replay_to_service(request: ReplayRequest) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as http:
        report = await send_and_follow(http, request)
    return 0 if report is None else print_report(report, request.url)
