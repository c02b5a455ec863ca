"""The GitHub fake plays GitHub's App manifest flow: the registration page hands out a one-time code
through the manifest's redirect_url, the code converts once (and within the hour) into an App with a
key of its own, and that App signs in with its JWT. Also: the fake mounted under /api/v3, as GitHub
Enterprise Server serves its API."""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from app.fakes.github.testing import running_fake
from app.github.auth import AppAuth
from app.github.manifest import build_manifest

CALLBACK = "http://127.0.0.1:9/callback"


def a_manifest(**changes) -> dict:
    manifest = build_manifest(name="AgentVine Fake", public_url="https://av.example.com",
                              webhook_url="https://av.example.com/webhooks", redirect_url=CALLBACK).model_dump()
    return {**manifest, **changes}


async def register(http: aiohttp.ClientSession, url: str, manifest: dict, *, state: str = "s1", org: str | None = None):
    where = f"/organizations/{org}/settings/apps/new" if org else "/settings/apps/new"
    return await http.post(f"{url}{where}?state={state}", data={"manifest": json.dumps(manifest)},
                           allow_redirects=False)


async def code_for(http: aiohttp.ClientSession, url: str, manifest: dict, **kw) -> str:
    async with await register(http, url, manifest, **kw) as answer:
        assert answer.status == 302, await answer.text()
        back = urlsplit(answer.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    query = parse_qs(back.query)
    assert query["state"] == [kw.get("state", "s1")]
    return query["code"][0]


async def convert(http: aiohttp.ClientSession, api: str, code: str) -> tuple[int, dict]:
    async with http.post(f"{api}/app-manifests/{code}/conversions") as answer:  # no credentials
        return answer.status, await answer.json()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_code_becomes_an_app_once_whose_jwt_signs_in(tmp_path: Path, http):
    async with running_fake(tmp_path) as fake:
        code = await code_for(http, fake.url, a_manifest())
        status, created = await convert(http, fake.url, code)
        assert status == 201
        assert created["slug"] == "agentvine-fake" and created["owner"]["login"] == fake.web_user
        assert created["permissions"] == a_manifest()["default_permissions"]
        assert created["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----") and created["webhook_secret"]
        assert created["pem"] != fake.private_key_pem
        status, _ = await convert(http, fake.url, code)
        assert status == 404  # single use

        token = AppAuth(created["id"], created["pem"]).jwt()
        async with http.get(f"{fake.url}/app", headers={"Authorization": f"Bearer {token}"}) as me:
            assert me.status == 200
            assert (await me.json())["id"] == created["id"]
        async with http.get(f"{fake.url}/app/installations", headers={"Authorization": f"Bearer {token}"}) as mine:
            assert await mine.json() == []  # the fake's installations are its own App's
        own = AppAuth(fake.app_id, fake.private_key_pem).jwt()
        async with http.get(f"{fake.url}/app", headers={"Authorization": f"Bearer {own}"}) as me:
            assert (await me.json())["id"] == fake.app_id
        fake.assert_no_violations()


async def test_an_expired_or_unknown_code_gets_githubs_404(tmp_path: Path, http):
    async with running_fake(tmp_path) as fake:
        code = await code_for(http, fake.url, a_manifest())
        fake.manifests.expire_codes()
        status, body = await convert(http, fake.url, code)
        assert status == 404 and body["message"] == "Not Found"
        assert (await convert(http, fake.url, "0123456789abcdef0123"))[0] == 404
        assert not fake.manifests.apps
        fake.assert_no_violations()


@pytest.mark.parametrize("changes,problem", [
    ({"default_permissions": {"contents": "write"}}, "Default events unsupported: issues"),
    ({"default_permissions": {"issues": "owner"}}, "Permission issues must be one of"),
    ({"name": "x" * 35}, "Name is too long"),
    ({"name": "AgentVine"}, "Name is already in use"),  # the fake's own App
    ({"url": None}, "Homepage URL can't be blank"),
    ({"hook_attributes": {"active": True}}, "Webhook URL can't be blank"),
])
async def test_the_registration_page_refuses_what_github_would(tmp_path: Path, http, changes, problem):
    async with running_fake(tmp_path) as fake:
        async with await register(http, fake.url, a_manifest(**changes)) as answer:
            assert answer.status == 422 and html.escape(problem) in await answer.text()
        assert any(problem in v for v in fake.violations)


async def test_an_organizations_app_belongs_to_it_and_an_unknown_organization_is_404(tmp_path: Path, http):
    async with running_fake(tmp_path) as fake:
        async with await register(http, fake.url, a_manifest(), org="nowhere") as answer:
            assert answer.status == 404
        fake.add_user("octo-org", type="Organization")
        _, created = await convert(http, fake.url, await code_for(http, fake.url, a_manifest(), org="octo-org"))
        assert created["owner"]["login"] == "octo-org"


async def test_under_api_v3_the_api_answers_only_there_and_pages_link_to_the_fakes_host(tmp_path: Path, http):
    async with running_fake(tmp_path, api_prefix="/api/v3") as fake:
        assert fake.api_url == f"{fake.url}/api/v3"
        code = await code_for(http, fake.url, a_manifest())  # the web page stays at the root
        status, created = await convert(http, fake.api_url, code)
        assert status == 201 and created["html_url"] == f"{fake.url}/apps/agentvine-fake"
        token = AppAuth(created["id"], created["pem"]).jwt()
        async with http.get(f"{fake.url}/app", headers={"Authorization": f"Bearer {token}"}) as outside:
            assert outside.status == 404
        assert fake.violations == ["GET /app: outside the REST API root /api/v3"]
