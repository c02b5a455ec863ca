"""Jobs put straight into a store, for the job views' tests, and a server-sent-events reader."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from app.agent.boundary.workspace import branch_name
from app.domain.job import Delivery, Figures, Job, JobState, Outcome, Trigger
from app.store.base import JobStore

OPERATOR_TOKEN = "operator-token-for-tests-0123456789"
# Issue text that must never reach a job's page, its stream or the operator's list.
MARKER = "Quokka7731Zebra"


def add_job(store: JobStore, n: int, *, repo: str = "octo-org/hello", worker: str | None = "bugfix",
            state: JobState = JobState.QUEUED, at: float | None = None, **fields) -> Job:
    fields.setdefault("trigger", Trigger(kind="label", label="agentvine:bugfix"))
    job = Job(delivery_id=f"delivery-{n}-{time.monotonic_ns()}", installation_id=1, repo=repo, issue_number=n,
              requester="alice", worker=worker, state=state, created_at=1_764_000_000.0 + n if at is None else at,
              **fields)
    store.record_delivery(Delivery(id=job.delivery_id, event="issues"), [job])
    return job


def add_job_full_of_issue_text(store: JobStore, n: int) -> Job:
    """A finished job whose every text field, and some event data, carries MARKER: what the issue's
    title, body and comments put into a job, and what the agent wrote from them."""
    title = f"Crash when {MARKER} is set"
    job = add_job(
        store, n, issue_title=title, labels=[f"area:{MARKER}"], question=f"Which {MARKER}?", answer=f"The {MARKER}",
        trigger=Trigger(kind="command", instruction=f"fix {MARKER} please", instruction_by="alice"),
        branch=branch_name("bugfix", n, title),
    )
    store.add_event(job.id, "question", question=f"Which {MARKER}?", branch=job.branch, state="waiting_for_answer")
    outcome = Outcome(conclusion="success", title="Opened a pull request", detail=f"about {MARKER}",
                      summary=f"I fixed {MARKER}", files=[f"{MARKER}.py"], figures=Figures(cost_usd=0.5),
                      pr_number=7, pr_url="https://github.example/octo-org/hello/pull/7")
    done = job.model_copy(update={"state": JobState.RUNNING}).moved_to(JobState.SUCCEEDED, "Opened a pull request",
                                                                       conclusion="success")
    store.save_job(done.model_copy(update={"outcome": outcome}), "finished", title=f"{MARKER}", conclusion="success")
    return store.get_job(job.id)


@dataclass
class Frame:
    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)
    comment: bool = False

    @property
    def json(self):
        return json.loads("\n".join(self.data))


async def read_frames(response, count: int | None = None) -> list[Frame]:
    """Frames of a text/event-stream response until `count` of them (comments and `retry:` included)
    or the end of the stream."""
    frames, current = [], Frame()
    while count is None or len(frames) < count:
        line = await response.content.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            frames.append(current)
            current = Frame()
        elif line.startswith(":"):
            current.comment = True
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                current.data.append(value)
            elif name in ("event", "id"):
                setattr(current, name, value)
    return frames


def events_only(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if not f.comment and f.data]
