"""POST /webhooks as GitHub calls it: GitHub's example payloads, signed with the secret."""

import asyncio
import json
import uuid

import pytest

from app.intake.inbox import read_records, segments
from app.intake.ingest import OUTCOME_BAD_SHAPE
from app.assembly import Service
from tests.support import payloads
from app.fakes.github.webhooks import delivery_headers
from tests.support.env import SECRET, all_example_payloads, as_bytes, make_settings


def uid(name: str) -> str:
    """A delivery id as GitHub makes them (a UUID), stable for `name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


@pytest.fixture
async def service(tmp_path, app_private_key, aiohttp_client):
    service = Service(make_settings(tmp_path, private_key=app_private_key))
    service.client = await aiohttp_client(service.make_app())
    return service


async def imported(service, delivery_id):
    """What the worker makes of a delivery it takes from the inbox: (delivery, job ids)."""
    await service.worker.importer.import_new()
    return service.store.get_delivery(delivery_id), service.store.delivery_jobs(delivery_id)


async def post(service, event, body, **headers):
    all_headers = {**delivery_headers(event, body, SECRET), **headers}
    return await service.client.post("/webhooks", data=body, headers=all_headers)


async def test_every_example_payload_is_accepted(service, testdata):
    for event, path in all_example_payloads():
        body = path.read_bytes()
        headers = delivery_headers(event, body, SECRET, delivery_id=uid(f"{event}/{path.name}"))
        response = await service.client.post("/webhooks", data=body, headers=headers)
        assert response.status < 500, (path, await response.text())
        assert response.status == (200 if event == "ping" else 202), path
    await service.worker.importer.import_new(limit=1000)
    for event, path in all_example_payloads():
        if event != "ping":
            delivery = service.store.get_delivery(uid(f"{event}/{path.name}"))
            assert delivery.event == event and not delivery.outcome.startswith(("rejected", "failed")), path


async def test_accepted_delivery_is_in_the_inbox_before_the_answer(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id=uid("abc-1"))
    response = await service.client.post("/webhooks", data=body, headers=headers)
    assert response.status == 202
    assert await response.json() == {"status": "accepted", "delivery": uid("abc-1")}
    (segment,) = segments(service.settings.inbox_path)
    (record,) = read_records(segment, 0, complete=False)
    assert (record.delivery_id, record.event, record.body) == (uid("abc-1"), "issues", body)

    delivery, (job_id,) = await imported(service, uid("abc-1"))
    assert delivery.outcome == f"job {job_id}" and delivery.action == "labeled"
    assert service.store.get_job(job_id).trigger.label == "agentvine:bugfix"
    page = await (await service.client.get(f"/deliveries/{uid('abc-1')}")).json()
    assert page["jobs"] == [job_id] and page["delivery"]["outcome"] == f"job {job_id}"
    assert (await service.client.get("/deliveries/nope")).status == 404


async def test_the_same_delivery_twice_makes_one_job(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id=uid("dup-1"))
    first = await service.client.post("/webhooks", data=body, headers=headers)
    second = await service.client.post("/webhooks", data=body, headers=headers)
    assert (first.status, second.status) == (202, 200)
    assert (await second.json())["status"] == "duplicate"
    await imported(service, uid("dup-1"))
    assert len(service.store.list_jobs()) == 1


async def test_a_signed_body_replayed_under_a_new_delivery_id_starts_nothing(service):
    """Whoever saw a delivery once (a proxy's log, a leaked request) has a validly signed body."""
    from app.intake.ingest import OUTCOME_REPLAYED

    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    for name in ("first", "replay-1", "replay-2"):
        response = await service.client.post("/webhooks", data=body, headers=delivery_headers("issues", body, SECRET, uid(name)))
        assert response.status == 202
    first, (job_id,) = await imported(service, uid("first"))
    for replay in ("replay-1", "replay-2"):
        delivery, jobs = await imported(service, uid(replay))
        assert (delivery.outcome, jobs) == (OUTCOME_REPLAYED.format(delivery_id=uid("first")), [])
    assert [j.id for j in service.store.list_jobs()] == [job_id]

    other = as_bytes(payloads.labeled_issue(label="agentvine:feature", installation_id=1))  # a new event: new bytes
    await service.client.post("/webhooks", data=other, headers=delivery_headers("issues", other, SECRET, uid("second")))
    assert len((await imported(service, uid("second")))[1]) == 1


async def test_a_redelivery_after_a_restart_makes_no_second_job(tmp_path, app_private_key, aiohttp_client):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id=uid("dup-2"))
    for _ in range(2):  # a new process each time: its memory of recent deliveries is empty
        service = Service(make_settings(tmp_path, private_key=app_private_key))
        client = await aiohttp_client(service.make_app())
        assert (await client.post("/webhooks", data=body, headers=headers)).status == 202
        await service.worker.importer.import_new()
        assert len(service.store.list_jobs()) == 1
        await client.close()


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
async def test_bad_or_missing_signature_is_401_and_stores_nothing(service, signature):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id=uid("bad-sig"))
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    response = await service.client.post("/webhooks", data=body, headers=headers)
    assert response.status == 401
    assert await imported(service, uid("bad-sig")) == (None, [])
    assert [p.stat().st_size for p in segments(service.settings.inbox_path)] == [0]


async def test_signature_made_with_another_secret_is_refused(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, "not-the-secret")
    assert (await service.client.post("/webhooks", data=body, headers=headers)).status == 401


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_headers_are_400(service, missing):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET)
    del headers[missing]
    response = await service.client.post("/webhooks", data=body, headers=headers)
    assert response.status == 400
    assert service.store.list_jobs() == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"a": 1} x', b'{"s": "\\ud800"}', b"[" * 5000])
async def test_malformed_json_is_400(service, body):
    response = await post(service, "issues", body)
    assert response.status == 400
    assert "error" in await response.json()
    assert [p.stat().st_size for p in segments(service.settings.inbox_path)] == [0]


async def test_valid_json_that_simdjson_cannot_hold_is_accepted(service):
    body = b'{"action": "opened", "huge": 123456789012345678901234567890}'
    assert (await post(service, "issues", body)).status == 202


async def test_payload_missing_documented_fields_is_kept_and_explained(service):
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=1)
    del payload["issue"]
    body = as_bytes(payload)
    response = await post(service, "issues", body, **{"X-GitHub-Delivery": uid("shapeless")})
    assert response.status == 202
    delivery, jobs = await imported(service, uid("shapeless"))
    assert delivery.outcome == OUTCOME_BAD_SHAPE.format(error="KeyError('issue')") and jobs == []
    assert (service.settings.inbox_path / "rejected" / f"{uid('shapeless')}.issues.json").read_bytes() == body


async def test_body_over_25_mib_is_413(service):
    body = b'{"pad": "' + b"a" * (25 * 1024 * 1024) + b'"}'
    response = await post(service, "issues", body)
    assert response.status == 413
    assert service.store.list_jobs() == []


async def test_ping_is_200(service):
    body = payloads.load("ping", "payload.json")
    response = await post(service, "ping", json.dumps(body).encode())
    assert response.status == 200 and (await response.json())["status"] == "pong"


async def test_health(service):
    response = await service.client.get("/health")
    assert response.status == 200
    assert (await response.json())["store"] == {"backend": "sqlite", "reachable": True}
    disk = (await response.json())["data_dir"]
    assert 0 < disk["free_bytes"] <= disk["total_bytes"] and disk["job_folders"] == 0
    (service.settings.jobs_dir / "leftover").mkdir(parents=True)
    assert (await (await service.client.get("/health")).json())["data_dir"]["job_folders"] == 1
    service.store.close()
    response = await service.client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": "store unavailable", "store": {"backend": "sqlite", "reachable": False}}


def test_a_webhook_secret_is_mandatory(tmp_path, app_private_key):
    settings = make_settings(tmp_path, private_key=app_private_key)
    settings.webhook_secret = None
    with pytest.raises(ValueError, match="AGENTVINE_WEBHOOK_SECRET"):
        Service(settings)


async def test_job_page_shows_progress_not_the_issue(service):
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=1)
    payload["issue"]["title"] = "<script>secret plans</script>"
    body = as_bytes(payload)
    response = await service.client.post("/webhooks", data=body, headers=delivery_headers("issues", body, SECRET))
    _, (job_id,) = await imported(service, (await response.json())["delivery"])
    data = await (await service.client.get(f"/jobs/{job_id}")).json()
    assert data["job"]["state"] in ("queued", "failed") and "issue_title" not in data["job"]
    page = await (await service.client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})).text()
    assert f"AgentVine job <code>{job_id}</code>" in page and "secret plans" not in page
    assert (await service.client.get("/jobs/nope")).status == 404


async def test_deliveries_arriving_together_share_one_write_and_all_land(service, monkeypatch):
    import asyncio

    from app.intake import inbox as inbox_module

    writes = []
    real_writev = inbox_module.os.writev
    monkeypatch.setattr(inbox_module.os, "writev", lambda fd, buffers: writes.append(len(buffers)) or real_writev(fd, buffers))
    # Eight events (eight issues): GitHub never sends one body twice (a replay is refused, see above).
    bodies = [as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1, issue={"number": 100 + n}))
              for n in range(8)]
    responses = await asyncio.gather(*(
        service.client.post("/webhooks", data=body, headers=delivery_headers("issues", body, SECRET, delivery_id=uid(f"g{n}")))
        for n, body in enumerate(bodies)))
    assert [r.status for r in responses] == [202] * 8
    assert len(writes) < 8 and sum(writes) == 8 * 4  # four buffers per record
    await service.worker.importer.import_new()
    assert all(service.store.delivery_jobs(uid(f"g{n}")) for n in range(8))


async def test_a_delivery_that_cannot_be_stored_is_503(service, monkeypatch):
    from app.intake import inbox as inbox_module

    def disk_full(fd, buffers):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inbox_module.os, "writev", disk_full)
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    response = await post(service, "issues", body, **{"X-GitHub-Delivery": uid("full")})
    assert response.status == 503 and "redeliver" in (await response.json())["error"]
    monkeypatch.undo()
    assert (await post(service, "issues", body, **{"X-GitHub-Delivery": uid("full")})).status == 202  # not "duplicate"


async def raw_post(service, event: bytes, delivery_id: bytes, body: bytes) -> tuple[int, bytes]:
    """POST /webhooks with header bytes exactly as given (aiohttp's client would encode them)."""
    headers = delivery_headers("issues", body, SECRET)
    reader, writer = await asyncio.open_connection(service.client.host, service.client.port)
    writer.write(b"POST /webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                 b"X-Hub-Signature-256: " + headers["X-Hub-Signature-256"].encode() + b"\r\n"
                 b"X-GitHub-Event: " + event + b"\r\nX-GitHub-Delivery: " + delivery_id + b"\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("delivery_id", [b"ab\xffcd", b"not-a-uuid", uid("x").encode() + b"/../x", b"\xc3\xa9" * 18])
async def test_a_delivery_id_that_is_not_a_uuid_is_400(service, delivery_id):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    status, answer = await raw_post(service, b"issues", delivery_id, body)
    assert status == 400 and b"X-GitHub-Delivery must be a UUID" in answer
    assert [p.stat().st_size for p in segments(service.settings.inbox_path)] == [0]


async def test_delivery_ids_are_taken_in_either_case(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    assert (await post(service, "issues", body, **{"X-GitHub-Delivery": uid("upper").upper()})).status == 202


@pytest.mark.parametrize("event", [b"../../x", b"issues/../../x", b"Issues", b"issues.json", b"is\xffsues", b"a" * 65])
async def test_an_event_name_github_cannot_send_is_400_and_names_nothing_on_disk(service, event, tmp_path):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    status, answer = await raw_post(service, event, uid("event").encode(), body)
    assert status == 400 and b"X-GitHub-Event" in answer
    await service.worker.importer.import_new()
    assert not (service.settings.inbox_path / "rejected").exists()
    assert {p.name for p in service.settings.data_dir.rglob("x*")} == set()


async def test_a_bad_delivery_among_others_fails_alone(service, monkeypatch):
    """Deliveries that share one inbox write: each is answered, the bad one with 400, and the others are stored."""
    from app.intake import inbox as inbox_module

    writes = []
    real_writev = inbox_module.os.writev
    monkeypatch.setattr(inbox_module.os, "writev", lambda fd, buffers: writes.append(len(buffers)) or real_writev(fd, buffers))
    bodies = [as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1, issue={"number": 200 + n}))
              for n in range(5)]  # five events: one body each (the same body twice is a replay)
    good = [service.client.post("/webhooks", data=body, headers=delivery_headers("issues", body, SECRET, delivery_id=uid(f"m{n}")))
            for n, body in enumerate(bodies[:4])]
    *answers, (bad_status, _) = await asyncio.wait_for(asyncio.gather(*good, raw_post(service, b"issues", b"ab\xffcd", bodies[4])), 10)
    assert [r.status for r in answers] == [202] * 4 and bad_status == 400
    await service.worker.importer.import_new()
    assert all(service.store.delivery_jobs(uid(f"m{n}")) for n in range(4))
