"""`agentvine setup` end to end over real HTTP: the command runs as a process of its own, the GitHub
fake plays github.com (or a GitHub Enterprise Server under /api/v3), and the test is the browser: it
loads the setup page, submits its form to the fake and follows the redirect back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp

from app.fakes.github.testing import free_port, running_fake
from app.github.auth import AppAuth
from app.github.client import USER_AGENT, RetryingGitHubAPI
from app.github.manifest import CODE_REFUSED, EVENTS, permissions
from app.operator.setup import CANCELLED, FILE_EXISTS, STATE_MISMATCH
from app.settings import load_settings
from tests.support.env import ROOT

PUBLIC_URL = "https://agentvine.example.com"


class Form(HTMLParser):
    """The first form of a page: its action, method and fields, as a browser would submit it."""

    def __init__(self) -> None:
        super().__init__()
        self.action = self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action, self.method = values.get("action", ""), values.get("method", "get").lower()
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


class Setup:
    """`agentvine setup` as a subprocess: its page's address once it listens, its output once it ends."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, head: list[str]) -> None:
        self.process, self.url, self.head = process, url, head

    async def result(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        return self.process.returncode, "".join(self.head) + out.decode(), err.decode()


async def start_setup(env_file: Path, *args: str) -> Setup | tuple[int, str, str]:
    env = {**os.environ, "AGENTVINE_ENV_FILE": str(env_file)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "setup", "--public-url", PUBLIC_URL, "--port", "0", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    head: list[str] = []
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if not line:  # it ended before it listened
            out, err = await process.communicate()
            return process.returncode, "".join(head) + out.decode(), err.decode()
        head.append(line)
        found = re.search(r"Open (http://\S+/) in a browser", line)
        if found:
            return Setup(process, found.group(1), head)


async def form_of(http: aiohttp.ClientSession, page_url: str) -> Form:
    async with http.get(page_url) as page:
        assert page.status == 200
        form = Form()
        form.feed(await page.text())
    assert form.method == "post" and "manifest" in form.fields
    return form


async def registered(http: aiohttp.ClientSession, form: Form) -> str:
    """Submit the form to the fake's registration page; where GitHub sends the browser back."""
    async with http.post(form.action, data=form.fields, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        return answer.headers["Location"]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def get_app(api_url: str, app_id: int, pem: str) -> dict:
    async with aiohttp.ClientSession() as http:
        api = RetryingGitHubAPI(http, USER_AGENT, base_url=api_url)
        return await api.getitem("/app", jwt=AppAuth(app_id, pem).jwt())


def assert_clean_failure(code: int, err: str, env_file: Path) -> None:
    assert code != 0
    assert "Traceback" not in err
    assert not env_file.exists()


async def test_setup_creates_the_app_and_writes_a_private_settings_file_its_key_signs_in_with(tmp_path):
    env_file = tmp_path / "agentvine.env"
    async with running_fake(tmp_path) as fake, aiohttp.ClientSession() as http:
        setup = await start_setup(env_file, "--github-url", fake.url, "--api-url", fake.url, "--name", "AgentVine Test")
        assert isinstance(setup, Setup), setup
        form = await form_of(http, setup.url)
        assert form.action.startswith(f"{fake.url}/settings/apps/new?state=")
        async with http.post(form.action, data=form.fields) as back:  # follow the redirect, as a browser does
            assert back.status == 200 and str(back.url).startswith(setup.url + "callback")
            assert "Created the GitHub App “AgentVine Test”" in await back.text()
        code, out, err = await setup.result()
        assert code == 0, out + err
        assert "Traceback" not in err
        [(app_id, created)] = fake.manifests.apps.items()
        assert f"(id {app_id})" in out and "agentvine doctor" in out and "agentvine serve" in out
        assert "https://github.com/apps/agentvine-test/installations/new" in out  # the App's html_url

        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        settings = load_settings({"AGENTVINE_ENV_FILE": str(env_file)})
        assert settings.app_credentials() == (app_id, created.private_key_pem)
        assert settings.webhook_secret.get_secret_value() == created.webhook_secret
        assert settings.app_slug == "agentvine-test" and settings.public_url == PUBLIC_URL
        assert settings.github_api_url == fake.url  # not github.com: written

        me = await get_app(settings.github_api_url, *settings.app_credentials())
        assert me["id"] == app_id and me["slug"] == "agentvine-test"
        assert me["permissions"] == permissions() and me["events"] == [e.name for e in EVENTS]
        assert created.integration["external_url"] == PUBLIC_URL
        fake.assert_no_violations()


async def test_github_enterprise_server_gets_its_api_under_api_v3_and_links_on_its_own_host(tmp_path):
    env_file = tmp_path / "agentvine.env"
    async with running_fake(tmp_path, api_prefix="/api/v3") as fake, aiohttp.ClientSession() as http:
        setup = await start_setup(env_file, "--github-url", fake.url, "--org", "octo-org")
        assert isinstance(setup, Setup), setup
        fake.add_user("octo-org", type="Organization")
        form = await form_of(http, setup.url)
        assert form.action.startswith(f"{fake.url}/organizations/octo-org/settings/apps/new?state=")
        async with http.post(form.action, data=form.fields) as back:
            assert back.status == 200
        code, out, err = await setup.result()
        assert code == 0, out + err
        [(app_id, created)] = fake.manifests.apps.items()
        assert created.integration["owner"]["login"] == "octo-org"
        assert f"{fake.url}/apps/{created.integration['slug']}/installations/new" in out  # its host, not github.com
        settings = load_settings({"AGENTVINE_ENV_FILE": str(env_file)})
        assert (settings.github_api_url, settings.git_url) == (f"{fake.url}/api/v3", fake.url)
        assert (await get_app(settings.github_api_url, *settings.app_credentials()))["id"] == app_id
        assert [c.operation_id for c in fake.calls] == ["apps/create-from-manifest", "apps/get-authenticated"]
        fake.assert_no_violations()


async def _refused(tmp_path, spoil) -> tuple[int, str, str, Path, aiohttp.ClientResponse]:
    """Run the flow up to GitHub's redirect, spoil it, follow it: setup's exit, output and last page."""
    env_file = tmp_path / "agentvine.env"
    async with running_fake(tmp_path) as fake, aiohttp.ClientSession() as http:
        setup = await start_setup(env_file, "--github-url", fake.url, "--api-url", fake.url)
        assert isinstance(setup, Setup), setup
        back = spoil(fake, await registered(http, await form_of(http, setup.url)))
        async with http.get(back) as page:
            status, text = page.status, await page.text()
        code, out, err = await setup.result()
    return code, out, err, env_file, (status, text)


async def test_a_wrong_code_is_refused_clearly_and_nothing_is_written(tmp_path):
    code, out, err, env_file, (status, text) = await _refused(tmp_path, lambda _fake, url: with_query(url, code="0" * 20))
    assert_clean_failure(code, err, env_file)
    assert CODE_REFUSED in err and status == 502 and "run `agentvine setup` again" in text


async def test_an_expired_code_is_refused_clearly_and_nothing_is_written(tmp_path):
    def expire(fake, url):
        fake.manifests.expire_codes()
        return url

    code, out, err, env_file, _ = await _refused(tmp_path, expire)
    assert_clean_failure(code, err, env_file)
    assert CODE_REFUSED in err


async def test_a_mismatched_state_is_refused_before_any_exchange(tmp_path):
    exchanged = []

    def forge(fake, url):
        exchanged.append(fake)
        return with_query(url, state="not-this-setups")

    code, out, err, env_file, (status, _) = await _refused(tmp_path, forge)
    assert_clean_failure(code, err, env_file)
    assert STATE_MISMATCH in err and status == 400
    assert not [c for c in exchanged[0].calls if c.operation_id == "apps/create-from-manifest"]


async def test_an_existing_settings_file_is_kept_without_force(tmp_path):
    env_file = tmp_path / "agentvine.env"
    env_file.write_text("ANTHROPIC_API_KEY=sk-keep\n")
    result = await start_setup(env_file, "--github-url", "https://github.example.com")
    assert isinstance(result, tuple), "setup must refuse before it listens"
    code, _, err = result
    assert code == 2 and "Traceback" not in err
    assert FILE_EXISTS.format(path=env_file) in err
    assert env_file.read_text() == "ANTHROPIC_API_KEY=sk-keep\n"


async def test_force_replaces_the_app_settings_and_keeps_the_other_lines(tmp_path):
    env_file = tmp_path / "agentvine.env"
    env_file.write_text('# mine\nANTHROPIC_API_KEY="sk-keep"\nAGENTVINE_APP_ID=1\nAGENTVINE_PRIVATE_KEY_PATH=/old.pem\n')
    env_file.chmod(0o600)
    async with running_fake(tmp_path) as fake, aiohttp.ClientSession() as http:
        setup = await start_setup(env_file, "--github-url", fake.url, "--api-url", fake.url, "--force")
        assert isinstance(setup, Setup), setup
        form = await form_of(http, setup.url)
        async with http.post(form.action, data=form.fields) as back:
            assert back.status == 200
        code, out, err = await setup.result()
        assert code == 0, out + err
        [app_id] = fake.manifests.apps
    settings = load_settings({"AGENTVINE_ENV_FILE": str(env_file)})
    assert settings.app_id == app_id and settings.private_key_path is None  # the old key's path is gone
    assert settings.anthropic_api_key.get_secret_value() == "sk-keep"
    assert "# mine" in env_file.read_text() and stat.S_IMODE(env_file.stat().st_mode) == 0o600


async def test_bad_options_are_refused_with_the_reason(tmp_path):
    env_file = tmp_path / "agentvine.env"
    for args, reason in [(["--github-url", "ftp://example.com"], "must be an http(s) address"),
                         (["--github-url", "https://api.github.com"], "not its API"),
                         (["--name", "x" * 35], "1 to 34 characters"),
                         (["--public-url", "agentvine.example.com"], "--public-url must be an http(s) address")]:
        result = await start_setup(env_file, *args)
        assert isinstance(result, tuple)
        code, _, err = result
        assert code == 2 and reason in err and "Traceback" not in err, (args, err)
    assert not env_file.exists()


async def test_an_unreachable_api_is_named_and_nothing_is_written(tmp_path):
    env_file = tmp_path / "agentvine.env"
    async with running_fake(tmp_path) as fake, aiohttp.ClientSession() as http:
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        setup = await start_setup(env_file, "--github-url", fake.url, "--api-url", closed)
        assert isinstance(setup, Setup), setup
        async with http.get(await registered(http, await form_of(http, setup.url))) as page:
            assert page.status == 502
        code, _, err = await setup.result()
    assert_clean_failure(code, err, env_file)
    assert f"cannot reach GitHub's API at {closed}" in err


async def test_an_answer_from_github_that_is_not_a_usable_app_is_refused(tmp_path):
    def break_the_answer(fake, url):
        fake.inject_fault("POST", r"^/app-manifests/", status=201, body={
            "id": 5, "slug": "agentvine", "name": "AgentVine", "html_url": "https://github.com/apps/agentvine",
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
            "webhook_secret": "s"})
        return url

    code, _, err, env_file, (status, _) = await _refused(tmp_path, break_the_answer)
    assert_clean_failure(code, err, env_file)
    assert "GitHub's answer is not a usable App (pem:" in err and status == 502


async def test_ctrl_c_stops_it_without_a_traceback(tmp_path):
    env_file = tmp_path / "agentvine.env"
    setup = await start_setup(env_file, "--github-url", "https://ghe.example.com")
    assert isinstance(setup, Setup), setup
    setup.process.send_signal(signal.SIGINT)
    code, _, err = await setup.result()
    assert_clean_failure(code, err, env_file)
    assert code == 130 and CANCELLED in err
