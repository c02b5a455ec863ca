"""POST /webhooks as GitHub calls it: GitHub's example payloads, signed with the secret."""

import json

import pytest

from app.service import Service
from tests import payloads
from tests.conftest import SECRET, all_example_payloads, as_bytes, delivery_headers, make_settings


@pytest.fixture
async def service(tmp_path, app_private_key, aiohttp_client):
    service = Service(make_settings(tmp_path, private_key=app_private_key))
    service.client = await aiohttp_client(service.make_app())
    return service


async def post(service, event, body, **headers):
    all_headers = {**delivery_headers(event, body, SECRET), **headers}
    return await service.client.post("/webhooks", data=body, headers=all_headers)


async def test_every_example_payload_is_accepted(service, testdata):
    for event, path in all_example_payloads():
        body = path.read_bytes()
        headers = delivery_headers(event, body, SECRET, delivery_id=f"{event}/{path.name}")
        response = await service.client.post("/webhooks", data=body, headers=headers)
        assert response.status < 500, (path, await response.text())
        assert response.status == (200 if event == "ping" else 202), path
        if event != "ping":
            assert service.store.get_delivery(f"{event}/{path.name}").event == event


async def test_accepted_delivery_is_persisted_before_the_answer(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id="abc-1")
    response = await service.client.post("/webhooks", data=body, headers=headers)
    assert response.status == 202
    answer = await response.json()
    (job_id,) = answer["jobs"]
    assert service.store.get_delivery("abc-1").outcome == f"job {job_id}"
    assert service.store.get_job(job_id).trigger.label == "agentvine:bugfix"


async def test_the_same_delivery_twice_makes_one_job(service):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id="dup-1")
    first = await service.client.post("/webhooks", data=body, headers=headers)
    second = await service.client.post("/webhooks", data=body, headers=headers)
    assert (first.status, second.status) == (202, 200)
    assert (await second.json())["status"] == "duplicate"
    assert len(service.store.list_jobs()) == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
async def test_bad_or_missing_signature_is_401_and_stores_nothing(service, signature):
    body = as_bytes(payloads.labeled_issue(label="agentvine:bugfix", installation_id=1))
    headers = delivery_headers("issues", body, SECRET, delivery_id="bad-sig")
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    response = await service.client.post("/webhooks", data=body, headers=headers)
    assert response.status == 401
    assert service.store.get_delivery("bad-sig") is None and service.store.list_jobs() == []


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


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_json_is_400(service, body):
    response = await post(service, "issues", body)
    assert response.status == 400
    assert "error" in await response.json()


async def test_payload_missing_documented_fields_is_400_not_500(service):
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=1)
    del payload["issue"]
    response = await post(service, "issues", as_bytes(payload))
    assert response.status == 400


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
    service.store.close()
    assert (await service.client.get("/health")).status == 503


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
    job_id = (await response.json())["jobs"][0]
    data = await (await service.client.get(f"/jobs/{job_id}")).json()
    assert data["job"]["state"] in ("queued", "failed") and "issue_title" not in data["job"]
    page = await (await service.client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})).text()
    assert f"AgentVine job <code>{job_id}</code>" in page and "secret plans" not in page
    assert (await service.client.get("/jobs/nope")).status == 404
