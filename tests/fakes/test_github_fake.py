"""The GitHub fake behaves like GitHub: auth, validation, state, faults, caching, git hosting.

Most tests talk to the fake through gidgethub, the client the bot uses, over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gidgethub import BadRequest, RateLimitExceeded
from gidgethub import apps as gh_apps
from gidgethub.aiohttp import GitHubAPI

from app.fakes.github import FakeGitHub
from app.fakes.github.testing import running_fake

REPO = "octo-org/hello"
INSTALLATION = 77


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    async with running_fake(tmp_path) as fake:
        fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
        fake.add_repo(REPO, installation_id=INSTALLATION,
                      files={"README.md": "# hello\n", "src/app.py": "def main():\n    return 1\n"})
        fake.add_user("alice")
        fake.set_permission(REPO, "alice", "write")
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def app_jwt(fake: FakeGitHub, *, iat: float | None = None, exp: float | None = None, iss: Any = None,
            key: str | None = None) -> str:
    now = time.time()
    claims = {"iat": int(now - 60 if iat is None else iat), "exp": int(now + 540 if exp is None else exp),
              "iss": str(fake.app_id) if iss is None else iss}
    # PyJWT only encodes string issuers; GitHub also accepts the App ID as a number.
    return jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), key or fake.private_key_pem, algorithm="RS256")


async def installation_gh(fake: FakeGitHub, session: aiohttp.ClientSession, cache: dict | None = None) -> GitHubAPI:
    """A gidgethub client authenticated the way the bot does it: App JWT -> installation token."""
    app_client = GitHubAPI(session, "agentvine-test", base_url=fake.url)
    token = await gh_apps.get_installation_access_token(
        app_client, installation_id=str(INSTALLATION), app_id=str(fake.app_id), private_key=fake.private_key_pem)
    return GitHubAPI(session, "agentvine-test", oauth_token=token["token"], base_url=fake.url, cache=cache)


async def raw(session: aiohttp.ClientSession, fake: FakeGitHub, method: str, path: str, token: str | None = None,
              **kw: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    async with session.request(method, fake.url + path, headers=headers, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, r.headers


# --- validation -------------------------------------------------------------------------


async def test_valid_requests_pass_and_record_no_violation(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    issue = fake.add_issue(REPO, title="Crash on start", body="It crashes", user="alice", labels=["agentvine:bugfix"])
    gh = await installation_gh(fake, session)

    comment = await gh.post(f"/repos/{REPO}/issues/{issue['number']}/comments", data={"body": "On it"})
    await gh.patch(f"/repos/{REPO}/issues/comments/{comment['id']}", data={"body": "On it: step 1"})
    repo = await gh.getitem(f"/repos/{REPO}")

    assert comment["user"]["login"] == "agentvine[bot]" and comment["user"]["type"] == "Bot"
    assert comment["performed_via_github_app"]["id"] == fake.app_id
    assert repo["default_branch"] == "main" and repo["clone_url"] == f"{fake.url}/{REPO}.git"
    assert fake.comments[-1]["body"] == "On it: step 1"
    assert fake.issue(REPO, issue["number"])["comments"] == 1
    assert [c.operation_id for c in fake.calls] == [
        "apps/create-installation-access-token", "issues/create-comment", "issues/update-comment", "repos/get"]
    fake.assert_no_violations()


async def test_check_run_with_invalid_status_is_a_violation_and_422(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    sha = fake.head_sha(REPO, "main")

    with pytest.raises(BadRequest) as info:
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "AgentVine", "head_sha": sha, "status": "running"})

    assert info.value.status_code == 422
    assert any("checks/create" in v and "'running' is not one of" in v for v in fake.violations)
    assert fake.check_runs == []


async def test_comment_without_body_is_a_violation_and_422(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    issue = fake.add_issue(REPO, title="t")
    gh = await installation_gh(fake, session)

    with pytest.raises(BadRequest) as info:
        await gh.post(f"/repos/{REPO}/issues/{issue['number']}/comments", data={"text": "wrong field"})

    assert info.value.status_code == 422
    assert fake.violations == [
        f"POST /repos/{REPO}/issues/1/comments (issues/create-comment): request body: 'body' is a required property"]


async def test_unknown_operation_is_a_violation_and_404(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    with pytest.raises(BadRequest) as info:
        await gh.getitem(f"/repos/{REPO}/branches")
    assert info.value.status_code == 404
    assert "no such operation" in fake.violations[0]


async def test_check_run_lifecycle_follows_github_rules(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    sha = fake.head_sha(REPO, "main")
    actions = [{"label": "Cancel", "description": "Stop this job", "identifier": "cancel"}]

    run = await gh.post(f"/repos/{REPO}/check-runs", data={"name": "AgentVine · bugfix", "head_sha": sha,
                                                            "details_url": "http://localhost/jobs/1", "actions": actions})
    assert (run["status"], run["conclusion"], run["started_at"]) == ("queued", None, None)
    run = await gh.patch(f"/repos/{REPO}/check-runs/{run['id']}",
                         data={"status": "in_progress", "output": {"title": "Working", "summary": "Reading code"}})
    assert run["status"] == "in_progress" and run["started_at"] and run["output"]["summary"] == "Reading code"
    run = await gh.patch(f"/repos/{REPO}/check-runs/{run['id']}", data={"conclusion": "success"})
    assert (run["status"], run["conclusion"]) == ("completed", "success") and run["completed_at"]
    assert (await gh.getitem(f"/repos/{REPO}/check-runs/{run['id']}"))["conclusion"] == "success"

    with pytest.raises(BadRequest) as too_many:  # GitHub accepts at most three buttons
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "x", "head_sha": sha, "actions": actions * 4})
    with pytest.raises(BadRequest) as no_commit:
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "x", "head_sha": "f" * 40})
    assert too_many.value.status_code == no_commit.value.status_code == 422
    assert len(fake.violations) == 1 and "maxItems" not in fake.violations[0] and "actions" in fake.violations[0]


# --- authentication ---------------------------------------------------------------------


async def test_app_jwt_good_bad_and_expired(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    path = f"/app/installations/{INSTALLATION}/access_tokens"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    now = time.time()

    status, body, _ = await raw(session, fake, "POST", path, app_jwt(fake))
    assert status == 201 and body["token"].startswith("ghs_") and body["expires_at"].endswith("Z")
    assert (await raw(session, fake, "POST", path, app_jwt(fake, iss=fake.app_id)))[0] == 201  # int iss is fine

    cases = {
        "wrong key": app_jwt(fake, key=other_key),
        "expired": app_jwt(fake, iat=now - 1200, exp=now - 600),
        "too long": app_jwt(fake, iat=now, exp=now + 3600),
        "wrong app": app_jwt(fake, iss="999"),
        "not a jwt": "ghs_notajwt",
    }
    for name, token in cases.items():
        status, body, _ = await raw(session, fake, "POST", path, token)
        assert status == 401, name
        assert body["message"] and body["documentation_url"], name
    assert (await raw(session, fake, "POST", path))[0] == 401  # no Authorization at all
    assert (await raw(session, fake, "POST", "/app/installations/999/access_tokens", app_jwt(fake)))[0] == 404
    fake.assert_no_violations()


async def test_get_app_answers_the_app_itself_to_its_jwt_only(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    """GET /app (apps/get-authenticated): what `agentvine doctor` asks to learn that GitHub takes the key."""
    status, body, _ = await raw(session, fake, "GET", "/app", app_jwt(fake))
    assert status == 200
    assert (body["id"], body["slug"], body["installations_count"]) == (fake.app_id, fake.app_slug, 1)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    status, body, _ = await raw(session, fake, "GET", "/app", app_jwt(fake, key=other_key))
    assert (status, body["message"]) == (401, "A JSON web token could not be decoded")
    token = (await raw(session, fake, "POST", f"/app/installations/{INSTALLATION}/access_tokens", app_jwt(fake)))[1]["token"]
    assert (await raw(session, fake, "GET", "/app", token))[0] == 401  # an installation token is not the App
    fake.assert_no_violations()


async def test_expired_installation_tokens_get_401_until_refreshed(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    await gh.getitem(f"/repos/{REPO}")

    fake.expire_tokens()
    with pytest.raises(BadRequest) as info:
        await gh.getitem(f"/repos/{REPO}")
    assert info.value.status_code == 401

    gh = await installation_gh(fake, session)
    assert (await gh.getitem(f"/repos/{REPO}"))["full_name"] == REPO
    fake.assert_no_violations()


async def test_token_of_another_installation_sees_404(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    fake.add_installation(88, "someone-else")
    fake.add_repo("someone-else/secret", installation_id=88, private=True)
    gh = await installation_gh(fake, session)
    with pytest.raises(BadRequest) as info:
        await gh.getitem("/repos/someone-else/secret")
    assert info.value.status_code == 404


# --- caching, faults, rate limits ---------------------------------------------------------


async def test_etag_gives_304_until_the_object_changes(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    issue = fake.add_issue(REPO, title="t")
    cache: dict = {}
    gh = await installation_gh(fake, session, cache=cache)
    url = f"/repos/{REPO}/issues/{issue['number']}"

    first = await gh.getitem(url)
    second = await gh.getitem(url)
    fake.add_comment(REPO, issue["number"], body="news", user="alice")
    third = await gh.getitem(url)

    await gh.getitem(f"{url}/comments")
    await gh.getitem(f"{url}/comments")  # 304 although the description documents none here

    statuses = [c.status for c in fake.calls if c.path == url]
    assert statuses == [200, 304, 200]
    assert [c.status for c in fake.calls if c.path == f"{url}/comments"] == [200, 304]
    assert first == second and third["comments"] == 1
    assert fake.calls[-1].response_headers["ETag"].startswith('W/"')
    fake.assert_no_violations()


async def test_injected_502_then_recovery(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    fake.inject_fault("GET", rf"^/repos/{REPO}$", status=502)

    with pytest.raises(Exception) as info:
        await gh.getitem(f"/repos/{REPO}")
    assert getattr(info.value, "status_code", None) == 502
    assert (await gh.getitem(f"/repos/{REPO}"))["name"] == "hello"
    assert [(c.status, c.injected) for c in fake.calls[-2:]] == [(502, True), (200, False)]
    fake.assert_no_violations()


async def test_injected_403_rate_limit_with_retry_after(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    issue = fake.add_issue(REPO, title="t")
    gh = await installation_gh(fake, session)
    reset = int(time.time()) + 30
    fake.inject_fault("POST", r"/comments$", status=403, times=2, headers={
        "Retry-After": "30", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})

    with pytest.raises(RateLimitExceeded) as info:
        await gh.post(f"/repos/{REPO}/issues/{issue['number']}/comments", data={"body": "hi"})
    assert info.value.rate_limit.remaining == 0
    status, body, headers = await raw(session, fake, "POST", f"/repos/{REPO}/issues/1/comments",
                                      gh.oauth_token, json={"body": "hi"})
    assert status == 403 and headers["Retry-After"] == "30" and "rate limit" in body["message"]
    assert (await gh.post(f"/repos/{REPO}/issues/1/comments", data={"body": "hi"}))["body"] == "hi"
    assert len(fake.comments) == 1


async def test_delay_only_fault_then_normal_answer(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    fake.inject_fault("GET", r"/rate_limit$", status=None, delay=0.05)
    started = time.perf_counter()
    limits = await gh.getitem("/rate_limit")
    assert time.perf_counter() - started >= 0.05
    assert limits["resources"]["core"]["limit"] == 5000


async def test_primary_rate_limit_runs_out(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with running_fake(tmp_path, rate_limit=3) as fake:
        fake.add_installation(INSTALLATION, "octo-org")
        fake.add_repo(REPO, installation_id=INSTALLATION)
        gh = await installation_gh(fake, session)
        for _ in range(3):
            await gh.getitem(f"/repos/{REPO}")
        with pytest.raises(RateLimitExceeded):
            await gh.getitem(f"/repos/{REPO}")
        assert fake.calls[-1].response_headers["X-RateLimit-Remaining"] == "0"


# --- issues, labels, reactions, permissions ----------------------------------------------


async def test_reactions_labels_pagination(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    issue = fake.add_issue(REPO, title="t", labels=["agentvine:bugfix"])
    for i in range(5):
        fake.add_comment(REPO, issue["number"], body=f"c{i}", user="alice")
    gh = await installation_gh(fake, session)

    status, first, _ = await raw(session, fake, "POST", f"/repos/{REPO}/issues/1/reactions", gh.oauth_token, json={"content": "eyes"})
    status_again, again, _ = await raw(session, fake, "POST", f"/repos/{REPO}/issues/1/reactions", gh.oauth_token, json={"content": "eyes"})
    assert (status, status_again, first["id"]) == (201, 200, again["id"])
    await gh.post(f"/repos/{REPO}/issues/comments/{fake.comments[0]['id']}/reactions", data={"content": "+1"})
    assert fake.issue(REPO, 1)["reactions"]["eyes"] == 1
    assert [r["content"] for r in fake.reactions_on_comment(fake.comments[0]["id"])] == ["+1"]

    labels = await gh.post(f"/repos/{REPO}/issues/1/labels", data={"labels": ["agentvine:running"]})
    assert [label["name"] for label in labels] == ["agentvine:bugfix", "agentvine:running"]
    remaining = await gh.delete(f"/repos/{REPO}/issues/1/labels/agentvine%3Abugfix")
    assert remaining is None or [label["name"] for label in remaining] == ["agentvine:running"]
    assert [label["name"] for label in fake.issue(REPO, 1)["labels"]] == ["agentvine:running"]
    with pytest.raises(BadRequest) as missing:
        await gh.delete(f"/repos/{REPO}/issues/1/labels/nope")
    assert missing.value.status_code == 404

    bodies = [c["body"] async for c in gh.getiter(f"/repos/{REPO}/issues/1/comments?per_page=2")]
    assert bodies == [f"c{i}" for i in range(5)]
    assert 'rel="next"' in next(c for c in fake.calls if "per_page=2" in str(c.query) or c.query.get("per_page") == "2").response_headers["Link"]
    fake.assert_no_violations()


async def test_collaborator_permission_like_github(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    fake.add_user("bob")
    fake.set_permission(REPO, "carol", "maintain")
    gh = await installation_gh(fake, session)

    async def perm(login: str) -> tuple[str, str]:
        body = await gh.getitem(f"/repos/{REPO}/collaborators/{login}/permission")
        return body["permission"], body["role_name"]

    assert await perm("alice") == ("write", "write")
    assert await perm("carol") == ("write", "maintain")  # legacy field folds maintain into write
    assert await perm("octo-org") == ("admin", "admin")
    assert await perm("bob") == ("read", "read")  # anyone may read a public repository
    fake.add_repo("octo-org/private", installation_id=INSTALLATION, private=True)
    private = await gh.getitem("/repos/octo-org/private/collaborators/bob/permission")
    assert (private["permission"], private["user"]["permissions"]["pull"]) == ("none", False)
    with pytest.raises(BadRequest) as info:
        await perm("ghost-user-that-does-not-exist")
    assert info.value.status_code == 404
    fake.assert_no_violations()


async def test_a_custom_role_answers_with_its_name_and_its_base(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    """An organization's custom repository role: role_name is its own name, `permission` and the
    booleans are those of the built-in role it is based on."""
    fake.set_permission(REPO, "rita", "release-manager", base="maintain")
    gh = await installation_gh(fake, session)
    body = await gh.getitem(f"/repos/{REPO}/collaborators/rita/permission")
    assert (body["role_name"], body["permission"]) == ("release-manager", "write")
    assert body["user"]["permissions"] == {"admin": False, "maintain": True, "push": True, "triage": True, "pull": True}
    with pytest.raises(ValueError):
        fake.set_permission(REPO, "rita", "release-manager")  # a custom role needs its base
    fake.assert_no_violations()


async def test_contents_and_refs_read_the_bare_repo(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    gh = await installation_gh(fake, session)
    main_sha = fake.head_sha(REPO, "main")

    file = await gh.getitem(f"/repos/{REPO}/contents/src/app.py")
    assert base64.b64decode(file["content"]).decode() == "def main():\n    return 1\n"
    with pytest.raises(BadRequest) as info:
        await gh.getitem(f"/repos/{REPO}/contents/.github/agentvine.yml")
    assert info.value.status_code == 404

    created = await gh.post(f"/repos/{REPO}/git/refs", data={"ref": "refs/heads/agentvine/job-1", "sha": main_sha})
    assert created["object"]["sha"] == main_sha
    assert fake.branches(REPO)["agentvine/job-1"] == main_sha
    ref = await gh.getitem(f"/repos/{REPO}/git/ref/heads/agentvine/job-1")
    assert ref["ref"] == "refs/heads/agentvine/job-1"
    with pytest.raises(BadRequest) as exists:
        await gh.post(f"/repos/{REPO}/git/refs", data={"ref": "refs/heads/agentvine/job-1", "sha": main_sha})
    assert exists.value.status_code == 422
    fake.assert_no_violations()


# --- pull requests and reviews ------------------------------------------------------------


async def test_duplicate_pull_request_is_422(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    fake.push_files(REPO, "agentvine/fix-1", {"src/app.py": "def main():\n    return 2\n"})
    gh = await installation_gh(fake, session)

    pull = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Fix", "head": "agentvine/fix-1", "base": "main", "draft": True})
    with pytest.raises(BadRequest) as info:
        await gh.post(f"/repos/{REPO}/pulls", data={"title": "Fix again", "head": "octo-org:agentvine/fix-1", "base": "main"})
    with pytest.raises(BadRequest) as missing_head:
        await gh.post(f"/repos/{REPO}/pulls", data={"title": "x", "head": "no-such-branch", "base": "main"})

    assert info.value.status_code == missing_head.value.status_code == 422
    assert "A pull request already exists for octo-org:agentvine/fix-1." in str(info.value.errors)
    listed = await gh.getitem(f"/repos/{REPO}/pulls?head=octo-org:agentvine/fix-1&state=open")
    assert [p["number"] for p in listed] == [pull["number"]] and listed[0]["draft"] is True
    closed = await gh.patch(f"/repos/{REPO}/pulls/{pull['number']}", data={"state": "closed"})
    assert closed["state"] == "closed" and fake.issue(REPO, pull["number"])["state"] == "closed"
    assert await gh.getitem(f"/repos/{REPO}/pulls?state=open") == []
    fake.assert_no_violations()


async def test_review_comment_must_be_on_a_line_of_the_diff(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    fake.push_files(REPO, "feature", {"src/app.py": "def main():\n    return 1\n\n\ndef extra():\n    return 2\n"})
    fake.add_pull(REPO, head="feature", base="main", title="Add extra", user="alice")
    gh = await installation_gh(fake, session)
    url = f"/repos/{REPO}/pulls/1/reviews"

    with pytest.raises(BadRequest) as info:
        await gh.post(url, data={"event": "COMMENT", "body": "Review", "comments": [
            {"path": "README.md", "line": 1, "body": "not in the diff"}]})
    assert info.value.status_code == 422
    with pytest.raises(BadRequest) as far:
        await gh.post(url, data={"event": "COMMENT", "body": "Review", "comments": [
            {"path": "src/app.py", "line": 40, "side": "RIGHT", "body": "beyond the file"}]})
    assert far.value.status_code == 422

    review = await gh.post(url, data={"event": "REQUEST_CHANGES", "body": "Please rename", "comments": [
        {"path": "src/app.py", "line": 5, "side": "RIGHT", "body": "Name this better"}]})
    assert review["state"] == "CHANGES_REQUESTED"
    assert fake.reviews[-1]["id"] == review["id"]
    assert [(c["path"], c["line"]) for c in fake.review_comments] == [("src/app.py", 5)]
    fake.assert_no_violations()


# --- git over smart HTTP --------------------------------------------------------------------


async def git(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "AgentVine", "GIT_AUTHOR_EMAIL": "bot@example.invalid",
           "GIT_COMMITTER_NAME": "AgentVine", "GIT_COMMITTER_EMAIL": "bot@example.invalid"}
    proc = await asyncio.create_subprocess_exec("git", *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_clone_push_then_pull_request_lists_the_pushed_file(fake: FakeGitHub, session: aiohttp.ClientSession,
                                                                   tmp_path: Path) -> None:
    gh = await installation_gh(fake, session)
    remote = f"{fake.url}/{REPO}.git"
    auth = "Authorization: Basic " + base64.b64encode(f"x-access-token:{gh.oauth_token}".encode()).decode()
    work = tmp_path / "work"

    code, out = await git("clone", remote, str(tmp_path / "anonymous"))
    assert code != 0 and fake.git_calls[0].status == 401

    code, out = await git("-c", f"http.extraHeader={auth}", "clone", remote, str(work))
    assert code == 0, out
    await git("checkout", "-b", "agentvine/issue-1", cwd=work)
    (work / "docs").mkdir()
    (work / "docs" / "usage.md").write_text("# Usage\n\nRun it.\n")
    await git("add", "-A", cwd=work)
    await git("commit", "-m", "Add usage docs", cwd=work)
    code, out = await git("-c", f"http.extraHeader={auth}", "push", "origin", "agentvine/issue-1", cwd=work)
    assert code == 0, out

    assert fake.read_file(REPO, "agentvine/issue-1", "docs/usage.md") == "# Usage\n\nRun it.\n"
    pushed_sha = fake.head_sha(REPO, "agentvine/issue-1")
    ref = await gh.getitem(f"/repos/{REPO}/git/ref/heads/agentvine/issue-1")
    assert ref["object"]["sha"] == pushed_sha
    pull = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Docs", "head": "agentvine/issue-1", "base": "main",
                                                       "body": "Closes #1"})
    assert pull["head"]["sha"] == pushed_sha and pull["changed_files"] == 1 and pull["additions"] == 3
    files = await gh.getitem(f"/repos/{REPO}/pulls/{pull['number']}/files")
    assert [(f["filename"], f["status"], f["additions"]) for f in files] == [("docs/usage.md", "added", 3)]
    assert {c.operation_id for c in fake.git_calls} >= {"git/upload-pack", "git/receive-pack"}
    assert fake.git_errors == []
    fake.assert_no_violations()


async def test_every_operation_in_the_description_has_a_handler(tmp_path: Path) -> None:
    fake = FakeGitHub(data_dir=tmp_path)
    fake.make_app()  # raises if an operation of the spec or supplement is not implemented
    ids = {op.operation_id for op in fake.validator.operations}
    assert {"reactions/create-for-issue", "pulls/list", "reactions/create-for-pull-request-review-comment",
            "apps/create-from-manifest", "apps/get-authenticated", "checks/list-for-ref",
            "checks/list-annotations", "repos/compare-commits-with-basehead", "pulls/dismiss-review"} <= ids \
        and len(ids) == 33


async def test_webhook_payload_wraps_fake_objects(fake: FakeGitHub) -> None:
    issue = fake.add_issue(REPO, title="t", user="alice")
    comment = fake.add_comment(REPO, issue["number"], body="/agentvine go", user="alice")
    payload = fake.webhook("issue_comment", "created", issue=issue, comment=comment, sender="alice")
    assert payload["action"] == "created" and payload["repository"]["full_name"] == REPO
    assert payload["installation"]["id"] == INSTALLATION and payload["sender"]["login"] == "alice"


async def test_app_endpoints_and_raw_contents(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    app_client = GitHubAPI(session, "agentvine-test", base_url=fake.url)
    token = app_jwt(fake)
    installations = await app_client.getitem("/app/installations", jwt=token)
    found = await app_client.getitem(f"/repos/{REPO}/installation", jwt=token)
    assert [i["id"] for i in installations] == [INSTALLATION] and found["id"] == INSTALLATION
    assert found["account"]["login"] == "octo-org" and found["app_slug"] == "agentvine"

    gh = await installation_gh(fake, session)
    with pytest.raises(BadRequest) as wrong_credential:  # installation tokens cannot list installations
        await gh.getitem("/app/installations")
    assert wrong_credential.value.status_code == 401
    text = await gh.getitem(f"/repos/{REPO}/contents/src/app.py", accept="application/vnd.github.raw+json")
    assert text == "def main():\n    return 1\n"
    fake.assert_no_violations()


async def test_pull_request_shapes_with_labels(fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
    fake.push_files(REPO, "agentvine/docs", {"docs/a.md": "a\n"})
    gh = await installation_gh(fake, session)
    pull = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Docs", "head": "agentvine/docs", "base": "main"})
    await gh.post(f"/repos/{REPO}/issues/{pull['number']}/labels", data=["agentvine:review"])

    fetched = await gh.getitem(f"/repos/{REPO}/pulls/{pull['number']}")
    listed = await gh.getitem(f"/repos/{REPO}/pulls")
    assert [label["name"] for label in fetched["labels"]] == ["agentvine:review"]
    assert listed[0]["labels"] == fetched["labels"] and "mergeable" not in listed[0]
    assert fake.pulls[0]["head"]["sha"] == fake.head_sha(REPO, "agentvine/docs")
    fake.assert_no_violations()


async def test_response_that_breaks_the_schema_is_a_violation(fake: FakeGitHub, session: aiohttp.ClientSession,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from app.fakes.github import server
    from app.fakes.github.rest import ApiResponse

    async def broken(fake: FakeGitHub, req: Any) -> ApiResponse:
        return ApiResponse(200, {"id": "not-a-number", "name": "hello"})

    monkeypatch.setitem(server.HANDLERS, "repos/get", broken)
    gh = await installation_gh(fake, session)
    await gh.getitem(f"/repos/{REPO}")
    assert any("repos/get" in v and "response 200 body" in v for v in fake.violations)


# --- GitHub Enterprise Server -------------------------------------------------------------------


async def test_an_enterprise_server_fake_serves_the_api_under_api_v3_and_links_to_its_host(tmp_path, session) -> None:
    async with running_fake(tmp_path, api_prefix="/api/v3") as ghes:
        ghes.add_installation(INSTALLATION, "octo-org", account_type="Organization")
        ghes.add_repo(REPO, installation_id=INSTALLATION, files={"README.md": "# hello\n"})
        issue = ghes.add_issue(REPO, title="An issue", body="", user=ghes.app_owner["login"])
        for n in range(3):
            ghes.add_comment(REPO, issue["number"], body=f"c{n}", user=ghes.app_owner["login"])
        app_client = GitHubAPI(session, "agentvine-test", base_url=ghes.api_url)
        token = await gh_apps.get_installation_access_token(
            app_client, installation_id=str(INSTALLATION), app_id=str(ghes.app_id), private_key=ghes.private_key_pem)
        gh = GitHubAPI(session, "agentvine-test", oauth_token=token["token"], base_url=ghes.api_url)

        repo = await gh.getitem(f"/repos/{REPO}")
        assert repo["url"] == f"{ghes.url}/api/v3/repos/{REPO}"
        assert repo["html_url"] == f"{ghes.url}/{REPO}" and repo["clone_url"] == f"{ghes.url}/{REPO}.git"
        comments = f"/repos/{REPO}/issues/{issue['number']}/comments"
        bodies = [c["body"] async for c in gh.getiter(f"{comments}?per_page=2")]  # follows Link
        assert bodies == ["c0", "c1", "c2"]
        link = next(c for c in ghes.calls if c.query.get("per_page") == "2").response_headers["Link"]
        assert f"{ghes.url}/api/v3{comments}?" in link
        ghes.assert_no_violations()

        # A client that forgot the /api/v3 root reaches the web server, not the API.
        status, _body, _headers = await raw(session, ghes, "GET", f"/repos/{REPO}", token["token"])
        assert status == 404
        assert ghes.violations == [f"GET /repos/{REPO}: outside the REST API root /api/v3"]
