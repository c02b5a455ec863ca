"""GET /jobs/{id}/events: a job's activity as Server-Sent Events, from one shared poller of the store."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.job import JobState
from app.store import SQLiteJobStore
from app.web.jobs import EVENT_HUB
from app.web.live import LiveOptions
from app.web.server import make_web_app
from tests.support.env import make_settings
from tests.support.jobs import add_job, events_only, read_frames

FAST = LiveOptions(poll_s=0.05, heartbeat_s=0.3, check_s=0.05, max_streams=2)


@pytest.fixture
async def client(aiohttp_client, tmp_path, app_private_key):
    settings = make_settings(tmp_path, private_key=app_private_key)
    store = SQLiteJobStore(settings.database_path)
    client = await aiohttp_client(make_web_app(settings, store, live=FAST))
    client.store = store
    client.hub = client.app[EVENT_HUB]
    yield client
    store.close()


async def eventually(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_backlog_then_live_events_then_the_end(client):
    store = client.store
    job = add_job(store, 1, state=JobState.RUNNING)
    store.add_event(job.id, "workspace")
    response = await client.get(f"/jobs/{job.id}/events")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    retry, created, workspace = await read_frames(response, 3)
    assert "".join(retry.data) == "" and (created.id, created.json["kind"]) == ("0", "created")
    assert workspace.json["kind"] == "workspace" and int(workspace.id) == workspace.json["seq"] > 0

    store.add_event(job.id, "agent_started")  # the worker, another process, writes to the store
    store.add_event(add_job(store, 2).id, "someone_else's")
    (live,) = await read_frames(response, 1)
    assert live.json["kind"] == "agent_started" and int(live.id) > int(workspace.id)

    store.save_job(job.moved_to(JobState.SUCCEEDED, "done", conclusion="success"), "finished", conclusion="success")
    rest = await read_frames(response)  # to the end of the stream: it ends with the job
    assert [(f.event, f.json.get("kind")) for f in rest] == [("message", "finished"), ("end", None)]
    assert rest[-1].json["state"] == "succeeded" and rest[-1].json["reason"] == "done"
    await eventually(lambda: client.hub.streams == 0)


async def test_a_reconnect_resumes_after_last_event_id(client):
    store = client.store
    job = add_job(store, 1, state=JobState.RUNNING)
    for kind in ("one", "two", "three"):
        store.add_event(job.id, kind)
    response = await client.get(f"/jobs/{job.id}/events")
    first = events_only(await read_frames(response, 4))
    response.close()
    assert [f.json["kind"] for f in first] == ["created", "one", "two"]
    again = await client.get(f"/jobs/{job.id}/events", headers={"Last-Event-ID": first[-1].id})
    assert [f.json["kind"] for f in events_only(await read_frames(again, 2))] == ["three"]
    again.close()
    by_query = await client.get(f"/jobs/{job.id}/events?after={first[1].id}")
    assert [f.json["kind"] for f in events_only(await read_frames(by_query, 3))] == ["two", "three"]
    by_query.close()


@pytest.mark.parametrize("last", ["abc", "-2", "1.5", "9" * 30, "1 OR 1=1"])
async def test_a_last_event_id_not_from_the_stream_is_a_400(client, last):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    assert (await client.get(f"/jobs/{job.id}/events", headers={"Last-Event-ID": last})).status == 400


async def test_the_stream_of_an_ended_job_sends_its_log_and_ends(client):
    job = add_job(client.store, 1, state=JobState.FAILED)
    frames = events_only(await read_frames(await client.get(f"/jobs/{job.id}/events")))
    assert [f.event for f in frames] == ["message", "end"] and frames[-1].json["state"] == "failed"
    last = frames[0].id
    after = events_only(await read_frames(await client.get(f"/jobs/{job.id}/events", headers={"Last-Event-ID": last})))
    assert [f.event for f in after] == ["end"]


async def test_an_idle_stream_gets_heartbeats(client):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    response = await client.get(f"/jobs/{job.id}/events")
    frames = await read_frames(response, 3)  # retry, created, then a heartbeat after FAST.heartbeat_s
    assert frames[-1].comment and not frames[-1].data


async def test_streams_are_bounded_and_a_closed_client_frees_its_place(client):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    first = await client.get(f"/jobs/{job.id}/events")
    second = await client.get(f"/jobs/{job.id}/events")
    await eventually(lambda: client.hub.streams == 2)
    refused = await client.get(f"/jobs/{job.id}/events")
    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    first.close()  # the browser tab goes away
    await eventually(lambda: client.hub.streams == 1)
    second.close()
    await eventually(lambda: client.hub.streams == 0 and client.hub._task is None)  # the poller stops too
    third = await client.get(f"/jobs/{job.id}/events")
    assert third.status == 200 and len(events_only(await read_frames(third, 2))) == 1
    third.close()
    await eventually(lambda: client.hub.streams == 0 and client.hub._task is None)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "job-events-poller" and not t.done()]


async def test_stopping_the_service_ends_open_streams(client):
    job = add_job(client.store, 1, state=JobState.RUNNING)
    response = await client.get(f"/jobs/{job.id}/events")
    await read_frames(response, 2)
    await client.hub.close()
    await asyncio.wait_for(read_frames(response), 5)  # the stream reaches its end
    assert client.hub.streams == 0
    assert (await client.get(f"/jobs/{job.id}/events")).status == 503


async def test_the_poller_reads_one_query_per_tick_for_all_streams(client, monkeypatch):
    jobs = [add_job(client.store, n, state=JobState.RUNNING) for n in range(2)]
    calls = []
    real = client.store.events_since
    monkeypatch.setattr(client.store, "events_since", lambda seq, limit=500: calls.append(seq) or real(seq, limit))
    responses = [await client.get(f"/jobs/{job.id}/events") for job in jobs]
    await eventually(lambda: client.hub.streams == 2)
    calls.clear()
    await asyncio.sleep(FAST.poll_s * 6)
    assert 2 <= len(calls) <= 8  # one per tick, not one per stream per tick
    for job, response in zip(jobs, responses):
        client.store.add_event(job.id, f"for-{job.issue_number}")
    for job, response in zip(jobs, responses):
        kinds = []
        while f"for-{job.issue_number}" not in kinds:  # heartbeats may come first
            kinds += [f.json["kind"] for f in events_only(await asyncio.wait_for(read_frames(response, 1), 5))]
        assert kinds[-2:] == ["created", f"for-{job.issue_number}"]
        response.close()
